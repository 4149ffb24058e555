package distro

import (
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/sysroot"
)

// TestNMRewrite: NetworkManager renumbers a keyfile's routes when it saves
// the connection; the next render must find nicpersist's routes under
// their new numbers instead of adding them again, and keep the user's.
func TestNMRewrite(t *testing.T) {
	p := seedPlan(t)
	path := sysroot.NMEtcDir + "/eth1.nmconnection"
	saved := "[connection]\nid=eth1\ninterface-name=eth1\n\n[ipv4]\nmethod=auto\nroute1=172.22.5.64/27\nroute1_options=table=1000\nroute2=10.50.0.0/16,172.22.5.65\nroute3=0.0.0.0/0,172.22.5.65\nroute3_options=table=1000\nrouting-rule1=priority 1000 from 172.22.5.68/32 table 1000\n"
	conn := sysroot.NMConn{Path: path, Dir: sysroot.NMEtcDir, Iface: "eth1", Data: []byte(saved)}
	c := Choice{Target: NM, Root: sysroot.Facts{NM: sysroot.NMFacts{
		ByIface: map[string][]sysroot.NMConn{"eth1": {conn}},
		// The keys as the earlier render numbered them: NetworkManager's
		// save moved them.
		Owned: map[string][]string{path: {"ipv4 route2=172.22.5.64/27", "ipv4 route2_options=table=1000"}},
	}}}
	files, err := Render(p, c, "/p")
	if err != nil {
		t.Fatal(err)
	}
	var got string
	for _, f := range files {
		if f.Path == path {
			got = string(f.Data)
		}
	}
	want := "[connection]\nid=eth1\ninterface-name=eth1\n\n[ipv4]\nmethod=auto\nroute2=10.50.0.0/16,172.22.5.65\nroute3=172.22.5.64/27\nroute3_options=table=1000\nroute4=0.0.0.0/0,172.22.5.65\nroute4_options=table=1000\nrouting-rule1=priority 1000 from 172.22.5.68/32 table 1000\n"
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if strings.Count(got, "172.22.5.64/27") != 1 {
		t.Error("subnet route twice")
	}
}

// TestNMWarnings: what keeps NetworkManager from applying what render
// wrote is said: a method that ignores the family, and interfaces left to
// the unit.
func TestNMWarnings(t *testing.T) {
	p := seedPlan(t)
	path := sysroot.NMEtcDir + "/eth1.nmconnection"
	conn := sysroot.NMConn{Path: path, Dir: sysroot.NMEtcDir, Iface: "eth1", Data: []byte("[connection]\nid=eth1\n[ipv4]\nmethod=disabled\n")}
	c := Choice{Target: NM, Root: sysroot.Facts{NM: sysroot.NMFacts{ByIface: map[string][]sysroot.NMConn{"eth1": {conn}}}}}
	files, err := Render(p, c, "/p")
	if err != nil {
		t.Fatal(err)
	}
	w := strings.Join(Warnings(sysroot.Facts{}, c, files), "\n")
	for _, want := range []string{
		"/etc/NetworkManager/system-connections/eth1.nmconnection: ipv4.method=disabled",
		"no keyfile connection nicpersist can write serves eth2: nicpersist.service applies",
	} {
		if !strings.Contains(w, want) {
			t.Errorf("warnings lack %q:\n%s", want, w)
		}
	}
}
