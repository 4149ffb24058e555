package apply

import (
	"bytes"
	"encoding/json"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

func TestMissingUnion(t *testing.T) {
	for _, tc := range []struct {
		a, b           []string
		missing, union []string
	}{
		{nil, nil, nil, nil},
		{[]string{"x"}, nil, nil, []string{"x"}},
		{nil, []string{"x", "y"}, []string{"x", "y"}, []string{"x", "y"}},
		{[]string{"a", "b", "c"}, []string{"c", "d", "a", "e"}, []string{"d", "e"}, []string{"a", "b", "c", "d", "e"}},
		// b's order, and b's duplicates, are kept (as grep -vxF keeps
		// them).
		{[]string{"a"}, []string{"z", "a", "y", "z"}, []string{"z", "y", "z"}, []string{"a", "z", "y", "z"}},
		// Whole lines only: no prefixes, no trimming.
		{[]string{"rule add priority 1"}, []string{"rule add priority 10", "rule add priority 1 ", "rule add priority 1"},
			[]string{"rule add priority 10", "rule add priority 1 "}, []string{"rule add priority 1", "rule add priority 10", "rule add priority 1 "}},
	} {
		if got := missing(tc.a, tc.b); !slices.Equal(got, tc.missing) {
			t.Errorf("missing(%q, %q) = %q, want %q", tc.a, tc.b, got, tc.missing)
		}
		a := slices.Clone(tc.a)
		if got := union(a, tc.b); !slices.Equal(got, tc.union) {
			t.Errorf("union(%q, %q) = %q, want %q", tc.a, tc.b, got, tc.union)
		}
		if !slices.Equal(a, tc.a) {
			t.Errorf("union changed its first argument to %q", a)
		}
	}
	// union must not write into the spare capacity of a.
	a := make([]string, 1, 4)
	a[0] = "a"
	u := union(a, []string{"b"})
	if full := a[:2]; full[1] != "" {
		t.Errorf("union(a, b) wrote %q into a's backing array", full[1])
	}
	if !slices.Equal(u, []string{"a", "b"}) {
		t.Errorf("union = %q", u)
	}

}

func TestOnlyExists(t *testing.T) {
	for _, tc := range []struct {
		name, log string
		only      bool
	}{
		{"empty: ip said nothing", "", false},
		{"one", "RTNETLINK answers: File exists\nCommand failed /run/nicpersist/ip4.tables.new:2\n", true},
		{"two in order", "RTNETLINK answers: File exists\nCommand failed f:3\nRTNETLINK answers: File exists\nCommand failed f:1\n", true},
		{"other error", "Error: Nexthop has invalid gateway.\nCommand failed f:1\nRTNETLINK answers: File exists\nCommand failed f:4\n", false},
		// The message before one "Command failed" does not count for the
		// next line, which failed without a word.
		{"message is per line", "RTNETLINK answers: File exists\nCommand failed f:1\nCommand failed f:2\n", false},
		{"trailing message", "RTNETLINK answers: File exists\nCommand failed f:1\nRTNETLINK answers: File exists\n", false},
		{"several messages", "Error: something\nRTNETLINK answers: File exists\nCommand failed f:2\n", false},
		{"path with space and colon", "RTNETLINK answers: File exists\nCommand failed /tmp/a b:c/ip4.tables.new:3\n", true},
		{"no trailing newline", "RTNETLINK answers: File exists\nCommand failed f:4", true},
		{"stopped", "Command line is not complete. Try option \"help\"\n", false},
	} {
		if got := onlyExists(tc.log); got != tc.only {
			t.Errorf("%s: onlyExists(%q) = %v, want %v", tc.name, tc.log, got, tc.only)
		}
	}
}

func TestRouteKey(t *testing.T) {
	for _, tc := range []struct {
		f          plan.Family
		line, want string
	}{
		// Batch lines.
		{4, "route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241", "1000 10.9.0.0/16 0"},
		{4, "route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 2100 metric 50 proto 241", "2100 10.9.0.0/16 50"},
		{4, "route replace default via 10.1.0.1 dev eth1 proto 241", "main default 0"},
		{4, "route replace 10.1.2.3/32 dev eth1 proto 241", "main 10.1.2.3 0"},
		{4, "route replace 10.1.2.3 dev eth1 table main proto 241", "main 10.1.2.3 0"},
		{4, "route replace 10.1.2.0/24 dev eth1 table 254 proto 241", "main 10.1.2.0/24 0"},
		{4, "route replace unreachable 10.6.0.0/15 table 300 proto 241", "300 10.6.0.0/15 0"},
		{4, "route replace blackhole default table 300 metric 9", "300 default 9"},
		{4, "route replace 10.0.0.0/8 dev eth1 metric 5", "main 10.0.0.0/8 5"},
		{6, "route replace 2001:db8:1::/64 dev eth1 table 2000 proto 241", "2000 2001:db8:1::/64 1024"},
		{6, "route replace 2001:db8:1::68/128 dev eth1 table 2000 proto 241", "2000 2001:db8:1::68 1024"},
		{6, "route replace 2001:db8::/32 dev eth1 proto 241", "main 2001:db8::/32 1024"},
		{6, "route replace default via 2001:db8:2::1 dev eth2 metric 1 proto 241", "main default 1"},
		{6, "route replace prohibit 2001:db8:5::/48 table 7 proto 241", "7 2001:db8:5::/48 1024"},
		// Listed routes (`ip route show table N` and " table N").
		{4, "10.9.0.0/16 via 10.1.0.1 dev eth1 proto 241 table 1000", "1000 10.9.0.0/16 0"},
		{4, "10.9.0.0/16 via 10.1.0.1 dev eth1 proto 241 metric 50 table 2100", "2100 10.9.0.0/16 50"},
		{4, "default via 10.1.0.254 dev eth0 proto dhcp src 10.1.0.2 metric 100 table main", "main default 100"},
		{4, "10.1.2.3 dev eth1 scope link table 254", "main 10.1.2.3 0"},
		{4, "local 10.1.0.2 dev eth1 proto kernel scope host src 10.1.0.2 table local", "local 10.1.0.2 0"},
		{4, "broadcast 10.1.0.255 dev eth1 proto kernel scope link src 10.1.0.2 table local", "local 10.1.0.255 0"},
		{4, "unreachable 10.6.0.0/15 table 300", "300 10.6.0.0/15 0"},
		{4, "default proto 241 metric 5 nexthop via 10.1.0.1 dev eth1 weight 1 nexthop via 10.1.0.3 dev eth1 weight 1 table 70000", "70000 default 5"},
		{6, "2001:db8:1::/64 dev eth1 proto 241 metric 1024 pref medium table 2000", "2000 2001:db8:1::/64 1024"},
		{6, "2001:db8:1::68 dev eth1 proto 241 metric 1024 pref medium table 2000", "2000 2001:db8:1::68 1024"},
		{6, "default via fe80::1 dev eth1 proto ra metric 1024 expires 1790sec pref medium table main", "main default 1024"},
		{6, "local ::1 dev lo proto kernel metric 0 pref medium table local", "local ::1 0"},
		{6, "multicast ff00::/8 dev eth1 proto kernel metric 256 pref medium table local", "local ff00::/8 256"},
		// The family decides the default metric and what is stripped.
		{4, "route replace 2001:db8:1::68/128 dev eth1", "main 2001:db8:1::68/128 0"},
		{6, "route replace 10.1.2.3/32 dev eth1", "main 10.1.2.3/32 1024"},
		// Nothing to read.
		{4, "", ""},
		{4, "route replace", ""},
		{4, "route replace unreachable", ""},
		{4, "unreachable", ""},
	} {
		if got := routeKey(tc.f, tc.line); got != tc.want {
			t.Errorf("routeKey(%d, %q) = %q, want %q", tc.f, tc.line, got, tc.want)
		}
	}
	// A batch line and the route it makes, as `ip route show table N`
	// lists it, have the same key.
	for _, tc := range []struct {
		f           plan.Family
		line, shown string
	}{
		{4, "route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241", "10.9.0.0/16 via 10.1.0.1 dev eth1 proto 241 table 1000"},
		{4, "route replace 10.1.2.3/32 dev eth1 table 254 proto 241", "10.1.2.3 dev eth1 proto 241 scope link table main"},
		{4, "route replace default via 172.22.5.97 dev eth2 metric 0 proto 241", "default via 172.22.5.97 dev eth2 proto 241 table main"},
		{6, "route replace 2001:db8:1::68/128 dev eth1 table 2000 proto 241", "2001:db8:1::68 dev eth1 proto 241 metric 1024 pref medium table 2000"},
		{6, "route replace default via 2001:db8:2::1 dev eth2 metric 1 proto 241", "default via 2001:db8:2::1 dev eth2 proto 241 metric 1 pref medium table main"},
	} {
		if k1, k2 := routeKey(tc.f, tc.line), routeKey(tc.f, tc.shown); k1 != k2 {
			t.Errorf("routeKey(%d, %q) = %q, but the route it makes, %q, has key %q", tc.f, tc.line, k1, tc.shown, k2)
		}
	}
}

func TestCandKey(t *testing.T) {
	p := netip.MustParsePrefix
	for _, tc := range []struct {
		f     plan.Family
		line  string
		name  string
		table uint32
		dst   netip.Prefix
		ok    bool
	}{
		{4, "route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241", "1000", 1000, p("10.9.0.0/16"), true},
		{4, "route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 proto 241", "main", 254, p("10.9.0.0/16"), true},
		{4, "route replace 10.9.1.7/16 via 10.1.0.1 dev eth1 proto 241", "main", 254, p("10.9.0.0/16"), true},
		{4, "route replace default via 10.1.0.1 dev eth1 proto 241", "main", 254, p("0.0.0.0/0"), true},
		{4, "route replace 0.0.0.0/0 via 10.1.0.1 dev eth1 table 5", "5", 5, p("0.0.0.0/0"), true},
		{4, "route replace 10.1.2.3 dev eth1 table 70000 proto 241", "70000", 70000, p("10.1.2.3/32"), true},
		{4, "route replace 10.1.2.3/32 dev eth1 table main", "main", 254, p("10.1.2.3/32"), true},
		{4, "route replace 10.1.2.0/24 dev eth1 table 254", "254", 254, p("10.1.2.0/24"), true},
		{4, "route replace unreachable 10.6.0.0/15 table 300 metric 5", "300", 300, p("10.6.0.0/15"), true},
		{4, "route replace 10.0.0.0/8 dev eth1 table 4294967295", "4294967295", 4294967295, p("10.0.0.0/8"), true},
		// A "table" as the last word names no table.
		{4, "route replace 10.0.0.0/8 dev table", "main", 254, p("10.0.0.0/8"), true},
		{6, "route replace default via 2001:db8:2::1 dev eth2 metric 1 proto 241", "main", 254, p("::/0"), true},
		{6, "route replace 2001:db8:1::68/128 dev eth1 table 2000 proto 241", "2000", 2000, p("2001:db8:1::68/128"), true},
		{6, "route replace 2001:db8:1::68 dev eth1 table 2000 proto 241", "2000", 2000, p("2001:db8:1::68/128"), true},
		{6, "route replace 2001:db8:1::5/64 dev eth1 table 2000", "2000", 2000, p("2001:db8:1::/64"), true},
		// Not read: the table is then read with `ip`.
		{4, "route replace 10.0.0.0/8 dev eth1 table local", "local", 0, netip.Prefix{}, false},
		{4, "route replace 10.0.0.0/8 dev eth1 table 4294967296", "4294967296", 0, netip.Prefix{}, false},
		{4, "route replace 10.0.0.0/33 dev eth1 table 5", "5", 0, netip.Prefix{}, false},
		{4, "route replace nonsense dev eth1", "main", 0, netip.Prefix{}, false},
		{4, "route replace", "main", 0, netip.Prefix{}, false},
		{4, "route replace blackhole", "main", 0, netip.Prefix{}, false},
	} {
		name, table, dst, ok := candKey(tc.f, tc.line)
		// When ok is false only the name counts: its table is read.
		if name != tc.name || ok != tc.ok || (tc.ok && (table != tc.table || dst != tc.dst)) {
			t.Errorf("candKey(%d, %q) = %q, %d, %v, %v; want %q, %d, %v, %v", tc.f, tc.line, name, table, dst, ok, tc.name, tc.table, tc.dst, tc.ok)
		}
	}
}

func TestCleanRoute(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", ""},
		{"default via 10.1.0.1 dev eth1 linkdown", "default via 10.1.0.1 dev eth1"},
		{"default via 10.1.0.1 dev eth1 proto dhcp src 10.1.0.2 metric 100 ", "default via 10.1.0.1 dev eth1 proto dhcp src 10.1.0.2 metric 100"},
		{"10.0.0.0/8  dev   eth1 ", "10.0.0.0/8 dev eth1"},
		{"10.0.0.0/8 dev eth1 proto 241 offload", "10.0.0.0/8 dev eth1 proto 241"},
		{"10.0.0.0/8 dev eth1 proto 241 trap", "10.0.0.0/8 dev eth1 proto 241"},
		{"10.0.0.0/8 dev eth1 proto 241 rt_offload rt_trap", "10.0.0.0/8 dev eth1 proto 241"},
		{"10.0.0.0/8 dev eth1 proto 241 rt_offload_failed", "10.0.0.0/8 dev eth1 proto 241"},
		{"2001:db8:3::/64 via fe80::1 dev eth1 proto ra metric 1024 expires 299sec pref medium", "2001:db8:3::/64 via fe80::1 dev eth1 proto ra metric 1024 pref medium"},
		{"2001:db8:3::/64 dev eth1 metric 1024 expires -3sec pref medium", "2001:db8:3::/64 dev eth1 metric 1024 pref medium"},
		// Interfaces whose names hold the words.
		{"default via 10.1.0.1 dev deadnet proto dhcp metric 100", "default via 10.1.0.1 dev deadnet proto dhcp metric 100"},
		{"10.0.0.0/8 dev trap0 proto kernel scope link src 10.0.0.1 linkdown", "10.0.0.0/8 dev trap0 proto kernel scope link src 10.0.0.1"},
		{"10.0.0.0/8 dev offload1 rt_offload", "10.0.0.0/8 dev offload1"},
		{"10.0.0.0/8 dev linkdowner linkdown", "10.0.0.0/8 dev linkdowner"},
		{"10.0.0.0/8 dev xdead dead", "10.0.0.0/8 dev xdead"},
		// "expires" without a time after it stays.
		{"10.0.0.0/8 dev eth1 expires", "10.0.0.0/8 dev eth1 expires"},
		{"10.0.0.0/8 dev eth1 expires 12 metric 5", "10.0.0.0/8 dev eth1 expires 12 metric 5"},
		// Multipath, joined: each nexthop's flags go.
		{"default proto 241 metric 5 nexthop via 10.1.0.1 dev eth1 weight 1 dead linkdown nexthop via 10.1.0.3 dev trap0 weight 1 offload trap",
			"default proto 241 metric 5 nexthop via 10.1.0.1 dev eth1 weight 1 nexthop via 10.1.0.3 dev trap0 weight 1"},
	} {
		if got := cleanRoute(tc.in); got != tc.want {
			t.Errorf("cleanRoute(%q) =\n\t%q\nwant\n\t%q", tc.in, got, tc.want)
		}
	}
}

