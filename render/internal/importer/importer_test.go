package importer

import (
	"errors"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode"

	"github.com/nicpersist/nicpersist/render/internal/diag"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/profile"
)

// testEnv is the seed VM: three NICs, a stock rt_tables and a CentOS 7
// sysctl.conf with the line the seed's sed expects.
func testEnv() Env {
	files := map[string]string{
		"/etc/iproute2/rt_tables":              "255\tlocal\n254\tmain\n253\tdefault\n0\tunspec\n",
		"/etc/sysctl.conf":                     "# System default settings live in /usr/lib/sysctl.d/00-system.conf.\nnet.ipv4.ip_forward = 0\n",
		"/etc/iproute2/rt_tables.d/cloud.conf": "# a drop-in\n300 cloud-eth1\n",
	}
	return Env{
		ReadFile: func(p string) ([]byte, error) {
			if s, ok := files[p]; ok {
				return []byte(s), nil
			}
			return nil, fs.ErrNotExist
		},
		Glob: func(pattern string) ([]string, error) {
			var out []string
			for p := range files {
				if ok, _ := filepath.Match(pattern, p); ok {
					out = append(out, p)
				}
			}
			return out, nil
		},
		Links: map[string][]netip.Prefix{
			"lo":   {netip.MustParsePrefix("127.0.0.1/8")},
			"eth1": {netip.MustParsePrefix("172.22.5.68/27"), netip.MustParsePrefix("2001:db8:1::68/64")},
			"eth2": {netip.MustParsePrefix("172.22.5.100/27"), netip.MustParsePrefix("2001:db8:2::100/64")},
			"eth3": {netip.MustParsePrefix("172.22.5.132/26"), netip.MustParsePrefix("2001:db8:3::132/64")},
		},
	}
}

func importText(t testing.TB, src string) (*Result, error) {
	t.Helper()
	st, err := ParseRCLocal("rc.local", []byte(src), testEnv())
	if err != nil {
		return nil, err
	}
	return Profile(st, testEnv(), "rc.local"), nil
}

// validate runs the profile through nicpersist's own checks.
func validate(res *Result) *diag.List {
	l := &diag.List{File: "imported.toml"}
	if d := profile.Decode(res.Profile, l); d != nil {
		plan.Build(d, l)
	}
	return l
}

