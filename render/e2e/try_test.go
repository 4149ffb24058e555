package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/nicpersist/nicpersist/render/internal/distro"
	"github.com/nicpersist/nicpersist/render/testenv"
)

// tryTimeout is the --timeout of the tries that are left to revert.
const tryTimeout = 4

// tryProc is a `nicpersist try` run as a process of its own in the VM's
// namespace, as an SSH session would run it.
type tryProc struct {
	cmd   *exec.Cmd
	lines chan string // stdout and stderr, line by line
	done  chan error
	mu    sync.Mutex
	out   strings.Builder
	stdin *os.File // the write end of its stdin, a pipe
}

// tryEnv is the environment of a try in the VM: the unit's PATH, the
// test's state directory, and a short wait for links.
func tryEnv(state string, extra ...string) []string {
	return append([]string{"PATH=" + unitPATH, "NICPERSIST_STATE=" + state, "NICPERSIST_WAIT=2"}, extra...)
}

// startTry starts `nicpersist try args...` in ns. Its watcher, should the
// test end with it still running, is killed.
func startTry(t *testing.T, ns, state string, env []string, args ...string) *tryProc {
	t.Helper()
	bin := testenv.SelfAsNicpersist(t)
	p := &tryProc{lines: make(chan string, 100), done: make(chan error, 1)}
	p.cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin, "try"}, args...)...)
	p.cmd.Env = env
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	in, inw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout, p.cmd.Stderr, p.cmd.Stdin, p.stdin = w, w, in, inw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	in.Close()
	t.Cleanup(func() {
		p.stdin.Close()
		p.cmd.Process.Kill()
		<-p.done
		killWatcher(t, state)
	})
	go p.follow(r)
	return p
}

// follow collects the process's output and hands each line to whoever waits
// for one, until the output ends; then it reaps the process.
func (p *tryProc) follow(r io.ReadCloser) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		p.mu.Lock()
		p.out.WriteString(sc.Text() + "\n")
		p.mu.Unlock()
		select {
		case p.lines <- sc.Text():
		default:
		}
	}
	r.Close()
	p.done <- p.cmd.Wait()
	close(p.lines)
}

func (p *tryProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// waitFor reads lines until one contains s, failing the test after d.
func (p *tryProc) waitFor(t *testing.T, s string, d time.Duration) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("try ended without printing %q:\n%s", s, p.output())
			}
			if strings.Contains(l, s) {
				return
			}
		case <-timer.C:
			t.Fatalf("try did not print %q within %v:\n%s", s, d, p.output())
		}
	}
}

// wait waits for the try to exit and returns its exit code.
func (p *tryProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	lines := p.lines
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				lines = nil
			}
			continue
		case err := <-p.done:
			p.done <- err // for the cleanup
			if ee, ok := err.(*exec.ExitError); ok {
				return ee.ExitCode()
			}
			if err != nil {
				t.Fatalf("try: %v", err)
			}
			return 0
		case <-timer.C:
			t.Fatalf("try did not exit within %v:\n%s", d, p.output())
		}
	}
}

// killWatcher kills a watcher a failed test left running.
func killWatcher(t *testing.T, state string) {
	var r struct{ PID int }
	b, err := os.ReadFile(filepath.Join(state, "try", "ready"))
	if err != nil || json.Unmarshal(b, &r) != nil || r.PID == 0 {
		return
	}
	if cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(r.PID) + "/cmdline"); strings.Contains(string(cmdline), "--watcher\x00"+filepath.Join(state, "try")) {
		t.Errorf("the try's watcher (pid %d) still runs at the end of the test; killing it", r.PID)
		syscall.Kill(r.PID, syscall.SIGKILL)
	}
}

// tryResultOf reads the watcher's result; ok is false while there is none.
func tryResultOf(t *testing.T, state string) (res struct {
	Kept   bool
	Reason string
	Errors []string
}, ok bool) {
	b, err := os.ReadFile(filepath.Join(state, "try", "result"))
	if err != nil {
		return res, false
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("try/result: %v", err)
	}
	return res, true
}

