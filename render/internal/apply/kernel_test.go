package apply

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
	"github.com/nicpersist/nicpersist/render/testenv"
)

// The tests that need the kernel run in network namespaces of their own,
// named np-apply-<pid>-<n>. Start, Stop and the netlink readers act on the
// namespace of the calling process, so such a test runs again as a child
// process inside its namespace (`ip netns exec NS <this binary>
// -test.run=^TestX$`), with envChild naming the namespace; the parent only
// makes and deletes the namespace and reports the child's outcome.

const (
	// envChild is set in the child process: the namespace it runs in.
	envChild = "NICPERSIST_APPLY_NETNS"

	nsPrefix   = "np-apply-"
	cmdTimeout = 30 * time.Second
)

// need skips the test (fails it under NICPERSIST_E2E=1) when the machine
// cannot make network namespaces.
func need(t *testing.T) {
	t.Helper()
	testenv.Need(t, "make network namespaces", nsPrefix)
}

var nsCount atomic.Int64

// newNS makes a network namespace that the test's cleanup deletes.
func newNS(t *testing.T) string {
	t.Helper()
	need(t)
	return testenv.Netns(t, nsPrefix, strconv.FormatInt(nsCount.Add(1), 10))
}

// inNetns says whether this is the child process, inside the namespace made
// for the test: then the caller goes on with the test. In the parent it
// makes the namespace, runs the test there in a child process, reports its
// outcome, and returns false.
func inNetns(t *testing.T) bool {
	t.Helper()
	if ns := os.Getenv(envChild); ns != "" {
		checkNetns(t, ns)
		return true
	}
	ns := newNS(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", ns, self,
		"-test.run=^"+regexp.QuoteMeta(t.Name())+"$", "-test.v", "-test.count=1", "-test.timeout=2m")
	cmd.Env = append(os.Environ(), envChild+"="+ns)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("the test failed in its child process in namespace %s (%v):\n%s", ns, err, out)
	}
	if !bytes.Contains(out, []byte("--- PASS: "+t.Name()+" ")) {
		t.Fatalf("the child process in namespace %s did not pass %s:\n%s", ns, t.Name(), out)
	}
	if testing.Verbose() {
		t.Logf("child process in %s:\n%s", ns, out)
	}
	return false
}

// checkNetns stops a child that is not in the namespace it was made for,
// before it touches the network of the machine.
func checkNetns(t *testing.T, ns string) {
	t.Helper()
	var self, want syscall.Stat_t
	if err := syscall.Stat("/proc/self/ns/net", &self); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Stat(filepath.Join("/run/netns", ns), &want); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ns, nsPrefix) || self.Dev != want.Dev || self.Ino != want.Ino {
		t.Fatalf("refusing to run: %s=%s but this process is not in that network namespace", envChild, ns)
	}
}

// run runs a command and returns its combined output, failing the test on a
// non-zero exit.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// ipc runs the `ip` command line, split at spaces, in this process's
// namespace.
func ipc(t *testing.T, line string) string {
	t.Helper()
	return run(t, "ip", strings.Fields(line)...)
}

// ipLines runs ip and returns its output lines, each with its words joined
// by one space.
func ipLines(t *testing.T, line string) []string {
	t.Helper()
	var out []string
	for _, l := range strings.Split(ipc(t, line), "\n") {
		if l = strings.Join(strings.Fields(l), " "); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// vethUp makes NAME and its peer NAME+"p", up, without link-local
// addresses (which would come and go during a test).
func vethUp(t *testing.T, name string) {
	t.Helper()
	ipc(t, "link add "+name+" type veth peer name "+name+"p")
	ipc(t, "link set "+name+" addrgenmode none")
	ipc(t, "link set "+name+"p addrgenmode none")
	ipc(t, "link set "+name+" up")
	ipc(t, "link set "+name+"p up")
}

// eth1Up brings lo up and makes eth1, a veth with 10.1.0.2/24 and
// 2001:db8:1::2/64 (usable at once: no duplicate address detection).
func eth1Up(t *testing.T) {
	t.Helper()
	ipc(t, "link set lo up")
	vethUp(t, "eth1")
	ipc(t, "addr add 10.1.0.2/24 dev eth1")
	ipc(t, "-6 addr add 2001:db8:1::2/64 dev eth1 nodad")
	// Even without DAD the kernel adds the address's local route from a
	// work queue; on a loaded machine a test may look before it is there.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(ipc(t, "-6 route show table local"), "2001:db8:1::2 ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the local route of 2001:db8:1::2 did not appear:\n%s", ipc(t, "-6 route show table all"))
		}
	}
}

