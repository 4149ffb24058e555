package plan

import (
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/diag"
	"github.com/nicpersist/nicpersist/render/internal/profile"
)

func build(t *testing.T, src string) (*Plan, []diag.Problem) {
	t.Helper()
	l := &diag.List{File: "p.toml"}
	d := profile.Decode([]byte(src), l)
	if d == nil {
		return nil, l.Sorted()
	}
	return Build(d, l), l.Sorted()
}

func mustBuild(t *testing.T, src string) *Plan {
	t.Helper()
	p, probs := build(t, src)
	for _, pr := range probs {
		if pr.Severity == diag.Error {
			t.Fatalf("unexpected error: %s", pr)
		}
	}
	return p
}

func TestAutoNumbersAreDeterministicAndSkipExplicitOnes(t *testing.T) {
	src := `version = 1
[[interface]]
name = "a"
address = "10.0.0.2/24"
gateway = "10.0.0.1"
reply_via_self = true
[[interface]]
name = "b"
address = "10.0.1.2/24"
gateway = "10.0.1.1"
address6 = "2001:db8::2/64"
gateway6 = "2001:db8::1"
reply_via_self = true
[[table]]
id = 1000
name = "mine"
[[rule]]
priority = 1001
fwmark = 1
table = "mine"
[[rule]]
to = "192.0.2.0/24"
table = "mine"
`
	p := mustBuild(t, src)
	var got []string
	for _, tb := range p.Tables {
		got = append(got, tb.Name)
	}
	if strings.Join(got, ",") != "mine,nicpersist-a,nicpersist-b" || p.Tables[1].ID != 1001 || p.Tables[2].ID != 1002 {
		t.Errorf("tables: %+v", p.Tables)
	}
	var rules []string
	for _, r := range p.Rules {
		rules = append(rules, r.Args())
	}
	want := []string{
		"priority 1000 from 10.0.0.2/32 table 1001",
		"priority 1002 from 10.0.1.2/32 table 1002",
		"priority 1002 from 2001:db8::2/128 table 1002",
		"priority 1001 fwmark 0x1 table 1000",
		"priority 1003 to 192.0.2.0/24 table 1000",
	}
	if strings.Join(rules, "\n") != strings.Join(want, "\n") {
		t.Errorf("rules:\n%s\nwant:\n%s", strings.Join(rules, "\n"), strings.Join(want, "\n"))
	}
	again := mustBuild(t, src)
	for i := range p.Rules {
		if p.Rules[i].Args() != again.Rules[i].Args() {
			t.Fatal("same profile, different numbers")
		}
	}
}

func TestAutoNumbersSkipOthersRanges(t *testing.T) {
	var src strings.Builder
	src.WriteString("version = 1\n[numbering]\ntable_base = 9999\npriority_base = 9999\n")
	for _, n := range []string{"a", "b"} {
		src.WriteString("[[interface]]\nname = \"" + n + "\"\naddress = \"10.0." + map[string]string{"a": "1", "b": "2"}[n] + ".2/24\"\ngateway = \"10.0." + map[string]string{"a": "1", "b": "2"}[n] + ".1\"\nreply_via_self = true\n")
	}
	p := mustBuild(t, src.String())
	if p.Tables[1].ID != 13200 || p.Rules[1].Priority != 13200 {
		t.Errorf("second interface got table %d, priority %d; want 13200 for both", p.Tables[1].ID, p.Rules[1].Priority)
	}
}

func TestExpansion(t *testing.T) {
	p := mustBuild(t, `version = 1
[[interface]]
name = "eth0.100"
address = "10.0.0.2/24"
gateway = "10.0.0.1"
address6 = "2001:db8::2/64"
gateway6 = "fe80::1"
default_route = true
[[route]]
to = "192.0.2.7"
via = "10.0.0.9"
[sysctl]
rp_filter = "off"
`)
	var routes []string
	for _, r := range p.Routes {
		routes = append(routes, r.Args())
	}
	want := "default via 10.0.0.1 dev eth0.100\ndefault via fe80::1 dev eth0.100 metric 1\n192.0.2.7/32 via 10.0.0.9 dev eth0.100"
	if strings.Join(routes, "\n") != want {
		t.Errorf("routes:\n%s\nwant:\n%s", strings.Join(routes, "\n"), want)
	}
	var keys []string
	for _, s := range p.Sysctls {
		keys = append(keys, s.Key+"="+s.Value+" "+s.ProcPath())
	}
	if strings.Join(keys, ";") != "net.ipv4.conf.all.rp_filter=0 net/ipv4/conf/all/rp_filter;net/ipv4/conf/eth0.100/rp_filter=0 net/ipv4/conf/eth0.100/rp_filter" {
		t.Errorf("sysctls: %v", keys)
	}
}

