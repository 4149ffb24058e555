package distro

import (
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/sysroot"
)

func TestDetect(t *testing.T) {
	centos7 := map[string]string{"ID": "centos", "VERSION_ID": "7"}
	nmFacts := sysroot.NMFacts{ByIface: map[string][]sysroot.NMConn{"eth1": {{Path: sysroot.NMEtcDir + "/eth1.nmconnection"}}}}
	for _, c := range []struct {
		name          string
		facts         sysroot.Facts
		target, stack string
		want          string
	}{
		{"empty root", sysroot.Facts{}, "auto", "auto", "systemd"},
		{"debian with NetworkManager keyfiles", sysroot.Facts{OSRelease: map[string]string{"ID": "debian"}, NetworkManager: true, NM: nmFacts}, "auto", "auto", "nm"},
		{"keyfiles, NetworkManager not enabled", sysroot.Facts{OSRelease: map[string]string{"ID": "debian"}, NM: nmFacts}, "auto", "auto", "systemd"},
		{"rocky 9 with a keyfile", sysroot.Facts{OSRelease: map[string]string{"ID": "rocky", "VERSION_ID": "9.4"}, IfcfgPlugin: true, ScriptsDir: true, NetworkManager: true, NM: nmFacts}, "auto", "auto", "nm"},
		{"rocky 9 keyfile, rhel forced", sysroot.Facts{OSRelease: map[string]string{"ID": "rocky", "VERSION_ID": "9.4"}, IfcfgPlugin: true, NetworkManager: true, NM: nmFacts}, "rhel", "auto", "rhel (networkmanager)"},
		{"nm forced", sysroot.Facts{}, "nm", "auto", "nm"},
		{"only an in-memory connection", sysroot.Facts{OSRelease: map[string]string{"ID": "debian"}, NetworkManager: true, NM: sysroot.NMFacts{ByIface: map[string][]sysroot.NMConn{"eth1": {{Path: sysroot.NMRunDir + "/eth1.nmconnection", Dir: sysroot.NMRunDir}}}}}, "auto", "auto", "systemd"},
		{"debian", sysroot.Facts{OSRelease: map[string]string{"ID": "debian"}}, "auto", "auto", "systemd"},
		{"centos 7 legacy", sysroot.Facts{OSRelease: centos7, ScriptsDir: true, IfupRoutes: true}, "auto", "auto", "rhel (network-scripts)"},
		{"centos 7 with NM", sysroot.Facts{OSRelease: centos7, ScriptsDir: true, IfupRoutes: true, NetworkManager: true}, "auto", "auto", "rhel (networkmanager)"},
		{"centos 7 without ifup-routes", sysroot.Facts{OSRelease: centos7, ScriptsDir: true}, "auto", "auto", "rhel (network-scripts)"},
		{"rocky 9", sysroot.Facts{OSRelease: map[string]string{"ID": "rocky", "ID_LIKE": "rhel centos fedora", "VERSION_ID": "9.4"}, IfcfgPlugin: true, ScriptsDir: true}, "auto", "auto", "rhel (networkmanager)"},
		{"rocky 9 plugin without ifcfg dir", sysroot.Facts{OSRelease: map[string]string{"ID": "rocky", "VERSION_ID": "9.4"}, IfcfgPlugin: true}, "auto", "auto", "rhel (networkmanager)"},
		{"alma via ID_LIKE", sysroot.Facts{OSRelease: map[string]string{"ID": "weird", "ID_LIKE": "rhel fedora", "VERSION_ID": "8"}, ScriptsDir: true}, "auto", "auto", "rhel (networkmanager)"},
		{"rhel 10 without plugin", sysroot.Facts{OSRelease: map[string]string{"ID": "rhel", "VERSION_ID": "10.0"}, ScriptsDir: true}, "auto", "auto", "systemd"},
		{"rhel 10 with plugin", sysroot.Facts{OSRelease: map[string]string{"ID": "rhel", "VERSION_ID": "10.0"}, ScriptsDir: true, IfcfgPlugin: true}, "auto", "auto", "rhel (networkmanager)"},
		{"rhel without ifcfg dir", sysroot.Facts{OSRelease: map[string]string{"ID": "rhel", "VERSION_ID": "9.2"}}, "auto", "auto", "systemd"},
		{"forced rhel", sysroot.Facts{}, "rhel", "auto", "rhel (network-scripts)"},
		{"forced stack", sysroot.Facts{}, "rhel", "networkmanager", "rhel (networkmanager)"},
		{"forced stack over the root", sysroot.Facts{OSRelease: centos7, ScriptsDir: true, NetworkManager: true}, "rhel", "network-scripts", "rhel (network-scripts)"},
		{"forced systemd", sysroot.Facts{OSRelease: centos7, ScriptsDir: true, IfupRoutes: true}, "systemd", "auto", "systemd"},
		{"debian with networkd", sysroot.Facts{OSRelease: map[string]string{"ID": "debian"}, Stacks: sysroot.Stacks{Networkd: true}}, "auto", "auto", "networkd"},
		{"rhel with networkd enabled stays rhel", sysroot.Facts{OSRelease: centos7, ScriptsDir: true, IfupRoutes: true, Stacks: sysroot.Stacks{Networkd: true}}, "auto", "auto", "rhel (network-scripts)"},
		{"forced networkd", sysroot.Facts{}, "networkd", "auto", "networkd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Detect(c.facts, c.target, c.stack)
			if err != nil || got.String() != c.want || got.Reason == "" {
				t.Errorf("Detect = %v (%q), %v; want %s", got, got.Reason, err, c.want)
			}
		})
	}
	if _, err := Detect(sysroot.Facts{}, "wicked", "auto"); err == nil {
		t.Error("unknown target accepted")
	}
	if _, err := Detect(sysroot.Facts{}, "rhel", "ifupdown"); err == nil {
		t.Error("unknown stack accepted")
	}
}

