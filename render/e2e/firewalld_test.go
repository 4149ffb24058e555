package e2e

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nicpersist/nicpersist/render/cli"
)

// policyRel is the policy that nicpersist renders for firewalldProfile.
const policyRel = "etc/firewalld/policies/nicpersist.xml"

// firewalldProfile is the e2e profile and a port forward from eth2's port
// 2222 to fwdPort on the client.
const (
	firewalldProfile = "testdata/firewalld.toml"
	fwdPort          = "8081"
)

// firewalldRoot is a root where firewalld is enabled with Debian's defaults
// (default zone public, nftables backend, no interface in an explicit
// zone), and the e2e profile rendered into it. passwd and group come from
// the host, as the container's dbus-daemon runs as messagebus, and so do
// protocols and services, by which firewalld checks its service files.
func firewalldRoot(t *testing.T, profile string) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"etc/systemd/system/multi-user.target.wants", "etc/firewalld/zones", "etc/firewalld/policies"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	unit := "/lib/systemd/system/firewalld.service"
	if err := os.Symlink(unit, filepath.Join(root, "etc/systemd/system/multi-user.target.wants/firewalld.service")); err != nil {
		t.Fatal(err)
	}
	// firewall-cmd finds the daemon through this alias on the bus.
	if err := os.Symlink(unit, filepath.Join(root, "etc/systemd/system/dbus-org.fedoraproject.FirewallD1.service")); err != nil {
		t.Fatal(err)
	}
	conf := "# Debian's defaults, written out\nDefaultZone=public\nFirewallBackend=nftables\nCleanupOnExit=yes\n"
	if err := os.WriteFile(filepath.Join(root, "etc/firewalld/firewalld.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"passwd", "group", "protocols", "services"} {
		if err := copyFile("/etc/"+f, filepath.Join(root, "etc", f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"render", "--root", root, "--profile", profile, "--target", "systemd"}
	var out, errb bytes.Buffer
	if code := cli.Main(args, &out, &errb); code != 0 {
		t.Fatalf("nicpersist %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	if !strings.Contains(out.String(), policyRel) {
		t.Fatalf("render with firewalld enabled wrote no %s:\n%s%s", policyRel, out.String(), errb.String())
	}
	return root
}

// TestFirewalldBoot boots the seed topology's VM with Debian's firewalld
// enabled and running in its default zone, and nicpersist rendered for it
// (nftables backend, chosen as firewalld is enabled): forwarded traffic from
// the client reaches the Internet through eth2, NATed, SSH to eth1 works,
// the port forward works, and all survive firewall-cmd --reload. Without
// nicpersist's policy (removed, firewalld reloaded) firewalld rejects the
// forwarded traffic while nicpersist's routes and NAT are in place; with the
// policy back, it flows again.
func TestFirewalldBoot(t *testing.T) {
	need(t, "systemd-nspawn", "nsenter", "firewalld", "firewall-cmd")
	t.Parallel()
	began := time.Now()
	root := firewalldRoot(t, firewalldProfile)
	tp := newTopology(t, topoOpts{})
	serve(t, tp.cl, ":"+fwdPort)
	c := bootContainer(t, tp.vm, root)
	c.waitActive(t, began)

	// firewalld's own check of its running configuration, policy included.
	c.firewallCmd(t, "--check-config")
	if pol := c.firewallCmd(t, "--info-policy", "nicpersist"); !strings.Contains(pol, "ingress-zones: ANY") || !strings.Contains(pol, "egress-zones: ANY") {
		t.Errorf("firewall-cmd --info-policy nicpersist:\n%s", pol)
	}
	// firewalld's own table is there: the forwarded traffic passes its
	// FORWARD chain, not only nicpersist's NAT.
	if out := run(t, "ip", "netns", "exec", tp.vm, "nft", "list", "table", "inet", "firewalld"); !strings.Contains(out, "filter_FORWARD") {
		t.Fatalf("no firewalld table in the VM:\n%s", tail(out, 20))
	}
	// The Internet reaches the client's server through eth2's port forward.
	forwarded := func() {
		t.Helper()
		if _, err := dial(tp.in, "172.22.5.100:2222", dialOK); err != nil {
			t.Errorf("port forward eth2:2222 -> 172.22.5.130:%s: %v", fwdPort, err)
		}
	}
	flows := func(when string) {
		t.Helper()
		for _, f := range []family{v4, v6} {
			throughVM(t, tp, f)
			sshWorks(t, tp, f)
		}
		forwarded()
		if t.Failed() {
			t.Logf("the VM's nftables:\n%s", run(t, "ip", "netns", "exec", tp.vm, "nft", "list", "ruleset"))
			t.Fatalf("%s: traffic does not flow", when)
		}
	}
	flows("after boot")

	c.firewallCmd(t, "--reload")
	flows("after firewall-cmd --reload")

	// firewalld flushes every iptables table when it reloads, but leaves
	// nicpersist's nftables table alone: IPv6, SNATed there and not by the
	// policy, flowed above.
	nat := run(t, "ip", "netns", "exec", tp.vm, "nft", "list", "table", "inet", "nicpersist")
	if !strings.Contains(nat, "snat ip6 to 2001:db8:2::100") {
		t.Fatalf("nicpersist's table after firewall-cmd --reload:\n%s", nat)
	}

	// Without nicpersist's policy, with nicpersist's routes and NAT in
	// place, firewalld's FORWARD chain rejects the client's traffic; SSH,
	// to the VM itself, still works, and so does the port forward, which
	// firewalld lets through as DNATed (ct status dnat).
	c.execIn(t, nil, "rm", "/"+policyRel)
	c.firewallCmd(t, "--reload")
	if out := run(t, "ip", "netns", "exec", tp.vm, "nft", "list", "table", "inet", "nicpersist"); !strings.Contains(out, "masquerade") {
		t.Fatalf("nicpersist's NAT is not there, so a failure below would prove nothing about firewalld:\n%s", out)
	}
	for _, f := range []family{v4, v6} {
		notThroughVM(t, tp, f)
		sshWorks(t, tp, f)
	}
	forwarded()

	policy, err := os.ReadFile(filepath.Join(root, policyRel))
	if err != nil {
		t.Fatal(err)
	}
	c.execIn(t, policy, "sh", "-c", "cat > /"+policyRel)
	c.firewallCmd(t, "--reload")
	flows("with the policy back")
	t.Logf("firewalld boot test took %v", time.Since(began).Round(time.Millisecond))
}

// execIn runs a command in the container's namespaces, with stdin.
func (c *container) execIn(t *testing.T, stdin []byte, args ...string) string {
	t.Helper()
	out, err := try(stdin, nil, "nsenter", append([]string{"-t", itoa(c.pid1), "-a"}, args...)...)
	if err != nil {
		t.Fatalf("%s in the container: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (c *container) firewallCmd(t *testing.T, args ...string) string {
	t.Helper()
	out, err := try(nil, nil, "nsenter", append([]string{"-t", itoa(c.pid1), "-a", "firewall-cmd"}, args...)...)
	if err != nil {
		// firewalld logs to its own file, not the journal.
		log, _ := try(nil, nil, "nsenter", "-t", itoa(c.pid1), "-a", "sh", "-c", "tail -n 30 /var/log/firewalld; journalctl --no-pager -n 30 -u firewalld")
		t.Fatalf("firewall-cmd %s in the container: %v\n%s\nfirewalld's log:\n%s\n%s", strings.Join(args, " "), err, out, log, c.statusOf(t, "firewalld.service"))
	}
	return out
}

// waitFor polls a unit's state until done says so, failing after d.
func (c *container) waitFor(t *testing.T, unit string, d time.Duration, done func(map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		out, err := try(nil, nil, "nsenter", "-t", itoa(c.pid1), "-a", "systemctl", "show", unit, "-p", "ActiveState,SubState,Result")
		p := map[string]string{}
		for _, l := range strings.Split(out, "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				p[k] = v
			}
		}
		if err == nil && p["ActiveState"] != "" && done(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no change after %v: %v\n%s", unit, d, p, c.statusOf(t, unit))
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (c *container) statusOf(t *testing.T, unit string) string {
	out, _ := try(nil, nil, "nsenter", "-t", itoa(c.pid1), "-a", "systemctl", "status", "--no-pager", "-n", "30", unit)
	return out
}

// waitActive waits until firewalld and nicpersist are active and firewalld
// answers that it runs.
func (c *container) waitActive(t *testing.T, began time.Time) {
	t.Helper()
	for _, u := range []string{"firewalld.service", "nicpersist.service"} {
		st := c.waitFor(t, u, 90*time.Second, func(p map[string]string) bool {
			return p["ActiveState"] == "active" || p["ActiveState"] == "failed"
		})
		if st["ActiveState"] != "active" {
			t.Fatalf("%s is %s/%s, want active\n%s", u, st["ActiveState"], st["SubState"], c.statusOf(t, u))
		}
	}
	t.Logf("firewalld and nicpersist active %v after the start", time.Since(began).Round(time.Millisecond))
	if st := strings.TrimSpace(c.firewallCmd(t, "--state")); st != "running" {
		t.Fatalf("firewall-cmd --state: %q, want running", st)
	}
}

// TestFirewalldBootIPTables is the boot with nicpersist's iptables backend,
// whose chains firewalld flushes when it starts and reloads: the unit waits
// for firewalld's start, so its chain is there after boot, and the policy's
// masquerade carries the client's IPv4 traffic after firewall-cmd --reload
// too.
func TestFirewalldBootIPTables(t *testing.T) {
	need(t, "systemd-nspawn", "nsenter", "firewalld", "firewall-cmd")
	t.Parallel()
	began := time.Now()
	src, err := os.ReadFile("../../packaging/profile.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	profile := filepath.Join(t.TempDir(), "profile.toml")
	withBackend := strings.Replace(string(src), "[sysctl]", "[netfilter]\nbackend = \"iptables\"\n\n[sysctl]", 1)
	if err := os.WriteFile(profile, []byte(withBackend), 0o644); err != nil {
		t.Fatal(err)
	}
	root := firewalldRoot(t, profile)
	if b, _ := os.ReadFile(filepath.Join(root, policyRel)); !strings.Contains(string(b), "<masquerade/>") {
		t.Fatalf("on the iptables backend the policy does not masquerade:\n%s", b)
	}
	tp := newTopology(t, topoOpts{})
	c := bootContainer(t, tp.vm, root)
	c.waitActive(t, began)
	for _, when := range []string{"after boot", "after firewall-cmd --reload"} {
		if when != "after boot" {
			c.firewallCmd(t, "--reload")
		}
		nat := run(t, "ip", "netns", "exec", tp.vm, "iptables-save", "-t", "nat")
		there := strings.Contains(nat, "NICPERSIST-POSTROUTING -s")
		t.Logf("%s, nicpersist's iptables chain is there: %v", when, there)
		if when == "after boot" && !there {
			// The unit waits for firewalld's flush (ExecStartPre).
			t.Errorf("after boot, firewalld flushed nicpersist's chain after the unit loaded it:\n%s", nat)
		}
		throughVM(t, tp, v4)
		sshWorks(t, tp, v4)
		if t.Failed() {
			t.Fatalf("%s: traffic does not flow", when)
		}
	}
}
