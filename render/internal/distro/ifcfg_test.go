package distro

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/diag"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/profile"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
)

func seedPlan(t *testing.T) *plan.Plan {
	t.Helper()
	return planOf(t, "../../../packaging/profile.example.toml")
}

func planOf(t *testing.T, path string) *plan.Plan {
	t.Helper()
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	l := &diag.List{File: "profile.toml"}
	p := plan.Build(profile.Decode(src, l), l)
	if p == nil || l.HasErrors() {
		t.Fatalf("%s: %v", path, l.Sorted())
	}
	return p
}

func rhelNM(scripts map[string]string, version string) Choice {
	return Choice{Target: RHEL, Stack: NetworkManager, Root: sysroot.Facts{Scripts: scripts, Blocks: map[string]bool{}, NM: sysroot.NMFacts{Version: version}}}
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
	c.Root.NM.ByIface = map[string][]sysroot.NMConn{"eth1": {{Path: sysroot.NMEtcDir + "/eth1.nmconnection"}}}
	w := strings.Join(Warnings(sysroot.Facts{}, c, nil), "\n")
	if !strings.Contains(w, "eth1: its NetworkManager connection /etc/NetworkManager/system-connections/eth1.nmconnection is a keyfile") {
		t.Errorf("warnings: %s", w)
	}
}

// TestRhelHeld: the unit leaves exactly the routes the stack adds from the
// route files itself, and keeps every route the stack may not add. The
// dualstack profile has eth1's reply table in both families (route- and
// route6- files) and eth2's main defaults, which no route file holds.
func TestRhelHeld(t *testing.T) {
	p := planOf(t, "../../e2e/testdata/dualstack.toml")
	const (
		eth1   = "DEVICE=eth1\nBOOTPROTO=dhcp\n"
		eth1v6 = eth1 + "IPV6INIT=yes\n"
	)
	legacy := func(scripts map[string]string) Choice {
		return Choice{Target: RHEL, Stack: NetworkScripts, Root: sysroot.Facts{Scripts: scripts, Blocks: map[string]bool{}}}
	}
	for _, c := range []struct {
		name   string
		choice Choice
		want   string // the families of eth1's routes the stack holds
	}{
		{"network-scripts", legacy(map[string]string{"ifcfg-eth1": eth1v6}), "46"},
		{"network-scripts without IPV6INIT=yes", legacy(map[string]string{"ifcfg-eth1": eth1}), "4"},
		{"network-scripts, IPV6INIT=no", legacy(map[string]string{"ifcfg-eth1": eth1 + "IPV6INIT=no\n"}), "4"},
		{"network-scripts without an ifcfg file", legacy(map[string]string{}), ""},
		{"network-scripts, ifcfg file of another device", legacy(map[string]string{"ifcfg-eth1": "DEVICE=eth2\n"}), ""},
		{"network-scripts, ifcfg file named by connection", legacy(map[string]string{"ifcfg-System_eth1": eth1v6}), "46"},
		{"NetworkManager 1.46", rhelNM(map[string]string{"ifcfg-eth1": eth1v6}, "1.46.0-1.el9"), "46"},
		{"NetworkManager 1.22", rhelNM(map[string]string{"ifcfg-eth1": eth1v6}, "1.22.8"), "46"},
		{"NetworkManager 1.22 without IPV6INIT=yes", rhelNM(map[string]string{"ifcfg-eth1": eth1}, "1.22.8"), "4"},
		{"NetworkManager 1.32 without IPV6INIT=yes", rhelNM(map[string]string{"ifcfg-eth1": eth1}, "1.32.10"), "4"},
		{"NetworkManager 1.34 without IPV6INIT=yes", rhelNM(map[string]string{"ifcfg-eth1": eth1}, "1.34.0"), "46"},
		{"NetworkManager 1.20", rhelNM(map[string]string{"ifcfg-eth1": eth1v6}, "1.20.4-10.el8"), ""},
		{"NetworkManager of unknown version", rhelNM(map[string]string{"ifcfg-eth1": eth1v6}, ""), ""},
		{"NetworkManager without an ifcfg file", rhelNM(map[string]string{}, "1.46.0"), ""},
		{"NetworkManager, the user's rule file", rhelNM(map[string]string{"ifcfg-eth1": eth1v6, "rule-eth1": "from 10.9.0.0/16 table 5 priority 50\n"}, "1.46.0"), ""},
		{"NetworkManager, the user's rule6 file", rhelNM(map[string]string{"ifcfg-eth1": eth1v6, "rule6-eth1": "from 2001:db8:9::/48 table 5 priority 50\n"}, "1.46.0"), ""},
		{"NetworkManager, NM_CONTROLLED=no", rhelNM(map[string]string{"ifcfg-eth1": eth1v6 + "NM_CONTROLLED=no\n"}, "1.46.0"), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			routes, _ := rhelHeld(p, c.choice)
			got := ""
			for _, f := range []plan.Family{plan.V4, plan.V6} {
				n, held := 0, 0
				for i, r := range p.Routes {
					if r.Dev == "eth1" && r.Family == f {
						n++
						if routes[i] {
							held++
						}
					}
				}
				switch {
				case n == 0:
					t.Fatalf("no %s routes via eth1 in the profile", f)
				case held == n:
					got += strconv.Itoa(int(f))
				case held != 0:
					t.Errorf("%s: %d of eth1's %d routes held: a route file is read whole or not at all", f, held, n)
				}
			}
			if got != c.want {
				t.Errorf("held families of eth1's routes %q, want %q", got, c.want)
			}
			for i, r := range p.Routes {
				if routes[i] && (r.Dev != "eth1" || r.IsMainDefault()) {
					t.Errorf("route %s held: it is in no route file of eth1", r.Args())
				}
			}
			// The unit waits for eth1 only while it applies a route there.
			n, err := stackNative(p, c.choice, "")
			if err != nil {
				t.Fatal(err)
			}
			q := n.rest(p)
			for _, l := range q.Interfaces {
				if l.Name == "eth1" && (l.Routed4 == strings.Contains(c.want, "4") || l.Routed6 == strings.Contains(c.want, "6")) {
					t.Errorf("unit waits for eth1: IPv4 %v, IPv6 %v; stack holds %q", l.Routed4, l.Routed6, c.want)
				}
			}
		})
	}
}

