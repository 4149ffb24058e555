package sysroot

import (
	"io/fs"
	"maps"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/firewalld"
	"github.com/nicpersist/nicpersist/render/internal/plan"
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

func TestReadStack(t *testing.T) {
	const nmWants = "etc/systemd/system/multi-user.target.wants/NetworkManager.service"
	for _, c := range []struct {
		name  string
		tree  fakeTree
		osr   map[string]string
		major int
		want  Facts // the flags
	}{
		{"empty root", fakeTree{}, map[string]string{}, 0, Facts{}},
		{"debian", fakeTree{"etc/os-release": "ID=debian\n"}, map[string]string{"ID": "debian"}, 0, Facts{}},
		{"centos 7 legacy", fakeTree{"etc/os-release": "ID=\"centos\"\nVERSION_ID=\"7\"\n", ScriptsDir + "/ifup-routes": ""},
			map[string]string{"ID": "centos", "VERSION_ID": "7"}, 7, Facts{ScriptsDir: true, IfupRoutes: true}},
		{"centos 7 with NM", fakeTree{"etc/os-release": "ID=\"centos\"\nVERSION_ID=\"7\"\n", ScriptsDir + "/ifup-routes": "", nmWants: ""},
			map[string]string{"ID": "centos", "VERSION_ID": "7"}, 7, Facts{ScriptsDir: true, IfupRoutes: true, NetworkManager: true}},
		{"rocky 9", fakeTree{"etc/os-release": "# comment\nID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\nVERSION_ID=\"9.4\"\nPRETTY_NAME='Rocky Linux 9.4'\n", "usr/lib64/NetworkManager/1.46/libnm-settings-plugin-ifcfg-rh.so": "", ScriptsDir + "/readme-ifcfg-rh.txt": ""},
			map[string]string{"ID": "rocky", "ID_LIKE": "rhel centos fedora", "VERSION_ID": "9.4", "PRETTY_NAME": "Rocky Linux 9.4"}, 9, Facts{ScriptsDir: true, IfcfgPlugin: true}},
		{"plugin beside the library", fakeTree{"usr/lib/NetworkManager/libnm-settings-plugin-ifcfg-rh.so": ""}, map[string]string{}, 0, Facts{IfcfgPlugin: true}},
		{"other NetworkManager plugin", fakeTree{"usr/lib64/NetworkManager/1.46/libnm-device-plugin-team.so": ""}, map[string]string{}, 0, Facts{}},
		{"usr/lib fallback", fakeTree{"usr/lib/os-release": "ID=centos\nVERSION_ID=7\n", ScriptsDir + "/ifup-routes": ""},
			map[string]string{"ID": "centos", "VERSION_ID": "7"}, 7, Facts{ScriptsDir: true, IfupRoutes: true}},
		{"etc over usr/lib", fakeTree{"etc/os-release": "ID=rhel\nVERSION_ID=10.0\n", "usr/lib/os-release": "ID=centos\n"},
			map[string]string{"ID": "rhel", "VERSION_ID": "10.0"}, 10, Facts{}},
		{"binary", fakeTree{"usr/bin/nicpersist": "\x7fELF"}, map[string]string{}, 0, Facts{Binary: true}},
		{"binary elsewhere", fakeTree{"usr/local/bin/nicpersist": "x"}, map[string]string{}, 0, Facts{}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := Read(c.tree)
			if !maps.Equal(f.OSRelease, c.osr) {
				t.Errorf("OSRelease = %v, want %v", f.OSRelease, c.osr)
			}
			if m := f.VersionMajor(); m != c.major {
				t.Errorf("VersionMajor = %d, want %d", m, c.major)
			}
			// NetworkManager's keyfiles have their own test (TestReadNM);
			// firewalld's facts theirs in its package.
			f.OSRelease, f.RuleFiles, f.System, f.NM, f.Scripts, f.Blocks, f.Firewalld = nil, nil, plan.System{}, NMFacts{}, nil, nil, firewalld.Facts{}
			if !reflect.DeepEqual(f, c.want) {
				t.Errorf("Read = %+v, want %+v", f, c.want)
			}
		})
	}
}

