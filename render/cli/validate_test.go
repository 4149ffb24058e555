package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/nicpersist/nicpersist/render/testenv"
)

// need skips a test that lacks root (when rootFor says what for) or a tool,
// unless NICPERSIST_E2E=1 (as in CI), where a skip would hide a failure.
func need(t *testing.T, rootFor string, tools ...string) {
	t.Helper()
	testenv.Need(t, rootFor, "", tools...)
}

// TestRenderedUnit parses the unit each golden case renders back with
// go-systemd and checks
// the options the boot ordering and the apply contract rest on. The real
// validators (systemd-analyze verify, iptables-restore --test, ip -batch)
// run on the same profiles in TestValidatorsOnSeeds.
func TestRenderedUnit(t *testing.T) {
	for _, name := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			root, _, _ := renderCase(t, name)
			data, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/nicpersist.service"))
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
			start, stop := "/usr/bin/nicpersist apply start --dir /etc/nicpersist", "/usr/bin/nicpersist apply stop --dir /etc/nicpersist"
			for k, v := range map[string]string{
				"Service.Type":            "oneshot",
				"Service.RemainAfterExit": "yes",
				"Service.ExecStart":       start,
				"Service.ExecReload":      start,
				"Service.ExecStop":        stop,
				"Unit.After":              "network-online.target NetworkManager.service network.service systemd-networkd.service",
				"Unit.Wants":              "network-online.target",
				"Install.WantedBy":        "multi-user.target",
			} {
				if got[k] != v {
					t.Errorf("unit %s = %q, want %q", k, got[k], v)
				}
			}
			link, err := os.Readlink(filepath.Join(root, "etc/systemd/system/multi-user.target.wants/nicpersist.service"))
			if err != nil || link != "/etc/systemd/system/nicpersist.service" {
				t.Errorf("enable link: %q, %v", link, err)
			}
		})
	}
}

// TestSystemctlEnableMatches checks that the offline enable link is the one
// `systemctl --root enable` would make.
func TestSystemctlEnableMatches(t *testing.T) {
	need(t, "", "systemctl")
	rendered, _, _ := renderCase(t, "seed")
	root := t.TempDir()
	unitDir := filepath.Join(root, "etc/systemd/system")
	if err := os.MkdirAll(unitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(rendered, "etc/systemd/system/nicpersist.service"))
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
	got, err := os.Readlink(filepath.Join(rendered, "etc/systemd/system/multi-user.target.wants/nicpersist.service"))
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("nicpersist's enable link -> %q, systemctl's -> %q", got, want)
	}
}