// TestRoute6Warning: the IPV6INIT warning says the unit applies a route6-
// file's routes exactly where the stack does not read the file.
func TestRoute6Warning(t *testing.T) {
	p := planOf(t, "../../e2e/testdata/dualstack.toml")
	for _, c := range []struct {
		name   string
		choice Choice
		warn   bool
	}{
		{"network-scripts", Choice{Target: RHEL, Stack: NetworkScripts, Root: sysroot.Facts{Scripts: map[string]string{"ifcfg-eth1": "DEVICE=eth1\n"}, Blocks: map[string]bool{}}}, true},
		{"NetworkManager 1.32", rhelNM(map[string]string{"ifcfg-eth1": "DEVICE=eth1\n"}, "1.32.10"), true},
		{"NetworkManager of unknown version", rhelNM(map[string]string{"ifcfg-eth1": "DEVICE=eth1\n"}, ""), true},
		{"NetworkManager 1.34", rhelNM(map[string]string{"ifcfg-eth1": "DEVICE=eth1\n"}, "1.34.0"), false},
		{"IPV6INIT=yes", rhelNM(map[string]string{"ifcfg-eth1": "DEVICE=eth1\nIPV6INIT=yes\n"}, "1.32.10"), false},
	} {
		files, err := Render(p, c.choice, "/p")
		if err != nil {
			t.Fatal(err)
		}
		w := strings.Join(Warnings(sysroot.Facts{}, c.choice, files), "\n")
		if got := strings.Contains(w, "has no IPV6INIT=yes"); got != c.warn {
			t.Errorf("%s: IPV6INIT warning %v, want %v:\n%s", c.name, got, c.warn, w)
		}
	}
}