func TestJoinNexthops(t *testing.T) {
	for _, tc := range []struct {
		out  string
		want []string
	}{
		{"", nil},
		{"\n\n", nil},
		{"10.1.0.0/24 dev eth1 proto kernel scope link src 10.1.0.2 \n", []string{"10.1.0.0/24 dev eth1 proto kernel scope link src 10.1.0.2 "}},
		// As ip 6.1 prints a multipath route: a trailing space, then
		// a tab before each nexthop.
		{"10.8.0.0/16 \n\tnexthop via 10.1.0.3 dev eth1 weight 1 \n\tnexthop via 10.1.0.4 dev eth1 weight 2 \n10.9.0.0/16 via 10.1.0.3 dev eth1 \n",
			[]string{"10.8.0.0/16  nexthop via 10.1.0.3 dev eth1 weight 1 nexthop via 10.1.0.4 dev eth1 weight 2", "10.9.0.0/16 via 10.1.0.3 dev eth1 "}},
		{"2001:db8:4::/64 metric 1024 pref medium\n\tnexthop via 2001:db8:1::3 dev eth1 weight 1 \n\tnexthop via 2001:db8:1::4 dev eth1 weight 1 ",
			[]string{"2001:db8:4::/64 metric 1024 pref medium nexthop via 2001:db8:1::3 dev eth1 weight 1 nexthop via 2001:db8:1::4 dev eth1 weight 1"}},
		{"a\n  b\nc\n d\n\te", []string{"a b", "c d e"}},
		// An indented line with nothing before it is a route of its own.
		{"\tnexthop via 10.1.0.3 dev eth1\nx", []string{"\tnexthop via 10.1.0.3 dev eth1", "x"}},
	} {
		if got := joinNexthops(tc.out); !slices.Equal(got, tc.want) {
			t.Errorf("joinNexthops(%q) =\n\t%q\nwant\n\t%q", tc.out, got, tc.want)
		}
	}
}

