// Package testenv says whether a test can run on this machine: root, the
// programs it runs, working network namespaces. A test that cannot run
// skips and says why, except under NICPERSIST_E2E=1 (which .ci/run sets),
// where the skip is a failure: a green CI run means every test ran.
package testenv

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Environment variables the tests read.
const (
	// Require turns every skip into a failure.
	Require = "NICPERSIST_E2E"
	// FakeNonRoot makes the tests act as if they did not run as root, to
	// check that `go test ./...` skips cleanly for an ordinary user.
	FakeNonRoot = "NICPERSIST_E2E_FAKE_NONROOT"
)

// Root says whether the tests may act as root.
func Root() bool { return os.Geteuid() == 0 && os.Getenv(FakeNonRoot) != "1" }

// Need skips t (fails it under NICPERSIST_E2E=1) unless it can run here.
// rootFor says what it needs root for ("" when it does not); tools must be
// on PATH; with a netns prefix, the test makes network namespaces named
// <prefix><pid>-..., so `ip netns` must work, and namespaces of that prefix
// left by a killed run are deleted first.
func Need(t testing.TB, rootFor string, netns string, tools ...string) {
	t.Helper()
	Skip(t, Why(rootFor, netns, tools...))
}

// Why says, as Need would, why a test cannot run here, or "" when it can.
func Why(rootFor string, netns string, tools ...string) string {
	var why []string
	if rootFor != "" && !Root() {
		why = append(why, "needs root to "+rootFor)
	}
	if netns != "" {
		tools = append([]string{"ip"}, tools...)
	}
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			why = append(why, "needs "+tool+" on PATH")
		}
	}
	if len(why) == 0 && netns != "" {
		if err := netnsWorks(netns); err != nil {
			why = append(why, err.Error())
		}
	}
	return strings.Join(why, "; ")
}

// Skip skips t with the reason, or fails it under NICPERSIST_E2E=1; an empty
// reason does nothing.
func Skip(t testing.TB, why string) {
	t.Helper()
	if why == "" {
		return
	}
	if os.Getenv(Require) == "1" {
		t.Fatalf("%s, and %s=1 forbids skipping", why, Require)
	}
	t.Skipf("skipping: %s (run as root with the tools installed, as .ci/run does)", why)
}

// Netns makes the network namespace <prefix><pid>-<suffix> (the form Sweep
// knows) and deletes it when t ends; a namespace that will not go fails t,
// since it would outlive the run.
func Netns(t testing.TB, prefix, suffix string) string {
	t.Helper()
	name := prefix + strconv.Itoa(os.Getpid()) + "-" + suffix
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, bytes.TrimSpace(out))
		}
	})
	return name
}

// probes remembers, per namespace prefix, whether `ip netns` worked: one
// probe per test binary.
var probes sync.Map // prefix -> func() error (sync.OnceValue)

func netnsWorks(prefix string) error {
	f, _ := probes.LoadOrStore(prefix, sync.OnceValue(func() error {
		Sweep(prefix)
		name := fmt.Sprintf("%s%d-probe", prefix, os.Getpid())
		if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
			return fmt.Errorf("`ip netns add` does not work here: %v: %s", err, bytes.TrimSpace(out))
		}
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			return fmt.Errorf("`ip netns del` does not work here: %v: %s", err, bytes.TrimSpace(out))
		}
		return nil
	}))
	return f.(func() error)()
}

// Sweep deletes the namespaces <prefix><pid>-... whose test process is gone
// (a run killed before its cleanups). A live process of that pid that is a
// Go test binary is another run in progress: its namespaces stay.
func Sweep(prefix string) {
	re := regexp.MustCompile(`^` + regexp.QuoteMeta(prefix) + `(\d+)-`)
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		m := re.FindStringSubmatch(e.Name())
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		if pid == os.Getpid() {
			continue
		}
		if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid)); err == nil && strings.HasSuffix(strings.TrimSpace(string(comm)), ".test") {
			continue
		}
		exec.Command("ip", "netns", "del", e.Name()).Run()
	}
}

// Main is a TestMain that makes the test binary nicpersist itself when it
// runs under that name (through SelfAsNicpersist): a test can then run the
// code under test as a process of its own (to kill it, or as the rendered
// unit's /usr/bin/nicpersist), without `go build` and the go tool on PATH.
func Main(m *testing.M, nicpersist func(args []string, stdout, stderr io.Writer) int) {
	if filepath.Base(os.Args[0]) == "nicpersist" {
		os.Exit(nicpersist(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// SelfAsNicpersist returns a path named nicpersist that runs this test
// binary, which Main turns into nicpersist.
func SelfAsNicpersist(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "nicpersist")
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	return link
}
