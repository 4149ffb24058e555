package e2e

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/nicpersist/nicpersist/render/internal/distro"
)

func copyFile(src, dst string, mode os.FileMode) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, mode)
}

// TestBootNspawn boots systemd as PID 1 in systemd-nspawn, in the VM's
// network namespace, with the rendered /etc (unit, enable link, the files it
// applies, sysctl.d), nicpersist as /usr/bin/nicpersist, and eth2 down. The enabled unit must start, wait for
// eth2, and end active (exited) once eth2 comes up, with routes, rules, NAT
// and sysctls in place and the traffic flowing as in TestSeedScenario.
func TestBootNspawn(t *testing.T) {
	need(t, "systemd-nspawn", "nsenter", "nft")
	t.Parallel()
	for _, backend := range []string{"iptables", "nftables"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			bootScenario(t, backend)
		})
	}
}

// bootScenario boots the dual-stack profile rendered for a netfilter
// backend: iptables from a scratch root, nftables from a root with nft only.
func bootScenario(t *testing.T, backend string) {
	began := time.Now()
	var root string
	if backend == "nftables" {
		root, _ = renderRoot(t, e2eProfile, map[string]string{"usr/sbin/nft": ""})
	} else {
		root = render(t, e2eProfile, "systemd", "")
	}
	tp := newTopology(t, topoOpts{eth2Down: true, eth2DAD: true})

	// What a unit that ran before the link is up would hit.
	for _, route := range [][]string{
		{"172.22.5.96/27", "dev", "eth2", "table", "4242"},
		{"default", "via", "172.22.5.97", "dev", "eth2", "table", "4242"},
	} {
		out, err := try(nil, nil, "ip", append([]string{"-n", tp.vm, "route", "add"}, route...)...)
		if err == nil {
			t.Fatalf("ip route add %s with eth2 down: worked, want a failure", strings.Join(route, " "))
		}
		t.Logf("with eth2 down, ip route add %s: %s", strings.Join(route, " "), strings.TrimSpace(out))
	}

	c := bootContainer(t, tp.vm, root)
	t.Logf("container started (pid %d, PID 1 is host pid %d) after %v", c.cmd.Process.Pid, c.pid1, time.Since(began).Round(time.Millisecond))

	// The unit starts and waits: eth2 is down.
	st := c.waitUnit(t, 60*time.Second, func(p map[string]string) bool { return p["ActiveState"] != "inactive" })
	if st["ActiveState"] != "activating" {
		t.Fatalf("with eth2 down, nicpersist.service is %s/%s, want activating (waiting for eth2)\n%s", st["ActiveState"], st["SubState"], c.status(t))
	}
	t.Logf("nicpersist.service activating after %v", time.Since(began).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	if st = c.unit(t); st["ActiveState"] != "activating" {
		t.Fatalf("2 s later with eth2 still down, nicpersist.service is %s/%s, want activating\n%s", st["ActiveState"], st["SubState"], c.status(t))
	}
	if rules := run(t, "ip", "-n", tp.vm, "rule"); strings.Contains(rules, "lookup 1000") {
		t.Errorf("with eth2 down, nicpersist's rule is already there:\n%s", rules)
	}

	up := monotonic()
	run(t, "ip", "-n", tp.vm, "link", "set", "dev", "eth2", "up")
	st = c.waitUnit(t, 30*time.Second, func(p map[string]string) bool { return p["ActiveState"] != "activating" })
	t.Logf("nicpersist.service %s/%s %v after eth2 came up\n%s", st["ActiveState"], st["SubState"],
		time.Duration(int64(parseUint(st["ActiveEnterTimestampMonotonic"]))-int64(up))*time.Microsecond, c.status(t))
	if st["ActiveState"] != "active" || st["SubState"] != "exited" || st["Result"] != "success" {
		t.Fatalf("nicpersist.service is %s/%s (result %s), want active/exited (success)", st["ActiveState"], st["SubState"], st["Result"])
	}
	if start, done := parseUint(st["ExecMainStartTimestampMonotonic"]), parseUint(st["ActiveEnterTimestampMonotonic"]); !(start < up && up < done) {
		t.Errorf("ordering: ExecStart began at %d µs and the unit became active at %d µs; eth2 came up at %d µs, want in between", start, done, up)
	}
	if en := strings.TrimSpace(c.systemctl(t, "is-enabled", "nicpersist.service")); en != "enabled" {
		t.Errorf("systemctl is-enabled nicpersist.service: %q, want enabled (the rendered link)", en)
	}

	// The kernel state, read from the host (the namespace is shared).
	want := map[string][]string{
		"ip -4 rule":                  {"1000:\tfrom 172.22.5.68 lookup 1000"},
		"ip -6 rule":                  {"1000:\tfrom 2001:db8:1::68 lookup 1000"},
		"ip -4 route show table 1000": {"default via 172.22.5.65 dev eth1 proto 241", "172.22.5.64/27 dev eth1 proto 241 scope link"},
		"ip -6 route show table 1000": {"default via 2001:db8:1::1 dev eth1 proto 241 metric 1024", "2001:db8:1::/64 dev eth1 proto 241 metric 1024"},
		"ip -4 route show":            {"default via 172.22.5.97 dev eth2 proto 241"},
		"ip -6 route show":            {"default via 2001:db8:2::1 dev eth2 proto 241 metric 1"},
		"iptables-save -t nat":        {"-A POSTROUTING -j NICPERSIST-POSTROUTING", "-A NICPERSIST-POSTROUTING -s 172.22.5.128/26 -o eth2 -j MASQUERADE"},
		"ip6tables-save -t nat":       {"-A POSTROUTING -j NICPERSIST-POSTROUTING", "-A NICPERSIST-POSTROUTING -s 2001:db8:3::/64 -o eth2 -j SNAT --to-source 2001:db8:2::100"},
	}
	if backend == "nftables" {
		delete(want, "iptables-save -t nat")
		delete(want, "ip6tables-save -t nat")
		want["nft list table inet nicpersist"] = []string{`ip saddr 172.22.5.128/26 oifname "eth2" masquerade comment "nat[0]"`,
			`ip6 saddr 2001:db8:3::/64 oifname "eth2" snat ip6 to 2001:db8:2::100 comment "nat[1]"`}
	}
	for cmd, lines := range want {
		out := run(t, "ip", append([]string{"netns", "exec", tp.vm}, strings.Fields(cmd)...)...)
		for _, l := range lines {
			if !strings.Contains(out, l) {
				t.Errorf("%s: no %q in\n%s", cmd, l, out)
			}
		}
	}
	for _, l := range fileLines(t, filepath.Join(root, "etc/nicpersist/sysctl.list")) {
		kv := strings.Fields(l)
		out := run(t, "ip", "netns", "exec", tp.vm, "cat", "/proc/sys/"+kv[0])
		if strings.TrimSpace(out) != kv[1] {
			t.Errorf("sysctl %s = %s, want %s", kv[0], strings.TrimSpace(out), kv[1])
		}
	}
	for _, f := range []family{v4, v6} {
		throughVM(t, tp, f)
		sshWorks(t, tp, f)
	}

	// systemctl reload repairs a deleted rule under the real systemd too.
	run(t, "ip", "-n", tp.vm, "-4", "rule", "del", "priority", "1000")
	c.systemctl(t, "reload", "nicpersist.service")
	if rules := run(t, "ip", "-n", tp.vm, "-4", "rule"); !strings.Contains(rules, "from 172.22.5.68 lookup 1000") {
		t.Errorf("after systemctl reload, no source rule:\n%s", rules)
	}
	sshWorks(t, tp, v4)
	t.Logf("boot test body took %v", time.Since(began).Round(time.Millisecond))
}

// containerCgroups makes, below this process's cgroup in the name=systemd
// and the unified hierarchies (whichever are mounted), a cgroup named name
// for one container, and returns their paths.
func containerCgroups(t *testing.T, name string) []string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var mount string
		switch {
		case parts[1] == "name=systemd":
			mount = "/sys/fs/cgroup/systemd"
		case parts[0] == "0" && parts[1] == "":
			mount = "/sys/fs/cgroup/unified"
			if _, err := os.Stat(mount + "/cgroup.procs"); err != nil {
				mount = "/sys/fs/cgroup" // cgroup v2 only
			}
		default:
			continue
		}
		if _, err := os.Stat(mount + "/cgroup.procs"); err != nil {
			continue
		}
		dir := filepath.Join(mount, parts[2], name)
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatalf("a cgroup for the container: %v", err)
		}
		out = append(out, dir)
	}
	return out
}