func TestBinaryWarning(t *testing.T) {
	if w := BinaryWarning(sysroot.Facts{Binary: true}); w != "" {
		t.Errorf("with the binary: %q, want no warning", w)
	}
	w := BinaryWarning(sysroot.Facts{})
	if !strings.Contains(w, "/usr/bin/nicpersist is not in the root") || !strings.Contains(w, "fail at boot") {
		t.Errorf("BinaryWarning = %q; want it to say the unit fails at boot", w)
	}
}

func TestWarnings(t *testing.T) {
	files := []File{
		{Path: ScriptsDir + "/route-eth1", Kind: Block},
		{Path: ScriptsDir + "/route6-eth2", Kind: Block},
		{Path: RTTables, Kind: Owned},
	}
	root := sysroot.Facts{RuleFiles: map[string]bool{"rule-eth1": true, "rule6-eth2": true, "rule-eth3": true}}
	nm := Choice{Target: RHEL, Stack: NetworkManager}
	got := Warnings(root, nm, files)
	want := []string{
		"/etc/sysconfig/network-scripts/rule-eth1 exists: NetworkManager ignores /etc/sysconfig/network-scripts/route-eth1 while a rule file for eth1 exists, so its routes are applied only by nicpersist.service; move the rules into the profile's [[rule]]",
		"/etc/sysconfig/network-scripts/rule6-eth2 exists: NetworkManager ignores /etc/sysconfig/network-scripts/route6-eth2 while a rule file for eth2 exists, so its routes are applied only by nicpersist.service; move the rules into the profile's [[rule]]",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("Warnings =\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, c := range []Choice{{Target: RHEL, Stack: NetworkScripts}, {Target: Systemd}} {
		if w := Warnings(root, c, files); len(w) != 0 {
			t.Errorf("Warnings for %v = %q; only NetworkManager ignores route files", c, w)
		}
	}
}

func TestIsStackPath(t *testing.T) {
	for p, want := range map[string]bool{
		"etc/systemd/network/10-eth1.network.d/50-nicpersist.conf":      true,
		"etc/netplan/90-nicpersist.yaml":                                true,
		"etc/network/if-up.d/nicpersist":                                true,
		"etc/dhcp/dhclient-exit-hooks.d/nicpersist":                     true,
		"etc/systemd/network/10-eth1.network":                           false, // the user's own
		"etc/systemd/network/10-eth1.network.d/90-override.conf":        false,
		"etc/systemd/network/../../passwd.network.d/50-nicpersist.conf": false,
		"etc/netplan/50-cloud-init.yaml":                                false,
		"etc/network/interfaces":                                        false,
		"etc/systemd/network/a/b.network.d/50-nicpersist.conf":          false,
	} {
		if got := IsStackPath(p); got != want {
			t.Errorf("IsStackPath(%q) = %v, want %v", p, got, want)
		}
	}
	for d, want := range map[string]bool{
		"etc/systemd/network":                   true,
		"etc/systemd/network/10-eth1.network.d": true,
		"etc/systemd/network/.network.d":        false,
		"etc/systemd/network/x.network.d/..":    false,
		"usr/lib/systemd/network":               false,
	} {
		if got := IsStackDir(d); got != want {
			t.Errorf("IsStackDir(%q) = %v, want %v", d, got, want)
		}
	}
}