func TestUndoRoutes(t *testing.T) {
	pre := []PreRoute{
		{"route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241", "10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000"},
		{"route replace default via 10.1.0.1 dev eth1 metric 100 proto 241", "default via 10.1.0.254 dev eth1 metric 100 table main"},
	}
	for _, tc := range []struct {
		lines, want []string
	}{
		{nil, nil},
		{[]string{
			"route replace 10.8.0.0/16 dev eth1 table 1000 proto 241",
			"route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241",
			"route replace default via 10.1.0.1 dev eth1 metric 100 proto 241",
			"route replace 2001:db8:9::/48 via 2001:db8:1::1 dev eth1 table 1000 proto 241",
		}, []string{
			"route del 10.8.0.0/16 dev eth1 table 1000 proto 241",
			"route replace 10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000",
			"route replace default via 10.1.0.254 dev eth1 metric 100 table main",
			"route del 2001:db8:9::/48 via 2001:db8:1::1 dev eth1 table 1000 proto 241",
		}},
		// Whole lines: a line that differs (here, in its metric) is not
		// the one pre found.
		{[]string{"route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 metric 1 proto 241"},
			[]string{"route del 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 metric 1 proto 241"}},
		{[]string{"a line without a route"}, []string{"route del a line without a route"}},
	} {
		if got := undoRoutes(pre, tc.lines); !slices.Equal(got, tc.want) {
			t.Errorf("undoRoutes(pre, %q) =\n\t%q\nwant\n\t%q", tc.lines, got, tc.want)
		}
	}
	if got := undoRoutes(nil, []string{"route replace 10.0.0.0/8 dev eth1"}); !slices.Equal(got, []string{"route del 10.0.0.0/8 dev eth1"}) {
		t.Errorf("undoRoutes(nil, ...) = %q", got)
	}
	if got, want := ruleDel("rule add priority 1000 from 10.1.0.2/32 table 1000"), "rule del priority 1000 from 10.1.0.2/32 table 1000"; got != want {
		t.Errorf("ruleDel = %q, want %q", got, want)
	}
}

