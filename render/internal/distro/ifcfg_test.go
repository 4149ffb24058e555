package distro

import (
	"os"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/diag"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/profile"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
)

func seedPlan(t *testing.T) *plan.Plan {
	t.Helper()
	src, err := os.ReadFile("../../../packaging/profile.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	l := &diag.List{File: "profile.toml"}
	p := plan.Build(profile.Decode(src, l), l)
	if p == nil || l.HasErrors() {
		t.Fatalf("seed profile: %v", l.Sorted())
	}
	return p
}

func rhelNM(scripts map[string]string, version string) Choice {
	return Choice{Target: RHEL, Stack: NetworkManager, Scripts: scripts, Blocks: map[string]bool{}, NM: sysroot.NMFacts{Version: version}}
}

// TestIfcfgRefusals: what makes NetworkManager or ifup-routes ignore or
// undo nicpersist's files is an error that says what to do, and nothing is
// rendered.
func TestIfcfgRefusals(t *testing.T) {
	p := seedPlan(t)
	for _, c := range []struct {
		name    string
		scripts map[string]string
		want    []string
	}{
		{"key=value route file", map[string]string{
			"ifcfg-eth1": "DEVICE=eth1\n",
			"route-eth1": "ADDRESS0=10.50.0.0\nNETMASK0=255.255.0.0\nGATEWAY0=172.22.5.65\nMETRIC0=5\nOPTIONS0=\"table 2000\"\nADDRESS1=10.60.0.1\n",
		}, []string{"route-eth1 is in the key=value form", "  10.50.0.0/16 via 172.22.5.65 metric 5 table 2000\n  10.60.0.1/32"}},
		{"IPV4_ROUTE_TABLE", map[string]string{"ifcfg-eth2": "DEVICE=eth2\nIPV4_ROUTE_TABLE=300\n"},
			[]string{"ifcfg-eth2: IPV4_ROUTE_TABLE=300 makes NetworkManager own every routing table on eth2"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Render(p, rhelNM(c.scripts, "1.46.0"), "/p")
			if err == nil {
				t.Fatal("Render: no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\nlacks %q", err, w)
				}
			}
		})
	}
	if _, err := Render(p, rhelNM(map[string]string{"ifcfg-eth2": "DEVICE=eth2\nIPV4_ROUTE_TABLE=0\n"}, ""), "/p"); err != nil {
		t.Errorf("IPV4_ROUTE_TABLE=0 (NetworkManager's default) refused: %v", err)
	}
}

// TestIfcfgNames: route files follow the ifcfg file's name; rules go into
// the ifcfg file from NetworkManager 1.18 on, and the unit then leaves them.
func TestIfcfgNames(t *testing.T) {
	p := seedPlan(t)
	scripts := map[string]string{"ifcfg-System_eth1": "NAME=\"System eth1\"\nDEVICE=eth1\n", "ifcfg-eth9": "DEVICE=eth2\n"}
	for _, c := range []struct {
		version string
		native  bool
	}{{"1.46.0", true}, {"1.18.0", true}, {"1.16.0", false}, {"", true}} {
		files, err := Render(p, rhelNM(scripts, c.version), "/p")
		if err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, f := range files {
			got[f.Path] = string(f.Data)
		}
		if _, ok := got[ScriptsDir+"/route-System_eth1"]; !ok {
			t.Errorf("%s: no route-System_eth1 in %v", c.version, keys(got))
		}
		ifcfg, native := got[ScriptsDir+"/ifcfg-System_eth1"]
		batch := got[Dir+"/ip4.batch"]
		if native != c.native || native != !strings.Contains(batch, "rule add") {
			t.Errorf("NetworkManager %q: rule in ifcfg %v (want %v), in the unit's batch %v", c.version, native, c.native, strings.Contains(batch, "rule add"))
		}
		if native && !strings.Contains(ifcfg, `ROUTING_RULE_1="priority 1000 from 172.22.5.68/32 table 1000"`) {
			t.Errorf("ifcfg-System_eth1:\n%s", ifcfg)
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestRouteKey(t *testing.T) {
	for _, c := range [][2]string{
		{"default via 172.22.5.65 dev eth1 table 1000", "0.0.0.0/0 via 172.22.5.65 table 1000"},
		{"172.22.5.64/27 dev eth1 table 1000", "172.22.5.64/27 table 1000"},
		{"10.0.0.1 via 1.2.3.4", "10.0.0.1/32 via 1.2.3.4 table 254"},
	} {
		if routeKey(c[0], false) != routeKey(c[1], false) {
			t.Errorf("%q and %q differ: %q, %q", c[0], c[1], routeKey(c[0], false), routeKey(c[1], false))
		}
	}
	if routeKey("10.0.0.0/8 table 1000", false) == routeKey("10.0.0.0/8 table 1001", false) {
		t.Error("tables not told apart")
	}
}

// TestIfcfgKeyfileWarning: under --target rhel, an interface whose
// connection is a keyfile gets a warning: NetworkManager reads no route-
// file for it.
func TestIfcfgKeyfileWarning(t *testing.T) {
	c := rhelNM(map[string]string{}, "1.46.0")
	c.NM.ByIface = map[string][]sysroot.NMConn{"eth1": {{Path: sysroot.NMEtcDir + "/eth1.nmconnection"}}}
	w := strings.Join(Warnings(sysroot.Facts{}, c, nil), "\n")
	if !strings.Contains(w, "eth1: its NetworkManager connection /etc/NetworkManager/system-connections/eth1.nmconnection is a keyfile") {
		t.Errorf("warnings: %s", w)
	}
}