func TestLines(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []string // in the profile, in order
		skipped   string   // in the first skip reason, "" when none
		note      string   // in a note
	}{
		{name: "seed",
			src: "ip route del default via 172.22.5.65 dev eth1\nip route add default via 172.22.5.97 dev eth2\n" +
				"iptables -t nat -A POSTROUTING -o eth2 -j MASQUERADE\n" +
				"sed -ri 's/net.ipv4.ip_forward = 0/net.ipv4.ip_forward = 1/g' /etc/sysctl.conf; sysctl -p\n" +
				"echo \"100 table1\" >> /etc/iproute2/rt_tables\nip route add default via 172.22.5.65 dev eth1 table table1\n" +
				"ip rule add from 172.22.5.68 table table1\n",
			want: []string{"ip_forward = true  # rc.local:4", `name = "eth1"`, `gateway = "172.22.5.65"`, "reply_via_self = true", "table = 100",
				"priority = 32765  # rc.local:7 gives no priority: the kernel gave it 32765", `name = "eth2"`, "default_route = true", "[[nat]]", "masquerade = true"},
			note: `adds route "172.22.5.64/27 dev eth1 table 100"`},
		{name: "rule without priority after a pref",
			src:  "ip rule add pref 100 from 10.1.0.0/16 table 200\nip rule add from 10.2.0.0/16 table 200\nip rule add fwmark 0x10 table 200\n",
			want: []string{"priority = 100", "priority = 99  #", "priority = 98  #", `fwmark = "0x10"`}},
		{name: "rule deleted gives its priority back",
			src:  "ip rule add from 10.1.0.0/16 table 200\nip rule del from 10.1.0.0/16\nip rule add from 10.2.0.0/16 table 200\n",
			want: []string{"priority = 32765  #", `from = "10.2.0.0/16"`}},
		{name: "ip -6 rule counts apart",
			src:  "ip rule add from 10.1.0.0/16 table 200\nip -6 rule add from 2001:db8:9::/64 table 200\n",
			want: []string{"priority = 32765", "priority = 32765"}},
		{name: "table by name",
			src:  "echo '150 uplink' >> /etc/iproute2/rt_tables\nip route add 10.9.0.0/16 via 172.22.5.97 table uplink\nip rule add iif eth3 lookup uplink priority 40\n",
			want: []string{"[[table]]\nid = 150\nname = \"uplink\"", `dev = "eth2"`, `table = "uplink"`, "priority = 40", `iif = "eth3"`}},
		{name: "table from rt_tables.d", src: "ip rule add from 10.1.0.0/16 table cloud-eth1 pref 50\nip route add default via 172.22.5.65 table cloud-eth1\n",
			want: []string{"id = 300\nname = \"cloud-eth1\"", "priority = 50", `table = "cloud-eth1"`}},
		{name: "unknown table name", src: "ip rule add from 10.1.0.0/16 table nosuch\n", skipped: `table "nosuch" is neither a number nor a name`},
		{name: "src", src: "ip route add 10.0.0.0/8 via 172.22.5.97 dev eth2 src 172.22.5.100\n", skipped: "src 172.22.5.100 has no profile key"},
		{name: "scope host", src: "ip route add 10.0.0.0/8 dev eth2 scope host\n", skipped: "scope host has no profile key"},
		{name: "scope link is the default", src: "ip route add 10.0.0.0/8 dev eth2 scope link\n", want: []string{`to = "10.0.0.0/8"`}},
		{name: "proto", src: "ip route add 10.0.0.0/8 via 172.22.5.97 dev eth2 proto static\n", want: []string{`to = "10.0.0.0/8"`}, note: "proto static is not carried over"},
		{name: "host bits", src: "ip route add 10.0.0.5/8 dev eth2\n", skipped: "host bits"},
		{name: "blackhole", src: "ip route add blackhole 10.0.0.0/8\n", skipped: "blackhole route has no profile key"},
		{name: "metric and abbreviations", src: "ip -4 ro a 10.0.0.0/8 via 172.22.5.97 dev eth2 preference 7\n", want: []string{"metric = 7"}},
		{name: "host route", src: "ip r add 192.0.2.7 via 172.22.5.97\n", want: []string{`to = "192.0.2.7/32"`, `dev = "eth2"`}},
		{name: "add twice", src: "ip route add 10.0.0.0/8 dev eth2\nip route add 10.0.0.0/8 dev eth3\n", skipped: "rc.local:1 already made this route", want: []string{`dev = "eth2"`}},
		{name: "replace twice", src: "ip route add 10.0.0.0/8 dev eth2\nip route replace 10.0.0.0/8 dev eth3\n", want: []string{`dev = "eth3"`}},
		{name: "del of a system route", src: "ip route del 10.0.0.0/8\n", skipped: "deletes a route the file did not add"},
		{name: "default deleted only", src: "ip route del default\n", skipped: "deletes the system's default route"},
		{name: "replace default", src: "ip route replace default via 172.22.5.97 dev eth2\n", want: []string{"default_route = true"}},
		{name: "net-tools", src: "route del default\nroute add default gw 172.22.5.97 eth2\nroute add -net 10.10.0.0 netmask 255.255.0.0 gw 172.22.5.97\nroute add -host 192.0.2.9 dev eth3\n",
			want: []string{`gateway = "172.22.5.97"`, "default_route = true", `to = "10.10.0.0/16"`, `to = "192.0.2.9/32"`, `dev = "eth3"`}},
		{name: "net-tools mask", src: "route add -net 10.10.0.0 netmask 255.0.255.0 dev eth2\n", skipped: "not contiguous"},
		{name: "net-tools classful", src: "route add -net 10.0.0.0 dev eth2\n", skipped: "without netmask"},
		{name: "snat", src: "iptables -t nat -A POSTROUTING -o eth1 -j MASQUERADE\niptables -t nat -I POSTROUTING -s 172.22.5.128/26 -o eth2 -j SNAT --to-source 172.22.5.100\n",
			want: []string{`source = "172.22.5.128/26"`, `to_source = "172.22.5.100"`, `out_interface = "eth1"`, "masquerade = true"}},
		{name: "nat match", src: "iptables -t nat -A POSTROUTING -o eth2 -p tcp -j MASQUERADE\n", skipped: "iptables -p has no profile key"},
		{name: "filter", src: "iptables -A FORWARD -i eth3 -j ACCEPT\n", skipped: "iptables -i has no profile key"},
		{name: "filter chain", src: "iptables -A FORWARD -j ACCEPT\n", skipped: "only nat POSTROUTING has a profile key"},
		{name: "nat without -o", src: "iptables -t nat -A POSTROUTING -s 10.0.0.0/8 -j MASQUERADE\n", skipped: "without -o"},
		{name: "snat range", src: "iptables -t nat -A POSTROUTING -o eth2 -j SNAT --to-source 172.22.5.100-172.22.5.101\n", skipped: "no range"},
		{name: "ip6tables", src: "ip6tables -t nat -A POSTROUTING -s 2001:db8:3::/64 -o eth2 -j MASQUERADE\n", want: []string{`source = "2001:db8:3::/64"`}},
		{name: "sysctl forms", src: "sysctl -w net.ipv4.ip_forward=1\necho 1 > /proc/sys/net/ipv6/conf/all/forwarding\nsysctl net.ipv4.conf.all.rp_filter=2\n",
			want: []string{"ip_forward = true", "ipv6_forwarding = true", `rp_filter = "loose"`, `name = "eth1"`, `name = "eth2"`, `name = "eth3"`}},
		{name: "per-interface rp_filter", src: "sysctl -w net.ipv4.conf.eth1.rp_filter=2\n", skipped: "net.ipv4.conf.eth1.rp_filter: the profile's rp_filter is one value"},
		{name: "other sysctl", src: "echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects\n", skipped: "net.ipv4.conf.all.send_redirects has no profile key"},
		{name: "sed BRE and sysctl -p", src: "sed -i 's/^net.ipv4.ip_forward.*/net.ipv4.ip_forward = 1/' /etc/sysctl.conf\nsysctl -p\n", want: []string{"ip_forward = true  # rc.local:2"}},
		{name: "sed that matches nothing", src: "sed -i 's/#net.ipv4.conf.all.forwarding=1/net.ipv4.conf.all.forwarding=1/' /etc/sysctl.conf\nsysctl -p\n", skipped: "net.ipv4.conf.all.forwarding has no line in /etc/sysctl.conf as it is on this machine (the edit matches nothing here), so running the script does not set"},
		{name: "sed already done", src: "sed -i 's/net.ipv4.ip_forward = 1/net.ipv4.ip_forward = 0/' /etc/sysctl.conf\nsysctl -p\n", want: []string{"ip_forward = false  # rc.local:2"}},
		{name: "sysctl -p alone", src: "sysctl -p\n", note: "sysctl -p re-applies /etc/sysctl.conf, which the boot applies anyway"},
		{name: "appended sysctl.conf", src: "echo 'net.ipv4.ip_forward = 1' >> /etc/sysctl.conf\nsysctl -p >/dev/null\n", want: []string{"ip_forward = true"}},
		{name: "variables", src: "GW=172.22.5.97\nDEV='eth2'\nip route add 10.0.0.0/8 via \"$GW\" dev ${DEV}\n", want: []string{`via = "172.22.5.97"`, `dev = "eth2"`}},
		{name: "unset variable", src: "ip route add 10.0.0.0/8 via $GW\n", skipped: "uses $GW, which the file does not set"},
		{name: "command substitution", src: "GW=$(ip route | awk '/default/ {print $3}')\nip route add 10.0.0.0/8 via $GW\n", skipped: "command substitution"},
		{name: "continuation", src: "ip route add 10.0.0.0/8 \\\n  via 172.22.5.97 \\\n  dev eth2\n", want: []string{`[[route]]  # rc.local:1`}},
		{name: "pipe", src: "ip route add 10.0.0.0/8 dev eth2 | logger\n", skipped: `does not follow "|"`},
		{name: "or true and redirections", src: "ip route add 10.0.0.0/8 dev eth2 2>/dev/null || true\n", want: []string{`to = "10.0.0.0/8"`}},
		{name: "after exit", src: "set -e\nexit 0\nip route add 10.0.0.0/8 dev eth2\n", skipped: "never runs: it comes after the exit at rc.local:2"},
		{name: "set -e stops at a failure", src: "set -eu\nip route add 10.0.0.0/8 dev eth2\nip route add 10.0.0.0/8 dev eth3\nip rule add from 10.1.0.0/16 table 200\n",
			skipped: "File exists", want: []string{`dev = "eth2"`}},
		{name: "set -e and || true", src: "#!/bin/sh -e\nip route add 10.0.0.0/8 dev eth2\nip route add 10.0.0.0/8 dev eth3 || true\nip rule add from 10.1.0.0/16 table 200\n",
			skipped: "File exists", want: []string{`dev = "eth2"`, "priority = 32765"}},
		{name: "link", src: "ip link set eth2 up\n", skipped: "ip link has no profile key"},
		{name: "address from the file", src: "ip addr add 10.5.0.2/24 dev eth9\nip route add 10.6.0.0/16 via 10.5.0.1 dev eth9\n",
			skipped: "nicpersist does not assign addresses", want: []string{`name = "eth9"`, `address = "10.5.0.2/24"  # from the file`}},
		{name: "no address", src: "ip route add 10.6.0.0/16 dev eth9\n", want: []string{`# address = "?"`}},
		{name: "unknown command", src: "modprobe 8021q\n", skipped: "modprobe is not a command import knows"},
		{name: "rhel lock file", src: "#!/bin/sh\n# comment\ntouch /var/lock/subsys/local\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := importText(t, tc.src)
			if err != nil {
				t.Fatal(err)
			}
			text := string(res.Profile)
			rest := text
			for _, w := range tc.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Errorf("want %q (in order) in:\n%s", w, text)
					continue
				}
				rest = rest[i+len(w):]
			}
			switch {
			case tc.skipped == "" && len(res.Skipped) > 0:
				t.Errorf("skipped %+v", res.Skipped)
			case tc.skipped != "" && (len(res.Skipped) == 0 || !strings.Contains(res.Skipped[0].Reason, tc.skipped)):
				t.Errorf("want a first skip with %q, got %+v", tc.skipped, res.Skipped)
			case tc.skipped != "" && !strings.Contains(text, res.Skipped[0].Reason):
				t.Errorf("the reason is not in the profile:\n%s", text)
			}
			if tc.note != "" && !strings.Contains(strings.Join(res.Notes, "\n"), tc.note) {
				t.Errorf("want a note with %q, got %q", tc.note, res.Notes)
			}
			if l := validate(res); l.HasErrors() && tc.skipped == "" && tc.name != "no address" {
				t.Errorf("the profile does not validate: %v\n%s", l.Sorted(), text)
			}
		})
	}
}

