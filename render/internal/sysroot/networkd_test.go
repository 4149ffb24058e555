package sysroot

import (
	"errors"
	"io/fs"
	"sort"
	"strings"
	"testing"
)

// mapTree is a root held in a map: path -> content.
type mapTree map[string]string

func (m mapTree) ReadFile(name string) ([]byte, error) {
	if s, ok := m[name]; ok {
		return []byte(s), nil
	}
	return nil, fs.ErrNotExist
}

func (m mapTree) Exists(name string) bool {
	for p := range m {
		if p == name || strings.HasPrefix(p, name+"/") {
			return true
		}
	}
	return false
}

func (m mapTree) ReadDir(name string) ([]string, error) {
	seen := map[string]bool{}
	for p := range m {
		if rest, ok := strings.CutPrefix(p, name+"/"); ok {
			seen[strings.Split(rest, "/")[0]] = true
		}
	}
	if len(seen) == 0 {
		return nil, errors.New("no such directory")
	}
	var out []string
	for n := range seen {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

func TestNetworkFor(t *testing.T) {
	root := mapTree{
		// Hidden by the /etc file of the same name, which matches eth1 only.
		"run/systemd/network/10-cloud.network": "[Match]\nName=eth*\n",
		"etc/systemd/network/10-cloud.network": "[Match]\nName=eth1\n[Network]\nGateway=172.22.5.65\n[Route]\nGateway=2001:db8::1\nMetric=50\n[Route]\nDestination=10.0.0.0/8\nGateway=172.22.5.65\n",
		// Masked: hides the /usr/lib file that would match eth2.
		"etc/systemd/network/20-eth2.network":     "",
		"usr/lib/systemd/network/20-eth2.network": "[Match]\nName=eth2\n",
		"usr/lib/systemd/network/15-mac.network":  "[Match]\nMACAddress=52:54:00:00:00:01\n",
		"lib/systemd/network/30-rest.network":     "[Match]\nName=!eth4 eth* en*\n",
		"etc/systemd/network/05-neg.network":      "[Match]\nName=!eth*\n",
	}
	f := Facts{Stacks: readStacks(root)}
	for _, c := range []struct {
		dev, want string
		unsure    int
	}{
		{"eth1", "etc/systemd/network/10-cloud.network", 0},
		{"eth2", "lib/systemd/network/30-rest.network", 1},
		{"eth4", "", 1},
		{"wlan0", "etc/systemd/network/05-neg.network", 0},
	} {
		m, unsure := f.NetworkFor(c.dev)
		got := ""
		if m != nil {
			got = m.Path
		}
		if got != c.want || len(unsure) != c.unsure {
			t.Errorf("NetworkFor(%s) = %q, unsure %v; want %q with %d unsure", c.dev, got, unsure, c.want, c.unsure)
		}
	}
	m, _ := f.NetworkFor("eth1")
	var defaults []string
	for _, d := range m.Defaults {
		defaults = append(defaults, d.Key+" "+d.Gateway.String())
	}
	want := "[Network] Gateway=172.22.5.65 172.22.5.65|[Route] Gateway=2001:db8::1 Metric=50 2001:db8::1"
	if got := strings.Join(defaults, "|"); got != want {
		t.Errorf("defaults of %s = %s; want %s", m.Path, got, want)
	}
	if m.Defaults[0].Metric != 0 || m.Defaults[1].Metric != 50 {
		t.Errorf("metrics %d, %d; want 0 and 50", m.Defaults[0].Metric, m.Defaults[1].Metric)
	}
}

func TestNetplanFor(t *testing.T) {
	root := mapTree{
		"etc/netplan/50-cloud-init.yaml": "# header\nnetwork:\n    ethernets:\n        eth0:\n            dhcp4: true\n            match:\n                macaddress: '52:54:00:12:34:00'\n            set-name: eth0\n        id1:\n            addresses:\n            - 10.0.0.2/24\n            match: {name: \"ens*\"}\n            routes:\n            -   to: default\n                via: 10.0.0.1\n    version: 2\n",
		"lib/netplan/00-installer.yaml":  "network:\n  version: 2\n  renderer: networkd\n  vlans:\n    vlan7:\n      id: 7\n      link: eth0\n      gateway4: 10.7.0.1\n",
		"etc/netplan/90-nicpersist.yaml": "network:\n  ethernets:\n    eth9:\n      routes: []\n",
	}
	f := Facts{Stacks: readStacks(root)}
	for dev, want := range map[string]string{"eth0": "ethernets/eth0", "ens3": "ethernets/id1", "vlan7": "vlans/vlan7", "eth9": "", "to": ""} {
		got := ""
		if d := f.NetplanFor(dev); d != nil {
			got = d.Type + "/" + d.ID
		}
		if got != want {
			t.Errorf("NetplanFor(%s) = %q, want %q", dev, got, want)
		}
	}
	if d := f.NetplanFor("vlan7"); d.Gateway4 != "10.7.0.1" || d.File != "lib/netplan/00-installer.yaml" {
		t.Errorf("vlan7: %+v", d)
	}
}

func TestIfaces(t *testing.T) {
	root := mapTree{
		"etc/network/interfaces":            "source /etc/network/interfaces.d/*\nsource-directory more\nauto lo\niface lo inet loopback\n# iface commented inet dhcp\n",
		"etc/network/interfaces.d/eth1":     "iface eth1 inet dhcp\niface eth1 inet6 auto\n",
		"etc/network/interfaces.d/eth2.cfg": "iface eth2 inet dhcp\n",
		"etc/network/more/50-eth3":          "iface eth3 inet static\n  address 10.0.0.1/24\n",
		"etc/network/more/skip.bak":         "iface eth9 inet dhcp\n",
	}
	got := readIfaces(root)
	want := map[string]string{"lo": "etc/network/interfaces", "eth1": "etc/network/interfaces.d/eth1", "eth2": "etc/network/interfaces.d/eth2.cfg", "eth3": "etc/network/more/50-eth3"}
	if len(got) != len(want) {
		t.Errorf("readIfaces = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("readIfaces[%s] = %q, want %q", k, got[k], v)
		}
	}
}