// TestIPErrorLogRealIP pins the error log of the installed `ip -force
// -batch` (iproute2 6.1: each failed line's messages, then "Command failed
// FILE:N") against onlyExists and stoppedEarly.
func TestIPErrorLogRealIP(t *testing.T) {
	t.Parallel()
	ns := newNS(t)
	run(t, "ip", "netns", "exec", ns, "ip", "-4", "rule", "add", "priority", "1000", "from", "10.1.0.2/32", "table", "1000")
	run(t, "ip", "netns", "exec", ns, "ip", "-4", "rule", "add", "priority", "1002", "fwmark", "0x10/0xff", "table", "1002")
	dir := t.TempDir()
	batch := func(name string, lines []string) (errlog string, err error) {
		t.Helper()
		// A directory with a space and a colon in its name: the line
		// number is what follows the last colon.
		d := filepath.Join(dir, "a b:c")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(d, name)
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		var eb bytes.Buffer
		cmd := exec.Command("ip", "netns", "exec", ns, "ip", "-4", "-force", "-batch", path)
		cmd.Stderr = &eb
		err = cmd.Run()
		t.Logf("ip -4 -force -batch %s:\n%s", path, eb.String())
		return eb.String(), err
	}

	mixed := []string{
		"rule add priority 1000 from 10.1.0.2/32 table 1000", // File exists
		"route replace 10.9.0.0/16 via 192.0.2.1 table 1000", // Nexthop has invalid gateway
		"rule add priority 1001 from 10.1.0.3/32 table 1001", // added
		"rule add priority 1002 fwmark 0x10/0xff table 1002", // File exists
		"bogus line", // Object "bogus" is unknown
		"route replace 10.8.0.0/16 dev nosuch0 table 1000",   // Cannot find device
		"rule add priority 1000 from 10.1.0.2/32 table 1000", // File exists again
		"rule add priority 1001 from 10.1.0.3/32 table 1001", // File exists: line 3 added it
		// A line ip cannot parse ends the batch, -force or not, with no
		// "Command failed".
		"route replace 10.7.0.0/16 via 192.0.2.1 table 1000 x",
		"rule add priority 1005 from 10.1.0.6/32 table 1005",
	}
	errlog, err := batch("mixed", mixed)
	if err == nil {
		t.Fatalf("ip -force -batch with failing lines exited 0; stderr:\n%s", errlog)
	}
	for n := 1; n <= len(mixed); n++ {
		want := fmt.Sprintf("Command failed %s:%d\n", filepath.Join(dir, "a b:c", "mixed"), n)
		if failed := n != 3 && n < 9; strings.Contains(errlog, want) != failed {
			t.Errorf("ip's error log has %q: %v, want %v; the format onlyExists reads has changed:\n%s", want, !failed, failed, errlog)
		}
	}
	if !strings.Contains(errlog, "Command line is not complete") {
		t.Errorf("ip's error log does not say why it stopped at line 9:\n%s", errlog)
	}
	if rules := run(t, "ip", "netns", "exec", ns, "ip", "-4", "rule"); !strings.Contains(rules, "from 10.1.0.3 lookup 1001") || strings.Contains(rules, "lookup 1005") {
		t.Errorf("ip -force -batch should have added line 3's rule and stopped before line 10's; ip rule:\n%s", rules)
	}
	if !stoppedEarly(errlog, err) {
		t.Errorf("stoppedEarly(ip's log of a batch it stopped in) = false:\n%s", errlog)
	}
	if onlyExists(errlog) {
		t.Errorf("onlyExists(ip's log of a batch with other errors) = true, want false:\n%s", errlog)
	}

	exists := []string{
		"rule add priority 1000 from 10.1.0.2/32 table 1000",
		"rule add priority 1003 from 10.1.0.4/32 table 1003",
		"rule add priority 1002 fwmark 0x10/0xff table 1002",
	}
	errlog, err = batch("exists", exists)
	if err == nil {
		t.Fatalf("ip -force -batch with existing rules exited 0; stderr:\n%s", errlog)
	}
	if stoppedEarly(errlog, err) {
		t.Errorf("stoppedEarly(ip's log of a batch it went through) = true:\n%s", errlog)
	}
	if !onlyExists(errlog) {
		t.Errorf("onlyExists(ip's log of a batch whose only errors are existing rules) = false, want true:\n%s", errlog)
	}

	errlog, err = batch("clean", []string{"rule add priority 1004 from 10.1.0.5/32 table 1004"})
	if err != nil || errlog != "" {
		t.Fatalf("a batch that works: err %v, stderr %q", err, errlog)
	}
}

// kr makes a kroute for a want list.
func kr(table uint32, prefix string, metric uint32, proto uint8) kroute {
	return kroute{table: table, dst: netip.MustParsePrefix(prefix), metric: metric, proto: proto}
}

// Route protocols, as in /etc/iproute2/rt_protos.
const (
	protoKernel = 2
	protoBoot   = 3
	protoStatic = 4
	protoDHCP   = 16
)