func TestErrors(t *testing.T) {
	for _, c := range []struct {
		name, src string
		want      []string
	}{
		{"version", "", []string{"p.toml: version: is missing"}},
		{"reserved table", "version = 1\n[[table]]\nid = 254\nname = \"x\"\n", []string{"p.toml:3: table[0].id: 254 is reserved by the kernel"}},
		{"duplicate names", "version = 1\n[[table]]\nid = 7000\nname = \"x\"\n[[table]]\nid = 7001\nname = \"x\"\n", []string{`p.toml:7: table[1].name: table name "x" is already defined`}},
		{"two defaults", "version = 1\n[[interface]]\nname = \"a\"\naddress = \"10.0.0.2/24\"\ngateway = \"10.0.0.1\"\ndefault_route = true\n[[interface]]\nname = \"b\"\naddress = \"10.0.1.2/24\"\ngateway = \"10.0.1.1\"\ndefault_route = true\n",
			[]string{"p.toml:11: interface[1].default_route: a already has default_route for IPv4"}},
		{"route via outside", "version = 1\n[[interface]]\nname = \"a\"\naddress = \"10.0.0.2/24\"\n[[route]]\nto = \"10.9.0.0/16\"\nvia = \"10.0.1.1\"\ndev = \"a\"\n",
			[]string{"p.toml:7: route[0].via: 10.0.1.1 is not inside 10.0.0.0/24 (the subnet of a)"}},
		{"duplicate route", "version = 1\n[[interface]]\nname = \"a\"\naddress = \"10.0.0.2/24\"\ngateway = \"10.0.0.1\"\ndefault_route = true\n[[route]]\nto = \"default\"\nvia = \"10.0.0.1\"\n",
			[]string{"p.toml:7: route[0]: a route to default in table main with metric 0 is already made by interface[0].default_route"}},
		{"rule without selector", "version = 1\n[[rule]]\ntable = \"main\"\n", []string{"p.toml:2: rule[0]: has no selector"}},
		{"nat both", "version = 1\n[[interface]]\nname = \"a\"\n[[nat]]\nout_interface = \"a\"\nmasquerade = true\nto_source = \"10.0.0.1\"\n", []string{"p.toml:4: nat[0]: sets both masquerade = true and to_source"}},
		{"injection", "version = 1\n[[interface]]\nname = \"a\\nExecStart=/bin/evil\"\n", []string{`p.toml:3: interface[0].name: "a\nExecStart=/bin/evil" is 21 bytes`}},
		{"host bits", "version = 1\n[[rule]]\nfrom = \"10.0.0.1/8\"\ntable = 254\n", []string{"p.toml:3: rule[0].from: 10.0.0.1/8 has host bits set; did you mean 10.0.0.0/8?"}},
		{"type", "version = \"1\"\n", []string{"p.toml:1: version: must be the integer 1, not a string"}},
		{"broadcast gateway", "version = 1\n[[interface]]\nname = \"a\"\naddress = \"10.0.0.5/24\"\ngateway = \"10.0.0.255\"\n", []string{"p.toml:5: interface[0].gateway: 10.0.0.255 is the broadcast address of 10.0.0.0/24; give the router's address"}},
		{"route via without dev address", "version = 1\n[[interface]]\nname = \"a\"\naddress = \"10.0.0.2/24\"\n[[route]]\nto = \"2001:db8:9::/48\"\nvia = \"2001:db8::1\"\ndev = \"a\"\n",
			[]string{"p.toml:7: route[0].via: 2001:db8::1 is IPv6 but interface a has no IPv6 address in the profile; add it so the gateway can be checked"}},
		{"route via own address", "version = 1\n[[interface]]\nname = \"a\"\naddress = \"10.0.0.2/24\"\n[[route]]\nto = \"10.9.0.0/16\"\nvia = \"10.0.0.2\"\n",
			[]string{"p.toml:7: route[0].via: 10.0.0.2 is the address of a itself; give the router's address"}},
		{"route via network address", "version = 1\n[[interface]]\nname = \"a\"\naddress = \"10.0.0.2/24\"\n[[route]]\nto = \"10.9.0.0/16\"\nvia = \"10.0.0.0\"\ndev = \"a\"\n",
			[]string{"p.toml:7: route[0].via: 10.0.0.0 is the network address of 10.0.0.0/24; give the router's address"}},
		{"gateway outside", "version = 1\n[[interface]]\nname = \"a\"\naddress6 = \"2001:db8::2/64\"\ngateway6 = \"2001:DB8:1::1\"\n",
			[]string{"p.toml:5: interface[0].gateway6: 2001:DB8:1::1 is not inside 2001:db8::/64"}},
		{"gateway own address", "version = 1\n[[interface]]\nname = \"a\"\naddress = \"10.0.0.2/24\"\ngateway = \"10.0.0.2\"\n",
			[]string{"p.toml:5: interface[0].gateway: 10.0.0.2 is the interface's own address; give the router's address"}},
		{"limited broadcast", "version = 1\n[[interface]]\nname = \"a\"\n[[nat]]\nout_interface = \"a\"\nto_source = \"255.255.255.255\"\n", []string{"p.toml:6: nat[0].to_source: 255.255.255.255 is the limited broadcast address"}},
		{"catch-all from", "version = 1\n[[rule]]\nfrom = \"0.0.0.0/0\"\ntable = \"main\"\n", []string{"p.toml:3: rule[0].from: 0.0.0.0/0 matches every address"}},
		{"zero mask", "version = 1\n[[rule]]\nfwmark = \"0x1/0x0\"\ntable = \"main\"\n", []string{"p.toml:3: rule[0].fwmark: 0x1/0x0 matches every packet"}},
		{"v6 default metric", "version = 1\n[[interface]]\nname = \"a\"\naddress6 = \"2001:db8::2/64\"\n[[route]]\nto = \"2001:db8:9::/48\"\ndev = \"a\"\n[[route]]\nto = \"2001:db8:9::/48\"\ndev = \"a\"\nmetric = 1024\n", []string{"p.toml:8: route[1]: a route to 2001:db8:9::/48 in table main with metric 1024 is already made by route[0]"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, probs := build(t, c.src)
			if p != nil {
				t.Fatal("accepted")
			}
			var got []string
			for _, pr := range probs {
				got = append(got, pr.String())
			}
			all := strings.Join(got, "\n")
			for _, w := range c.want {
				if !strings.Contains(all, w) {
					t.Errorf("problems lack %q:\n%s", w, all)
				}
			}
		})
	}
}

