package e2e

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/cli"
	"github.com/nicpersist/nicpersist/render/testenv"
)

const recipesProfile = "testdata/recipes.toml"

// backendCase is one way a machine does netfilter: what its root holds
// (which decides the backend render picks) and the commands its unit finds
// on PATH (iptables by name, as Debian's alternatives make it).
type backendCase struct {
	name     string
	root     map[string]string // path under the root -> symlink target ("" for a plain file)
	tools    map[string]string // command name on the unit's PATH -> the program it runs
	iptables string            // the machine's own iptables, for a Docker-like FORWARD policy
	file     string            // the rendered file the backend loads
	// drift are changes made by hand that verify must name by key.
	drift []drift
	// acceptWins: forward_accept lets traffic through a FORWARD policy of
	// DROP. Not on nftables: an accept in one table does not override a
	// drop in another (iptables-nft's filter table, where Docker's is).
	acceptWins bool
}

var xtNames = []string{"iptables", "iptables-restore", "iptables-save", "ip6tables", "ip6tables-restore", "ip6tables-save"}

func xtTools(variant string) map[string]string {
	m := map[string]string{"ip": "/usr/sbin/ip"}
	for _, n := range xtNames {
		cmd, rest, _ := strings.Cut(n, "-")
		if rest != "" {
			rest = "-" + rest
		}
		m[n] = "/usr/sbin/" + cmd + "-" + variant + rest
	}
	return m
}

type drift struct {
	cmd []string
	key string
}

// xtDrift deletes the port forward and the mark with the given iptables.
func xtDrift(iptables string) []drift {
	return []drift{
		{[]string{iptables, "-w", "-t", "nat", "-D", "NICPERSIST-PREROUTING", "1"}, "port_forward[0]"},
		{[]string{iptables, "-w", "-t", "mangle", "-F", "NICPERSIST-PREROUTING"}, "mark[0]"},
		{[]string{iptables, "-w", "-D", "FORWARD", "-j", "NICPERSIST-FORWARD"}, "netfilter.forward_accept"},
	}
}

var backends = []backendCase{
	{
		name:     "nftables",
		root:     map[string]string{"usr/sbin/nft": ""},
		tools:    map[string]string{"ip": "/usr/sbin/ip", "nft": "/usr/sbin/nft"},
		iptables: "iptables-nft", file: "nftables.nft",
		drift: []drift{
			{[]string{"nft", "flush", "chain", "inet", "nicpersist", "marks"}, "mark[0]"},
			{[]string{"nft", "add", "rule", "inet", "nicpersist", "postrouting", "oifname", "eth3", "masquerade"}, "nat"},
		},
	},
	{
		name:     "iptables-nft",
		root:     map[string]string{"usr/sbin/iptables": "", "usr/sbin/nft": ""},
		tools:    xtTools("nft"),
		iptables: "iptables-nft", file: "iptables.rules", acceptWins: true,
		drift: xtDrift("iptables-nft"),
	},
	{
		name: "iptables-legacy",
		root: map[string]string{"usr/sbin/iptables": "/etc/alternatives/iptables",
			"etc/alternatives/iptables": "/usr/sbin/iptables-legacy", "usr/sbin/iptables-legacy": ""},
		tools:    xtTools("legacy"),
		iptables: "iptables-legacy", file: "iptables.rules", acceptWins: true,
		drift: xtDrift("iptables-legacy"),
	},
}

