package sysroot

import (
	"reflect"
	"testing"
)

func conn(id, uuid, extra string) string {
	return "[connection]\nid=" + id + "\nuuid=" + uuid + "\ntype=ethernet\n" + extra
}

// TestReadNM checks which keyfile connections serve an interface: by
// interface-name, or by MAC when the connection names none; /run shadows
// /etc and /etc shadows /usr/lib for one UUID; names the keyfile plugin
// skips; and the keys the manifest records.
func TestReadNM(t *testing.T) {
	tree := fakeTree{
		NMEtcDir + "/eth1.nmconnection":        conn("eth1", "u1", "interface-name=eth1\n"),
		NMEtcDir + "/eth1.nmconnection~":       conn("eth1 backup", "u9", "interface-name=eth1\n"),
		NMEtcDir + "/legacy-eth2":              conn("eth2", "u2", "\n[ethernet]\nmac-address=52:54:00:AA:BB:02\n"),
		NMLibDir + "/eth2.nmconnection":        conn("vendor eth2", "u2", "interface-name=eth2\n"),
		NMLibDir + "/eth3.nmconnection":        conn("vendor eth3", "u3", "interface-name=eth3\nautoconnect=false\n"),
		NMLibDir + "/ignored":                  conn("not a profile here", "u8", "interface-name=eth3\n"),
		NMRunDir + "/eth3.nmconnection":        conn("initrd eth3", "u3", "interface-name=eth3\n"),
		"sys/class/net/eth2/address":           "52:54:00:aa:bb:02\n",
		Manifest:                               "key " + NMEtcDir + "/eth1.nmconnection ipv4 route1=10.0.0.0/8\nkey ../x ipv4 a=b\n",
		"usr/lib64/NetworkManager/1.20.4/x.so": "",
		"etc/NetworkManager/conf.d/10-x.conf":  "[keyfile]\nunmanaged-devices=interface-name:eth3;mac:00:11:22:33:44:55\n",
		"sys/class/net/eth4/ifindex":           "7\n",
		"run/udev/data/n7":                     "I:123\nE:ID_NET_DRIVER=veth\nE:NM_UNMANAGED=1\n",
	}
	nm := Read(tree, "eth1", "eth2", "eth3", "eth4").NM
	got := map[string][]string{}
	for name, cs := range nm.ByIface {
		for _, c := range cs {
			got[name] = append(got[name], c.ID+"@"+c.Dir)
		}
	}
	want := map[string][]string{
		"eth1": {"eth1@" + NMEtcDir},
		"eth2": {"eth2@" + NMEtcDir},
		"eth3": {"initrd eth3@" + NMRunDir},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("ByIface = %v, want %v", got, want)
	}
	if o := nm.Owned[NMEtcDir+"/eth1.nmconnection"]; !reflect.DeepEqual(o, []string{"ipv4 route1=10.0.0.0/8"}) {
		t.Errorf("Owned = %v", nm.Owned)
	}
	if len(nm.Owned) != 1 {
		t.Errorf("Owned kept a path that is not clean: %v", nm.Owned)
	}
	if nm.Version != "1.20.4" || VersionAtLeast(nm.Version, 1, 22) || !VersionAtLeast("1.22.0", 1, 22) || !VersionAtLeast("", 1, 22) {
		t.Errorf("Version = %q; VersionAtLeast wrong", nm.Version)
	}
	if nm.Unmanaged["eth3"] != "/etc/NetworkManager/conf.d/10-x.conf" || nm.Unmanaged["eth1"] != "" || nm.Unmanaged["eth4"] != "udev (/run/udev/data/n7: NM_UNMANAGED=1)" {
		t.Errorf("Unmanaged = %v", nm.Unmanaged)
	}
}

func TestKeyLine(t *testing.T) {
	for _, path := range []string{NMEtcDir + "/eth1.nmconnection", NMEtcDir + "/Wired connection 1.nmconnection", NMEtcDir + `/a"b\c`} {
		l := KeyLine(path, "ipv4 route1=10.0.0.0/8,10.1.1.1")
		p, e, ok := ParseKeyLine(l)
		if !ok || p != path || e != "ipv4 route1=10.0.0.0/8,10.1.1.1" {
			t.Errorf("%q: read back as %q %q %v", l, p, e, ok)
		}
	}
	for _, bad := range []string{"key", "key ", "key path", `key "unterminated x=y`, "keys p g k=v"} {
		if _, _, ok := ParseKeyLine(bad); ok {
			t.Errorf("%q read as a key line", bad)
		}
	}
}
