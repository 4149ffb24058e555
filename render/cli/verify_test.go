package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nicpersist/nicpersist/render/testenv"
)

// The verify tests that need a kernel make network namespaces named
// np-verify-<pid>-<name>, and run nicpersist in them as a process of its
// own (this test binary, see TestMain), as a monitoring check or the unit
// runs it.
const verifyNS = "np-verify-"

// seedVM makes a namespace with the seed VM's three NICs (veth pairs whose
// peers stay in the namespace, up) and what a cloud image leaves: a default
// route via eth1's gateway, forwarding off, rp_filter strict, and a rule
// and a NAT rule of the user's that verify must not count.
func seedVM(t testing.TB, name string) string {
	t.Helper()
	ns := testenv.Netns(t, verifyNS, name)
	for _, l := range []string{
		"link set lo up",
		"link add eth1 type veth peer name peer1",
		"link add eth2 type veth peer name peer2",
		"link add eth3 type veth peer name peer3",
		"addr add 172.22.5.68/27 dev eth1",
		"addr add 172.22.5.100/27 dev eth2",
		"addr add 172.22.5.132/26 dev eth3",
	} {
		nsRun(t, ns, "ip", strings.Fields(l)...)
	}
	for _, l := range []string{"eth1", "peer1", "eth2", "peer2", "eth3", "peer3"} {
		nsRun(t, ns, "ip", "link", "set", l, "up")
	}
	nsRun(t, ns, "ip", "route", "add", "default", "via", "172.22.5.65", "dev", "eth1")
	nsRun(t, ns, "ip", "rule", "add", "priority", "500", "from", "10.99.0.0/16", "table", "200")
	nsRun(t, ns, "iptables", "-w", "-t", "nat", "-A", "POSTROUTING", "-s", "10.99.0.0/16", "-o", "eth1", "-j", "MASQUERADE")
	nsRun(t, ns, "sysctl", "-qw", "net.ipv4.ip_forward=0", "net.ipv4.conf.all.rp_filter=1",
		"net.ipv4.conf.eth1.rp_filter=1", "net.ipv4.conf.eth2.rp_filter=1", "net.ipv4.conf.eth3.rp_filter=1")
	return ns
}

// nsRun runs a command in the namespace and fails the test when it fails.
func nsRun(t testing.TB, ns, name string, args ...string) string {
	t.Helper()
	out, _, err := nsExec(ns, name, args...)
	if err != nil {
		t.Fatalf("in %s: %s %s: %v\n%s", ns, name, strings.Join(args, " "), err, out)
	}
	return out
}

// nsExec runs a command in the namespace: its stdout, stderr and error.
func nsExec(ns, name string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	return o.String() + e.String(), e.String(), err
}

// nsVerify runs `nicpersist verify ARGS...` in the namespace: its stdout,
// stderr and exit code.
func nsVerify(t *testing.T, ns, self string, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var o, e bytes.Buffer
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, self, "verify"}, args...)...)
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return o.String(), e.String(), 0
	case errors.As(err, &exit):
		return o.String(), e.String(), exit.ExitCode()
	}
	t.Fatalf("nicpersist verify %s: %v\n%s", strings.Join(args, " "), err, e.String())
	return "", "", 0
}

// verifyFound runs verify --json and returns each difference as "kind key",
// sorted, failing the test unless the exit code is what the differences
// say (0 for none, 3 for some) and the JSON has the contract's shape.
func verifyFound(t *testing.T, ns, self, prof string) []string {
	t.Helper()
	out, errOut, code := nsVerify(t, ns, self, "--profile", prof, "--json")
	var res struct {
		InSync      *bool `json:"in_sync"`
		Differences []map[string]string
	}
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&res); err != nil || res.InSync == nil || res.Differences == nil {
		t.Fatalf("verify --json printed %q (stderr %q): want {\"in_sync\": bool, \"differences\": [...]} (%v)", out, errOut, err)
	}
	var got []string
	for _, d := range res.Differences {
		if len(d) != 4 || d["kind"] == "" || d["want"]+d["have"] == "" {
			t.Errorf("difference %q: want kind, key, want and have, kind and one of want and have set", d)
		}
		got = append(got, d["kind"]+" "+d["key"])
	}
	slices.Sort(got)
	want := 0
	if len(got) > 0 {
		want = ExitDrift
	}
	if code != want || *res.InSync != (len(got) == 0) || errOut != "" {
		t.Errorf("verify --json: exit %d, in_sync %v, with %d differences (want exit %d); stderr %q", code, *res.InSync, len(got), want, errOut)
	}
	return got
}

