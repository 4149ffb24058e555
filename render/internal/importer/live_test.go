package importer

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/apply"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// TestLive reads a made-up kernel: what is the stack's stays out, the
// patterns are found, nicpersist's own NAT chain reads in place of its
// jump, and what a profile cannot say is listed.
func TestLive(t *testing.T) {
	pfx, addr := netip.MustParsePrefix, netip.MustParseAddr
	links := []apply.Link{
		{Name: "lo", Index: 1},
		{Name: "eth1", Index: 2, Addrs: []netip.Prefix{pfx("172.22.5.68/27")}},
		{Name: "eth2", Index: 3, Addrs: []netip.Prefix{pfx("172.22.5.100/27")}},
		{Name: "eth3", Index: 4, Addrs: []netip.Prefix{pfx("172.22.5.132/26")}},
		{Name: "peer1", Index: 5},
	}
	rt := func(table uint32, dst string, gw string, oif int32, proto uint8) apply.KernelRoute {
		r := apply.KernelRoute{Table: table, Dst: pfx(dst), Nexthop: apply.Nexthop{OIF: oif}, Proto: proto, Type: 1}
		if gw != "" {
			r.Gateway = addr(gw)
		}
		return r
	}
	k := Kernel{
		Links: links,
		Routes: map[plan.Family][]apply.KernelRoute{plan.V4: {
			rt(254, "0.0.0.0/0", "172.22.5.97", 3, 3),       // boot: default_route
			rt(254, "172.22.5.64/27", "", 2, 2),             // the kernel's
			rt(254, "10.20.0.0/16", "172.22.5.97", 3, 4),    // static: carried
			rt(101, "0.0.0.0/0", "172.22.5.65", 2, 3),       // reply table
			rt(101, "172.22.5.64/27", "", 2, 3),             //
			rt(255, "172.22.5.68/32", "", 2, 2),             // local: not read
			{Table: 254, Dst: pfx("10.66.0.0/16"), Type: 6}, // prohibit
			rt(102, "0.0.0.0/0", "172.22.5.129", 4, 16),     // dhcp, but not in main: carried
		}},
		Rules: map[plan.Family][]apply.KernelRule{plan.V4: {
			{Rule: unitfiles.Rule{Priority: 0, Table: 255}, Action: "lookup"},
			{Rule: unitfiles.Rule{Priority: 1200, From: pfx("172.22.5.68/32"), Table: 101}, Action: "lookup"},
			{Rule: unitfiles.Rule{Priority: 1300, Mark: 0x10, Mask: 0xff, Table: 102}, Action: "lookup"},
			{Rule: unitfiles.Rule{Priority: 32766, Table: 254}, Action: "lookup"},
			{Rule: unitfiles.Rule{Priority: 32767, Table: 253}, Action: "lookup"},
		}},
		NATSave: map[plan.Family]string{plan.V4: "*nat\n:POSTROUTING ACCEPT [0:0]\n:NICPERSIST-POSTROUTING - [0:0]\n" +
			"-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\n-A POSTROUTING -j NICPERSIST-POSTROUTING\n" +
			"-A NICPERSIST-POSTROUTING -s 172.22.5.128/26 -o eth2 -j MASQUERADE\nCOMMIT\n"},
		Sysctl: func(key string) (string, bool) {
			v, ok := map[string]string{"net/ipv4/ip_forward": "1", "net/ipv6/conf/all/forwarding": "0", "net/ipv4/conf/all/rp_filter": "0",
				"net/ipv4/conf/eth1/rp_filter": "2", "net/ipv4/conf/eth2/rp_filter": "2", "net/ipv4/conf/eth3/rp_filter": "2", "net/ipv4/conf/peer1/rp_filter": "1"}[key]
			return v, ok
		},
	}
	env := testEnv()
	env.Links = map[string][]netip.Prefix{}
	for _, l := range links {
		env.Links[l.Name] = l.Addrs
	}
	res := Profile(LiveState(k, env), env, "the running kernel")
	text := string(res.Profile)
	rest := text
	for _, w := range []string{
		"ip_forward = true", "ipv6_forwarding = false", `rp_filter = "loose"`,
		`name = "eth1"`, `gateway = "172.22.5.65"`, "reply_via_self = true", "table = 101", "priority = 1200",
		`name = "eth2"`, "default_route = true",
		`name = "eth3"`,
		"[[nat]]", `source = "172.22.5.128/26"`,
		"[[table]]\nid = 102\nname = \"table102\"",
		`to = "10.20.0.0/16"`,
		`via = "172.22.5.129"`, "table = \"table102\"",
		"priority = 1300", `fwmark = "0x10/0xff"`,
	} {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("want %q (in order) in:\n%s", w, text)
		}
		rest = rest[i+len(w):]
	}
	for _, no := range []string{"peer1", "172.22.5.68/32\"\ntable = 255", "32766"} {
		if strings.Contains(text, no) {
			t.Errorf("%q in:\n%s", no, text)
		}
	}
	var reasons []string
	for _, s := range res.Skipped {
		reasons = append(reasons, s.Text+": "+s.Reason)
	}
	got := strings.Join(reasons, "\n")
	for _, w := range []string{"route 10.66.0.0/16 proto 0 metric 0: not carried over: a route of type 6", "! has no profile key"} {
		if !strings.Contains(got, w) {
			t.Errorf("want a skip with %q, got:\n%s", w, got)
		}
	}
	if len(res.Skipped) != 2 {
		t.Errorf("skipped %d, want 2:\n%s", len(res.Skipped), got)
	}
	if l := validate(res); l.HasErrors() {
		t.Errorf("%v\n%s", l.Sorted(), text)
	}
}

// TestLiveStackGateway: a NIC whose only default is the DHCP client's gets
// that gateway, which renders nothing but lets check warn.
func TestLiveStackGateway(t *testing.T) {
	pfx := netip.MustParsePrefix
	links := []apply.Link{{Name: "eth1", Index: 2, Addrs: []netip.Prefix{pfx("172.22.5.68/27")}}}
	k := Kernel{Links: links, Routes: map[plan.Family][]apply.KernelRoute{plan.V4: {
		{Table: 254, Dst: pfx("0.0.0.0/0"), Nexthop: apply.Nexthop{Gateway: netip.MustParseAddr("172.22.5.65"), OIF: 2}, Proto: 16, Type: 1},
	}}}
	env := Env{Links: map[string][]netip.Prefix{"eth1": links[0].Addrs}}
	text := string(Profile(LiveState(k, env), env, "kernel").Profile)
	if !strings.Contains(text, "# gateway: the network stack's default route via 172.22.5.65\nname = \"eth1\"\naddress = \"172.22.5.68/27\"  # from the running kernel\ngateway = \"172.22.5.65\"\n") || strings.Contains(text, "default_route") {
		t.Errorf("got:\n%s", text)
	}
}