func TestDumpRoutes(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	eth1Up(t)
	for _, l := range []string{
		"-4 route add 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241 metric 7",
		"-4 route add 10.8.0.0/16 dev eth1 table 100",
		"-4 route add 10.7.0.5 dev eth1 table 70000 metric 5 proto static",
		"-4 route add default via 10.1.0.1 dev eth1",
		"-4 route add default via 10.1.0.1 dev eth1 table 70000 proto dhcp metric 100",
		"-4 route add unreachable 10.6.0.0/15 table 300",
		"-6 route add 2001:db8:9::/48 via 2001:db8:1::1 dev eth1 table 1000 proto 241",
		"-6 route add 2001:db8:8::/64 dev eth1 table 300 metric 5",
		"-6 route add 2001:db8:7::1 dev eth1 table 70000",
		"-6 route add default via 2001:db8:1::1 dev eth1 metric 1",
	} {
		ipc(t, l)
	}
	for _, tc := range []struct {
		f    plan.Family
		want []kroute
	}{
		{4, []kroute{
			kr(1000, "10.9.0.0/16", 7, plan.Proto),
			kr(100, "10.8.0.0/16", 0, protoBoot),
			kr(70000, "10.7.0.5/32", 5, protoStatic),
			kr(254, "0.0.0.0/0", 0, protoBoot),
			kr(70000, "0.0.0.0/0", 100, protoDHCP),
			kr(300, "10.6.0.0/15", 0, protoBoot),
			// What the kernel adds for the address.
			kr(254, "10.1.0.0/24", 0, protoKernel),
			kr(255, "10.1.0.2/32", 0, protoKernel),
			kr(255, "127.0.0.1/32", 0, protoKernel),
		}},
		{6, []kroute{
			kr(1000, "2001:db8:9::/48", 1024, plan.Proto),
			kr(300, "2001:db8:8::/64", 5, protoBoot),
			kr(70000, "2001:db8:7::1/128", 1024, protoBoot),
			kr(254, "::/0", 1, protoBoot),
			kr(254, "2001:db8:1::/64", 256, protoKernel),
			kr(255, "2001:db8:1::2/128", 0, protoKernel),
		}},
	} {
		got, err := dumpRoutes(tc.f)
		if err != nil {
			t.Fatalf("dumpRoutes(%d): %v", tc.f, err)
		}
		for _, w := range tc.want {
			if !slices.Contains(got, w) {
				t.Errorf("dumpRoutes(%d) has no %+v; it has:\n%s", tc.f, w, dumpString(got))
			}
		}
		for _, k := range got {
			if k.dst.Addr().Is4() != (tc.f == 4) || k.dst != k.dst.Masked() {
				t.Errorf("dumpRoutes(%d) returned %+v: wrong family or not masked", tc.f, k)
			}
		}
		// No more and no fewer routes than `ip route show table all`
		// lists.
		if n := len(ipLines(t, fmt.Sprintf("-%d route show table all", tc.f))); len(got) != n {
			t.Errorf("dumpRoutes(%d) returned %d routes, `ip -%d route show table all` lists %d:\n%s", tc.f, len(got), tc.f, n, dumpString(got))
		}
	}
}

func dumpString(krs []kroute) string {
	var b strings.Builder
	for _, k := range krs {
		fmt.Fprintf(&b, "\t%+v\n", k)
	}
	return b.String()
}

func TestPresent(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	eth1Up(t)
	for _, l := range []string{
		"-4 route add 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241 metric 7",
		"-4 route add 10.7.0.5 dev eth1 table 70000",
		"-4 route add default via 10.1.0.1 dev eth1",
		"-4 route add 10.5.0.0/16 dev eth1 table 5",
		"-6 route add 2001:db8:9::/48 via 2001:db8:1::1 dev eth1 table 1000 proto 241",
		"-6 route add 2001:db8:7::1 dev eth1 table 70000",
		"-6 route add default via 2001:db8:1::1 dev eth1 metric 1",
	} {
		ipc(t, l)
	}
	for _, tc := range []struct {
		f    plan.Family
		cand []string
		want []string
	}{
		{4, nil, nil},
		// The metric is left out: 7 in the kernel, 0 in the line.
		{4, []string{"route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241"}, []string{"1000"}},
		{4, []string{"route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1001 proto 241"}, nil},
		{4, []string{"route replace 10.9.1.0/24 via 10.1.0.1 dev eth1 table 1000 proto 241"}, nil},
		{4, []string{"route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 proto 241"}, nil},
		{4, []string{"route replace default via 10.1.0.1 dev eth1 metric 5 proto 241"}, []string{"main"}},
		{4, []string{"route replace default via 10.1.0.1 dev eth1 table 1000 proto 241"}, nil},
		{4, []string{"route replace 10.1.0.0/24 dev eth1 table main proto 241"}, []string{"main"}},
		{4, []string{"route replace 10.1.0.0/24 dev eth1 table 254 proto 241"}, []string{"254"}},
		{4, []string{"route replace 10.7.0.5/32 dev eth1 table 70000 proto 241"}, []string{"70000"}},
		{4, []string{"route replace 10.7.0.5 dev eth1 table 70000 proto 241"}, []string{"70000"}},
		{4, []string{"route replace 10.7.0.5 dev eth1 table 7000 proto 241"}, nil},
		{4, []string{"route replace unreachable 10.5.0.0/16 table 5"}, []string{"5"}},
		// A line candKey does not read: its table is read with `ip`.
		{4, []string{"route replace 10.4.0.0/16 dev eth1 table foo proto 241"}, []string{"foo"}},
		{4, []string{"route replace"}, []string{"main"}},
		{4, []string{
			"route replace 10.7.0.5 dev eth1 table 70000 proto 241",
			"route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241",
			"route replace 10.3.0.0/16 via 10.1.0.1 dev eth1 table 3 proto 241",
			"route replace default via 10.1.0.1 dev eth1 metric 9 proto 241",
			"route replace 10.7.0.5 dev eth1 table 70000 metric 3 proto 241",
		}, []string{"1000", "70000", "main"}},
		{6, []string{"route replace 2001:db8:9::/48 via 2001:db8:1::1 dev eth1 table 1000 proto 241"}, []string{"1000"}},
		{6, []string{"route replace 2001:db8:9::/64 via 2001:db8:1::1 dev eth1 table 1000 proto 241"}, nil},
		{6, []string{"route replace 2001:db8:7::1 dev eth1 table 70000 proto 241"}, []string{"70000"}},
		{6, []string{"route replace 2001:db8:7::1/128 dev eth1 table 70000 proto 241"}, []string{"70000"}},
		{6, []string{"route replace default via 2001:db8:1::1 dev eth1 metric 1 proto 241"}, []string{"main"}},
		{6, []string{"route replace default via 2001:db8:1::1 dev eth1 table 1000 proto 241"}, nil},
		// IPv4 routes are not IPv6 routes.
		{6, []string{"route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241"}, nil},
	} {
		if got := present(tc.f, tc.cand); !slices.Equal(got, tc.want) {
			t.Errorf("present(%d, %q) = %q, want %q", tc.f, tc.cand, got, tc.want)
		}
	}
}