// removeCgroup removes a container's cgroup and what its systemd left in
// it, deepest first (rmdir is how a cgroup goes).
func removeCgroup(dir string) {
	var dirs []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	for i := len(dirs) - 1; i >= 0; i-- {
		os.Remove(dirs[i])
	}
}

// container is a systemd-nspawn boot.
type container struct {
	cmd  *exec.Cmd
	pid1 int    // the container's PID 1, as a host pid
	log  string // nspawn's and the container's console output
	// shutdown powers the container off (SIGTERM to nspawn) and waits for
	// it; the test's cleanup calls it too, and only the first call acts, so
	// a test may stop it earlier (to boot again).
	shutdown func()
}

// bootContainer boots the host's /usr with systemd as PID 1 in the VM's
// network namespace:
//   - --volatile=yes: a tmpfs root with the host's /usr; /etc is an overlay
//     of the rendered root's etc (lower) and a scratch upper directory, which
//     holds a machine-id so that systemd does not treat the boot as a first
//     boot (which would enable every preset unit, networkd and its 2-minute
//     wait-online among them). /etc/alternatives comes from the host: Debian's
//     iptables is a link through it.
//   - nsenter --net: the VM's namespace. nspawn then thinks the container
//     shares the host's network, so it drops CAP_NET_ADMIN and mounts
//     /proc/sys read-only; --capability=CAP_NET_ADMIN and
//     SYSTEMD_NSPAWN_API_VFS_WRITABLE=network give back what a machine's
//     network service needs. Without them the unit fails writing
//     /proc/sys/net/ipv4/ip_forward (I/O error) and adding routes.
//   - --register=no --keep-unit: no machined, no new scope.
//
// The container is shut down (SIGTERM to nspawn: an orderly poweroff) when
// the test ends; if the test binary dies, the parent-death signal does it.
func bootContainer(t *testing.T, vmNS, root string) *container {
	t.Helper()
	dir := t.TempDir()
	upper := filepath.Join(dir, "upper")
	if err := os.MkdirAll(upper, 0o755); err != nil {
		t.Fatal(err)
	}
	// A root with a machine-id of its own keeps it from boot to boot, as a
	// machine does (DHCP client ids derive from it).
	if _, err := os.Stat(filepath.Join(root, "etc/machine-id")); err != nil {
		if err := os.WriteFile(filepath.Join(upper, "machine-id"), []byte(randHex(16)+"\n"), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	machine := nsPrefix + itoa(pidSelf) + "-" + randHex(3)
	// The unit runs /usr/bin/nicpersist: this test binary, which is
	// nicpersist under that name (TestMain), in an overlay on /usr/bin.
	bin := filepath.Join(dir, "bin")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile(self, filepath.Join(bin, filepath.Base(distro.Binary)), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"--net=/run/netns/" + vmNS, "systemd-nspawn",
		"--register=no", "--keep-unit", "--volatile=yes", "-D", "/", "--machine=" + machine,
		"--capability=CAP_NET_ADMIN", "--console=read-only",
		"--overlay=" + filepath.Join(root, "etc") + ":" + upper + ":/etc",
		"--overlay-ro=" + filepath.Dir(distro.Binary) + ":" + bin + ":" + filepath.Dir(distro.Binary)}
	if _, err := os.Stat("/etc/alternatives"); err == nil {
		args = append(args, "--bind-ro=/etc/alternatives")
	}
	args = append(args, "-b", "systemd.firstboot=off")
	logPath := filepath.Join(dir, "console.log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	c := &container{log: logPath}
	// nspawn --keep-unit runs the container in the caller's cgroup: two
	// containers started from one test process would share one tree, and
	// their systemds would create and remove each other's unit cgroups
	// (seen: a reload's control process failing with status 219/CGROUP,
	// "Failed to dump process list ... Input/output error"). Each gets a
	// cgroup of its own, which the shell joins before it becomes nspawn.
	cgs := containerCgroups(t, machine)
	join := ""
	for _, cg := range cgs {
		join += "echo $$ > " + cg + "/cgroup.procs && "
	}
	c.cmd = exec.Command("sh", append([]string{"-c", join + `exec nsenter "$@"`, "nsenter"}, args...)...)
	c.cmd.Env = append(os.Environ(), "SYSTEMD_NSPAWN_API_VFS_WRITABLE=network")
	c.cmd.Stdout, c.cmd.Stderr = logf, logf
	// The parent-death signal fires when the thread that started the
	// process exits; keep this goroutine on its thread until it ends.
	runtime.LockOSThread()
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := c.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("nsenter %s: %v", strings.Join(args, " "), err)
	}
	done := make(chan error, 1)
	go func() { done <- c.cmd.Wait(); logf.Close() }()
	c.shutdown = sync.OnceFunc(func() {
		c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			t.Errorf("systemd-nspawn did not stop within 30 s of SIGTERM; killing it")
			c.cmd.Process.Kill()
			<-done
		}
		os.Remove("/run/systemd/nspawn/propagate/" + machine)
		for _, cg := range cgs {
			removeCgroup(cg)
		}
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("container console:\n%s", tail(string(b), 60))
		}
	})
	t.Cleanup(c.shutdown)

	// The container's PID 1 is nspawn's child once it runs systemd. Before
	// that nspawn has another child for a moment (the outer child that
	// clones PID 1 and exits); taking it would point every later nsenter at
	// a process that is gone.
	deadline := time.Now().Add(20 * time.Second)
	for c.pid1 == 0 {
		select {
		case err := <-done:
			done <- err
			b, _ := os.ReadFile(logPath)
			t.Fatalf("systemd-nspawn exited early: %v\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("no container PID 1 after 20 s")
		}
		tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", c.cmd.Process.Pid))
		for _, f := range tasks {
			// A read fails for a task that just ended: look again.
			b, _ := os.ReadFile(f)
			for _, child := range strings.Fields(string(b)) {
				if comm, _ := os.ReadFile("/proc/" + child + "/comm"); strings.TrimSpace(string(comm)) == "systemd" {
					c.pid1, _ = strconv.Atoi(child)
				}
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return c
}

// systemctl runs systemctl in the container's namespaces.
func (c *container) systemctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := try(nil, nil, "nsenter", append([]string{"-t", itoa(c.pid1), "-a", "systemctl"}, args...)...)
	if err != nil && args[0] != "is-enabled" {
		t.Fatalf("systemctl %s in the container: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// unit returns nicpersist.service's state properties, or nil while the
// container's systemd does not answer yet.
func (c *container) unit(t *testing.T) map[string]string {
	out, err := try(nil, nil, "nsenter", "-t", itoa(c.pid1), "-a", "systemctl", "show", "nicpersist.service",
		"-p", "ActiveState,SubState,Result,ExecMainStatus,ExecMainStartTimestampMonotonic,ActiveEnterTimestampMonotonic")
	if err != nil {
		return nil
	}
	p := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			p[k] = v
		}
	}
	return p
}

// waitUnit polls the unit until done says so, failing the test after d.
func (c *container) waitUnit(t *testing.T, d time.Duration, done func(map[string]string) bool) map[string]string {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if p := c.unit(t); p != nil && p["ActiveState"] != "" && done(p) {
			return p
		}
		if time.Now().After(deadline) {
			t.Fatalf("nicpersist.service: no change after %v: %v\n%s", d, c.unit(t), c.status(t))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (c *container) status(t *testing.T) string {
	out, _ := try(nil, nil, "nsenter", "-t", itoa(c.pid1), "-a", "systemctl", "status", "--no-pager", "-n", "20", "nicpersist.service")
	return out
}

// monotonic is CLOCK_MONOTONIC in microseconds, systemd's *Monotonic clock.
func monotonic() uint64 {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	return uint64(ts.Sec)*1e6 + uint64(ts.Nsec)/1e3
}

func parseUint(s string) uint64 {
	n, _ := strconv.ParseUint(s, 10, 64)
	return n
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