// TestStartNothing: with no rendered files there is nothing to do,
// and Start runs no process (so this needs no namespace).
func TestStartNothing(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no ip, no iptables
	state := filepath.Join(t.TempDir(), "state", "nicpersist")
	var log bytes.Buffer
	if err := Start(Config{Dir: t.TempDir(), State: state, Stderr: &log}); err != nil {
		t.Fatalf("Start with no files: %v\n%s", err, log.String())
	}
	if ents, err := os.ReadDir(state); err != nil || len(ents) != 0 {
		t.Errorf("Start with no files: state directory %v, %v; want it made and empty", ents, err)
	}
	if log.Len() != 0 {
		t.Errorf("Start with no files said %q", log.String())
	}
}

// The rendered directory of the Start/Stop tests, by hand.
var (
	batch4 = `# Generated by hand for apply_test.go
#@ routes
route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241
route replace default via 10.1.0.1 dev eth1 table 1000 proto 241
route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 70000 metric 5 proto 241
#@ rules
rule add priority 1000 from 10.1.0.2/32 table 1000
rule add priority 1001 from 10.1.0.5/32 table 1000
#@ main
route replace 10.20.0.0/16 via 10.1.0.1 dev eth1 proto 241
route replace default via 10.1.0.1 dev eth1 proto 241
`
	batch6 = `#@ routes
route replace 2001:db8:9::/48 via 2001:db8:1::1 dev eth1 table 1000 proto 241
#@ rules
rule add priority 1000 from 2001:db8:1::2/128 table 1000
#@ main
route replace 2001:db8:20::/48 via 2001:db8:1::1 dev eth1 metric 1 proto 241
`
	linksFile  = "# Generated\neth1 10.1.0.2\neth1 2001:db8:1::2\n"
	sysctlList = "# Generated\nnet/ipv4/ip_forward 1\nnet/ipv6/conf/all/forwarding 1\n"
)