func TestHasForeignDefault4(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	eth1Up(t)
	for _, tc := range []struct {
		do   string // an ip command line, or "" for none
		want bool
	}{
		{"", false},
		{"-6 route add default via 2001:db8:1::1 dev eth1 metric 0", false},
		{"-4 route add default via 10.1.0.1 dev eth1 table 1000", false},
		{"-4 route add default via 10.1.0.1 dev eth1 metric 100", false},
		{"-4 route add default via 10.1.0.1 dev eth1 proto 241", false},
		{"-4 route replace default via 10.1.0.1 dev eth1", true},
		{"-4 route replace default via 10.1.0.1 dev eth1 proto dhcp", true},
		{"-4 route replace default via 10.1.0.1 dev eth1 proto 241", false},
		{"-4 route del default via 10.1.0.1 dev eth1 proto 241", false},
		{"-4 route add unreachable default", true},
	} {
		if tc.do != "" {
			ipc(t, tc.do)
		}
		got, err := hasForeignDefault4()
		if err != nil {
			t.Fatalf("after `ip %s`: hasForeignDefault4: %v", tc.do, err)
		}
		if got != tc.want {
			t.Errorf("after `ip %s`: hasForeignDefault4() = %v, want %v; main table:\n%s", tc.do, got, tc.want, ipc(t, "-4 route show table main"))
		}
	}
}

