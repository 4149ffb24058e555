package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/nicpersist/nicpersist/render/cli"
	"github.com/nicpersist/nicpersist/render/internal/changeset"
	"github.com/nicpersist/nicpersist/render/internal/distro"
	"github.com/nicpersist/nicpersist/render/testenv"
)

// TestMain lets the rendered unit's `/usr/bin/nicpersist apply ...` run the
// code under test, in the namespace, as a separate process as at boot.
func TestMain(m *testing.M) { testenv.Main(m, cli.Main) }

// Namespaces are named np-e2e-<pid>-<random>-<role>: the pid lets a later run
// tell its own namespaces from those of a crashed run.
const nsPrefix = "np-e2e-"

const (
	cmdTimeout  = 30 * time.Second        // any one command
	dialOK      = 2 * time.Second         // a connection that must work
	dialFail    = 1500 * time.Millisecond // a connection that must not
	applyWait   = "10"                    // NICPERSIST_WAIT for the unit
	unitPATH    = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	e2eProfile  = "testdata/dualstack.toml"
	seedProfile = "../../packaging/profile.example.toml"
)

// need skips the test (fails it under NICPERSIST_E2E=1) when the machine
// cannot run it: not root, a tool missing, or `ip netns` not working.
func need(t testing.TB, tools ...string) {
	t.Helper()
	testenv.Need(t, "make network namespaces", nsPrefix,
		append([]string{"sh", "iptables", "iptables-save", "ip6tables", "ip6tables-save"}, tools...)...)
}

func randHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// run runs a command and returns its combined output, failing the test on a
// non-zero exit.
func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := try(nil, nil, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// try runs a command with a timeout and returns its combined output.
func try(stdin []byte, env []string, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	if env != nil {
		cmd.Env = env
	}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ipBatch runs `ip -n ns -batch -` (ns "" for the host) with the given lines.
func ipBatch(t testing.TB, ns string, lines ...string) {
	t.Helper()
	args := []string{"-batch", "-"}
	if ns != "" {
		args = append([]string{"-n", ns}, args...)
	}
	if out, err := try([]byte(strings.Join(lines, "\n")+"\n"), nil, "ip", args...); err != nil {
		t.Fatalf("ip %s: %v\n%s\ninput:\n%s", strings.Join(args, " "), err, out, strings.Join(lines, "\n"))
	}
}

// sysSetns is setns(2)'s number; package syscall does not define it and the
// module does not require golang.org/x/sys.
var sysSetns = map[string]uintptr{"amd64": 308, "arm64": 268, "riscv64": 268, "386": 346, "arm": 375, "ppc64le": 350, "s390x": 339}

// inNetns runs fn on an OS thread that has joined the named namespace. The
// thread stays locked and dies with the goroutine, so no other goroutine ever
// runs in that namespace; sockets made by fn stay in it.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread exits with this goroutine
		f, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		nr, ok := sysSetns[runtime.GOARCH]
		if !ok {
			errc <- fmt.Errorf("setns: syscall number unknown on %s", runtime.GOARCH)
			return
		}
		if _, _, e := syscall.RawSyscall(nr, f.Fd(), syscall.CLONE_NEWNET, 0); e != 0 {
			errc <- fmt.Errorf("setns %s: %w", ns, e)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// sysctls writes /proc/sys values ("net.ipv4.ip_forward" style keys) in ns.
func sysctls(t testing.TB, ns string, kv ...string) {
	t.Helper()
	err := inNetns(ns, func() error {
		for i := 0; i+1 < len(kv); i += 2 {
			p := "/proc/sys/" + strings.ReplaceAll(kv[i], ".", "/")
			if err := os.WriteFile(p, []byte(kv[i+1]+"\n"), 0o644); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("sysctl in %s: %v", ns, err)
	}
}

// serve listens on addr in ns and answers every connection with the peer's
// address and a newline: the test's Internet server and SSH stand-in.
func serve(t testing.TB, ns, addr string) {
	t.Helper()
	var ln net.Listener
	err := inNetns(ns, func() (err error) {
		ln, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatalf("listen %s in %s: %v", addr, ns, err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
			c.SetWriteDeadline(time.Now().Add(dialOK))
			fmt.Fprintf(c, "%s\n", ap.Addr().Unmap())
			c.Close()
		}
	}()
}

// dial connects from ns to addr and returns what the server says it sees as
// the peer address.
func dial(ns, addr string, timeout time.Duration) (string, error) {
	var seen string
	err := inNetns(ns, func() error {
		c, err := net.DialTimeout("tcp", addr, timeout)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(timeout))
		line, err := bufio.NewReader(c).ReadString('\n')
		if err != nil {
			return fmt.Errorf("read from %s: %w", addr, err)
		}
		seen = strings.TrimSpace(line)
		return nil
	})
	return seen, err
}

// render renders profile into a new root for target (and rhel stack).
func render(t testing.TB, profile, target, stack string) string {
	t.Helper()
	return renderOver(t, profile, target, stack, nil)
}

// renderOver is render into a root that first holds files (path relative
// to the root: text), as a machine's own configuration.
func renderOver(t testing.TB, profile, target, stack string, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for p, text := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"render", "--root", root, "--profile", profile, "--target", target}
	if stack != "" {
		args = append(args, "--rhel-stack", stack)
	}
	var out, errb bytes.Buffer
	if code := cli.Main(args, &out, &errb); code != 0 {
		t.Fatalf("nicpersist %s: exit %d\n%s%s", strings.Join(args, " "), code, out.String(), errb.String())
	}
	return root
}

// unitCommands is what the rendered nicpersist.service runs, read from the
// unit file with go-systemd's parser (not copied into the test).
type unitCommands struct {
	start, reload, stop [][]string
}

const unitRel = "etc/systemd/system/nicpersist.service"

// readUnit parses the rendered unit and maps /etc/nicpersist in its command
// lines to the render root's copy, and /usr/bin/nicpersist to this test
// binary (see TestMain).
func readUnit(t testing.TB, root string) unitCommands {
	t.Helper()
	f, err := os.Open(filepath.Join(root, unitRel))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	opts, err := unit.DeserializeOptions(f)
	if err != nil {
		t.Fatalf("%s: %v", unitRel, err)
	}
	var u unitCommands
	for _, o := range opts {
		if o.Section != "Service" {
			continue
		}
		var dst *[][]string
		switch o.Name {
		case "ExecStart":
			dst = &u.start
		case "ExecReload":
			dst = &u.reload
		case "ExecStop":
			dst = &u.stop
		default:
			continue
		}
		argv := strings.Fields(o.Value)
		if len(argv) == 0 {
			continue
		}
		// The command line prefixes of systemd.service(5) ("-", "@", ...)
		// change how systemd treats the result; nicpersist uses none.
		if p := strings.TrimLeft(argv[0], "-@:+!"); p != argv[0] {
			t.Fatalf("%s: %s=%s: unexpected prefix", unitRel, o.Name, o.Value)
		}
		for i, a := range argv {
			switch {
			case a == "/etc/nicpersist" || strings.HasPrefix(a, "/etc/nicpersist/"):
				argv[i] = filepath.Join(root, a)
			case a == distro.Binary:
				argv[i] = testenv.SelfAsNicpersist(t)
			}
		}
		*dst = append(*dst, argv)
	}
	if len(u.start) == 0 || len(u.reload) == 0 || len(u.stop) == 0 {
		t.Fatalf("%s: want ExecStart, ExecReload and ExecStop, got %+v", unitRel, u)
	}
	return u
}

// execUnit runs command lines of the unit inside ns, with the clean
// environment systemd gives a service and the unit's state in stateDir.
func execUnit(ns, stateDir string, cmds [][]string, env ...string) (string, error) {
	env = append([]string{"PATH=" + unitPATH, "NICPERSIST_STATE=" + stateDir, "NICPERSIST_WAIT=" + applyWait}, env...)
	var all strings.Builder
	for _, argv := range cmds {
		out, err := try(nil, env, "ip", append([]string{"netns", "exec", ns}, argv...)...)
		all.WriteString(out)
		if err != nil {
			return all.String(), fmt.Errorf("%s: %w", strings.Join(argv, " "), err)
		}
	}
	return all.String(), nil
}

// unitRunner returns a function that runs command lines of the unit in ns
// with its state in stateDir and fails the test if they fail.
func unitRunner(t *testing.T, ns, stateDir string) func(what string, cmds [][]string) {
	return func(what string, cmds [][]string) {
		t.Helper()
		if out, err := execUnit(ns, stateDir, cmds); err != nil {
			t.Fatalf("%s: %v\n%s", what, err, out)
		}
	}
}

// snapshotScript prints the VM's routing, NAT and sysctl state in a form that
// does not change with traffic (no counters, no timestamps).
const snapshotScript = `
for f in 4 6; do
	echo "## ip -$f rule"; ip -$f rule show
	echo "## ip -$f route show table all"; ip -$f route show table all
done
for c in iptables ip6tables; do
	echo "## $c-save"; $c-save 2>/dev/null | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]$//'
done
# nicpersist's nftables table, and the legacy iptables, which iptables-save
# (iptables-nft) does not show.
echo "## nft list table inet nicpersist"; nft list table inet nicpersist 2>/dev/null
for c in iptables-legacy ip6tables-legacy; do
	command -v $c-save >/dev/null || continue
	echo "## $c-save"; $c-save 2>/dev/null | grep -v '^#' | sed 's/ \[[0-9]*:[0-9]*\]$//'
done
echo "## sysctl"
for k in net/ipv4/ip_forward net/ipv6/conf/all/forwarding \
	net/ipv4/conf/all/rp_filter net/ipv4/conf/default/rp_filter; do
	echo "$k $(cat /proc/sys/$k)"
done
for d in eth1 eth2 eth3; do
	echo "$d $(cat /proc/sys/net/ipv4/conf/$d/rp_filter) $(cat /proc/sys/net/ipv6/conf/$d/forwarding)"
done
`

// snapshot returns the state snapshotScript prints, with each route listing
// sorted: the kernel lists routes of equal prefix and metric in the order they
// were added, which a link bounce changes without changing what is routed.
func snapshot(t testing.TB, ns string) string {
	t.Helper()
	out := run(t, "ip", "netns", "exec", ns, "sh", "-c", snapshotScript)
	var b strings.Builder
	for _, sec := range strings.SplitAfter(out, "\n## ") {
		lines := strings.Split(strings.TrimSuffix(sec, "\n## "), "\n")
		if strings.Contains(lines[0], "route show") {
			slices.Sort(lines[1:])
		}
		if strings.HasSuffix(lines[0], "-save") {
			lines = append(lines[:1], dropEmptyTables(lines[1:])...)
		}
		b.WriteString(strings.Join(lines, "\n"))
		if strings.HasSuffix(sec, "\n## ") {
			b.WriteString("\n## ")
		}
	}
	return b.String()
}

// dropEmptyTables leaves out of iptables-save output the tables with no
// rule and every policy ACCEPT: iptables-nft keeps a table whose chains
// were once used (by nicpersist's jump, or by a test setting a policy),
// and such a table does nothing to a packet.
func dropEmptyTables(lines []string) []string {
	var out, table []string
	empty := true
	for _, l := range lines {
		switch {
		case strings.HasPrefix(l, "*"):
			table, empty = []string{l}, true
		case table != nil:
			table = append(table, l)
			if l == "COMMIT" {
				if !empty {
					out = append(out, table...)
				}
				table = nil
			} else if !strings.HasPrefix(l, ":") || !strings.HasSuffix(l, " ACCEPT") {
				empty = false
			}
		default:
			out = append(out, l)
		}
	}
	return out
}

// sameState fails the test with a line diff when two snapshots differ.
func sameState(t testing.TB, what, want, got string) {
	t.Helper()
	if want == got {
		return
	}
	d := changeset.Change{Path: "kernel-state", Status: changeset.Updated, Old: []byte(want + "\n"), New: []byte(got + "\n")}.Diff()
	t.Errorf("%s: kernel state differs (- want, + got):\n%s", what, d)
}

// fileLines returns the non-comment, non-blank lines of a rendered file, or
// nil when it does not exist.
func fileLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	return lines
}

var pidSelf = os.Getpid()

func itoa(i int) string { return strconv.Itoa(i) }

// failingIP writes an `ip` wrapper that fails when one of its arguments ends
// with suffix (a batch file of the unit's state, such as "ip6.main.new") and
// runs the real ip otherwise. It returns the PATH that puts it first.
func failingIP(t testing.TB, suffix string) string {
	return ipWrapper(t, "case $a in *"+suffix+") false ;; esac")
}

// ipWrapper writes an `ip` that runs check, a shell test, on each argument
// $a, fails when one check fails, and runs the real ip otherwise. It
// returns the PATH that puts it first.
func ipWrapper(t testing.TB, check string) string {
	t.Helper()
	real, err := exec.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	if real, err = filepath.Abs(real); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	script := "#!/bin/sh\nfor a in \"$@\"; do\n\t" + check + " || { echo \"injected failure: ip $*\" >&2; exit 1; }\ndone\nexec " + real + " \"$@\"\n"
	if err := os.WriteFile(filepath.Join(dir, "ip"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return "PATH=" + dir + ":" + unitPATH
}
