package cli

import (
	"bytes"
	"os/exec"
	"regexp"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/testenv"
)

// manPage is the one source of nicpersist(8); the packages convert it with
// go-md2man.
const manPage = "../../packaging/man/nicpersist.8.md"

// helpFlag is a flag as pflag's usage lists it: "  -x, --name type  text".
var helpFlag = regexp.MustCompile(`(?m)^\s+(?:-[a-zA-Z], )?--([a-z0-9][a-z0-9-]*)`)

// manSections splits the man page's COMMANDS into its "## <command>"
// subsections, by command name.
func manSections(t *testing.T, page string) map[string]string {
	t.Helper()
	_, cmds, ok := strings.Cut(page, "\n# COMMANDS\n")
	if !ok {
		t.Fatalf("%s has no COMMANDS section", manPage)
	}
	cmds, _, _ = strings.Cut(cmds, "\n# ")
	out := map[string]string{}
	for _, sec := range strings.Split(cmds, "\n## ")[1:] {
		head, body, _ := strings.Cut(sec, "\n")
		name, _, _ := strings.Cut(head, " ")
		out[name] = body
	}
	return out
}

// Every flag a command's --help prints is documented, as **--name**, in
// that command's section of the man page, and every command has a section
// and a SYNOPSIS line.
func TestManPageDocumentsEveryFlag(t *testing.T) {
	page := mustRead(t, manPage)
	secs := manSections(t, page)
	_, synopsis, _ := strings.Cut(page, "\n# SYNOPSIS\n")
	synopsis, _, _ = strings.Cut(synopsis, "\n# ")
	for _, sec := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "FILES", "EXIT STATUS", "EXAMPLES", "SEE ALSO"} {
		if !strings.Contains(page, "\n# "+sec+"\n") {
			t.Errorf("%s has no %s section", manPage, sec)
		}
	}
	for _, cmd := range []string{"render", "check", "apply", "uninstall", "try", "import", "verify", "version"} {
		out, stderr, code := run(cmd, "--help")
		if code != ExitOK || stderr != "" {
			t.Errorf("%s --help: exit %d, stderr %q", cmd, code, stderr)
			continue
		}
		body, ok := secs[cmd]
		if !ok {
			t.Errorf("%s: no \"## %s\" section under COMMANDS", manPage, cmd)
			continue
		}
		if !strings.Contains(synopsis, "**nicpersist "+cmd+"**") {
			t.Errorf("%s: SYNOPSIS has no **nicpersist %s**", manPage, cmd)
		}
		for _, m := range helpFlag.FindAllStringSubmatch(out, -1) {
			flag := "**--" + m[1] + "**"
			if !strings.Contains(body, flag) {
				t.Errorf("%s --help prints --%s, but the man page's %q section lacks %s", cmd, m[1], cmd, flag)
			}
			if !strings.Contains(synopsis, flag) {
				t.Errorf("%s --help prints --%s, but the man page's SYNOPSIS lacks %s", cmd, m[1], flag)
			}
		}
	}
	// The test must see the flags at all.
	if out, _, _ := run("render", "--help"); len(helpFlag.FindAllString(out, -1)) < 5 {
		t.Fatalf("found almost no flags in render --help:\n%s", out)
	}
}

// The man page converts with go-md2man (as the packages do) to troff that
// groff formats without a warning.
func TestManPageConverts(t *testing.T) {
	testenv.Need(t, "", "", "go-md2man", "groff")
	var troff, md2manErr bytes.Buffer
	cmd := exec.Command("go-md2man", "-in", manPage)
	cmd.Stdout, cmd.Stderr = &troff, &md2manErr
	if err := cmd.Run(); err != nil || md2manErr.Len() > 0 {
		t.Fatalf("go-md2man -in %s: %v\n%s", manPage, err, md2manErr.String())
	}
	if !bytes.Contains(troff.Bytes(), []byte("\n.TH NICPERSIST 8")) {
		t.Errorf("no .TH NICPERSIST 8 line in:\n%.300s", troff.String())
	}
	if !bytes.Contains(troff.Bytes(), []byte(".SH NAME\n.PP\nnicpersist - ")) {
		t.Errorf("NAME is not \"nicpersist - ...\", which whatis/apropos need")
	}
	groff := exec.Command("groff", "-man", "-Tutf8", "-ww", "-z")
	groff.Stdin = bytes.NewReader(troff.Bytes())
	if out, err := groff.CombinedOutput(); err != nil || len(out) > 0 {
		t.Errorf("groff -man -ww: %v\n%s", err, out)
	}
}
