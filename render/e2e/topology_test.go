package e2e

import (
	"net"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/testenv"
)

// family holds the addresses a check needs in one IP family.
type family struct {
	n      int    // 4 or 6
	client string // the client VM in subnet3
	eth1   string // the multi-NIC VM's primary address (SSH target behind the public IP)
	eth2   string // the VM's secondary address: what the server must see after SNAT
	public string // the public IP gw1 maps 1:1 to eth1
	server string // the Internet server
}

var (
	v4 = family{4, "172.22.5.130", "172.22.5.68", "172.22.5.100", "198.51.100.68", "192.0.2.10"}
	v6 = family{6, "2001:db8:3::130", "2001:db8:1::68", "2001:db8:2::100", "2001:db8:f1::68", "2001:db8:ff::10"}
)

func (f family) String() string { return map[int]string{4: "IPv4", 6: "IPv6"}[f.n] }

// Ports of the two servers.
const (
	serverPort = "8080" // the Internet server
	sshPort    = "22"   // the SSH stand-in on the VM
)

// topology is the seed's network built in namespaces (see TESTING.md, "End-to-end tests"):
//
//	client --eth0/eth3-- vm --eth1/lan-- gw1 --wan/g1--+
//	                         --eth2/lan-- gw2 --wan/g2--+-- inet (server)
type topology struct {
	cl, vm, g1, g2, in string
}

type topoOpts struct {
	eth2Down bool // leave the VM's eth2 down (the boot test brings it up late)
	eth2DAD  bool // let eth2's IPv6 address go through duplicate address detection
	// bare leaves the VM's links without addresses or routes, as a boot
	// finds them: the network stack under test configures them. They are
	// down (NetworkManager brings them up) unless bareUp is set too
	// (stack_test.go's stacks).
	bare   bool
	bareUp bool
}