func TestLinkReady(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	ipc(t, "link set lo up")
	ipc(t, "link add veth0 type veth peer name veth1")
	ipc(t, "link set veth0 addrgenmode none")
	ipc(t, "link set veth1 addrgenmode none")
	// Quick duplicate address detection, for the last step.
	for _, kv := range [][2]string{
		{"net/ipv6/conf/veth0/dad_transmits", "1"},
		{"net/ipv6/neigh/veth0/retrans_time_ms", "50"},
		{"net/ipv6/conf/veth0/router_solicitation_delay", "0"},
	} {
		if err := os.WriteFile("/proc/sys/"+kv[0], []byte(kv[1]+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	type check struct {
		dev, addr string
		want      bool
	}
	steps := []struct {
		do     string // an ip command line, or "" for none
		checks []check
	}{
		{"", []check{
			{"veth0", "-", false},
			{"veth0", "10.2.0.1", false},
			{"nosuch", "-", false},
			{"lo", "-", true},
			{"lo", "127.0.0.1", true},
			{"lo", "::1", true},
		}},
		{"link set veth0 up", []check{
			{"veth0", "-", true},
			{"veth0", "10.2.0.1", false},
		}},
		{"addr add 10.2.0.1/24 dev veth0", []check{
			{"veth0", "-", true},
			{"veth0", "10.2.0.1", true},
			{"veth0", "10.2.0.2", false},
			{"lo", "10.2.0.1", false},
		}},
		// IFA_LOCAL is the address; IFA_ADDRESS the peer's.
		{"addr add 10.4.0.1 peer 10.4.0.2 dev veth0", []check{
			{"veth0", "10.4.0.1", true},
			{"veth0", "10.4.0.2", false},
		}},
		// An alternative name (udev gives them) is the link too.
		{"link property add dev veth0 altname enx0a0b0c0d0e0f", []check{
			{"enx0a0b0c0d0e0f", "10.2.0.1", true},
			{"enx0a0b0c0d0e0f", "10.2.0.2", false},
		}},
		{"link set veth0 down", []check{
			{"veth0", "-", false},
			{"veth0", "10.2.0.1", false},
			{"enx0a0b0c0d0e0f", "-", false},
		}},
		{"link set veth0 up", []check{
			{"veth0", "-", true},
			{"veth0", "10.2.0.1", true},
		}},
		// The peer is down, so veth0 has no carrier, and its address
		// stays tentative; nodad makes one that is not.
		{"-6 addr add 2001:db8:5::1/64 dev veth0", []check{
			{"veth0", "2001:db8:5::1", false},
		}},
		{"-6 addr add 2001:db8:5::2/64 dev veth0 nodad", []check{
			{"veth0", "2001:db8:5::1", false},
			{"veth0", "2001:db8:5::2", true},
			{"veth0", "2001:db8:5:0:0:0:0:2", true},
			{"veth0", "-", true},
		}},
	}
	for _, s := range steps {
		if s.do != "" {
			ipc(t, s.do)
		}
		ls, err := readLinks()
		if err != nil {
			t.Fatalf("after `ip %s`: readLinks: %v", s.do, err)
		}
		for _, c := range s.checks {
			if got := ls.ready(linkOf(t, c.dev, c.addr)); got != c.want {
				t.Errorf("after `ip %s`: ready(%q, %q) = %v, want %v; ip addr:\n%s", s.do, c.dev, c.addr, got, c.want, ipc(t, "addr show dev veth0"))
			}
		}
	}
	// A link message larger than a page (many alternative names) must not
	// end the dump early: syscall.NetlinkRIB reads a page and did so.
	for i := 0; i < 40; i++ {
		ipc(t, fmt.Sprintf("link property add dev veth1 altname veth1-alternative-%03d", i))
	}
	ipc(t, "link add veth2 type veth peer name veth3")
	ipc(t, "link set veth2 up")
	if ls, err := readLinks(); err != nil || !ls.ready(linkOf(t, "veth2", "-")) || ls.index["veth1-alternative-039"] == 0 || !ls.ready(linkOf(t, "lo", "-")) {
		t.Errorf("with a link of 40 alternative names, readLinks missed links (err %v); ip link:\n%s", err, ipc(t, "-br link"))
	}
	if out := ipc(t, "-6 addr show dev veth0"); !regexp.MustCompile(`2001:db8:5::1/64 .*tentative`).MatchString(out) {
		t.Fatalf("2001:db8:5::1 is not tentative, so the checks above did not test that:\n%s", out)
	}

	// waitLinks: what never comes fails after the wait; the tentative
	// address is waited for until the peer comes up and DAD passes.
	r := &executor{Config: Config{Wait: 150 * time.Millisecond, Stderr: &bytes.Buffer{}}}
	link := func(dev, addr string) unitfiles.Link { return linkOf(t, dev, addr) }
	start := time.Now()
	err := r.waitLinks([]unitfiles.Link{link("veth0", "10.2.0.1"), link("veth0", "10.2.0.99")})
	if err == nil || !strings.Contains(err.Error(), "veth0 is not up with address 10.2.0.99") {
		t.Errorf("waitLinks for an address veth0 does not have = %v, want an error naming veth0 and 10.2.0.99", err)
	}
	if d := time.Since(start); d < r.Wait || d > r.Wait+time.Second {
		t.Errorf("waitLinks gave up after %v, want about %v", d, r.Wait)
	}
	r.Wait = 5 * time.Second
	ipc(t, "link set veth1 up")
	start = time.Now()
	if err := r.waitLinks([]unitfiles.Link{link("veth0", "10.2.0.1"), link("veth0", "2001:db8:5::1"), link("veth0", "-"), link("lo", "-")}); err != nil {
		t.Fatalf("waitLinks for an address that passes DAD: %v; ip addr:\n%s", err, ipc(t, "-6 addr show dev veth0"))
	}
	t.Logf("DAD took %v", time.Since(start))
	if out := ipc(t, "-6 addr show dev veth0"); strings.Contains(out, "tentative") {
		t.Errorf("waitLinks returned while an address was tentative:\n%s", out)
	}
}

// TestPreRoutes checks that the routes a start finds in the kernel are
// matched to its lines by table, prefix and metric, and written as `ip route
// replace` takes them back. (Multipath routes: TestMultipathPreRoute.)
func TestPreRoutes(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	eth1Up(t)
	for _, l := range []string{
		"-4 route add 10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000 proto static",
		"-4 route add 10.7.0.0/16 via 10.1.0.3 dev eth1 metric 5",
		"-4 route add 10.7.0.0/16 via 10.1.0.3 dev eth1 table 70000",
		"-4 route add default via 10.1.0.254 dev eth1",
		"-4 route add default via 10.1.0.254 dev eth1 metric 100",
		"-6 route add 2001:db8:3::/64 via 2001:db8:1::3 dev eth1 expires 300 table 1000",
		"-6 route add 2001:db8:20::/48 via 2001:db8:1::3 dev eth1 metric 1",
		"-6 route add 2001:db8:21::1 via 2001:db8:1::3 dev eth1",
	} {
		ipc(t, l)
	}
	r := &planner{k: liveKernel{&executor{Config: Config{Stderr: &bytes.Buffer{}}}}}
	for _, tc := range []struct {
		f    plan.Family
		cand []string
		want []string
	}{
		{4, nil, nil},
		{4, []string{
			"route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241",
			"route replace 10.6.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241",
			"route replace 10.7.0.0/16 via 10.1.0.1 dev eth1 proto 241",
			"route replace 10.7.0.0/16 via 10.1.0.1 dev eth1 metric 5 proto 241",
			"route replace 10.7.0.0/16 via 10.1.0.1 dev eth1 table 70000 metric 5 proto 241",
			"route replace 10.7.0.0/16 via 10.1.0.1 dev eth1 table 70000 proto 241",
			// The metric-0 main default is saveDefault's, not preRoutes'.
			"route replace default via 10.1.0.1 dev eth1 proto 241",
			"route replace default via 10.1.0.1 dev eth1 metric 100 proto 241",
		}, []string{
			"route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241|10.9.0.0/16 via 10.1.0.3 dev eth1 proto static table 1000",
			"route replace 10.7.0.0/16 via 10.1.0.1 dev eth1 metric 5 proto 241|10.7.0.0/16 via 10.1.0.3 dev eth1 metric 5 table main",
			"route replace 10.7.0.0/16 via 10.1.0.1 dev eth1 table 70000 proto 241|10.7.0.0/16 via 10.1.0.3 dev eth1 table 70000",
			"route replace default via 10.1.0.1 dev eth1 metric 100 proto 241|default via 10.1.0.254 dev eth1 metric 100 table main",
		}},
		{4, []string{"route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1001 proto 241"}, nil},
		{6, []string{
			"route replace 2001:db8:3::/64 via 2001:db8:1::1 dev eth1 table 1000 proto 241",
			"route replace 2001:db8:20::/48 via 2001:db8:1::1 dev eth1 metric 1 proto 241",
			"route replace 2001:db8:20::/48 via 2001:db8:1::1 dev eth1 proto 241",
			"route replace 2001:db8:21::1/128 via 2001:db8:1::1 dev eth1 proto 241",
			"route replace 2001:db8:21::1/128 via 2001:db8:1::1 dev eth1 table 1000 proto 241",
		}, []string{
			"route replace 2001:db8:3::/64 via 2001:db8:1::1 dev eth1 table 1000 proto 241|2001:db8:3::/64 via 2001:db8:1::3 dev eth1 metric 1024 pref medium table 1000",
			"route replace 2001:db8:20::/48 via 2001:db8:1::1 dev eth1 metric 1 proto 241|2001:db8:20::/48 via 2001:db8:1::3 dev eth1 metric 1 pref medium table main",
			"route replace 2001:db8:21::1/128 via 2001:db8:1::1 dev eth1 proto 241|2001:db8:21::1 via 2001:db8:1::3 dev eth1 metric 1024 pref medium table main",
		}},
	} {
		pre, err := r.preRoutes(tc.f, tc.cand)
		if err != nil {
			t.Fatalf("preRoutes(%d): %v", tc.f, err)
		}
		var got []string
		for _, x := range pre {
			got = append(got, x.Line+"|"+x.Route)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("preRoutes(%d, %q) =\n\t%q\nwant\n\t%q", tc.f, tc.cand, strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
		}
		// What stop would put back, `ip route replace` takes, and it
		// changes nothing (but a route's expiry).
		before := ipc(t, fmt.Sprintf("-%d route show table all", tc.f))
		for _, p := range got {
			_, rt, _ := strings.Cut(p, "|")
			ipc(t, fmt.Sprintf("-%d route replace %s", tc.f, rt))
		}
		drop := regexp.MustCompile(` expires \d+sec`)
		if after := ipc(t, fmt.Sprintf("-%d route show table all", tc.f)); drop.ReplaceAllString(after, "") != drop.ReplaceAllString(before, "") {
			t.Errorf("putting back the routes preRoutes(%d) found changed the kernel's routes from\n%s\nto\n%s", tc.f, before, after)
		}
	}
}

// linkOf is a links-file entry: "-" for any address.
func linkOf(t *testing.T, dev, addr string) unitfiles.Link {
	t.Helper()
	ls, err := unitfiles.ParseLinks("links", []byte(dev+" "+addr+"\n"))
	if err != nil || len(ls) != 1 {
		t.Fatalf("ParseLinks(%q %q) = %v, %v", dev, addr, ls, err)
	}
	return ls[0]
}

// TestDumpRules: the kernel's rules, read over netlink, equal the rule
// lines that made them as unitfiles parses them, whoever added them and
// with whatever words; a rule with a selector nicpersist never writes is
// left out, so it can never be taken for one of ours.
func TestDumpRules(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	eth1Up(t)
	ours := map[plan.Family][]string{
		plan.V4: {
			"priority 1000 from 10.1.0.2/32 table 1000",
			"priority 1001 from 10.1.0.0/24 to 10.9.0.0/16 table 70000",
			"priority 1002 fwmark 0x10 table 1002",
			"priority 1003 fwmark 0x10/0xff iif eth1 table 1003",
			"priority 1004 oif eth1 table 1004",
			"priority 1005 from 10.1.0.7/32 table 254",
		},
		plan.V6: {
			"priority 1000 from 2001:db8:1::2/128 table 1000",
			"priority 1001 to 2001:db8:9::/48 iif eth1 table 1001",
		},
	}
	for f, rules := range ours {
		for _, r := range rules {
			ipc(t, fmt.Sprintf("-%d rule add %s", f, r))
		}
	}
	// As the user or another tool may write them, and rules that are not
	// nicpersist's kind at all.
	ipc(t, "-4 rule add from 10.1.0.8 lookup 1006 pref 1006 proto static")
	ipc(t, "-4 rule add priority 1007 from 10.1.0.9/32 tos 0x10 table 1007")
	ipc(t, "-4 rule add priority 1008 not from 10.1.0.9/32 table 1008")
	ipc(t, "-4 rule add priority 1009 from 10.1.0.9/32 ipproto tcp table 1009")
	ipc(t, "-4 rule add priority 1010 from 10.1.0.9/32 table 1010 suppress_prefixlength 0")
	ipc(t, "-4 rule add priority 1011 from 10.1.0.9/32 goto 1012")
	// tos and an inverted match are read past: the kernel compares them
	// only when the new rule gives them, or not at all.
	ours[plan.V4] = append(ours[plan.V4], "priority 1006 from 10.1.0.8/32 table 1006",
		"priority 1007 from 10.1.0.9/32 table 1007", "priority 1008 from 10.1.0.9/32 table 1008")
	for _, f := range unitfiles.Families {
		got, err := dumpRules(f)
		if err != nil {
			t.Fatal(err)
		}
		var want []unitfiles.Rule
		for _, r := range ours[f] {
			p, err := unitfiles.ParseRule(f, r)
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, p)
		}
		// The kernel's own: local, main, default.
		for _, k := range got {
			if k.Priority == 0 || k.Priority >= 32766 {
				continue
			}
			if !slices.Contains(want, k) {
				t.Errorf("dumpRules(%d) has %+v, which no rule line made; ip rule:\n%s", f, k, ipc(t, fmt.Sprintf("-%d rule", f)))
			}
		}
		for _, w := range want {
			if !slices.Contains(got, w) {
				t.Errorf("dumpRules(%d) lacks %+v; it read %+v", f, w, got)
			}
		}
	}
}

// TestDumpRulesAgreesWithEEXIST: for a rule already in the kernel
// (added by someone else) and a line of ours, dumpRules says "there" exactly
// when the kernel answers "File exists" to our `rule add`, which is what the
// old engine went by.
func TestDumpRulesAgreesWithEEXIST(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	eth1Up(t)
	cases := []struct {
		f             plan.Family
		foreign, ours string
	}{
		{4, "priority 2001 not from 10.1.0.2/32 table 1000", "priority 2001 from 10.1.0.2/32 table 1000"},
		{4, "priority 2002 from 10.1.0.2/32 table 1000 tos 0x10", "priority 2002 from 10.1.0.2/32 table 1000"},
		{4, "priority 2003 fwmark 0x10/0xffffffff table 1000", "priority 2003 fwmark 0x10 table 1000"},
		{4, "priority 2004 fwmark 0x110/0xff0 iif eth1 table 1000", "priority 2004 fwmark 0x110/0xff0 iif eth1 table 1000"},
		{4, "priority 2005 to 10.20.0.0/16 oif eth9 table 70000", "priority 2005 to 10.20.0.0/16 oif eth9 table 70000"},
		{4, "priority 2006 from 10.1.0.2/32 table 1000 realms 3", "priority 2006 from 10.1.0.2/32 table 1000"},
		{4, "priority 2007 from 10.1.0.2/32 table 1000 suppress_prefixlength 0", "priority 2007 from 10.1.0.2/32 table 1000"},
		{4, "priority 2008 from 0.0.0.0/0 table 1000", "priority 2008 from 0.0.0.0/0 table 1000"},
		{4, "priority 2009 iif eth1 table 1000 uidrange 1-2", "priority 2009 iif eth1 table 1000"},
		{6, "priority 2000 not to 2001:db8:9::/48 iif eth3 table 1000", "priority 2000 to 2001:db8:9::/48 iif eth3 table 1000"},
	}
	for _, c := range cases {
		ipc(t, fmt.Sprintf("-%d rule add %s", c.f, c.foreign))
		krs, err := dumpRules(c.f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := unitfiles.ParseRule(c.f, c.ours)
		if err != nil {
			t.Fatal(err)
		}
		inDump := slices.ContainsFunc(krs, func(k unitfiles.Rule) bool { return refuses(k, r) })
		out, err := exec.Command("ip", append([]string{fmt.Sprintf("-%d", c.f), "rule", "add"}, strings.Fields(c.ours)...)...).CombinedOutput()
		exists := err != nil && strings.Contains(string(out), "File exists")
		if err != nil && !exists {
			t.Fatalf("ip rule add %s: %v %s", c.ours, err, out)
		}
		if inDump != exists {
			t.Errorf("foreign %q, ours %q: dumpRules finds it %v, kernel answers File exists %v; ip rule:\n%s", c.foreign, c.ours, inDump, exists, ipc(t, fmt.Sprintf("-%d rule", c.f)))
		}
	}
}

// TestDumpRoutesNexthops: DumpRoutes reads what verify compares besides a
// route's key: gateway, link, type, a multipath route's nexthops, and the
// order of routes that share a key (the first is used).
func TestDumpRoutesNexthops(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	eth1Up(t)
	for _, l := range []string{
		"-4 route add 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 metric 7",
		"-4 route add 10.8.0.0/16 dev eth1 table 1000",
		"-4 route add blackhole 10.7.0.0/16 table 1000",
		"-4 route add 10.6.0.0/16 table 1000 nexthop via 10.1.0.1 dev eth1 weight 1 nexthop via 10.1.0.3 dev eth1 weight 3",
		"-4 route add default via 10.1.0.1 dev eth1 table 1001",
		"-4 route prepend default via 10.1.0.3 dev eth1 table 1001",
		"-6 route add 2001:db8:9::/48 via 2001:db8:1::1 dev eth1 table 1000",
	} {
		ipc(t, l)
	}
	idx := func(name string) int32 {
		_, index, err := LinkNames()
		if err != nil || index[name] == 0 {
			t.Fatalf("LinkNames has no %s (%v)", name, err)
		}
		return index[name]
	}
	eth1 := idx("eth1")
	names, _, _ := LinkNames()
	if names[eth1] != "eth1" {
		t.Errorf("LinkNames()[%d] = %q, want eth1", eth1, names[eth1])
	}
	a := netip.MustParseAddr
	find := func(f plan.Family, table uint32, dst string) []KernelRoute {
		rs, err := DumpRoutes(f)
		if err != nil {
			t.Fatal(err)
		}
		var out []KernelRoute
		for _, r := range rs {
			if r.Table == table && r.Dst == netip.MustParsePrefix(dst) {
				out = append(out, r)
			}
		}
		return out
	}
	for _, tc := range []struct {
		f     plan.Family
		table uint32
		dst   string
		want  []KernelRoute
	}{
		{4, 1000, "10.9.0.0/16", []KernelRoute{{Metric: 7, Type: RTNUnicast, Nexthop: Nexthop{Gateway: a("10.1.0.1"), OIF: eth1}}}},
		{4, 1000, "10.8.0.0/16", []KernelRoute{{Type: RTNUnicast, Nexthop: Nexthop{OIF: eth1}}}},
		{4, 1000, "10.7.0.0/16", []KernelRoute{{Type: 6}}}, // RTN_BLACKHOLE
		{4, 1000, "10.6.0.0/16", []KernelRoute{{Type: RTNUnicast, Multipath: []Nexthop{{a("10.1.0.1"), eth1, 1}, {a("10.1.0.3"), eth1, 3}}}}},
		{4, 1001, "0.0.0.0/0", []KernelRoute{
			{Type: RTNUnicast, Nexthop: Nexthop{Gateway: a("10.1.0.3"), OIF: eth1}},
			{Type: RTNUnicast, Nexthop: Nexthop{Gateway: a("10.1.0.1"), OIF: eth1}},
		}},
		{6, 1000, "2001:db8:9::/48", []KernelRoute{{Metric: 1024, Type: RTNUnicast, Nexthop: Nexthop{Gateway: a("2001:db8:1::1"), OIF: eth1}}}},
	} {
		got := find(tc.f, tc.table, tc.dst)
		for i := range got {
			got[i].Table, got[i].Dst, got[i].Proto, got[i].Flags, got[i].Scope = 0, netip.Prefix{}, 0, 0, 0
		}
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", tc.want) {
			t.Errorf("DumpRoutes(%d), table %d, %s:\n\t%+v\nwant\n\t%+v", tc.f, tc.table, tc.dst, got, tc.want)
		}
	}
}

// TestDumpRulesKernelRule: DumpRules keeps what dumpRules reads past or
// leaves out, for verify to tell a rule of ours from one that only looks
// like it.
func TestDumpRulesKernelRule(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	eth1Up(t)
	for _, l := range []string{
		"priority 1000 from 10.1.0.2/32 table 1000",
		"priority 1001 from 10.1.0.2/32 table 1000 tos 0x10",
		"priority 1002 not from 10.1.0.2/32 table 1000",
		"priority 1003 from 10.1.0.2/32 ipproto tcp table 1000",
		"priority 1004 from 10.1.0.2/32 unreachable",
		"priority 1005 from 10.1.0.2/32 table 1000 protocol static",
		"priority 1006 from 10.1.0.2/32 table 1000 realms 3",
	} {
		ipc(t, "-4 rule add "+l)
	}
	krs, err := DumpRules(4)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint32]string{}
	for _, k := range krs {
		got[k.Priority] = fmt.Sprintf("%s tos=%d not=%v realms=%d proto=%d other=%q plain=%v", k.Action, k.TOS, k.Invert, k.Realms, k.Proto, k.Other, k.Plain())
	}
	for prio, want := range map[uint32]string{
		1000: `lookup tos=0 not=false realms=0 proto=0 other=[] plain=true`,
		1001: `lookup tos=16 not=false realms=0 proto=0 other=[] plain=false`,
		1002: `lookup tos=0 not=true realms=0 proto=0 other=[] plain=false`,
		1003: `lookup tos=0 not=false realms=0 proto=0 other=["ipproto 6"] plain=false`,
		1004: `unreachable tos=0 not=false realms=0 proto=0 other=[] plain=false`,
		1005: `lookup tos=0 not=false realms=0 proto=4 other=[] plain=true`,
		1006: `lookup tos=0 not=false realms=3 proto=0 other=[] plain=false`,
	} {
		if got[prio] != want {
			t.Errorf("DumpRules: priority %d: %s, want %s; ip rule:\n%s", prio, got[prio], want, ipc(t, "-4 rule"))
		}
	}
}