// renderRoot renders profile for the systemd target into a root that first
// gets the given files and links; it returns the root and render's stderr.
func renderRoot(t testing.TB, profile string, files map[string]string) (string, string) {
	t.Helper()
	root := t.TempDir()
	for p, target := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		if target == "" {
			err = os.WriteFile(full, nil, 0o755)
		} else {
			err = os.Symlink(target, full)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"render", "--root", root, "--profile", profile, "--target", "systemd"}
	var out, errb bytes.Buffer
	if code := cli.Main(args, &out, &errb); code != 0 {
		t.Fatalf("nicpersist %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return root, errb.String()
}

// toolPath makes a directory of the named commands and returns "PATH=" it:
// the unit then finds exactly these, as on a machine that has only them.
func toolPath(t testing.TB, tools map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, prog := range tools {
		if err := os.Symlink(prog, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return "PATH=" + dir
}

// TestNetfilterBackends runs the seed scenario with the rc.local recipes
// (SNAT out of two NICs, a port forward, a mark feeding an fwmark rule,
// forward accepts) on each backend: nft alone, iptables-nft and
// iptables-legacy, each with only its own tools on the unit's PATH.
func TestNetfilterBackends(t *testing.T) {
	need(t, "nft", "iptables-legacy", "iptables-legacy-restore", "iptables-nft", "iptables-nft-restore")
	t.Parallel()
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			backendScenario(t, b)
		})
	}
}

func backendScenario(t *testing.T, b backendCase) {
	root, _ := renderRoot(t, recipesProfile, b.root)
	for _, f := range []string{"nftables.nft", "iptables.rules"} {
		_, err := os.Stat(filepath.Join(root, "etc/nicpersist", f))
		if (f == b.file) != (err == nil) {
			t.Fatalf("rendered etc/nicpersist/%s: %v; want only %s for %s", f, err, b.file, b.name)
		}
	}
	u := readUnit(t, root)
	state := filepath.Join(t.TempDir(), "state")
	tp := newTopology(t, topoOpts{})
	serve(t, tp.in, ":8081") // the port the mark sends out of eth1
	serve(t, tp.cl, ":2022") // what the port forward reaches
	path := toolPath(t, b.tools)
	start := func(what string, cmds [][]string) {
		t.Helper()
		if out, err := execUnit(tp.vm, state, cmds, path); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out)
		}
	}
	sysctlD(t, tp.vm, root)
	s0 := snapshot(t, tp.vm)
	start("ExecStart", u.start)

	throughVM(t, tp, v4)
	sshWorks(t, tp, v4)
	// The mark: the client's connections to port 8081 take table via-eth1,
	// leave through eth1 SNATed to its address, and gw1 maps that to the
	// public IP.
	if seen, err := dial(tp.cl, net.JoinHostPort(v4.server, "8081"), dialOK); err != nil || seen != v4.public {
		t.Errorf("marked traffic (client -> server:8081): server saw %q, %v; want the public IP %s (out of eth1 by the fwmark rule)", seen, err, v4.public)
	}
	// The port forward: the Internet reaches eth2's address :2222, which is
	// the client's :2022; the client sees the Internet's own address.
	if seen, err := dial(tp.in, "172.22.5.100:2222", dialOK); err != nil || seen != "203.0.113.5" {
		t.Errorf("port forward (Internet -> 172.22.5.100:2222): client saw %q, %v; want 203.0.113.5", seen, err)
	}
	if t.Failed() {
		t.FailNow()
	}
	s1 := snapshot(t, tp.vm)
	start("second ExecStart", u.start)
	sameState(t, "second ExecStart", s1, snapshot(t, tp.vm))

	// verify reads the backend's rules: in sync, then each kind of drift
	// under its profile key, then in sync again after a reload.
	verifyVM := func(want int, keys ...string) {
		t.Helper()
		out, err := try(nil, []string{path + ":" + unitPATH}, "ip", "netns", "exec", tp.vm,
			testenv.SelfAsNicpersist(t), "verify", "--profile", recipesProfile, "--root", root)
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("verify: %v", err)
		}
		if code != want {
			t.Errorf("verify: exit %d, want %d:\n%s", code, want, out)
		}
		for _, k := range keys {
			if !strings.Contains(out, "\n"+k+": ") && !strings.HasPrefix(out, k+": ") {
				t.Errorf("verify does not name %s:\n%s", k, out)
			}
		}
	}
	verifyVM(0)
	for _, d := range b.drift {
		run(t, "ip", append([]string{"netns", "exec", tp.vm}, d.cmd...)...)
		verifyVM(3, d.key)
	}
	start("ExecReload after the drift", u.reload)
	verifyVM(0)

	// A FORWARD policy of DROP, as Docker sets it in the machine's iptables.
	run(t, "ip", "netns", "exec", tp.vm, b.iptables, "-P", "FORWARD", "DROP")
	if b.acceptWins {
		throughVM(t, tp, v4)
		if _, err := dial(tp.in, "172.22.5.100:2222", dialOK); err != nil {
			t.Errorf("port forward under FORWARD DROP with forward_accept: %v", err)
		}
	} else {
		notThroughVM(t, tp, v4)
	}
	run(t, "ip", "netns", "exec", tp.vm, b.iptables, "-P", "FORWARD", "ACCEPT")

	start("ExecStop", u.stop)
	sameState(t, "ExecStop", s0, snapshot(t, tp.vm))
	for _, c := range [][]string{{"nft", "list", "ruleset"}, {"iptables-legacy-save"}, {"iptables-nft-save"}} {
		if out := run(t, "ip", append([]string{"netns", "exec", tp.vm}, c...)...); strings.Contains(strings.ToLower(out), "nicpersist") {
			t.Errorf("after ExecStop, %s still shows nicpersist:\n%s", strings.Join(c, " "), out)
		}
	}
}