// newTopology builds the namespaces, links, addresses, gateways and servers,
// with the VM as a cloud image leaves it: default route via eth1's gateway,
// forwarding off, strict rp_filter, plus a rule and NAT rules of the user's
// that nicpersist must leave alone. Every namespace is deleted when the test
// ends, whatever happens.
func newTopology(t *testing.T, o topoOpts) *topology {
	t.Helper()
	id := randHex(3)
	netns := func(role string) string {
		ns := testenv.Netns(t, nsPrefix, id+"-"+role)
		// No duplicate address detection: addresses are usable at once.
		sysctls(t, ns, "net.ipv6.conf.all.accept_dad", "0", "net.ipv6.conf.default.accept_dad", "0")
		return ns
	}
	tp := &topology{cl: netns("cl"), vm: netns("vm"), g1: netns("g1"), g2: netns("g2"), in: netns("in")}
	t.Cleanup(func() {
		if t.Failed() {
			if out, err := try(nil, nil, "ip", "netns", "exec", tp.vm, "sh", "-c", snapshotScript); err == nil {
				t.Logf("VM state at the end of the failed test:\n%s", out)
			}
		}
	})
	ipBatch(t, "",
		"link add eth3 netns "+tp.vm+" type veth peer name eth0 netns "+tp.cl,
		"link add eth1 netns "+tp.vm+" type veth peer name lan netns "+tp.g1,
		"link add eth2 netns "+tp.vm+" type veth peer name lan netns "+tp.g2,
		"link add wan netns "+tp.g1+" type veth peer name g1 netns "+tp.in,
		"link add wan netns "+tp.g2+" type veth peer name g2 netns "+tp.in,
	)

	// The client VM in subnet3: the cloud's route table for the subnet points
	// its default route at the multi-NIC VM's eth3.
	ipBatch(t, tp.cl,
		"link set dev lo up", "link set dev eth0 up",
		"addr add 172.22.5.130/26 dev eth0", "addr add 2001:db8:3::130/64 dev eth0",
		"route add default via 172.22.5.132 dev eth0", "route add ::/0 via 2001:db8:3::132 dev eth0",
	)

	// The multi-NIC VM as a cloud image boots it.
	sysctls(t, tp.vm,
		"net.ipv4.ip_forward", "0", "net.ipv6.conf.all.forwarding", "0",
		"net.ipv4.conf.all.rp_filter", "1", "net.ipv4.conf.default.rp_filter", "1",
		"net.ipv4.conf.eth1.rp_filter", "1", "net.ipv4.conf.eth2.rp_filter", "1", "net.ipv4.conf.eth3.rp_filter", "1")
	vm := []string{
		"link set dev lo up", "link set dev eth1 up", "link set dev eth3 up",
		"addr add 172.22.5.68/27 dev eth1", "addr add 2001:db8:1::68/64 dev eth1",
		"addr add 172.22.5.100/27 dev eth2",
		"addr add 172.22.5.132/26 dev eth3", "addr add 2001:db8:3::132/64 dev eth3",
		"route add default via 172.22.5.65 dev eth1", "route add ::/0 via 2001:db8:1::1 dev eth1",
		// The user's own rules, which nicpersist must not touch.
		"rule add priority 500 from 10.99.0.0/16 table main",
	}
	if o.eth2DAD {
		sysctls(t, tp.vm, "net.ipv6.conf.eth2.accept_dad", "1")
	}
	vm = append(vm, "addr add 2001:db8:2::100/64 dev eth2")
	if !o.eth2Down {
		vm = append(vm, "link set dev eth2 up")
	}
	if o.bare {
		vm = []string{"link set dev lo up"}
		if o.bareUp {
			vm = append(vm, "link set dev eth1 up", "link set dev eth2 up", "link set dev eth3 up")
		}
		vm = append(vm, "rule add priority 500 from 10.99.0.0/16 table main")
	}
	ipBatch(t, tp.vm, vm...)
	run(t, "ip", "-n", tp.vm, "-6", "rule", "add", "priority", "500", "from", "2001:db8:99::/48", "table", "main")
	restore(t, tp.vm, "iptables", "*nat\n-A POSTROUTING -s 10.99.0.0/16 -o eth1 -j MASQUERADE\nCOMMIT\n")
	restore(t, tp.vm, "ip6tables", "*nat\n-A POSTROUTING -s 2001:db8:99::/48 -o eth1 -j MASQUERADE\nCOMMIT\n")

	// gw1: subnet1's gateway, with the cloud's 1:1 NAT of the public IP.
	ipBatch(t, tp.g1,
		"link set dev lo up", "link set dev lan up", "link set dev wan up",
		"addr add 172.22.5.65/27 dev lan", "addr add 2001:db8:1::1/64 dev lan",
		"addr add 203.0.113.2/30 dev wan", "addr add 2001:db8:a::2/64 dev wan",
		"route add default via 203.0.113.1", "route add ::/0 via 2001:db8:a::1",
	)
	sysctls(t, tp.g1, "net.ipv4.ip_forward", "1", "net.ipv6.conf.all.forwarding", "1")
	restore(t, tp.g1, "iptables", "*nat\n"+
		"-A PREROUTING -d 198.51.100.68/32 -j DNAT --to-destination 172.22.5.68\n"+
		"-A POSTROUTING -s 172.22.5.68/32 -o wan -j SNAT --to-source 198.51.100.68\nCOMMIT\n")
	restore(t, tp.g1, "ip6tables", "*nat\n"+
		"-A PREROUTING -d 2001:db8:f1::68/128 -j DNAT --to-destination 2001:db8:1::68\n"+
		"-A POSTROUTING -s 2001:db8:1::68/128 -o wan -j SNAT --to-source 2001:db8:f1::68\nCOMMIT\n")

	// gw2: subnet2's gateway, a plain router. The Internet routes only
	// subnet2 back to it, so only traffic SNATed to eth2's address returns.
	ipBatch(t, tp.g2,
		"link set dev lo up", "link set dev lan up", "link set dev wan up",
		"addr add 172.22.5.97/27 dev lan", "addr add 2001:db8:2::1/64 dev lan",
		"addr add 203.0.113.6/30 dev wan", "addr add 2001:db8:b::2/64 dev wan",
		"route add default via 203.0.113.5", "route add ::/0 via 2001:db8:b::1",
	)
	sysctls(t, tp.g2, "net.ipv4.ip_forward", "1", "net.ipv6.conf.all.forwarding", "1")

	// The Internet: the server, and routes to the public IP and subnet2 only.
	ipBatch(t, tp.in,
		"link set dev lo up", "link set dev g1 up", "link set dev g2 up",
		"addr add 192.0.2.10/32 dev lo", "addr add 2001:db8:ff::10/128 dev lo",
		"addr add 203.0.113.1/30 dev g1", "addr add 2001:db8:a::1/64 dev g1",
		"addr add 203.0.113.5/30 dev g2", "addr add 2001:db8:b::1/64 dev g2",
		"route add 198.51.100.68/32 via 203.0.113.2", "route add 2001:db8:f1::68/128 via 2001:db8:a::2",
		"route add 172.22.5.96/27 via 203.0.113.6", "route add 2001:db8:2::/64 via 2001:db8:b::2",
	)

	serve(t, tp.in, ":"+serverPort)
	serve(t, tp.vm, ":"+sshPort)
	return tp
}