// An IPv6 link-local router is on every link, so neither a gateway6 nor a
// route's via needs the subnet check, nor even the interface's address6.
func TestLinkLocalNextHop(t *testing.T) {
	p := mustBuild(t, `version = 1
[[interface]]
name = "a"
address6 = "2001:db8::2/64"
gateway6 = "fe80::1"
default_route = true
[[interface]]
name = "b"
address = "10.0.0.2/24"
[[route]]
to = "2001:db8:9::/48"
via = "fe80::2"
dev = "b"
`)
	var got []string
	for _, r := range p.Routes {
		got = append(got, r.Args())
	}
	if want := "default via fe80::1 dev a metric 1\n2001:db8:9::/48 via fe80::2 dev b"; strings.Join(got, "\n") != want {
		t.Errorf("routes:\n%s\nwant\n%s", strings.Join(got, "\n"), want)
	}
}

// An object with an error stays out of the plan, so nothing built on it
// reports a second problem: two routes with a malformed `to` and a good dev
// are not also "the same route twice".
func TestBrokenObjectStaysOut(t *testing.T) {
	_, probs := build(t, `version = 1
[[interface]]
name = "a"
address = "10.0.0.2/24"
[[route]]
to = "bogus"
dev = "a"
[[route]]
to = "bogus2"
dev = "a"
`)
	var got []string
	for _, pr := range probs {
		got = append(got, pr.String())
	}
	want := []string{
		`p.toml:6: route[0].to: "bogus" is not an address or a network in CIDR form (e.g. "10.10.0.0/16")`,
		`p.toml:9: route[1].to: "bogus2" is not an address or a network in CIDR form (e.g. "10.10.0.0/16")`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("problems:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