// TestNetfilterToolMissing starts the unit on a machine whose packet-filter
// tool is missing (the unit's PATH has ip only): the routes and rules that
// keep SSH working are applied all the same, the start fails naming what to
// install, and stop still returns the machine to where it was. Once the
// tool is there, a start applies the rest.
func TestNetfilterToolMissing(t *testing.T) {
	need(t, "nft")
	t.Parallel()
	for _, b := range backends[:2] {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			root, _ := renderRoot(t, recipesProfile, b.root)
			u := readUnit(t, root)
			state := filepath.Join(t.TempDir(), "state")
			tp := newTopology(t, topoOpts{})
			sysctlD(t, tp.vm, root)
			s0 := snapshot(t, tp.vm)
			ipOnly := toolPath(t, map[string]string{"ip": "/usr/sbin/ip"})
			out, err := execUnit(tp.vm, state, u.start, ipOnly)
			if err == nil {
				t.Errorf("ExecStart without %s: exit 0, want a failure", b.name)
			}
			if !strings.Contains(out, "is not installed") || !strings.Contains(out, "routes, rules and sysctls applied") {
				t.Errorf("ExecStart without %s says:\n%s\nwant what is missing and that the routes stay", b.name, out)
			}
			sshWorks(t, tp, v4)
			if rules := run(t, "ip", "-n", tp.vm, "rule"); !strings.Contains(rules, "from 172.22.5.68 lookup 1000") {
				t.Errorf("the source rule that keeps SSH working is not there:\n%s", rules)
			}
			notThroughVM(t, tp, v4) // no SNAT: the Internet cannot answer the client

			if out, err := execUnit(tp.vm, state, u.stop, ipOnly); err != nil {
				t.Errorf("ExecStop after the failed start: %v\n%s", err, out)
			}
			sameState(t, "ExecStop after a start without "+b.name, s0, snapshot(t, tp.vm))

			// The package installed: a start applies everything.
			if out, err := execUnit(tp.vm, state, u.start, toolPath(t, b.tools)); err != nil {
				t.Fatalf("ExecStart with %s: %v\n%s", b.name, err, out)
			}
			throughVM(t, tp, v4)
			sshWorks(t, tp, v4)
		})
	}
}

// TestForwardDropLint: on a root with Docker, a profile that forwards
// without forward_accept is warned about at render, and under Docker's
// FORWARD policy its traffic is indeed dropped.
func TestForwardDropLint(t *testing.T) {
	need(t)
	t.Parallel()
	root, stderr := renderRoot(t, seedProfile, map[string]string{"usr/sbin/iptables": "", "usr/bin/dockerd": ""})
	if !strings.Contains(stderr, "Docker is installed and sets the FORWARD policy to DROP") || !strings.Contains(stderr, "set forward_accept = true") {
		t.Errorf("render on a root with Docker, without forward_accept: no warning in\n%s", stderr)
	}
	if _, stderr := renderRoot(t, recipesProfile, map[string]string{"usr/sbin/iptables": "", "usr/bin/dockerd": ""}); strings.Contains(stderr, "forward_accept") {
		t.Errorf("render with forward_accept = true on a root with Docker still warns:\n%s", stderr)
	}
	u := readUnit(t, root)
	tp := newTopology(t, topoOpts{})
	unitRun := unitRunner(t, tp.vm, filepath.Join(t.TempDir(), "state"))
	sysctlD(t, tp.vm, root)
	unitRun("ExecStart", u.start)
	throughVM(t, tp, v4)
	run(t, "ip", "netns", "exec", tp.vm, "iptables", "-P", "FORWARD", "DROP")
	notThroughVM(t, tp, v4)
	sshWorks(t, tp, v4)
}
