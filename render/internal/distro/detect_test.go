package distro

import (
	"io/fs"
	"sort"
	"strings"
	"testing"
)

type fakeTree map[string]string

func (f fakeTree) ReadFile(n string) ([]byte, error) {
	if v, ok := f[n]; ok {
		return []byte(v), nil
	}
	return nil, fs.ErrNotExist
}

func (f fakeTree) Exists(n string) bool {
	for k := range f {
		if k == n || strings.HasPrefix(k, n+"/") {
			return true
		}
	}
	return false
}

func (f fakeTree) ReadDir(n string) ([]string, error) {
	seen := map[string]bool{}
	for k := range f {
		if rest, ok := strings.CutPrefix(k, n+"/"); ok {
			seen[strings.Split(rest, "/")[0]] = true
		}
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

func TestDetect(t *testing.T) {
	const nmWants = "etc/systemd/system/multi-user.target.wants/NetworkManager.service"
	const plugin = "usr/lib64/NetworkManager/1.46/libnm-settings-plugin-ifcfg-rh.so"
	for _, c := range []struct {
		name          string
		tree          fakeTree
		target, stack string
		want          string
	}{
		{"empty root", fakeTree{}, "auto", "auto", "systemd"},
		{"debian", fakeTree{"etc/os-release": "ID=debian\n"}, "auto", "auto", "systemd"},
		{"centos 7 legacy", fakeTree{"etc/os-release": "ID=\"centos\"\nVERSION_ID=\"7\"\n", ScriptsDir + "/ifup-routes": ""}, "auto", "auto", "rhel (network-scripts)"},
		{"centos 7 with NM", fakeTree{"etc/os-release": "ID=\"centos\"\nVERSION_ID=\"7\"\n", ScriptsDir + "/ifup-routes": "", nmWants: ""}, "auto", "auto", "rhel (networkmanager)"},
		{"rocky 9", fakeTree{"etc/os-release": "ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\n", plugin: "", ScriptsDir + "/readme-ifcfg-rh.txt": ""}, "auto", "auto", "rhel (networkmanager)"},
		{"alma via ID_LIKE", fakeTree{"etc/os-release": "ID=weird\nID_LIKE=\"rhel fedora\"\nVERSION_ID=8\n", ScriptsDir + "/ifcfg-eth0": ""}, "auto", "auto", "rhel (networkmanager)"},
		{"rhel 10 without plugin", fakeTree{"etc/os-release": "ID=rhel\nVERSION_ID=10.0\n", ScriptsDir + "/x": ""}, "auto", "auto", "systemd"},
		{"rhel without ifcfg dir", fakeTree{"etc/os-release": "ID=rhel\nVERSION_ID=9.2\n"}, "auto", "auto", "systemd"},
		{"usr/lib fallback", fakeTree{"usr/lib/os-release": "ID=centos\nVERSION_ID=7\n", ScriptsDir + "/ifup-routes": ""}, "auto", "auto", "rhel (network-scripts)"},
		{"forced rhel", fakeTree{}, "rhel", "auto", "rhel (network-scripts)"},
		{"forced stack", fakeTree{}, "rhel", "networkmanager", "rhel (networkmanager)"},
		{"forced systemd", fakeTree{"etc/os-release": "ID=centos\nVERSION_ID=7\n", ScriptsDir + "/ifup-routes": ""}, "systemd", "auto", "systemd"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := Detect(c.tree, c.target, c.stack)
			if err != nil || got.String() != c.want || got.Reason == "" {
				t.Errorf("Detect = %v (%q), %v; want %s", got, got.Reason, err, c.want)
			}
		})
	}
	if _, err := Detect(fakeTree{}, "netplan", "auto"); err == nil {
		t.Error("unknown target accepted")
	}
	if _, err := Detect(fakeTree{}, "rhel", "ifupdown"); err == nil {
		t.Error("unknown stack accepted")
	}
}

func TestBinaryWarning(t *testing.T) {
	if w := BinaryWarning(fakeTree{"usr/bin/nicpersist": "\x7fELF"}); w != "" {
		t.Errorf("with the binary: %q, want no warning", w)
	}
	for _, tr := range []fakeTree{{}, {"usr/local/bin/nicpersist": "x"}} {
		w := BinaryWarning(tr)
		if !strings.Contains(w, "/usr/bin/nicpersist is not in the root") || !strings.Contains(w, "fail at boot") {
			t.Errorf("BinaryWarning(%v) = %q; want it to say the unit fails at boot", tr, w)
		}
	}
}