// restore loads iptables-restore input into ns (appending to what is there).
func restore(t testing.TB, ns, cmd, rules string) {
	t.Helper()
	if out, err := try([]byte(rules), nil, "ip", "netns", "exec", ns, cmd+"-restore", "--noflush"); err != nil {
		t.Fatalf("%s-restore in %s: %v\n%s", cmd, ns, err, out)
	}
}

// throughVM checks that the client reaches the server through the VM and
// that the server sees the VM's eth2 address: the traffic left through eth2
// (only gw2 forwards without NAT, and the Internet routes only subnet2 back)
// and was SNATed to eth2's address.
func throughVM(t *testing.T, tp *topology, f family) {
	t.Helper()
	seen, err := dial(tp.cl, net.JoinHostPort(f.server, serverPort), dialOK)
	if err != nil {
		t.Errorf("%s: client -> server through the VM: %v", f, err)
		return
	}
	if seen != f.eth2 {
		t.Errorf("%s: server saw the client as %s, want the VM's eth2 address %s (SNAT out of eth2)", f, seen, f.eth2)
	}
}

// notThroughVM checks that the client cannot reach the server.
func notThroughVM(t *testing.T, tp *topology, f family) {
	t.Helper()
	if seen, err := dial(tp.cl, net.JoinHostPort(f.server, serverPort), dialFail); err == nil {
		t.Errorf("%s: client reached the server through the VM (server saw %s), want no path", f, seen)
	}
}

// sshWorks checks that a TCP connection from the Internet to the VM's public
// IP (SSH's stand-in) works: the replies leave through eth1 and gw1's NAT.
func sshWorks(t *testing.T, tp *topology, f family) {
	t.Helper()
	if _, err := dial(tp.in, net.JoinHostPort(f.public, sshPort), dialOK); err != nil {
		t.Errorf("%s: TCP to the public IP %s (SSH stand-in): %v", f, f.public, err)
	}
}

// sshBroken checks that the connection to the public IP fails.
func sshBroken(t *testing.T, tp *topology, f family) {
	t.Helper()
	if _, err := dial(tp.in, net.JoinHostPort(f.public, sshPort), dialFail); err == nil {
		t.Errorf("%s: TCP to the public IP %s worked, want it broken (replies leave through eth2)", f, f.public)
	}
}

// bounce takes a VM link down and up. The kernel deletes the link's routes
// in every table and flushes its IPv6 addresses (keep_addr_on_down=0); the
// network stack that owns the address and the cloud's IPv6 default route
// (DHCP/SLAAC, NetworkManager, ifup, networkd) adds them again, and so does
// this. What nicpersist owns is left to the path under test.
func bounce(t *testing.T, tp *topology, dev string) {
	t.Helper()
	addr6 := map[string]string{"eth1": "2001:db8:1::68/64", "eth2": "2001:db8:2::100/64", "eth3": "2001:db8:3::132/64"}[dev]
	lines := []string{"link set dev " + dev + " down", "link set dev " + dev + " up", "addr replace " + addr6 + " dev " + dev}
	if dev == "eth1" {
		// The cloud's IPv6 default route (as a router advertisement gives it).
		lines = append(lines, "route replace ::/0 via 2001:db8:1::1 dev eth1")
	}
	ipBatch(t, tp.vm, lines...)
}

// ownRoutesVia lists the VM's routes (one family, all tables) through dev
// that nicpersist or a route file made: proto 241, or in table 1000 (the
// reply_via_self table of both profiles).
func ownRoutesVia(t *testing.T, tp *topology, f family, dev string) []string {
	t.Helper()
	var own []string
	for _, l := range strings.Split(run(t, "ip", "-n", tp.vm, "-"+itoa(f.n), "route", "show", "table", "all", "dev", dev), "\n") {
		if strings.Contains(l, "proto 241") || strings.Contains(l, "table 1000") {
			own = append(own, l)
		}
	}
	return own
}
