package cli

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"
)

// need skips a test that lacks root or a tool, unless NICPERSIST_E2E=1 (as
// in CI), where a skip would hide a failure.
func need(t *testing.T, root bool, tools ...string) {
	t.Helper()
	var why []string
	if root && os.Geteuid() != 0 {
		why = append(why, "needs root (network namespaces)")
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			why = append(why, "needs "+tool+" on PATH")
		}
	}
	if len(why) == 0 {
		return
	}
	msg := strings.Join(why, "; ")
	if os.Getenv("NICPERSIST_E2E") == "1" {
		t.Fatalf("%s, and NICPERSIST_E2E=1 forbids skipping", msg)
	}
	t.Skipf("skipping: %s (run as root with the tools installed, as .ci/run does)", msg)
}

// netns makes a throwaway network namespace and removes it when the test ends.
func netns(t *testing.T) string {
	t.Helper()
	var b [4]byte
	rand.Read(b[:])
	name := "np-val-" + hex.EncodeToString(b[:])
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return name
}

func runIn(t *testing.T, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestRenderedFilesPassValidators feeds every golden tree to the tools that
// will read it at boot.
func TestRenderedFilesPassValidators(t *testing.T) {
	need(t, true, "systemd-analyze", "iptables-restore", "ip6tables-restore", "ip")
	for _, name := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			want := filepath.Join(testdataDir, name, "want")
			unitPath := filepath.Join(want, "etc/systemd/system/nicpersist.service")
			out, err := runIn(t, nil, "systemd-analyze", "verify", unitPath)
			if err != nil || strings.TrimSpace(out) != "" {
				t.Errorf("systemd-analyze verify: %v\n%s", err, out)
			}
			data, err := os.ReadFile(unitPath)
			if err != nil {
				t.Fatal(err)
			}
			opts, err := unit.DeserializeOptions(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("unit does not parse back: %v", err)
			}
			got := map[string]string{}
			for _, o := range opts {
				got[o.Section+"."+o.Name] = o.Value
			}
			for k, v := range map[string]string{
				"Service.Type":            "oneshot",
				"Service.RemainAfterExit": "yes",
				"Service.ExecStart":       "/bin/sh /etc/nicpersist/apply.sh start",
				"Service.ExecStop":        "/bin/sh /etc/nicpersist/apply.sh stop",
				"Unit.After":              "network-online.target NetworkManager.service network.service systemd-networkd.service",
				"Unit.Wants":              "network-online.target",
				"Install.WantedBy":        "multi-user.target",
			} {
				if got[k] != v {
					t.Errorf("unit %s = %q, want %q", k, got[k], v)
				}
			}
			link, err := os.Readlink(filepath.Join(want, "etc/systemd/system/multi-user.target.wants/nicpersist.service"))
			if err != nil || link != "/etc/systemd/system/nicpersist.service" {
				t.Errorf("enable link: %q, %v", link, err)
			}
			if out, err := runIn(t, nil, "sh", "-n", filepath.Join(want, "etc/nicpersist/apply.sh")); err != nil {
				t.Errorf("sh -n apply.sh: %v\n%s", err, out)
			}
			ns := netns(t)
			for _, f := range []struct{ file, tool string }{{"iptables.rules", "iptables-restore"}, {"ip6tables.rules", "ip6tables-restore"}} {
				rules, err := os.ReadFile(filepath.Join(want, "etc/nicpersist", f.file))
				if os.IsNotExist(err) {
					continue
				}
				if out, err := runIn(t, rules, "ip", "netns", "exec", ns, f.tool, "--test", "--noflush"); err != nil {
					t.Errorf("%s --test %s: %v\n%s", f.tool, f.file, err, out)
				}
			}
		})
	}
}

// TestSystemctlEnableMatches checks that the offline enable link is the one
// `systemctl --root enable` would make.
func TestSystemctlEnableMatches(t *testing.T) {
	need(t, false, "systemctl")
	root := t.TempDir()
	unitDir := filepath.Join(root, "etc/systemd/system")
	if err := os.MkdirAll(unitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(testdataDir, "seed/want/etc/systemd/system/nicpersist.service"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unitDir, "nicpersist.service"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("systemctl", "--root="+root, "enable", "nicpersist.service").CombinedOutput(); err != nil {
		t.Fatalf("systemctl --root enable: %v\n%s", err, out)
	}
	want, err := os.Readlink(filepath.Join(unitDir, "multi-user.target.wants/nicpersist.service"))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := os.Readlink(filepath.Join(testdataDir, "seed/want/etc/systemd/system/multi-user.target.wants/nicpersist.service"))
	if got != want {
		t.Errorf("nicpersist's enable link -> %q, systemctl's -> %q", got, want)
	}
}
