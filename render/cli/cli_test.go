package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeProfile(t testing.TB, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "profile.toml")
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// writeTree writes files (path relative to root: content) with their
// parent directories, as a machine's own files before nicpersist runs.
func writeTree(t testing.TB, root string, mode os.FileMode, files map[string]string) {
	t.Helper()
	for rel, text := range files {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
}

// readDir lists dir; a root that cannot be read fails the test rather than
// passing for empty.
func readDir(t testing.TB, dir string) []os.DirEntry {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return entries
}

func TestUsage(t *testing.T) {
	for _, c := range []struct {
		args       []string
		code       int
		stdout     string
		stderrPart string
	}{
		{nil, 2, "", "Usage:"},
		{[]string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{[]string{"render", "--bogus"}, 2, "", "unknown flag: --bogus"},
		{[]string{"render", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"render", "--help"}, 0, "Usage of nicpersist render:", ""},
		{[]string{"check", "-h"}, 0, "Usage of nicpersist check:", ""},
		{[]string{"--help"}, 0, "Usage:", ""},
		{[]string{"version"}, 0, "nicpersist " + Version, ""},
		{[]string{"render", "--root", "/nonexistent-np"}, 2, "", "is not a directory"},
		{[]string{"render", "--root", "/tmp", "--profile", "/nonexistent-np.toml"}, 2, "", "does not exist"},
		{[]string{"render", "--root", "/tmp", "--apply", "binary"}, 2, "", "unknown flag: --apply"},
		{[]string{"apply"}, 2, "", "want one of start, stop or watch"},
		{[]string{"apply", "restart"}, 2, "", `unknown action "restart"; want start, stop or watch`},
		{[]string{"apply", "watch", "--dir", "/nonexistent"}, 1, "", "/nonexistent/watch does not exist: only the ifupdown target has interfaces to watch"},
		{[]string{"apply", "start", "stop"}, 2, "", `unexpected argument "stop"`},
		{[]string{"apply", "start", "--wait", "-1"}, 2, "", "--wait -1: want 0 or more seconds"},
		{[]string{"apply", "--help"}, 0, "Usage of nicpersist apply start|stop|watch:", ""},
	} {
		name := strings.Join(c.args, " ")
		if name == "" {
			name = "no-arguments"
		}
		t.Run(name, func(t *testing.T) {
			out, errOut, code := run(c.args...)
			if code != c.code || !strings.Contains(out, c.stdout) || !strings.Contains(errOut, c.stderrPart) {
				t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d, stdout ~%q, stderr ~%q", c.args, code, out, errOut, c.code, c.stdout, c.stderrPart)
			}
		})
	}
}

func TestInvalidProfileReportsEverythingAndWritesNothing(t *testing.T) {
	p := writeProfile(t, `version = 1

[[interface]]
name = "eth1"
address = "172.22.5.68/27"
gateway = "172.22.6.1"
reply_via_self = true

[[interface]]
name = "eth2:0"
adress = "172.22.5.100/27"

[[route]]
to = "10.0.0.0/8"
dev = "eth9"
`)
	root := t.TempDir()
	out, errOut, code := run("render", "--root", root, "--profile", p, "--target", "systemd")
	if code != 2 || out != "" {
		t.Fatalf("exit %d, stdout %q", code, out)
	}
	for _, want := range []string{
		p + ":6: interface[0].gateway: 172.22.6.1 is not inside 172.22.5.64/27",
		p + `:10: interface[1].name: "eth2:0" contains ':', which Linux refuses in interface names`,
		p + `:11: interface[1].adress: unknown key; did you mean "address"?`,
		p + `:15: route[0].dev: interface "eth9" is not defined in the profile`,
		"error(s) in " + p + "; nothing written",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	if entries := readDir(t, root); len(entries) != 0 {
		t.Errorf("an invalid profile wrote %d entries", len(entries))
	}
}

func TestDryRunDiffJSON(t *testing.T) {
	root := t.TempDir()
	prof := exampleProfile
	out, _, code := run("render", "--root", root, "--profile", prof, "--dry-run", "--diff")
	if code != 0 || !strings.Contains(out, "+++ b/etc/nicpersist/ip4.batch") || !strings.Contains(out, "+route replace default via 172.22.5.97 dev eth2 proto 241") {
		t.Fatalf("dry-run diff: exit %d\n%s", code, out)
	}
	if entries := readDir(t, root); len(entries) != 0 {
		t.Fatal("--dry-run wrote files")
	}
	out, _, code = run("render", "--root", root, "--profile", prof, "--json")
	var res jsonResult
	if err := json.Unmarshal([]byte(out), &res); err != nil || code != 0 || !res.Changed {
		t.Fatalf("--json: %v, exit %d, %s", err, code, out)
	}
	for _, f := range res.Files {
		if f.Status != "created" {
			t.Errorf("%s: %s on a first render", f.Path, f.Status)
		}
	}
	out, _, _ = run("render", "--root", root, "--profile", prof, "--json")
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Changed {
		t.Fatalf("second --json: %v %s", err, out)
	}
	// A changed profile: the diff shows it and the next render converges.
	changed := writeProfile(t, strings.Replace(mustRead(t, prof), `rp_filter = "loose"`, `rp_filter = "off"`, 1))
	out, _, _ = run("render", "--root", root, "--profile", changed, "--diff")
	if !strings.Contains(out, "+net.ipv4.conf.all.rp_filter = 0") {
		t.Errorf("diff of a changed profile:\n%s", out)
	}
	out, _, _ = run("render", "--root", root, "--profile", changed)
	if out != "0 changed\n" {
		t.Errorf("render after --diff: %q", out)
	}
}

func mustRead(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWarningsForRootCollisions(t *testing.T) {
	root := t.TempDir()
	writeTree(t, root, 0o644, map[string]string{
		"etc/iproute2/rt_tables.d/other.conf":     "1000 theirs\n",
		"etc/sysconfig/network-scripts/rule-eth1": "priority 1000 from 10.1.1.1 table 1000\n",
	})
	_, errOut, code := run("check", "--root", root, "--profile", exampleProfile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"warning: interface[0].reply_via_self: table id 1000 is already named in /etc/iproute2/rt_tables.d/other.conf:1",
		"warning: interface[0].reply_via_self: rule priority 1000 is already used in /etc/sysconfig/network-scripts/rule-eth1:1",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	_, errOut, _ = run("render", "--root", root, "--profile", exampleProfile, "--target", "rhel", "--rhel-stack", "networkmanager", "--dry-run")
	if !strings.Contains(errOut, "NetworkManager ignores /etc/sysconfig/network-scripts/route-eth1 while a rule file for eth1 exists") {
		t.Errorf("no NetworkManager rule-file warning:\n%s", errOut)
	}
}

func TestSeedLints(t *testing.T) {
	p := writeProfile(t, `version = 1
[sysctl]
rp_filter = "strict"
[[interface]]
name = "eth1"
address = "172.22.5.68/27"
gateway = "172.22.5.65"
[[interface]]
name = "eth2"
address = "172.22.5.100/27"
gateway = "172.22.5.97"
default_route = true
[[nat]]
out_interface = "eth2"
masquerade = true
`)
	_, errOut, code := run("check", "--root", t.TempDir(), "--profile", p)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		":3: warning: sysctl.rp_filter: \"strict\" drops packets",
		":4: warning: interface[0]: the main IPv4 default route leaves via eth2, so replies to connections made to 172.22.5.68",
		":13: warning: nat[0]: NAT is configured but sysctl.ip_forward is not set",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
}

func TestSharedFileKeepsItsMode(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "etc/sysconfig/network-scripts")
	writeTree(t, dir, 0o600, map[string]string{"route-eth1": "192.168.50.0/24 via 172.22.5.65 dev eth1\n"})
	args := []string{"render", "--root", root, "--profile", exampleProfile, "--target", "rhel", "--rhel-stack", "network-scripts"}
	if _, e, code := run(args...); code != 0 {
		t.Fatal(e)
	}
	fi, err := os.Stat(filepath.Join(dir, "route-eth1"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("route-eth1 mode %v, want the user's 0600", fi.Mode().Perm())
	}
	if out, _, _ := run(args...); out != "0 changed\n" {
		t.Errorf("second render: %q", out)
	}
	if _, e, code := run("check", "--root", root, "--profile", root); code != 2 || !strings.Contains(e, "is a directory") {
		t.Errorf("--profile DIR: exit %d, %s", code, e)
	}
}