// rendered writes a rendered directory: the files are name, content pairs.
func rendered(t *testing.T, files ...string) string {
	t.Helper()
	dir := t.TempDir()
	for i := 0; i < len(files); i += 2 {
		if err := os.WriteFile(filepath.Join(dir, files[i]), []byte(files[i+1]), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// snapshot is what Start and Stop may change in the namespace, as text.
func snapshot(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, c := range []string{"-4 rule", "-6 rule", "-4 route show table all", "-6 route show table all"} {
		b.WriteString("# ip " + c + "\n" + ipc(t, c))
	}
	for _, k := range []string{"net/ipv4/ip_forward", "net/ipv6/conf/all/forwarding"} {
		v, err := os.ReadFile("/proc/sys/" + k)
		if err != nil {
			t.Fatal(err)
		}
		b.WriteString("# " + k + " " + string(v))
	}
	return b.String()
}

// asBefore reports, as an error of t, a namespace that is no longer as the
// snapshot before was taken.
func asBefore(t *testing.T, before, after string) bool {
	t.Helper()
	now := snapshot(t)
	if now != before {
		t.Errorf("after %s the namespace is not as before.\nbefore:\n%s\nafter:\n%s", after, before, now)
	}
	return now == before
}

// stateFiles returns the state directory's files and their contents.
func stateFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = string(b)
	}
	return m
}

// setupStartStop makes the namespace the Start/Stop tests start from:
// eth1 up with its addresses, and what a machine may have before the first
// start: a route in table 1000 and a rule that the batch replaces and adds,
// a main-table default (ours displaces it), and an IPv6 main route.
func setupStartStop(t *testing.T) {
	t.Helper()
	ipc(t, "link set lo up")
	vethUp(t, "eth1")
	for _, l := range []string{
		"-4 addr add 10.1.0.2/24 dev eth1",
		"-6 addr add 2001:db8:1::2/64 dev eth1 nodad",
		"-4 route add 10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000",
		"-4 rule add priority 1001 from 10.1.0.5/32 table 1000",
		"-4 route add default via 10.1.0.254 dev eth1",
		"-6 route add 2001:db8:20::/48 via 2001:db8:1::3 dev eth1 metric 1",
	} {
		ipc(t, l)
	}
}

// mustStart runs Start and fails the test if it fails.
func mustStart(t *testing.T, c Config) {
	t.Helper()
	var log bytes.Buffer
	c.Stderr = &log
	if err := Start(c); err != nil {
		t.Fatalf("Start: %v; it said:\n%s", err, log.String())
	}
}

func mustStop(t *testing.T, c Config) {
	t.Helper()
	var log bytes.Buffer
	c.Stderr = &log
	if err := Stop(c); err != nil {
		t.Fatalf("Stop: %v; it said:\n%s", err, log.String())
	}
}

// wantLines fails the test unless the ip command lists exactly want.
func wantLines(t *testing.T, cmd string, want ...string) {
	t.Helper()
	if got := ipLines(t, cmd); !slices.Equal(got, want) {
		t.Errorf("ip %s =\n\t%s\nwant\n\t%s", cmd, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func wantSysctl(t *testing.T, key, want string) {
	t.Helper()
	if b, err := os.ReadFile("/proc/sys/" + key); err != nil || strings.TrimSpace(string(b)) != want {
		t.Errorf("%s = %q, %v; want %s", key, b, err, want)
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	setupStartStop(t)
	before := snapshot(t)
	dir := rendered(t, "ip4.batch", batch4, "ip6.batch", batch6, "links", linksFile, "sysctl.list", sysctlList)
	// unchanged checks, after a subtest, that the namespace is as before
	// the first Start and the state directory is empty.
	unchanged := func(t *testing.T, what, state string) {
		t.Helper()
		if !asBefore(t, before, what) {
			t.FailNow()
		}
		if m := stateFiles(t, state); len(m) != 0 {
			t.Errorf("after %s the state directory holds %q, want nothing", what, slices.Sorted(maps.Keys(m)))
		}
	}

	t.Run("start twice and stop", func(t *testing.T) {
		c := Config{Dir: dir, State: t.TempDir(), Wait: 5 * time.Second}
		mustStart(t, c)
		wantLines(t, "-4 rule",
			"0: from all lookup local",
			"1000: from 10.1.0.2 lookup 1000",
			"1001: from 10.1.0.5 lookup 1000",
			"32766: from all lookup main",
			"32767: from all lookup default")
		wantLines(t, "-4 route show table 1000",
			"default via 10.1.0.1 dev eth1 proto 241",
			"10.9.0.0/16 via 10.1.0.1 dev eth1 proto 241")
		wantLines(t, "-4 route show table 70000", "10.9.0.0/16 via 10.1.0.1 dev eth1 proto 241 metric 5")
		wantLines(t, "-4 route show table main",
			"default via 10.1.0.1 dev eth1 proto 241",
			"10.1.0.0/24 dev eth1 proto kernel scope link src 10.1.0.2",
			"10.20.0.0/16 via 10.1.0.1 dev eth1 proto 241")
		wantLines(t, "-6 rule",
			"0: from all lookup local",
			"1000: from 2001:db8:1::2 lookup 1000",
			"32766: from all lookup main")
		wantLines(t, "-6 route show table 1000", "2001:db8:9::/48 via 2001:db8:1::1 dev eth1 proto 241 metric 1024 pref medium")
		wantLines(t, "-6 route show table main",
			"2001:db8:1::/64 dev eth1 proto kernel metric 256 pref medium",
			"2001:db8:20::/48 via 2001:db8:1::1 dev eth1 proto 241 metric 1 pref medium")
		wantSysctl(t, "net/ipv4/ip_forward", "1")
		wantSysctl(t, "net/ipv6/conf/all/forwarding", "1")

		// The state stop reads.
		st := readState(t, c.State)
		want := State{
			Version:      StateVersion,
			SysctlsSaved: true,
			Sysctls:      []unitfiles.Sysctl{{Key: "net/ipv4/ip_forward", Value: "0"}, {Key: "net/ipv6/conf/all/forwarding", Value: "0"}},
			DefaultSaved: true,
			Default:      "default via 10.1.0.254 dev eth1",
			IP4: &FamilyState{
				Routes: batchLines(batch4, "routes"),
				Rules:  batchLines(batch4, "rules"),
				Main:   batchLines(batch4, "main"),
				Pre: []PreRoute{{"route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241",
					"10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000"}},
				RulesPre: []string{"rule add priority 1001 from 10.1.0.5/32 table 1000"},
			},
			IP6: &FamilyState{
				Routes: batchLines(batch6, "routes"),
				Rules:  batchLines(batch6, "rules"),
				Main:   batchLines(batch6, "main"),
				Pre: []PreRoute{{"route replace 2001:db8:20::/48 via 2001:db8:1::1 dev eth1 metric 1 proto 241",
					"2001:db8:20::/48 via 2001:db8:1::3 dev eth1 metric 1 pref medium table main"}},
			},
		}
		if !stateEqual(st, want) {
			t.Errorf("after Start, the state is\n%s\nwant\n%s", stateJSON(st), stateJSON(want))
		}
		for name := range stateFiles(t, c.State) {
			if name != stateFile {
				t.Errorf("after Start, %s is left in the state directory", name)
			}
		}
		files := stateFiles(t, c.State)

		// A second Start (a reload with the same files) changes nothing.
		once := snapshot(t)
		mustStart(t, c)
		if twice := snapshot(t); twice != once {
			t.Errorf("a second Start changed the namespace from\n%s\nto\n%s", once, twice)
		}
		if files2 := stateFiles(t, c.State); !maps.Equal(files2, files) {
			t.Errorf("a second Start changed the state from\n%q\nto\n%q", files, files2)
		}

		mustStop(t, c)
		unchanged(t, "Stop", c.State)
		// A second Stop has nothing left to do.
		mustStop(t, c)
		unchanged(t, "a second Stop", c.State)
	})

	t.Run("reload with fewer lines", func(t *testing.T) {
		c := Config{Dir: dir, State: t.TempDir(), Wait: 5 * time.Second}
		mustStart(t, c)
		// The route in table 1000 that was there before goes back, as do
		// the IPv6 main route and the rule that was there before, which
		// stays; what the first start added goes.
		c.Dir = rendered(t,
			"ip4.batch", `#@ routes
route replace default via 10.1.0.1 dev eth1 table 1000 proto 241
#@ rules
rule add priority 1000 from 10.1.0.2/32 table 1000
#@ main
route replace default via 10.1.0.1 dev eth1 proto 241
`,
			"ip6.batch", "#@ routes\n#@ rules\nrule add priority 1000 from 2001:db8:1::2/128 table 1000\n#@ main\n",
			"links", linksFile, "sysctl.list", sysctlList)
		mustStart(t, c)
		wantLines(t, "-4 rule",
			"0: from all lookup local",
			"1000: from 10.1.0.2 lookup 1000",
			"1001: from 10.1.0.5 lookup 1000",
			"32766: from all lookup main",
			"32767: from all lookup default")
		wantLines(t, "-4 route show table 1000",
			"default via 10.1.0.1 dev eth1 proto 241",
			"10.9.0.0/16 via 10.1.0.3 dev eth1")
		wantLines(t, "-4 route show table 70000")
		wantLines(t, "-4 route show table main",
			"default via 10.1.0.1 dev eth1 proto 241",
			"10.1.0.0/24 dev eth1 proto kernel scope link src 10.1.0.2")
		wantLines(t, "-6 route show table 1000")
		wantLines(t, "-6 route show table main",
			"2001:db8:1::/64 dev eth1 proto kernel metric 256 pref medium",
			"2001:db8:20::/48 via 2001:db8:1::3 dev eth1 metric 1 pref medium")
		st := readState(t, c.State)
		if len(st.IP4.Pre) != 0 || st.IP6 == nil || len(st.IP6.Pre) != 0 {
			t.Errorf("after the reload, the state is\n%s\nwant no pre routes in either family", stateJSON(st))
		}
		if want := []string{"rule add priority 1000 from 10.1.0.2/32 table 1000"}; !slices.Equal(st.IP4.Rules, want) {
			t.Errorf("after the reload, ip4 rules = %q, want %q", st.IP4.Rules, want)
		}
		mustStop(t, c)
		unchanged(t, "Stop", c.State)
	})

	// A failed Start removes what it applied (and what earlier ones did).
	for _, tc := range []struct {
		name           string
		files          []string
		wait           time.Duration
		first          bool // Start with the good files first
		errHas, logHas string
	}{
		{
			name:   "bad gateway in a table",
			files:  []string{"ip4.batch", strings.Replace(batch4, "#@ rules\n", "route replace 10.7.0.0/16 via 192.0.2.1 dev eth1 table 1000 proto 241\n#@ rules\n", 1)},
			errHas: "ip -4 -force -batch", logHas: "Nexthop has invalid gateway",
		},
		{
			name:   "bad gateway in main",
			files:  []string{"ip4.batch", strings.Replace(batch4, "route replace default via 10.1.0.1 dev eth1 proto 241\n", "route replace 10.21.0.0/16 via 192.0.2.1 dev eth1 proto 241\nroute replace default via 10.1.0.1 dev eth1 proto 241\n", 1)},
			errHas: "ip -4 -batch", logHas: "Nexthop has invalid gateway",
		},
		{
			name:   "bad gateway in an IPv6 table",
			files:  []string{"ip6.batch", strings.Replace(batch6, "#@ rules\n", "route replace 2001:db8:7::/48 via 2001:db8:99::1 dev eth1 table 1000 proto 241\n#@ rules\n", 1)},
			errHas: "ip -6 -force -batch",
		},
		{
			name:   "link without its address",
			files:  []string{"links", "eth1 10.1.0.2\neth1 10.1.0.99\n"},
			wait:   100 * time.Millisecond,
			errHas: "eth1 is not up with address 10.1.0.99", logHas: "eth1 is not up with address 10.1.0.99",
		},
		{
			name:   "bad gateway on reload",
			files:  []string{"ip4.batch", strings.Replace(batch4, "#@ rules\n", "route replace 10.7.0.0/16 via 192.0.2.1 dev eth1 table 1000 proto 241\n#@ rules\n", 1)},
			first:  true,
			errHas: "ip -4 -force -batch",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{"ip4.batch": batch4, "ip6.batch": batch6, "links": linksFile, "sysctl.list": sysctlList}
			for i := 0; i < len(tc.files); i += 2 {
				files[tc.files[i]] = tc.files[i+1]
			}
			var args []string
			for k, v := range files {
				args = append(args, k, v)
			}
			c := Config{Dir: rendered(t, args...), State: t.TempDir(), Wait: 5 * time.Second}
			if tc.first {
				mustStart(t, Config{Dir: dir, State: c.State, Wait: c.Wait})
			}
			if tc.wait != 0 {
				c.Wait = tc.wait
			}
			var log bytes.Buffer
			c.Stderr = &log
			err := Start(c)
			if err == nil {
				t.Fatalf("Start succeeded, want an error containing %q; it said:\n%s", tc.errHas, log.String())
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Errorf("Start: %v, want an error containing %q", err, tc.errHas)
			}
			if !strings.Contains(log.String(), tc.logHas) || !strings.Contains(log.String(), "nicpersist: start failed; removing what was applied") {
				t.Errorf("Start said\n%s\nwant it to say %q and that it removes what was applied", log.String(), tc.logHas)
			}
			unchanged(t, "the failed Start", c.State)
		})
	}
}

// TestStartFailsWhenIPCannotRun: an `ip -force -batch` that could not run
// has an empty error log, which once read as "only File exists answers".
func TestStartFailsWhenIPCannotRun(t *testing.T) {
	// No ip (nor iptables): Start runs nothing, and neither would the
	// stop of a failed start, so this is safe outside a namespace.
	t.Setenv("PATH", t.TempDir())
	dir := rendered(t, "ip4.batch", "#@ routes\nroute replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241\n#@ rules\nrule add priority 1000 from 10.1.0.2/32 table 1000\n#@ main\n")
	var log bytes.Buffer
	if err := Start(Config{Dir: dir, State: t.TempDir(), Stderr: &log}); err == nil {
		t.Errorf("Start with no ip on PATH succeeded, want an error (nothing was applied); it said %q", log.String())
	}
}

// TestCleanRouteKeepsValues: a link may be called "dead" or "trap";
// cleanRoute drops such words only where they are flags, not values.
func TestCleanRouteKeepsValues(t *testing.T) {
	for _, dev := range []string{"dead", "trap", "offload", "linkdown", "rt_trap"} {
		in := "10.0.0.0/8 via 10.1.0.1 dev " + dev + " proto static metric 5"
		if got := cleanRoute(in); got != in {
			t.Errorf("cleanRoute(%q) = %q, want it unchanged", in, got)
		}
	}
}

// TestMultipathPreRoute: stop puts back a multipath route that a start
// displaced; its saved form has the table before the nexthops, where `ip
// route replace` takes it.
func TestMultipathPreRoute(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	eth1Up(t)
	ipc(t, "-4 route add 10.8.0.0/16 table 1000 nexthop via 10.1.0.3 dev eth1 weight 1 nexthop via 10.1.0.4 dev eth1 weight 2")
	ipc(t, "-6 route add 2001:db8:4::/64 table 1000 nexthop via 2001:db8:1::3 dev eth1 nexthop via 2001:db8:1::4 dev eth1")
	before := snapshot(t)
	c := Config{
		Dir: rendered(t,
			"ip4.batch", "#@ routes\nroute replace 10.8.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241\n",
			"ip6.batch", "#@ routes\nroute replace 2001:db8:4::/64 via 2001:db8:1::1 dev eth1 table 1000 proto 241\n"),
		State: t.TempDir(),
	}
	mustStart(t, c)
	wantLines(t, "-4 route show table 1000", "10.8.0.0/16 via 10.1.0.1 dev eth1 proto 241")
	mustStop(t, c)
	asBefore(t, before, "Stop")
}

// TestSysctlListTab: a sysctl.list line splits at any blank.
func TestSysctlListTab(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	c := Config{Dir: rendered(t, "sysctl.list", "net/ipv4/ip_forward\t1\n"), State: t.TempDir()}
	mustStart(t, c)
	wantSysctl(t, "net/ipv4/ip_forward", "1")
	mustStop(t, c)
	wantSysctl(t, "net/ipv4/ip_forward", "0")
}

// readState reads the state file of a state directory.
func readState(t *testing.T, dir string) State {
	t.Helper()
	st, legacy, err := loadState(dir)
	if err != nil || legacy {
		t.Fatalf("loadState(%s) = legacy %v, %v", dir, legacy, err)
	}
	return st
}

func stateJSON(st State) string {
	b, _ := json.MarshalIndent(st, "", "  ")
	return string(b)
}

// batchLines returns a section's lines of a batch file's text.
func batchLines(text, section string) []string {
	b, err := unitfiles.ParseBatch("batch", plan.V4, []byte(text))
	if err != nil {
		b, _ = unitfiles.ParseBatch("batch", plan.V6, []byte(text))
	}
	return map[string][]string{"routes": b.Routes, "rules": b.Rules, "main": b.Main}[section]
}