func TestSyntaxError(t *testing.T) {
	_, err := importText(t, "ip route add 10.0.0.0/8 dev eth2\nip rule add from \"10.1.0.0/16 table 200\n")
	var se *SyntaxError
	if !errors.As(err, &se) || se.Line != 2 {
		t.Fatalf("want a syntax error on line 2, got %v", err)
	}
}

// TestCases runs the e2e cases here too, without a kernel: each imports
// to a valid profile, and a case that says it is incomplete is.
func TestCases(t *testing.T) {
	files, _ := filepath.Glob("../../../testdata/import/*.sh")
	if len(files) == 0 {
		t.Fatal("no testdata/import cases")
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		res, err := importText(t, string(src))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if l := validate(res); l.HasErrors() {
			t.Errorf("%s: %v\n%s", f, l.Sorted(), res.Profile)
		}
		if incomplete := strings.Contains(string(src), "# want-exit: 3"); incomplete != (len(res.Skipped) > 0) {
			t.Errorf("%s: skipped %+v", f, res.Skipped)
		}
	}
}

// FuzzRCLocal feeds arbitrary scripts to the parser: no panic, the same
// input gives the same profile, the profile is TOML whose keys the decoder
// knows, and every report is one printable line.
func FuzzRCLocal(f *testing.F) {
	files, _ := filepath.Glob("../../../testdata/import/*.sh")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(string(b))
		}
	}
	for _, s := range []string{
		"ip route add 10.0.0.0/8 via $X\n", "X='a\nb'\nip rule add from $X table 1\n",
		"echo \"1 \\\"x\\\"\" >> /etc/iproute2/rt_tables\nip rule add from 10.0.0.0/8 table '\"x\"'\n",
		"sed -ri 's/(a)+/\\1&/g' /etc/sysctl.conf; sysctl -p\n", "ip -6 route del default\nip route del default\n", "ip -6 route add default via fe80::1%eth1 dev eth1\n",
		"iptables -t nat -I POSTROUTING 3 -o 'eth 2' -j MASQUERADE\n", "ip route add 10.0.0.0/8 dev \"$(printf '\\x01')\"\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src string) {
		res, err := importText(t, src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error that is no SyntaxError: %v", err)
			}
			return
		}
		again, _ := importText(t, src)
		if string(again.Profile) != string(res.Profile) {
			t.Fatalf("two imports differ:\n%s\n---\n%s", res.Profile, again.Profile)
		}
		l := &diag.List{File: "imported.toml"}
		if profile.Decode(res.Profile, l) == nil {
			t.Fatalf("not TOML: %v\n%s", l.Sorted(), res.Profile)
		}
		for _, p := range l.Sorted() {
			if strings.Contains(p.String(), "unknown key") {
				t.Fatalf("%v\n%s", p, res.Profile)
			}
		}
		for _, s := range res.Skipped {
			for _, part := range []string{s.Where, s.Text, s.Reason} {
				if strings.ContainsFunc(part, func(r rune) bool { return r == '\n' || !unicode.IsPrint(r) && r != '\t' }) {
					t.Fatalf("report not one printable line: %q", part)
				}
			}
		}
		plan.Build(profile.Decode(res.Profile, &diag.List{}), &diag.List{})
	})
}

func TestErrexit(t *testing.T) {
	for _, tc := range []struct {
		src   string
		skips []string
	}{
		{"set -e\nip route add 10.0.0.0/8 dev eth2\nip route add 10.0.0.0/8 dev eth3\nip rule add from 10.1.0.0/16 table 200\n",
			[]string{"File exists", "never runs: set -e stops the file at rc.local:3, which fails"}},
		{"set -e\nset +e\nip route add 10.0.0.0/8 dev eth2\nip route add 10.0.0.0/8 dev eth3\nip rule add from 10.1.0.0/16 table 200\n",
			[]string{"File exists"}},
		{"set -o errexit\nip rule add from 10.1.0.0/16 table nosuch\nip rule add from 10.1.0.0/16 table 200\n",
			[]string{"neither a number nor a name", "never runs"}},
	} {
		res, err := importText(t, tc.src)
		if err != nil {
			t.Fatal(err)
		}
		ok := len(res.Skipped) == len(tc.skips)
		for i := 0; ok && i < len(tc.skips); i++ {
			ok = strings.Contains(res.Skipped[i].Reason, tc.skips[i])
		}
		if !ok {
			t.Errorf("%q: skipped %+v, want %q", tc.src, res.Skipped, tc.skips)
		}
	}
}
