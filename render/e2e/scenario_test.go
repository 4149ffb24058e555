package e2e

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nicpersist/nicpersist/render/internal/keyfile"
)

type targetCase struct {
	name, target, stack string
	// nm is the NetworkManager version the root says (machineFiles).
	nm string
}

var targets = []targetCase{
	{"systemd", "systemd", "", ""},
	{"rhel-network-scripts", "rhel", "network-scripts", ""},
	{"rhel-networkmanager", "rhel", "networkmanager", ""},
	{"rhel-networkmanager-1.46", "rhel", "networkmanager", "1.46.0-1.el9"},
}

type profileCase struct {
	name, path string
	fams       []family
}

var profiles = []profileCase{
	{"seed-ipv4", seedProfile, []family{v4}},    // the shipped example profile
	{"dualstack", e2eProfile, []family{v4, v6}}, // the same on both families
}

// TestSeedScenario applies the rendered artifacts of each target to the seed
// topology as a boot does and checks the traffic, idempotence, repair, link
// bounces and stop.
func TestSeedScenario(t *testing.T) {
	need(t)
	t.Parallel()
	for _, p := range profiles {
		for _, tc := range targets {
			t.Run(p.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				scenario(t, p, tc)
			})
		}
	}
}

func scenario(t *testing.T, p profileCase, tc targetCase) {
	began := time.Now()
	defer func() { t.Logf("took %v", time.Since(began).Round(time.Millisecond)) }()
	root := renderOver(t, p.path, tc.target, tc.stack, machineFiles(tc))
	if tc.target == "rhel" {
		routeFilesInBatch(t, root, tc.stack == "networkmanager" && tc.nm == "")
	}
	u := readUnit(t, root)
	state := filepath.Join(t.TempDir(), "state")
	tp := newTopology(t, topoOpts{})
	unitRun := unitRunner(t, tp.vm, state)

	// Before: a cloud image. SSH to the public IP works (the default route is
	// eth1's), the client has no way out through the VM (forwarding is off).
	for _, f := range p.fams {
		sshWorks(t, tp, f)
		notThroughVM(t, tp, f)
	}
	if t.Failed() {
		t.FailNow()
	}

	// Boot: systemd-sysctl applies sysctl.d; for rhel, the interfaces come up
	// and their route-/rule- files are applied; then the unit starts.
	sysctlD(t, tp.vm, root)
	if tc.target == "rhel" {
		ifup(t, tp.vm, root, tc.stack, "eth1", "eth2", "eth3")
	}
	s0 := snapshot(t, tp.vm)
	unitRun("ExecStart", u.start)
	for _, f := range p.fams {
		throughVM(t, tp, f)
		sshWorks(t, tp, f)
	}
	if t.Failed() {
		t.FailNow()
	}

	// A second start changes nothing.
	s1 := snapshot(t, tp.vm)
	unitRun("second ExecStart", u.start)
	sameState(t, "second ExecStart", s1, snapshot(t, tp.vm))

	// Without the source rule, replies from eth1's address follow the main
	// default route out of eth2 and SSH breaks; ExecStart, and ExecReload,
	// repair it.
	for _, f := range p.fams {
		if rule, ok := ifcfgSourceRule(t, root, f); ok {
			// NetworkManager holds the rule: activating the connection
			// puts it back, and the unit leaves it alone.
			run(t, "ip", append([]string{"-n", tp.vm, "-" + itoa(f.n), "rule", "del"}, strings.Fields(rule)...)...)
			sshBroken(t, tp, f)
			ifup(t, tp.vm, root, tc.stack, "eth1")
			sshWorks(t, tp, f)
			unitRun("ExecReload after NetworkManager restored the "+f.String()+" source rule", u.reload)
			sameState(t, "NetworkManager restoring the "+f.String()+" source rule", s1, snapshot(t, tp.vm))
			continue
		}
		for _, cmd := range []struct {
			name string
			argv [][]string
		}{{"ExecStart", u.start}, {"ExecReload", u.reload}} {
			delSourceRule(t, tp, root, f)
			sshBroken(t, tp, f)
			unitRun(cmd.name+" after deleting the "+f.String()+" source rule", cmd.argv)
			sshWorks(t, tp, f)
			sameState(t, cmd.name+" after deleting the "+f.String()+" source rule", s1, snapshot(t, tp.vm))
		}
	}

	// Link bounce of eth1: its routes go in every table, SSH's table with
	// them. The target's own path puts them back: ifup's route-/rule- lines
	// (network-scripts), the connection's route- lines (NetworkManager), the
	// unit's reload (systemd). A reload afterwards gives the exact state.
	for _, f := range p.fams {
		if len(ownRoutesVia(t, tp, f, "eth1")) == 0 || len(ownRoutesVia(t, tp, f, "eth2")) == 0 {
			t.Fatalf("%s: no routes of nicpersist's via eth1 and eth2 to lose in a bounce", f)
		}
	}
	bounce(t, tp, "eth1")
	for _, f := range p.fams {
		if left := ownRoutesVia(t, tp, f, "eth1"); len(left) != 0 {
			t.Errorf("%s: after eth1 went down, nicpersist's routes via eth1 are still there: %q", f, left)
		}
	}
	switch tc.target {
	case "rhel":
		ifup(t, tp.vm, root, tc.stack, "eth1")
	default:
		unitRun("ExecReload after an eth1 bounce", u.reload)
	}
	for _, f := range p.fams {
		sshWorks(t, tp, f)
		throughVM(t, tp, f)
	}
	unitRun("ExecReload after an eth1 bounce", u.reload)
	sameState(t, "eth1 bounce, restore and ExecReload", s1, snapshot(t, tp.vm))

	// Link bounce of eth2 takes the main table's default route: on every
	// target that route is the unit's, and a reload restores it.
	bounce(t, tp, "eth2")
	for _, f := range p.fams {
		if left := ownRoutesVia(t, tp, f, "eth2"); len(left) != 0 {
			t.Errorf("%s: after eth2 went down, the default route via eth2 is still there: %q", f, left)
		}
	}
	if tc.target == "rhel" {
		ifup(t, tp.vm, root, tc.stack, "eth2")
	}
	unitRun("ExecReload after an eth2 bounce", u.reload)
	for _, f := range p.fams {
		throughVM(t, tp, f)
		sshWorks(t, tp, f)
	}
	sameState(t, "eth2 bounce and ExecReload", s1, snapshot(t, tp.vm))

	// Stop returns the VM to its state right before the first start.
	unitRun("ExecStop", u.stop)
	sameState(t, "ExecStop", s0, snapshot(t, tp.vm))
	unitRun("second ExecStop", u.stop)
	sameState(t, "second ExecStop", s0, snapshot(t, tp.vm))

	// A start that fails at its last step rolls back everything, from the
	// stopped state and from a started one (a failed reload), to the state
	// before the first start.
	last := "ip" + itoa(p.fams[len(p.fams)-1].n) + ".main.new"
	if out, err := execUnit(tp.vm, state, u.start, failingIP(t, last)); err == nil {
		t.Errorf("ExecStart with %s failing: exit 0, want a failure\n%s", last, out)
	}
	sameState(t, "failed first ExecStart", s0, snapshot(t, tp.vm))
	unitRun("ExecStart after a failed one", u.start)
	sameState(t, "ExecStart after a failed one", s1, snapshot(t, tp.vm))
	if out, err := execUnit(tp.vm, state, u.reload, failingIP(t, last)); err == nil {
		t.Errorf("ExecReload with %s failing: exit 0, want a failure\n%s", last, out)
	}
	sameState(t, "failed ExecReload", s0, snapshot(t, tp.vm))

	// Starting again (a restart: the failed reload stopped it) gives the
	// started state again.
	unitRun("ExecStart after ExecStop", u.start)
	sameState(t, "ExecStart after ExecStop", s1, snapshot(t, tp.vm))
	for _, f := range p.fams {
		throughVM(t, tp, f)
	}
}

