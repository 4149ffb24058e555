package cli

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nicpersist/nicpersist/render/internal/distro"
	"github.com/nicpersist/nicpersist/render/testenv"
)

// Fault injection: a render that cannot finish (full disk, read-only root,
// a symbolic link out of the root, kill -9) must leave every file whole
// (its old or its new version), write nothing outside the root, say what
// happened with exit 1, and the next render, whatever its profile, must
// give the tree a clean render of that profile gives. They mount file
// systems, so they need root; elsewhere they skip, and with NICPERSIST_E2E=1
// (as in .ci/run) a skip is a failure (see need in validate_test.go).

// faultCase is the pair of profiles the tests switch between: the shipped
// seed (IPv4) and a larger dual-stack profile that adds files (ip6.batch,
// ip6tables.rules) and lines. Both live in one directory outside the root,
// so their paths (in each file's header) are stable.
type faultCase struct {
	dir        string // holds a.toml, b.toml and the roots of clean renders
	a, b       string
	args       []string                     // --target ...
	cleanEmpty map[string]map[string]string // clean renders into an empty root, by profile
}

func newFaultCase(t *testing.T, big int, args ...string) *faultCase {
	t.Helper()
	dir := t.TempDir()
	fc := &faultCase{dir: dir, a: filepath.Join(dir, "a.toml"), b: filepath.Join(dir, "b.toml"), args: args, cleanEmpty: map[string]map[string]string{}}
	seed, err := os.ReadFile(exampleProfile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fc.a, seed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fc.b, []byte(benchProfile(big)), 0o644); err != nil {
		t.Fatal(err)
	}
	return fc
}

// render runs the command in process.
func (fc *faultCase) render(root, prof string) (string, string, int) {
	return run(append([]string{"render", "--root", root, "--profile", prof}, fc.args...)...)
}

// clean is the tree a render of prof gives a root made by setup. The render
// into an empty root (setup nil) is the same every time, and takes seconds
// for 10,000 routes, so it is made once per profile; callers must not change
// the map.
func (fc *faultCase) clean(t *testing.T, prof string, setup func(root string)) map[string]string {
	t.Helper()
	if setup == nil {
		if m, ok := fc.cleanEmpty[prof]; ok {
			return m
		}
	}
	root := t.TempDir()
	if setup != nil {
		setup(root)
	}
	if _, errOut, code := fc.render(root, prof); code != 0 {
		t.Fatalf("clean render of %s: exit %d\n%s", prof, code, errOut)
	}
	m := snapshot(t, root)
	if setup == nil {
		fc.cleanEmpty[prof] = m
	}
	return m
}

// withoutDirRecords drops the manifest's "dir" lines from a tree: which
// directories a render created depends on what the root held before it,
// and the fault tests make some (the parent of a link, a mount point)
// that a clean render into an empty root creates itself.
func withoutDirRecords(tree map[string]string) map[string]string {
	m, ok := tree[distro.Manifest]
	if !ok {
		return tree
	}
	var keep []string
	for _, l := range strings.SplitAfter(m, "\n") {
		if !strings.HasPrefix(l, "dir ") {
			keep = append(keep, l)
		}
	}
	out := maps.Clone(tree)
	out[distro.Manifest] = strings.Join(keep, "")
	return out
}