// seedStarter makes a seed VM namespace and renders the seed profile; it
// returns the namespace, this binary as nicpersist, the profile, and what
// runs `apply start` (the unit's start and reload) in the namespace.
func seedStarter(t testing.TB, name string) (ns, self, prof string, start func(testing.TB)) {
	t.Helper()
	ns = seedVM(t, name)
	self = testenv.SelfAsNicpersist(t)
	prof, err := filepath.Abs(exampleProfile)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if _, errOut, code := run("render", "--profile", prof, "--root", root, "--target", "systemd"); code != ExitOK {
		t.Fatalf("render: exit %d\n%s", code, errOut)
	}
	state := t.TempDir()
	t.Cleanup(func() { nsExec(ns, self, "apply", "stop", "--state", state) })
	return ns, self, prof, func(t testing.TB) {
		t.Helper()
		nsRun(t, ns, self, "apply", "start", "--dir", filepath.Join(root, "etc/nicpersist"), "--state", state, "--wait", "5")
	}
}

// TestVerifySeed starts the seed profile with `apply start` in a namespace
// like the seed VM, then makes each kind of drift by hand: verify must find
// it, under the profile key it comes from, with exit 3; after the unit's
// reload (apply start again) it must find nothing, or, for what a reload
// leaves (something added beside nicpersist's), that alone, until it is
// removed by hand.
func TestVerifySeed(t *testing.T) {
	testenv.Need(t, "make network namespaces", verifyNS, "iptables", "iptables-save", "sysctl")
	ns, self, prof, start := seedStarter(t, "seed")

	// Before the first start, everything differs.
	if got := verifyFound(t, ns, self, prof); len(got) < 8 {
		t.Errorf("before apply start, verify found only %q", got)
	}
	start(t)
	// Verify only reads: the namespace is the same before and after.
	snapshot := func() string {
		var b strings.Builder
		for _, c := range [][]string{{"ip", "-4", "rule"}, {"ip", "-6", "rule"}, {"ip", "-4", "route", "show", "table", "all"},
			{"ip", "-6", "route", "show", "table", "all"}, {"iptables-save", "-t", "nat"},
			{"sysctl", "net.ipv4.ip_forward", "net.ipv4.conf.eth1.rp_filter", "net.ipv4.conf.eth2.rp_filter", "net.ipv4.conf.eth3.rp_filter"}} {
			for _, l := range strings.Split(nsRun(t, ns, c[0], c[1:]...), "\n") {
				// iptables-save's dated comments, and the link-local
				// routes and addresses the kernel adds on its own once
				// duplicate address detection ends, at any moment.
				if !strings.HasPrefix(l, "# ") && !strings.Contains(l, "fe80::") {
					b.WriteString(l + "\n")
				}
			}
		}
		return b.String()
	}
	before := snapshot()
	out, errOut, code := nsVerify(t, ns, self, "--profile", prof)
	if code != ExitOK || out != "in sync\n" || errOut != "" {
		t.Fatalf("after apply start: verify exit %d, stdout %q, stderr %q; want 0, \"in sync\"", code, out, errOut)
	}
	if after := snapshot(); after != before {
		t.Errorf("verify changed the namespace:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	out, _, _ = nsVerify(t, ns, self, "--profile", prof, "--json")
	if out != "{\n  \"in_sync\": true,\n  \"differences\": []\n}\n" {
		t.Errorf("verify --json in sync printed %q", out)
	}

	ipt := func(args string) []string {
		return append([]string{"iptables", "-w", "-t", "nat"}, strings.Fields(args)...)
	}
	ip := func(args string) []string { return append([]string{"ip"}, strings.Fields(args)...) }
	for _, tc := range []struct {
		name  string
		drift [][]string
		want  []string
		// What a reload does not undo, and how to undo it by hand.
		left []string
		undo [][]string
		// undoFirst: undo by hand before the reload, which would fail.
		undoFirst bool
	}{
		{name: "rule deleted",
			drift: [][]string{ip("rule del priority 1000")},
			want:  []string{"rule interface[0].reply_via_self"}},
		{name: "rule with another table at our priority",
			drift: [][]string{ip("rule del priority 1000"), ip("rule add priority 1000 from 172.22.5.68 table 200")},
			want:  []string{"rule interface[0].reply_via_self"},
			left:  []string{"rule interface[0].reply_via_self"},
			undo:  [][]string{ip("rule del priority 1000 from 172.22.5.68 table 200")}},
		{name: "rule duplicated",
			drift: [][]string{ip("rule add priority 1000 from 172.22.5.68 table 1000 protocol static")},
			want:  []string{"rule interface[0].reply_via_self"},
			left:  []string{"rule interface[0].reply_via_self"},
			undo:  [][]string{ip("rule del priority 1000 from 172.22.5.68 table 1000 protocol static")}},
		{name: "route deleted from the reply table",
			drift: [][]string{ip("route del default table 1000")},
			want:  []string{"route interface[0].reply_via_self"}},
		{name: "main default replaced via eth1",
			drift: [][]string{ip("route replace default via 172.22.5.65 dev eth1")},
			want:  []string{"default interface[1].default_route"}},
		// A default of the same metric put ahead of ours wins. The reload
		// cannot repair it: the kernel answers "File exists" to `ip route
		// replace` of a route that is there but not first, so apply start
		// fails (and rolls back); the foreign default has to go first.
		{name: "foreign default ahead of ours",
			drift:     [][]string{ip("route prepend default via 172.22.5.65 dev eth1")},
			want:      []string{"default interface[1].default_route"},
			undo:      [][]string{ip("route del default via 172.22.5.65 dev eth1")},
			undoFirst: true},
		{name: "NAT chain rule deleted",
			drift: [][]string{ipt("-D NICPERSIST-POSTROUTING 1")},
			want:  []string{"nat nat[0]"}},
		{name: "jump deleted",
			drift: [][]string{ipt("-D POSTROUTING -j NICPERSIST-POSTROUTING")},
			want:  []string{"nat nat"}},
		{name: "jump duplicated",
			drift: [][]string{ipt("-A POSTROUTING -j NICPERSIST-POSTROUTING")},
			want:  []string{"nat nat"},
			left:  []string{"nat nat"},
			undo:  [][]string{ipt("-D POSTROUTING -j NICPERSIST-POSTROUTING")}},
		{name: "ip_forward off",
			drift: [][]string{{"sysctl", "-qw", "net.ipv4.ip_forward=0"}},
			want:  []string{"sysctl sysctl.ip_forward"}},
		{name: "rp_filter strict",
			drift: [][]string{{"sysctl", "-qw", "net.ipv4.conf.eth2.rp_filter=1"}},
			want:  []string{"sysctl sysctl.rp_filter"}},
	} {
		ok := t.Run(tc.name, func(t *testing.T) {
			for _, c := range tc.drift {
				nsRun(t, ns, c[0], c[1:]...)
			}
			if got := verifyFound(t, ns, self, prof); !slices.Equal(got, tc.want) {
				out, _, _ := nsVerify(t, ns, self, "--profile", prof)
				t.Errorf("verify found %q, want %q; it says:\n%s", got, tc.want, out)
			}
			if tc.undoFirst {
				for _, c := range tc.undo {
					nsRun(t, ns, c[0], c[1:]...)
				}
				tc.undo = nil
			}
			start(t)
			if got := verifyFound(t, ns, self, prof); !slices.Equal(got, tc.left) {
				out, _, _ := nsVerify(t, ns, self, "--profile", prof)
				t.Errorf("after the reload verify found %q, want %q; it says:\n%s", got, tc.left, out)
			}
			for _, c := range tc.undo {
				nsRun(t, ns, c[0], c[1:]...)
			}
			if out, _, code := nsVerify(t, ns, self, "--profile", prof); code != ExitOK {
				t.Fatalf("after the reload and undoing by hand, verify exit %d:\n%s", code, out)
			}
		})
		if !ok {
			return // the cases that follow would start from a namespace out of sync
		}
	}

	t.Run("text", func(t *testing.T) {
		nsRun(t, ns, "ip", "rule", "del", "priority", "1000")
		nsRun(t, ns, "sysctl", "-qw", "net.ipv4.ip_forward=0")
		out, errOut, code := nsVerify(t, ns, self, "--profile", prof)
		want := "interface[0].reply_via_self: rule missing: from 172.22.5.68/32 lookup 1000 priority 1000\n" +
			"sysctl.ip_forward: sysctl differs: net.ipv4.ip_forward = 1; kernel has net.ipv4.ip_forward = 0\n" +
			"2 difference(s)\n"
		if code != ExitDrift || out != want || errOut != "" {
			t.Errorf("verify: exit %d, stdout\n%s\nstderr %q; want exit 3 and\n%s", code, out, errOut, want)
		}
		start(t)
	})

	// eth3 carries no route, so the unit starts without it; its
	// rp_filter cannot be set, and verify says why.
	t.Run("interface absent", func(t *testing.T) {
		nsRun(t, ns, "ip", "link", "del", "eth3")
		if got, want := verifyFound(t, ns, self, prof), []string{"sysctl sysctl.rp_filter"}; !slices.Equal(got, want) {
			t.Errorf("verify found %q, want %q", got, want)
		}
		out, _, _ := nsVerify(t, ns, self, "--profile", prof)
		if !strings.Contains(out, "sysctl.rp_filter: interface absent: net.ipv4.conf.eth3.rp_filter = 2; kernel has no interface eth3\n") {
			t.Errorf("verify does not say eth3 is absent:\n%s", out)
		}
	})
}

// A bad profile exits 2 with the very lines check prints, and nothing on
// stdout; so does a bad command line.
func TestVerifyBadProfile(t *testing.T) {
	for _, name := range []string{"address-malformed", "gateway-outside-subnet"} {
		prof := "../../testdata/bad/" + name + ".toml"
		if _, err := os.Stat(prof); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := run("verify", "--profile", prof, "--json")
		_, checkErr, _ := run("check", "--profile", prof)
		if code != ExitInvalid || out != "" || errOut != checkErr {
			t.Errorf("verify %s: exit %d, stdout %q, stderr\n%s\nwant exit 2, nothing on stdout, and check's stderr\n%s", name, code, out, errOut, checkErr)
		}
	}
	if _, _, code := run("verify", "--profile", filepath.Join(t.TempDir(), "none.toml")); code != ExitInvalid {
		t.Errorf("verify of a profile that does not exist: exit %d, want 2", code)
	}
	for _, args := range [][]string{{"verify", "extra"}, {"verify", "--nope"}} {
		if _, errOut, code := run(args...); code != ExitInvalid || !strings.Contains(errOut, "Usage of nicpersist verify") {
			t.Errorf("%q: exit %d, stderr %q; want 2 and the usage", args, code, errOut)
		}
	}
}

// Without iptables-save, and NAT in the profile, verify cannot read the
// NAT chain: a runtime failure that names the package.
func TestVerifyWithoutIptablesSave(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	out, errOut, code := run("verify", "--profile", exampleProfile)
	if code != ExitRuntime || out != "" || !strings.Contains(errOut, "iptables-save is not installed") || !strings.Contains(errOut, "install the iptables package") {
		t.Errorf("verify without iptables-save: exit %d, stdout %q, stderr %q; want exit 1 naming the iptables package", code, out, errOut)
	}
}

// envVerifyBench is set in BenchmarkVerifySeed's child process: the
// namespace, holding the seed state, that it runs in.
const envVerifyBench = "NICPERSIST_VERIFY_BENCH_NETNS"

// BenchmarkVerifySeed is `nicpersist verify` of the seed profile in
// process (read and check the profile, read the kernel, compare, print)
// against a namespace where apply start applied it. Verify reads the
// namespace of its process, so the benchmark runs in a child process inside
// the namespace (ip netns exec), whose ns/op it reports as its own.
func BenchmarkVerifySeed(b *testing.B) {
	if ns := os.Getenv(envVerifyBench); ns != "" {
		args := []string{"verify", "--profile", exampleProfile}
		if out, errOut, code := run(args...); code != ExitOK {
			b.Fatalf("in %s: verify exit %d, not in sync:\n%s%s", ns, code, out, errOut)
		}
		for b.Loop() {
			Main(args, io.Discard, io.Discard)
		}
		return
	}
	testenv.Need(b, "make network namespaces", verifyNS, "iptables", "iptables-save", "sysctl")
	ns, _, _, start := seedStarter(b, "bench")
	start(b)
	self, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	benchtime := "1s"
	if f := flag.Lookup("test.benchtime"); f != nil {
		benchtime = f.Value.String()
	}
	cmd := exec.Command("ip", "netns", "exec", ns, self, "-test.run=^$", "-test.bench=^BenchmarkVerifySeed$",
		"-test.benchtime="+benchtime, "-test.count=1", "-test.cpu="+strconv.Itoa(runtime.GOMAXPROCS(0)))
	cmd.Env = append(os.Environ(), envVerifyBench+"="+ns)
	out, err := cmd.CombinedOutput()
	if err != nil {
		b.Fatalf("the benchmark's child process in %s: %v\n%s", ns, err, out)
	}
	nsPerOp := -1.0
	for _, l := range strings.Split(string(out), "\n") {
		w := strings.Fields(l)
		if len(w) >= 4 && strings.HasPrefix(w[0], "BenchmarkVerifySeed") && w[3] == "ns/op" {
			nsPerOp, err = strconv.ParseFloat(w[2], 64)
		}
	}
	if nsPerOp < 0 || err != nil {
		b.Fatalf("no ns/op in the child's output:\n%s", out)
	}
	// The set-up took longer than -benchtime, so this function runs
	// once: its own time is replaced with the child's.
	b.ReportMetric(nsPerOp, "ns/op")
}
