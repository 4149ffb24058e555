package profile

import (
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/diag"
)

func TestPositions(t *testing.T) {
	src := `version = 1 # comment

[sysctl]
rp_filter = "loose"

[[interface]]
name = "a"
note = """
multi
"""

[[interface]]
name = "b"
gateway = "10.0.0.1"
`
	d := Decode([]byte(src), &diag.List{File: "p"})
	if d == nil {
		t.Fatal("not decoded")
	}
	for path, line := range map[string]int{
		"version": 1, "sysctl": 3, "sysctl.rp_filter": 4, "interface[0]": 6, "interface[0].name": 7,
		"interface[1].name": 13, "interface[1].gateway": 14, "interface[1].address": 12, "nat[3]": 0,
	} {
		if got := d.LineOf(path); got != line {
			t.Errorf("LineOf(%s) = %d, want %d", path, got, line)
		}
	}
}

func TestDecodeProblems(t *testing.T) {
	for _, c := range []struct{ src, want string }{
		{"version = 1\n[[interface]]\nnmae = \"a\"\n", `p:3: interface[0].nmae: unknown key; did you mean "name"?`},
		{"version = 1\n[sysctls]\n", `p:2: sysctls: unknown key; did you mean "sysctl"?`},
		{"version = 1\nversion = 2\n", "p:2: not a valid profile:"},
		{"version = 1\ninterface = 3\n", "p:2: not a valid profile:"},
		// A quoted key's control characters come back escaped, so the
		// message stays one line and sends no escape to the terminal.
		{"\"\\n\" =", `p:1: not a valid profile: unexpected EOF; expected value (after key \n)`},
		{"[a]\n\"\\u001b[31m\" =", `(after key a.\x1b[31m)`},
		// A quoted unknown key is placed on its line, with its index.
		{"version = 1\n[[interface]]\nname = \"a\"\n[[interface]]\n\"x.y\" = 1\n", `p:5: interface[1]."x.y": unknown key; known keys here:`},
		{"version = 1\n\"\\u001b\\n\" = 1\n", `p:2: "\u001b\n": unknown key;`},
		{"version = 1\n[ 'sys' . \"x]\" ]\na = 1\n", `p:2: sys."x]": unknown key`},
		{"version = 1\n[[route]]\nbogus = 1\n[[route]]\nbogus = 2\n", "p:5: route[1].bogus: unknown key; known keys here: dev, metric, table, to, via"},
	} {
		l := &diag.List{File: "p"}
		Decode([]byte(c.src), l)
		var got []string
		for _, p := range l.Sorted() {
			got = append(got, p.String())
		}
		if !strings.Contains(strings.Join(got, "\n"), c.want) {
			t.Errorf("%q: got\n%s\nwant %q", c.src, strings.Join(got, "\n"), c.want)
		}
	}
}

// A syntax error is reported on the line that holds it, also when the
// decoder only notices it at the newline that ends the line.
func TestSyntaxErrorLine(t *testing.T) {
	for _, c := range []struct {
		name, src string
		line      int
	}{
		{"unclosed array of tables", "version = 1\n[[interface]\nname = \"eth1\"\n", 2},
		{"unclosed table", "version = 1\n\n[sysctl\nip_forward = true\n", 3},
		{"unclosed table with CRLF", "version = 1\r\n[sysctl\r\nip_forward = true\r\n", 2},
		{"unclosed table after a byte order mark", "\xef\xbb\xbfversion = 1\n[sysctl\nip_forward = true\n", 2},
		{"unterminated string", "version = 1\n[[interface]]\nname = \"eth1\ngateway = \"10.0.0.1\"\n", 3},
		{"missing value", "version = 1\n[sysctl]\nip_forward =\nrp_filter = \"loose\"\n", 3},
		{"error at end of file", "version = 1\n[[interface]\n", 2},
		{"error at end of file without newline", "version = 1\n[[interface]", 2},
		{"missing value at end of file", "version = 1\n[sysctl]\nip_forward =", 3},
		{"mistake inside a line", "version = 1\n[sysctl]\nip_forward = true false\n", 3},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := &diag.List{File: "p"}
			if d := Decode([]byte(c.src), l); d != nil {
				t.Fatalf("decoded %q", c.src)
			}
			if len(l.Items) != 1 || l.Items[0].Line != c.line || !strings.Contains(l.Items[0].Msg, "not a valid profile") {
				t.Errorf("%q: got %v, want one syntax error on line %d", c.src, l.Items, c.line)
			}
		})
	}
}