// machineFiles is the interface configuration a machine of the target
// has before nicpersist. Under network-scripts, and NetworkManager of a
// known version, each NIC has its ifcfg file with IPV6INIT=yes, so the
// stack reads both route files (and NetworkManager the ROUTING_RULE keys)
// and the unit leaves them to it: the scenario then proves that what the
// stack adds and what the unit adds make the policy together, and that
// the unit's stop leaves the stack's. A NetworkManager root that says
// nothing (no ifcfg file, no version) has the unit keep every route.
func machineFiles(tc targetCase) map[string]string {
	if tc.stack != "network-scripts" && tc.nm == "" {
		return nil
	}
	files := map[string]string{}
	if tc.nm != "" {
		files["usr/lib64/NetworkManager/"+tc.nm+"/libnm-settings-plugin-ifcfg-rh.so"] = ""
	}
	for _, dev := range []string{"eth1", "eth2", "eth3"} {
		files["etc/sysconfig/network-scripts/ifcfg-"+dev] = "DEVICE=" + dev + "\nONBOOT=yes\nIPV6INIT=yes\n"
	}
	return files
}

// routeFilesInBatch checks that the unit's batch files hold the route
// files' routes exactly when the stack is not known to apply them
// (machineFiles), so that each branch the scenario means to run is run.
func routeFilesInBatch(t *testing.T, root string, want bool) {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(root, "etc/sysconfig/network-scripts/route*-*"))
	if len(files) == 0 {
		t.Fatal("no route files rendered")
	}
	for _, file := range files {
		n := "4"
		if strings.Contains(filepath.Base(file), "route6-") {
			n = "6"
		}
		batch := "\n" + strings.Join(fileLines(t, filepath.Join(root, "etc/nicpersist/ip"+n+".batch")), "\n") + "\n"
		for _, l := range fileLines(t, file) {
			if got := strings.Contains(batch, "\nroute replace "+l+" proto 241\n"); got != want {
				t.Errorf("%s: %q in ip%s.batch: %v, want %v", filepath.Base(file), l, n, got, want)
			}
		}
	}
}