func TestReadSystem(t *testing.T) {
	f := Read(fakeTree{
		"etc/iproute2/rt_tables":                "255\tlocal\n254\tmain\n200 theirs # hand recipe\n",
		"usr/share/iproute2/rt_tables.d/a.conf": "\n300 vendor\n",
		"etc/iproute2/rt_tables.d/notes.txt":    "400 ignored\n",
		RTTables:                                "1000 nicpersist-eth1\n",
		ScriptsDir + "/rule-eth1":               "priority 900 from 10.0.0.5 table 200\n" + Begin + "\npriority 1000 from 10.0.0.6 table 1000\n" + End + "\npref 950 to 10.9.0.0/16 table 300\n",
		ScriptsDir + "/rule6-eth2":              "prio 960 from 2001:db8::5 table 300\n",
		ScriptsDir + "/route-eth1":              "priority 970 ignored\n",
	})
	for id, at := range map[uint32]string{200: "/etc/iproute2/rt_tables:3", 300: "/usr/share/iproute2/rt_tables.d/a.conf:2"} {
		if got := f.System.TableIDs[id]; got != at {
			t.Errorf("table %d at %q, want %q", id, got, at)
		}
	}
	for name, at := range map[string]string{"theirs": "/etc/iproute2/rt_tables:3", "vendor": "/usr/share/iproute2/rt_tables.d/a.conf:2"} {
		if got := f.System.TableNames[name]; got != at {
			t.Errorf("table name %s at %q, want %q", name, got, at)
		}
	}
	if len(f.System.TableIDs) != 2 || len(f.System.TableNames) != 2 {
		t.Errorf("tables %v %v: want only the two that are not the kernel's, nicpersist's or in a non-.conf file", f.System.TableIDs, f.System.TableNames)
	}
	want := map[uint32]string{
		900: "/" + ScriptsDir + "/rule-eth1:1",
		950: "/" + ScriptsDir + "/rule-eth1:5",
		960: "/" + ScriptsDir + "/rule6-eth2:1",
	}
	if !maps.Equal(f.System.Priorities, want) {
		t.Errorf("priorities %v, want %v (nicpersist's own block and route files do not count)", f.System.Priorities, want)
	}
	if !maps.Equal(f.RuleFiles, map[string]bool{"rule-eth1": true, "rule6-eth2": true}) {
		t.Errorf("RuleFiles = %v", f.RuleFiles)
	}
}

// linkTree is a fakeTree whose "->target" values are symbolic links.
type linkTree struct{ fakeTree }

func (l linkTree) Readlink(n string) (string, error) {
	if v, ok := l.fakeTree[n]; ok && strings.HasPrefix(v, "->") {
		return v[2:], nil
	}
	return "", fs.ErrInvalid
}

func TestReadNetfilter(t *testing.T) {
	for _, c := range []struct {
		name string
		tree Tree
		want Netfilter
	}{
		{"empty", fakeTree{}, Netfilter{}},
		{"debian 12 minimal", fakeTree{"usr/sbin/nft": ""}, Netfilter{NFT: true}},
		{"iptables-nft by alternative", linkTree{fakeTree{"usr/sbin/iptables": "", "usr/sbin/nft": "", "etc/alternatives/iptables": "->/usr/sbin/iptables-nft"}}, Netfilter{NFT: true, IPTables: true}},
		{"iptables-legacy by alternative", linkTree{fakeTree{"usr/sbin/iptables": "", "etc/alternatives/iptables": "->/usr/sbin/iptables-legacy"}}, Netfilter{IPTables: true, IPTablesLegacy: true}},
		{"only legacy installed (CentOS 7 style)", fakeTree{"sbin/iptables": "", "sbin/iptables-legacy": ""}, Netfilter{IPTables: true, IPTablesLegacy: true}},
		{"firewalld, nftables.service, docker", fakeTree{
			"etc/systemd/system/multi-user.target.wants/firewalld.service": "",
			"etc/systemd/system/sysinit.target.wants/nftables.service":     "",
			"usr/bin/dockerd": ""}, Netfilter{Firewalld: true, NFTablesUnit: true, Docker: true}},
		{"ufw enabled, forward drop", fakeTree{"etc/ufw/ufw.conf": "ENABLED=yes\n", "etc/default/ufw": "DEFAULT_FORWARD_POLICY=\"DROP\"\n"}, Netfilter{UFWDrop: true}},
		{"ufw disabled", fakeTree{"etc/ufw/ufw.conf": "ENABLED=no\n", "etc/default/ufw": "DEFAULT_FORWARD_POLICY=\"DROP\"\n"}, Netfilter{}},
		{"saved rules with FORWARD DROP", fakeTree{"etc/iptables/rules.v4": "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\nCOMMIT\n"}, Netfilter{ForwardDrop: "/etc/iptables/rules.v4"}},
	} {
		if got := Read(c.tree).Netfilter; got != c.want {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
	}
}