// faultWhole checks that each path holds one of the allowed versions of
// it ("" in a version means absent there) and that no temporary file is
// left.
func faultWhole(t *testing.T, got map[string]string, versions ...map[string]string) {
	t.Helper()
	got = withoutDirRecords(got)
	for i := range versions {
		versions[i] = withoutDirRecords(versions[i])
	}
	paths := map[string]bool{}
	for p := range got {
		paths[p] = true
	}
	for _, v := range versions {
		for p := range v {
			paths[p] = true
		}
	}
	var bad []string
	for p := range paths {
		if strings.Contains(filepath.Base(p), ".nicpersist-tmp-") {
			bad = append(bad, p+": temporary file left behind")
			continue
		}
		g, present := got[p]
		ok := false
		for _, v := range versions {
			w, in := v[p]
			if present == in && g == w {
				ok = true
			}
		}
		if !ok {
			state := "partial or foreign content"
			if !present {
				state = "missing, but present in every version"
			}
			bad = append(bad, p+": "+state)
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// faultSame checks that a tree is exactly the clean one, apart from paths
// the test put there itself (keep): a file a stopped render left behind, or
// a temporary file, is a failure.
func faultSame(t *testing.T, what string, got, want map[string]string, keep ...string) {
	t.Helper()
	got, want = withoutDirRecords(faultWithout(got, keep...)), withoutDirRecords(want)
	var diffs []string
	for p, w := range want {
		if g, ok := got[p]; !ok {
			diffs = append(diffs, p+": missing")
		} else if g != w {
			diffs = append(diffs, p+": differs at "+firstDiff(g, w))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, p+": left over (a clean render does not have it)")
		}
	}
	sort.Strings(diffs)
	for _, d := range diffs {
		t.Errorf("%s: %s", what, d)
	}
}

// faultTemps removes temporary files from a snapshot and returns their paths.
func faultTemps(m map[string]string) []string {
	var out []string
	for p := range m {
		if strings.Contains(filepath.Base(p), ".nicpersist-tmp-") {
			out = append(out, p)
			delete(m, p)
		}
	}
	sort.Strings(out)
	return out
}

func faultWithout(m map[string]string, keep ...string) map[string]string {
	out := map[string]string{}
	for p, v := range m {
		drop := false
		for _, k := range keep {
			if p == k || strings.HasPrefix(p, k+"/") {
				drop = true
			}
		}
		if !drop {
			out[p] = v
		}
	}
	return out
}

// faultConverges renders each profile in turn after a failure was fixed and
// compares with a clean render of it: leftovers of the failed render (files
// or temporary files it created) show up here.
func faultConverges(t *testing.T, fc *faultCase, root string, setup func(string), keep ...string) {
	t.Helper()
	cleanA, cleanB := fc.clean(t, fc.a, setup), fc.clean(t, fc.b, setup)
	for i, prof := range []string{fc.a, fc.b, fc.a} {
		if _, errOut, code := fc.render(root, prof); code != 0 {
			t.Fatalf("render of %s after the fault was fixed: exit %d\n%s", filepath.Base(prof), code, errOut)
		}
		want := cleanA
		if prof == fc.b {
			want = cleanB
		}
		faultSame(t, fmt.Sprintf("after the fault, render %d (%s)", i+1, filepath.Base(prof)), snapshot(t, root), want, keep...)
		if t.Failed() {
			return
		}
	}
}

// faultMount mounts a tmpfs on dir and unmounts it when the test ends.
func faultMount(t *testing.T, dir, opts string) {
	t.Helper()
	if err := syscall.Mount("nicpersist-fault", dir, "tmpfs", 0, opts); err != nil {
		t.Fatalf("mount tmpfs (%s) on %s: %v", opts, dir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// faultOutside is a directory beside the root that nothing may write to.
func faultOutside(t *testing.T) string {
	t.Helper()
	d := filepath.Join(t.TempDir(), "outside")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

func faultUntouched(t *testing.T, outside string) {
	t.Helper()
	if s := snapshot(t, outside); len(s) != 0 {
		t.Errorf("written outside the root: %v", sortedPaths(s))
	}
}

func sortedPaths(m map[string]string) []string {
	var ps []string
	for p := range m {
		ps = append(ps, p)
	}
	sort.Strings(ps)
	return ps
}

// faultFailed checks a failed render's exit code and message.
func faultFailed(t *testing.T, out, errOut string, code int, cause string) {
	t.Helper()
	if code != ExitRuntime {
		t.Errorf("exit %d, want %d (runtime failure); stdout %q, stderr:\n%s", code, ExitRuntime, out, errOut)
	}
	if !strings.Contains(errOut, cause) {
		t.Errorf("stderr does not say %q:\n%s", cause, errOut)
	}
	if strings.Contains(errOut, "internal error") {
		t.Errorf("a panic:\n%s", errOut)
	}
}

// fill writes a file until the file system is full, then frees keep bytes.
func fill(t *testing.T, path string, keep int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	var n int64
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(max(0, n-keep)); err != nil {
		t.Fatal(err)
	}
}

// TestFaultFullDisk renders profile b over a's tree on a 512k tmpfs left
// with 0, 4k, 8k, ... free, until the render fits. Each failed render must
// exit 1 saying "no space left on device" and leave every file whole; with
// the space back, renders of either profile must converge. Each amount of
// free space is a subtest with a tmpfs of its own, unmounted when it ends,
// so that one amount's leftovers cannot show up at the next.
func TestFaultFullDisk(t *testing.T) {
	need(t, "mount a 512k tmpfs as the root")
	fc := newFaultCase(t, 400, "--target", "systemd")
	cleanA, cleanB := fc.clean(t, fc.a, nil), fc.clean(t, fc.b, nil)
	failures := 0
	for free := int64(0); free <= 256<<10; free += 4 << 10 {
		fits, setUp := false, false
		ok := t.Run(fmt.Sprintf("free=%dk", free>>10), func(t *testing.T) {
			root := t.TempDir()
			faultMount(t, root, "size=512k,mode=0755")
			if _, errOut, code := fc.render(root, fc.a); code != 0 {
				t.Fatalf("render a: %s", errOut)
			}
			fill(t, filepath.Join(root, "filler"), free)
			setUp = true
			out, errOut, code := fc.render(root, fc.b)
			if code == ExitOK {
				fits = true
				faultSame(t, fmt.Sprintf("%dk free", free>>10), snapshot(t, root), cleanB, "filler")
				return
			}
			failures++
			faultFailed(t, out, errOut, code, "no space left on device")
			if !strings.Contains(errOut, "run it again to finish") {
				t.Errorf("the message does not say how to finish:\n%s", errOut)
			}
			faultWhole(t, faultWithout(snapshot(t, root), "filler"), cleanA, cleanB)
			if err := os.Remove(filepath.Join(root, "filler")); err != nil {
				t.Fatal(err)
			}
			faultConverges(t, fc, root, nil)
		})
		if fits {
			t.Logf("b fits with %dk free; %d renders ran out of space part way", free>>10, failures)
			if failures < 3 {
				t.Errorf("only %d renders failed part way; the test does not cover the full disk", failures)
			}
			return
		}
		if !ok && !setUp {
			// The root could not be made ready: every later amount would
			// fail the same way and bury this first message.
			t.FailNow()
		}
	}
	t.Fatal("b never fit")
}

// TestFaultReadOnlyRoot: a root remounted read-only refuses every write; a
// read-only directory inside it (a bind mount) lets part of a render
// through.
func TestFaultReadOnlyRoot(t *testing.T) {
	need(t, "mount a tmpfs and remount it read-only")
	fc := newFaultCase(t, 40, "--target", "systemd")
	cleanA, cleanB := fc.clean(t, fc.a, nil), fc.clean(t, fc.b, nil)

	t.Run("remount-ro", func(t *testing.T) {
		root := t.TempDir()
		faultMount(t, root, "size=1m,mode=0755")
		if _, errOut, code := fc.render(root, fc.a); code != 0 {
			t.Fatalf("render a: %s", errOut)
		}
		if err := syscall.Mount("", root, "", syscall.MS_REMOUNT|syscall.MS_RDONLY, ""); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := fc.render(root, fc.b)
		faultFailed(t, out, errOut, code, "read-only file system")
		faultSame(t, "read-only root", snapshot(t, root), cleanA)
		if err := syscall.Mount("", root, "", syscall.MS_REMOUNT, ""); err != nil {
			t.Fatal(err)
		}
		faultConverges(t, fc, root, nil)
	})

	t.Run("read-only-unit-directory", func(t *testing.T) {
		root := t.TempDir()
		sys := filepath.Join(root, "etc/systemd/system")
		if err := os.MkdirAll(sys, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := syscall.Mount(sys, sys, "", syscall.MS_BIND, ""); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Unmount(sys, syscall.MNT_DETACH) })
		if err := syscall.Mount("", sys, "", syscall.MS_REMOUNT|syscall.MS_BIND|syscall.MS_RDONLY, ""); err != nil {
			t.Fatal(err)
		}
		out, errOut, code := fc.render(root, fc.b)
		faultFailed(t, out, errOut, code, "read-only file system")
		empty := map[string]string{}
		faultWhole(t, snapshot(t, root), empty, cleanB)
		if err := syscall.Unmount(sys, 0); err != nil {
			t.Fatal(err)
		}
		faultConverges(t, fc, root, nil)
	})
}

// TestFaultSymlinkOutOfRoot: directories nicpersist writes into are
// symbolic links that lead out of the root, absolute and relative. Nothing
// may be written through them; the render says why and exits 1, and once
// the link is gone the next render converges.
func TestFaultSymlinkOutOfRoot(t *testing.T) {
	// No root needed: the outside directory is the test's own, writable.
	for _, c := range []struct {
		name, link string
		target     func(outside string) string
		args       []string
	}{
		{"sysconfig-absolute", "etc/sysconfig", func(o string) string { return o }, []string{"--target", "rhel", "--rhel-stack", "network-scripts"}},
		{"network-scripts-relative", "etc/sysconfig/network-scripts", func(o string) string {
			return strings.Repeat("../", 3+strings.Count(strings.TrimPrefix(o, "/"), "/")) + strings.TrimPrefix(o, "/")
		}, []string{"--target", "rhel", "--rhel-stack", "network-scripts"}},
		{"systemd-system-relative", "etc/systemd/system", func(o string) string {
			return strings.Repeat("../", 3+strings.Count(strings.TrimPrefix(o, "/"), "/")) + strings.TrimPrefix(o, "/")
		}, []string{"--target", "systemd"}},
		{"nicpersist-dir-absolute", "etc/nicpersist", func(o string) string { return o }, []string{"--target", "systemd"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fc := newFaultCase(t, 40, c.args...)
			outside := faultOutside(t)
			root := t.TempDir()
			link := filepath.Join(root, c.link)
			if err := os.MkdirAll(filepath.Dir(link), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(c.target(outside), link); err != nil {
				t.Fatal(err)
			}
			if resolved, err := filepath.EvalSymlinks(link); err != nil || resolved != outside {
				t.Fatalf("the link resolves to %q (%v), want %s", resolved, err, outside)
			}
			out, errOut, code := fc.render(root, fc.b)
			faultFailed(t, out, errOut, code, "symbolic link out of")
			faultUntouched(t, outside)
			got := faultWithout(snapshot(t, root), c.link)
			faultWhole(t, got, map[string]string{}, fc.clean(t, fc.b, nil))
			if t.Failed() {
				return
			}
			if err := os.Remove(link); err != nil {
				t.Fatal(err)
			}
			faultConverges(t, fc, root, nil)
			faultUntouched(t, outside)
		})
	}
}

// TestFaultKill kills a rendering process (SIGKILL) at random moments while
// it switches between two profiles, the larger with 10,000 routes. After each
// kill every file must be whole; temporary files may be left by a kill,
// but the next complete render must remove them and converge.
//
// By default it makes faultKillsDefault renders, enough to kill a few part
// way on every run without making `go test` wait; a longer hunt takes more:
//
//	NICPERSIST_FAULT_KILLS=400 go test ./render/cli -run '^TestFaultKill$' -v
//
// Each run logs its seed. NICPERSIST_FAULT_SEED=<seed> draws the same kill
// moments again, as the same fractions of a whole render (how long that
// takes is measured on each run, so the moments in time vary with the
// machine's load, but the sequence of profiles and fractions is the same).
func TestFaultKill(t *testing.T) {
	bin := testenv.SelfAsNicpersist(t)
	fc := newFaultCase(t, 10000, "--target", "rhel", "--rhel-stack", "network-scripts")
	cleanA, cleanB := fc.clean(t, fc.a, nil), fc.clean(t, fc.b, nil)
	// A render of a over b writes first a manifest of both (a's, then b's
	// entries that a does not have), so that a render stopped part way
	// leaves every file it may have written listed. a's files are among
	// b's, so the tree is otherwise b's.
	for p := range cleanA {
		if _, ok := cleanB[p]; !ok {
			t.Fatalf("%s is rendered for a but not for b; the test assumes a's files are among b's", p)
		}
	}
	preA := maps.Clone(cleanB)
	inA := map[string]bool{}
	for _, l := range strings.SplitAfter(cleanA[distro.Manifest], "\n") {
		inA[l] = true
	}
	var pre strings.Builder
	pre.WriteString(cleanA[distro.Manifest])
	for _, l := range strings.SplitAfter(cleanB[distro.Manifest], "\n") {
		if !inA[l] && !strings.HasPrefix(l, "#") {
			pre.WriteString(l)
		}
	}
	preA[distro.Manifest] = pre.String()
	outside := faultOutside(t)
	root := filepath.Join(filepath.Dir(outside), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	start := func(prof string) *exec.Cmd {
		cmd := exec.Command(bin, append([]string{"render", "--root", root, "--profile", prof}, fc.args...)...)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	// How long a whole render takes here, to kill within it.
	t0 := time.Now()
	if err := start(fc.b).Wait(); err != nil {
		t.Fatal(err)
	}
	full := time.Since(t0)
	n := faultEnvInt(t, faultKillsEnv, faultKillsDefault)
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv(faultSeedEnv); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("%s=%q: want an unsigned integer (a seed this test logged)", faultSeedEnv, s)
		}
	}
	t.Logf("seed %d: rerun with %s=%d %s=%d go test ./render/cli -run '^TestFaultKill$'", seed, faultSeedEnv, seed, faultKillsEnv, n)
	rng := rand.New(rand.NewPCG(seed, 4))
	killed, tempsSeen := 0, 0
	for i := 0; i < n; i++ {
		prof := []string{fc.a, fc.b}[i%2]
		// Per mille of a whole render, so that a seed names the same
		// moments on a faster or slower machine; up to 110% lets some
		// renders finish.
		permille := rng.Int64N(1100)
		delay := full * time.Duration(permille) / 1000
		cmd := start(prof)
		time.Sleep(delay)
		// An error here means the render already finished; Wait says so.
		_ = cmd.Process.Kill()
		err := cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ProcessState.Sys().(syscall.WaitStatus).Signaled() {
			killed++
		}
		got := snapshot(t, root)
		temps := len(faultTemps(got))
		faultWhole(t, got, cleanA, cleanB, preA)
		if t.Failed() {
			t.Fatalf("kill %d (%s after %v, %d.%d%% of a whole render, %d temporary files; seed %d) left a partial tree", i, filepath.Base(prof), delay, permille/10, permille%10, temps, seed)
		}
		tempsSeen += temps
		if err == nil {
			// It finished before the kill: the tree is the clean one, and
			// it removed the temporary files of earlier kills.
			want := cleanA
			if prof == fc.b {
				want = cleanB
			}
			if temps > 0 {
				t.Errorf("render %d (%s) finished but left %d temporary files", i, filepath.Base(prof), temps)
			}
			faultSame(t, fmt.Sprintf("render %d (%s) finished", i, filepath.Base(prof)), got, want)
		}
	}
	t.Logf("temporary files seen after kills: %d", tempsSeen)
	faultUntouched(t, outside)
	t.Logf("%d renders, %d killed part way (a whole render takes %v; seed %d)", n, killed, full, seed)
	if killed < n/4 {
		t.Errorf("only %d of %d renders were killed before they finished", killed, n)
	}
	faultConverges(t, fc, root, nil)
	faultUntouched(t, outside)
}

// The environment that sizes and replays TestFaultKill (see its comment).
const (
	faultKillsEnv     = "NICPERSIST_FAULT_KILLS"
	faultSeedEnv      = "NICPERSIST_FAULT_SEED"
	faultKillsDefault = 6
)

// faultEnvInt reads a positive count from the environment, def when unset.
func faultEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a count of 1 or more", name, s)
	}
	return n
}

// TestFaultProfileChanges renders a, then b, then a again into a rhel root
// with the user's own lines in route-eth1 and a file of the user's beside
// them: files only one profile renders come and go per manifest, shared
// files keep the user's lines, and each render equals a clean one.
func TestFaultProfileChanges(t *testing.T) {
	fc := newFaultCase(t, 30, "--target", "rhel", "--rhel-stack", "network-scripts")
	setup := func(root string) {
		writeTree(t, root, 0o644, map[string]string{
			"etc/sysconfig/network-scripts/route-eth1": "# the user's\n192.0.2.0/24 via 172.22.5.65 dev eth1\n",
			"etc/sysconfig/network-scripts/ifcfg-eth1": "DEVICE=eth1\n",
		})
	}
	root := t.TempDir()
	setup(root)
	for i, prof := range []string{fc.a, fc.b, fc.a, fc.b} {
		out, errOut, code := fc.render(root, prof)
		if code != 0 {
			t.Fatalf("render %d (%s): exit %d\n%s", i, filepath.Base(prof), code, errOut)
		}
		if i > 0 && (!strings.Contains(out, "removed ") && i%2 == 0) {
			t.Errorf("render %d back to %s removed nothing:\n%s", i, filepath.Base(prof), out)
		}
		got := snapshot(t, root)
		faultSame(t, fmt.Sprintf("render %d (%s)", i, filepath.Base(prof)), got, fc.clean(t, prof, setup))
		if !strings.HasPrefix(got["etc/sysconfig/network-scripts/route-eth1"], "# the user's\n192.0.2.0/24 via 172.22.5.65 dev eth1\n# BEGIN nicpersist\n") {
			t.Errorf("route-eth1 lost the user's lines:\n%s", got["etc/sysconfig/network-scripts/route-eth1"])
		}
		if out2, _, _ := fc.render(root, prof); out2 != "0 changed\n" {
			t.Errorf("render %d again: %q", i, out2)
		}
	}
}