// sysctlD applies the rendered sysctl.d file inside ns as systemd-sysctl does
// at boot (procps' sysctl -p where systemd-sysctl is missing).
func sysctlD(t *testing.T, ns, root string) {
	t.Helper()
	file := filepath.Join(root, "etc/sysctl.d/90-nicpersist.conf")
	for _, bin := range []string{"/usr/lib/systemd/systemd-sysctl", "/lib/systemd/systemd-sysctl"} {
		if _, err := os.Stat(bin); err == nil {
			run(t, "ip", "netns", "exec", ns, bin, file)
			return
		}
	}
	run(t, "ip", "netns", "exec", ns, "sysctl", "-q", "-p", file)
}

// ifup applies the route-/rule- files of the given interfaces as the rhel
// stacks do when an interface comes up: network-scripts' ifup-routes runs
// `ip route add <line>` and `ip rule add <line>` for route-, route6-, rule-
// and rule6- and ignores failures such as "File exists"; NetworkManager's
// ifcfg-rh reads route- and route6- only and adds them with proto static,
// and the rules of the ifcfg file's ROUTING_RULE keys.
func ifup(t *testing.T, ns, root, stack string, devs ...string) {
	t.Helper()
	dir := filepath.Join(root, "etc/sysconfig/network-scripts")
	for _, dev := range devs {
		for _, f := range []struct{ file, fam, obj string }{
			{"route-" + dev, "-4", "route"},
			{"route6-" + dev, "-6", "route"},
			{"rule-" + dev, "-4", "rule"},
			{"rule6-" + dev, "-6", "rule"},
		} {
			lines := fileLines(t, filepath.Join(dir, f.file))
			if stack == "networkmanager" && f.obj == "rule" {
				if lines != nil {
					t.Errorf("%s rendered for NetworkManager, which would then ignore route-%s", f.file, dev)
				}
				continue
			}
			for _, l := range lines {
				args := append([]string{"-n", ns, f.fam, f.obj, "add"}, strings.Fields(l)...)
				if stack == "networkmanager" {
					args = append(args, "proto", "static")
				}
				if out, err := try(nil, nil, "ip", args...); err != nil && !strings.Contains(out, "File exists") {
					t.Errorf("%s: ip %s: %v: %s", f.file, strings.Join(args, " "), err, out)
				}
			}
		}
		if stack != "networkmanager" {
			continue
		}
		for _, r := range ifcfgRules(t, root, dev) {
			args := append([]string{"-n", ns, "-" + itoa(r.fam.n), "rule", "add"}, strings.Fields(r.args)...)
			if out, err := try(nil, nil, "ip", args...); err != nil && !strings.Contains(out, "File exists") {
				t.Errorf("ifcfg-%s: ip %s: %v: %s", dev, strings.Join(args, " "), err, out)
			}
		}
	}
}

type ifcfgRule struct {
	fam  family
	args string
}

// ifcfgRules are the ROUTING_RULE_n (IPv4) and ROUTING_RULE6_n (IPv6)
// values of ifcfg-<dev> under the render root.
func ifcfgRules(t *testing.T, root, dev string) []ifcfgRule {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "etc/sysconfig/network-scripts/ifcfg-"+dev))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	v := keyfile.ParseVars(b)
	var out []ifcfgRule
	for _, k := range v.Keys() {
		val, _ := v.Get(k)
		switch {
		case strings.HasPrefix(k, "ROUTING_RULE6_"):
			out = append(out, ifcfgRule{v6, val})
		case strings.HasPrefix(k, "ROUTING_RULE_"):
			out = append(out, ifcfgRule{v4, val})
		}
	}
	return out
}

// ifcfgSourceRule is eth1's source rule of family f when it is a
// ROUTING_RULE key (NetworkManager holds it), not a line of the unit's.
func ifcfgSourceRule(t *testing.T, root string, f family) (string, bool) {
	t.Helper()
	for _, r := range ifcfgRules(t, root, "eth1") {
		if r.fam.n == f.n && strings.Contains(" "+r.args+" ", " from "+f.eth1+"/") {
			return r.args, true
		}
	}
	return "", false
}

// delSourceRule deletes the rule that sends replies from eth1's address to
// eth1's table, as written in the rendered batch file.
func delSourceRule(t *testing.T, tp *topology, root string, f family) {
	t.Helper()
	for _, l := range fileLines(t, filepath.Join(root, "etc/nicpersist/ip"+itoa(f.n)+".batch")) {
		if strings.HasPrefix(l, "rule add ") && strings.Contains(l, " from "+f.eth1+"/") {
			run(t, "ip", append([]string{"-n", tp.vm, "-" + itoa(f.n), "rule", "del"}, strings.Fields(strings.TrimPrefix(l, "rule add "))...)...)
			return
		}
	}
	t.Fatalf("%s: no source rule for %s in ip%d.batch", f, f.eth1, f.n)
}