// waitReverted polls for the watcher's result until d has passed since
// from, and checks that it reverted cleanly.
func waitReverted(t *testing.T, state string, from time.Time, d time.Duration) {
	t.Helper()
	for {
		if res, ok := tryResultOf(t, state); ok {
			if res.Kept || len(res.Errors) > 0 {
				t.Fatalf("try result: %+v, want a clean revert", res)
			}
			t.Logf("reverted %v after Applied: %s", time.Since(from).Round(10*time.Millisecond), res.Reason)
			return
		}
		if time.Since(from) > d {
			log, _ := os.ReadFile(filepath.Join(state, "try", "watcher.log"))
			t.Fatalf("no revert within %v of Applied; watcher log:\n%s", d, log)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// tree is every path under root: its kind, mode and content.
func tree(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			out[rel] = "link " + l
			return err
		case fi.IsDir():
			out[rel] = "dir " + fi.Mode().Perm().String()
		default:
			b, err := os.ReadFile(p)
			out[rel] = fi.Mode().Perm().String() + "\n" + string(b)
			return err
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTree fails the test when two trees differ, naming the paths.
func sameTree(t *testing.T, what string, want, got map[string]string) {
	t.Helper()
	var diff []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diff = append(diff, "missing "+p)
		} else if g != w {
			diff = append(diff, fmt.Sprintf("changed %s:\n--- want\n%s\n--- got\n%s", p, w, g))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diff = append(diff, "extra "+p)
		}
	}
	slices.Sort(diff)
	if len(diff) > 0 {
		t.Errorf("%s: the rendered files differ:\n%s", what, strings.Join(diff, "\n"))
	}
}

// badGateway writes the seed profile with a wrong gateway for eth1, the
// reply_via_self interface: replies to SSH then go nowhere.
func badGateway(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(seedProfile)
	if err != nil {
		t.Fatal(err)
	}
	good := `gateway = "172.22.5.65"`
	if !strings.Contains(string(b), good) {
		t.Fatalf("%s has no %s", seedProfile, good)
	}
	p := filepath.Join(t.TempDir(), "bad-gateway.toml")
	if err := os.WriteFile(p, []byte(strings.Replace(string(b), good, `gateway = "172.22.5.66"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// tryMachine is the seed topology with the good seed profile rendered and
// started as the unit does, and a state directory of its own.
type tryMachine struct {
	tp     *topology
	root   string
	state  string
	files  map[string]string // the rendered tree before the try
	kernel string            // the VM's state before the try
}

func newTryMachine(t *testing.T, started bool) *tryMachine {
	t.Helper()
	m := &tryMachine{tp: newTopology(t, topoOpts{}), state: filepath.Join(t.TempDir(), "state")}
	if started {
		m.root = render(t, seedProfile, "systemd", "")
		unitRunner(t, m.tp.vm, m.state)("ExecStart", readUnit(t, m.root).start)
	} else {
		m.root = t.TempDir()
	}
	sshWorks(t, m.tp, v4)
	if t.Failed() {
		t.FailNow()
	}
	m.files, m.kernel = tree(t, m.root), snapshot(t, m.tp.vm)
	return m
}

func (m *tryMachine) try(t *testing.T, env []string, args ...string) *tryProc {
	t.Helper()
	return startTry(t, m.tp.vm, m.state, env, append([]string{"--root", m.root, "--target", "systemd"}, args...)...)
}

// confirm runs `try --confirm` in the VM as another shell would.
func (m *tryMachine) confirm(t *testing.T) (string, int) {
	t.Helper()
	out, err := try(nil, tryEnv(m.state), "ip", "netns", "exec", m.tp.vm, testenv.SelfAsNicpersist(t), "try", "--confirm")
	if ee, ok := err.(*exec.ExitError); ok {
		return out, ee.ExitCode()
	} else if err != nil {
		t.Fatalf("try --confirm: %v\n%s", err, out)
	}
	return out, 0
}

// isBack checks that the files and the kernel are as before the try, and
// SSH works.
func (m *tryMachine) isBack(t *testing.T, what string) {
	t.Helper()
	sameTree(t, what, m.files, tree(t, m.root))
	sameState(t, what, m.kernel, snapshot(t, m.tp.vm))
	sshWorks(t, m.tp, v4)
}

// TestTry runs `nicpersist try` in the seed topology: a change that cuts
// SSH reverts by itself once the session that made it is gone; a confirmed
// one stays; Ctrl-C, SIGHUP and a failed apply revert at once; a try on a
// machine where nothing was applied reverts to nothing.
func TestTry(t *testing.T) {
	need(t)
	t.Parallel()

	t.Run("session-killed", func(t *testing.T) {
		t.Parallel()
		m := newTryMachine(t, true)
		if out, code := m.confirm(t); code != 1 || !strings.Contains(out, "no try is pending") {
			t.Errorf("try --confirm with no try pending: exit %d, want 1 and \"no try is pending\":\n%s", code, out)
		}
		p := m.try(t, tryEnv(m.state), "--profile", badGateway(t), "--timeout", strconv.Itoa(tryTimeout))
		p.waitFor(t, "Applied.", cmdTimeout)
		applied := time.Now()
		// The SSH session dies: the try command with it, without a word.
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.wait(t, cmdTimeout)
		t.Logf("the try's output until it was killed:\n%s", p.output())
		sshBroken(t, m.tp, v4)
		// A second try while this one is pending is refused, and changes
		// nothing.
		second := m.try(t, tryEnv(m.state), "--profile", seedProfile)
		if code := second.wait(t, cmdTimeout); code != 1 || !strings.Contains(second.output(), "is pending") {
			t.Errorf("a second try while one is pending: exit %d, want 1 and \"is pending\":\n%s", code, second.output())
		}
		waitReverted(t, m.state, applied, (tryTimeout+5)*time.Second)
		m.isBack(t, "after the unconfirmed try")
	})

	t.Run("confirmed", func(t *testing.T) {
		t.Parallel()
		m := newTryMachine(t, true)
		bad := badGateway(t)
		p := m.try(t, tryEnv(m.state), "--profile", bad, "--timeout", strconv.Itoa(tryTimeout))
		p.waitFor(t, "Applied.", cmdTimeout)
		applied := time.Now()
		pending := snapshot(t, m.tp.vm)
		if out, code := m.confirm(t); code != 0 || !strings.Contains(out, "Confirmed") {
			t.Errorf("try --confirm: exit %d, want 0:\n%s", code, out)
		}
		if code := p.wait(t, cmdTimeout); code != 0 {
			t.Errorf("the confirmed try: exit %d, want 0:\n%s", code, p.output())
		}
		// Past the timeout, nothing moved back.
		time.Sleep(time.Until(applied.Add((tryTimeout + 1) * time.Second)))
		sameState(t, "past the confirmed try's timeout", pending, snapshot(t, m.tp.vm))
		sshBroken(t, m.tp, v4)
		// The files are the new profile's: rendering it changes nothing.
		out, err := try(nil, nil, testenv.SelfAsNicpersist(t), "render", "--root", m.root, "--profile", bad, "--target", "systemd")
		if err != nil || !strings.Contains(out, "0 changed") {
			t.Errorf("render of the confirmed profile: %v, want 0 changed:\n%s", err, out)
		}
	})

	t.Run("enter-confirms", func(t *testing.T) {
		t.Parallel()
		m := newTryMachine(t, false)
		// A root relative to the working directory: the watcher works from /.
		wd, err := os.Getwd()
		if err != nil {
			t.Fatal(err)
		}
		rel, err := filepath.Rel(wd, m.root)
		if err != nil {
			t.Fatal(err)
		}
		p := startTry(t, m.tp.vm, m.state, tryEnv(m.state), "--root", rel, "--target", "systemd", "--profile", seedProfile, "--timeout", strconv.Itoa(tryTimeout))
		p.waitFor(t, "Applied.", cmdTimeout)
		p.stdin.Write([]byte("\n"))
		if code := p.wait(t, cmdTimeout); code != 0 || !strings.Contains(p.output(), "Confirmed") {
			t.Errorf("try confirmed with Enter: exit %d, want 0:\n%s", code, p.output())
		}
		throughVM(t, m.tp, v4)
		sshWorks(t, m.tp, v4)
	})

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGHUP} {
		t.Run(map[syscall.Signal]string{syscall.SIGINT: "ctrl-c", syscall.SIGHUP: "sighup"}[sig], func(t *testing.T) {
			t.Parallel()
			m := newTryMachine(t, true)
			// A long timeout: the revert must come from the signal.
			p := m.try(t, tryEnv(m.state), "--profile", badGateway(t), "--timeout", "600")
			p.waitFor(t, "Applied.", cmdTimeout)
			p.cmd.Process.Signal(sig)
			if code := p.wait(t, cmdTimeout); code != 1 || !strings.Contains(p.output(), "Reverted") {
				t.Errorf("try after %v: exit %d, want 1 and Reverted:\n%s", sig, code, p.output())
			}
			t.Logf("output:\n%s", p.output())
			res, ok := tryResultOf(t, m.state)
			if !ok || res.Kept || len(res.Errors) > 0 {
				t.Fatalf("try result after %v: %+v, want a clean revert", sig, res)
			}
			m.isBack(t, "after "+sig.String())
		})
	}

	// A real terminal: Enter confirms; the terminal hanging up (sshd
	// closing the pty master as the session dies) reverts at once, and the
	// watcher, in a session of its own, is not hung up with it.
	for _, hangup := range []bool{false, true} {
		t.Run(map[bool]string{false: "terminal-enter", true: "terminal-hangup"}[hangup], func(t *testing.T) {
			t.Parallel()
			m := newTryMachine(t, true)
			bad := badGateway(t)
			master, slave := openPTY(t)
			bin := testenv.SelfAsNicpersist(t)
			cmd := exec.Command("ip", "netns", "exec", m.tp.vm, bin, "try", "--root", m.root, "--target", "systemd", "--profile", bad, "--timeout", "600")
			cmd.Env = tryEnv(m.state)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, slave, slave
			cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			slave.Close()
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-done
				killWatcher(t, m.state)
			})
			var out strings.Builder
			sc := bufio.NewScanner(master)
			for !strings.Contains(out.String(), "Applied.") {
				if !sc.Scan() {
					t.Fatalf("try ended without Applied:\n%s", out.String())
				}
				out.WriteString(sc.Text() + "\n")
			}
			if !hangup {
				master.Write([]byte("\n"))
				for sc.Scan() {
					out.WriteString(sc.Text() + "\n")
				}
				master.Close()
				if err := <-done; err != nil || !strings.Contains(out.String(), "Confirmed") {
					t.Errorf("Enter on the terminal: %v, want exit 0 and Confirmed:\n%s", err, out.String())
				}
				done <- nil
				if res, ok := tryResultOf(t, m.state); !ok || !res.Kept {
					t.Errorf("try result after Enter: %+v, want kept", res)
				}
				sshBroken(t, m.tp, v4)
				return
			}
			master.Close()
			select {
			case err := <-done:
				done <- err
				if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 && ee.ExitCode() != -1 {
					t.Errorf("try after the hangup: %v, want exit 1 (or death by the hangup)", err)
				}
			case <-time.After(cmdTimeout):
				t.Fatal("try still runs 30 s after its terminal hung up")
			}
			for deadline := time.Now().Add(cmdTimeout); ; time.Sleep(100 * time.Millisecond) {
				if res, ok := tryResultOf(t, m.state); ok {
					if res.Kept || len(res.Errors) > 0 || !strings.Contains(res.Reason, "the terminal went away") {
						t.Errorf("try result after the hangup: %+v, want a clean revert because the terminal went away", res)
					}
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("no revert 30 s after the hangup")
				}
			}
			m.isBack(t, "after the terminal hung up")
		})
	}

	t.Run("failed-apply", func(t *testing.T) {
		t.Parallel()
		m := newTryMachine(t, true)
		// eth4 is not in the namespace: the apply waits NICPERSIST_WAIT for
		// it, fails, and the try reverts.
		b, err := os.ReadFile(seedProfile)
		if err != nil {
			t.Fatal(err)
		}
		prof := filepath.Join(t.TempDir(), "eth4.toml")
		b = append(b, "\n[[interface]]\nname = \"eth4\"\naddress = \"10.44.0.1/24\"\ngateway = \"10.44.0.254\"\nreply_via_self = true\n"...)
		if err := os.WriteFile(prof, b, 0o644); err != nil {
			t.Fatal(err)
		}
		p := m.try(t, tryEnv(m.state), "--profile", prof, "--timeout", "600")
		if code := p.wait(t, cmdTimeout); code != 1 || !strings.Contains(p.output(), "applying failed") || strings.Contains(p.output(), "Applied.") {
			t.Errorf("try with eth4 missing: exit %d, want 1 and \"applying failed\" without \"Applied.\":\n%s", code, p.output())
		}
		t.Logf("output:\n%s", p.output())
		m.isBack(t, "after the failed apply")
	})

	t.Run("failing-ip", func(t *testing.T) {
		t.Parallel()
		m := newTryMachine(t, true)
		// ip fails on the new files' batch (the one with the wrong gateway)
		// and works on the old ones, which the revert starts from.
		p := m.try(t, tryEnv(m.state, failingIPOn(t, "172.22.5.66")), "--profile", badGateway(t), "--timeout", "600")
		if code := p.wait(t, cmdTimeout); code != 1 || !strings.Contains(p.output(), "applying failed") {
			t.Errorf("try with ip failing: exit %d, want 1 and \"applying failed\":\n%s", code, p.output())
		}
		m.isBack(t, "after ip failed")
	})

	t.Run("nothing-before", func(t *testing.T) {
		t.Parallel()
		m := newTryMachine(t, false)
		p := m.try(t, tryEnv(m.state), "--profile", seedProfile, "--timeout", strconv.Itoa(tryTimeout))
		p.waitFor(t, "Applied.", cmdTimeout)
		applied := time.Now()
		throughVM(t, m.tp, v4)
		if code := p.wait(t, (tryTimeout+5)*time.Second); code != 1 || !strings.Contains(p.output(), "no confirmation within") {
			t.Errorf("unconfirmed try: exit %d, want 1 and \"no confirmation within\":\n%s", code, p.output())
		}
		waitReverted(t, m.state, applied, (tryTimeout+5)*time.Second)
		if got := tree(t, m.root); len(got) != 1 {
			t.Errorf("after the revert the root holds %v, want nothing", slices.Sorted(func(yield func(string) bool) {
				for p := range got {
					yield(p)
				}
			}))
		}
		m.isBack(t, "after the revert to nothing")
		notThroughVM(t, m.tp, v4)
	})
}

// failingIPOn writes an `ip` wrapper that fails when a batch file it is
// given holds text, and runs the real ip otherwise; it returns the PATH
// that puts it first.
func failingIPOn(t *testing.T, text string) string {
	return ipWrapper(t, "! { [ -f \"$a\" ] && grep -qF '"+text+"' \"$a\"; }")
}

// TestTryBootNspawn runs try where systemd is PID 1 and nicpersist.service
// is active, in the booted container of TestBootNspawn: the watcher is the
// transient unit nicpersist-try.service, which outlives the killed session
// and reverts through the unit (systemctl reload); a confirmed try stays,
// and the unit's own reload then finds its state coherent.
func TestTryBootNspawn(t *testing.T) {
	need(t, "systemd-nspawn", "nsenter")
	t.Parallel()
	root := render(t, e2eProfile, "systemd", "")
	b, err := os.ReadFile(e2eProfile)
	if err != nil {
		t.Fatal(err)
	}
	good := `gateway = "172.22.5.65"`
	if !strings.Contains(string(b), good) {
		t.Fatalf("%s has no %s", e2eProfile, good)
	}
	// In the container's /etc (the overlay's lower layer).
	bad := "/etc/nicpersist/bad-gateway.toml"
	if err := os.WriteFile(filepath.Join(root, bad), []byte(strings.Replace(string(b), good, `gateway = "172.22.5.66"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	tp := newTopology(t, topoOpts{})
	c := bootContainer(t, tp.vm, root)
	st := c.waitUnit(t, 60*time.Second, func(p map[string]string) bool {
		return p["ActiveState"] != "inactive" && p["ActiveState"] != "activating"
	})
	if st["ActiveState"] != "active" {
		t.Fatalf("nicpersist.service is %s/%s, want active\n%s", st["ActiveState"], st["SubState"], c.status(t))
	}
	sshWorks(t, tp, v4)
	// The container's view of its files, from the host.
	ctr := func(p string) string { return filepath.Join("/proc", itoa(c.pid1), "root", p) }
	rendered := func() map[string]string {
		out := tree(t, ctr("/etc/nicpersist"))
		for _, f := range []string{"/" + unitRel, "/etc/sysctl.d/90-nicpersist.conf"} {
			b, err := os.ReadFile(ctr(f))
			if err != nil {
				t.Fatal(err)
			}
			out[f] = string(b)
		}
		return out
	}
	files, kernel := rendered(), snapshot(t, tp.vm)
	tryUnit := func() string {
		out, _ := try(nil, nil, "nsenter", "-t", itoa(c.pid1), "-a", "systemctl", "show", "nicpersist-try.service", "-p", "ActiveState")
		return strings.TrimSpace(out)
	}

	// The session: nsenter and the try it forks, in one process group that
	// the test kills as sshd's death would.
	start := func(args ...string) *tryProc {
		p := &tryProc{lines: make(chan string, 100), done: make(chan error, 1)}
		p.cmd = exec.Command("nsenter", append([]string{"-t", itoa(c.pid1), "-a", distro.Binary, "try"}, args...)...)
		p.cmd.Env = []string{"PATH=" + unitPATH}
		p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		p.cmd.Stdout, p.cmd.Stderr = w, w
		if err := p.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		t.Cleanup(func() {
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
			p.done <- nil
		})
		go p.follow(r)
		return p
	}

	p := start("--profile", bad, "--timeout", strconv.Itoa(tryTimeout))
	p.waitFor(t, "Applied.", cmdTimeout)
	applied := time.Now()
	syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
	p.wait(t, cmdTimeout)
	if s := tryUnit(); s != "ActiveState=active" {
		t.Errorf("while the try is pending, nicpersist-try.service: %s, want active", s)
	}
	if rec, err := os.ReadFile(ctr("/run/nicpersist/try/try.json")); err != nil || !strings.Contains(string(rec), `"systemctl": true`) {
		t.Errorf("the try does not apply through the active unit (systemctl reload): %v\n%.400s", err, rec)
	}
	sshBroken(t, tp, v4)
	for {
		b, err := os.ReadFile(ctr("/run/nicpersist/try/result"))
		if err == nil && strings.Contains(string(b), `"kept": false`) {
			t.Logf("reverted %v after Applied:\n%s", time.Since(applied).Round(10*time.Millisecond), b)
			break
		}
		if time.Since(applied) > (tryTimeout+5)*time.Second {
			out, _ := try(nil, nil, "nsenter", "-t", itoa(c.pid1), "-a", "journalctl", "--no-pager", "-u", "nicpersist-try", "-u", "nicpersist")
			t.Fatalf("no revert within %v of Applied (result: %s %v); journal:\n%s", (tryTimeout+5)*time.Second, b, err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sameTree(t, "after the unconfirmed try", files, rendered())
	sameState(t, "after the unconfirmed try", kernel, snapshot(t, tp.vm))
	sshWorks(t, tp, v4)
	if st := c.unit(t); st["ActiveState"] != "active" {
		t.Errorf("after the try, nicpersist.service is %s/%s, want active", st["ActiveState"], st["SubState"])
	}
	journal, _ := try(nil, nil, "nsenter", "-t", itoa(c.pid1), "-a", "journalctl", "--no-pager", "-o", "cat", "-u", "nicpersist-try", "-u", "nicpersist")
	if !strings.Contains(journal, "Reloading") || !strings.Contains(journal, "no confirmation within") {
		t.Errorf("the journal does not show the unit reloading and the watcher reverting:\n%s", journal)
	}
	t.Logf("journal of nicpersist and nicpersist-try:\n%s", journal)

	// Confirmed: the change stays, and the unit's own reload finds its
	// state coherent with it (changes nothing).
	p = start("--profile", bad, "--timeout", "600")
	p.waitFor(t, "Applied.", cmdTimeout)
	pending := snapshot(t, tp.vm)
	out, err := try(nil, []string{"PATH=" + unitPATH}, "nsenter", "-t", itoa(c.pid1), "-a", distro.Binary, "try", "--confirm")
	if err != nil || !strings.Contains(out, "Confirmed") {
		t.Errorf("try --confirm: %v\n%s", err, out)
	}
	if code := p.wait(t, cmdTimeout); code != 0 {
		t.Errorf("the confirmed try: exit %d, want 0\n%s", code, p.output())
	}
	c.systemctl(t, "reload", "nicpersist.service")
	sameState(t, "systemctl reload after the confirmed try", pending, snapshot(t, tp.vm))
	sshBroken(t, tp, v4)
	for deadline := time.Now().Add(10 * time.Second); tryUnit() != "ActiveState=inactive"; time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("nicpersist-try.service: %s 10 s after the confirmation, want it gone (inactive)", tryUnit())
			break
		}
	}
}

// openPTY opens a pseudo-terminal pair: the master, as sshd holds it, and
// the slave, the session's terminal.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlock pty: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("pty number: %v", e)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(int(n)), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return master, slave
}
