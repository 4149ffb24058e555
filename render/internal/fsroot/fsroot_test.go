package fsroot

import (
	"errors"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nicpersist/nicpersist/render/testenv"
)

const escapeMsg = "refusing to follow a symbolic link out of "

// setup makes base/root (opened) and base/outside (which must stay empty
// unless the test puts something there).
func setup(t *testing.T) (r *Root, dir, outside string) {
	t.Helper()
	base := t.TempDir()
	dir, outside = filepath.Join(base, "root"), filepath.Join(base, "outside")
	for _, d := range []string{dir, outside} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir, outside
}

// mk creates files ("path" or "path=content"), directories ("path/") and
// links ("path->target") under dir.
func mk(t *testing.T, dir string, specs ...string) {
	t.Helper()
	for _, s := range specs {
		var err error
		switch {
		case strings.Contains(s, "->"):
			name, target, _ := strings.Cut(s, "->")
			p := filepath.Join(dir, name)
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.Symlink(target, p)
			}
		case strings.HasSuffix(s, "/"):
			err = os.MkdirAll(filepath.Join(dir, s), 0o755)
		default:
			name, content, _ := strings.Cut(s, "=")
			p := filepath.Join(dir, name)
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.WriteFile(p, []byte(content), 0o644)
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

func noTemps(t *testing.T, dir string) {
	t.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(d.Name(), tempInfix) {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
	if err != nil {
		t.Errorf("looking for temporary files: %v", err)
	}
}

func empty(t *testing.T, dir string) {
	t.Helper()
	if entries, err := os.ReadDir(dir); err != nil || len(entries) != 0 {
		t.Errorf("%s: want it empty, got %v %v", dir, entries, err)
	}
}

func content(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestOpen(t *testing.T) {
	base := t.TempDir()
	mk(t, base, "file")
	for _, dir := range []string{filepath.Join(base, "missing"), filepath.Join(base, "file")} {
		if r, err := Open(dir); err == nil {
			r.Close()
			t.Errorf("Open(%s) succeeded", dir)
		} else if !strings.Contains(err.Error(), dir) {
			t.Errorf("message does not name %s: %v", dir, err)
		}
	}
	r, err := Open(base)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Dir() != base {
		t.Errorf("Dir() = %q", r.Dir())
	}
	if r.osEscape == nil {
		t.Error("Open did not capture os.Root's escape error")
	}
}

func TestWriteReadReplace(t *testing.T) {
	r, dir, _ := setup(t)
	if err := r.WriteFile("etc/a/b.conf", []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, "etc/a")); err != nil || fi.Mode().Perm() != 0o755&^umask() {
		t.Errorf("parent directory: %v %v", fi.Mode(), err)
	}
	if err := r.WriteFile("etc/a/b.conf", []byte("two\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b, err := r.ReadFile("etc/a/b.conf")
	if err != nil || string(b) != "two\n" {
		t.Fatalf("read %q, %v", b, err)
	}
	fi, err := r.Lstat("etc/a/b.conf")
	if err != nil || fi.Mode() != 0o600 {
		t.Errorf("mode %v %v", fi.Mode(), err)
	}
	if err := r.WriteFile("top", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := r.ReadFile("top"); err != nil || len(b) != 0 {
		t.Errorf("empty file: %q %v", b, err)
	}
	noTemps(t, dir)
}

func TestMissing(t *testing.T) {
	r, dir, _ := setup(t)
	mk(t, dir, "etc/", "etc/dangling->nope")
	if _, err := r.ReadFile("etc/missing"); !errors.Is(err, fs.ErrNotExist) || !strings.Contains(err.Error(), filepath.Join(dir, "etc/missing")) {
		t.Errorf("ReadFile: %v", err)
	}
	if _, err := r.ReadFile("etc/dangling"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile dangling: %v", err)
	}
	if _, err := r.Readlink("etc/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Readlink: %v", err)
	}
	if _, err := r.Lstat("nope/x"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Lstat: %v", err)
	}
	if r.Exists("etc/missing") || !r.Exists("etc") || !r.Exists("etc/dangling") {
		t.Error("Exists")
	}
	if names, err := r.ReadDir("no/such/dir"); err != nil || len(names) != 0 {
		t.Errorf("ReadDir missing: %v %v", names, err)
	}
}

func TestReadDir(t *testing.T) {
	r, dir, _ := setup(t)
	mk(t, dir, "d/b", "d/a", "d/c/", "d/.h", "f", "abs->/d", "rel->d")
	for _, name := range []string{"d", "abs", "rel"} {
		if names, err := r.ReadDir(name); err != nil || !slices.Equal(names, []string{".h", "a", "b", "c"}) {
			t.Errorf("ReadDir(%s) = %v, %v", name, names, err)
		}
	}
	if names, err := r.ReadDir("."); err != nil || !slices.Equal(names, []string{"abs", "d", "f", "rel"}) {
		t.Errorf("ReadDir(.) = %v, %v", names, err)
	}
	if _, err := r.ReadDir("f"); err == nil {
		t.Error("ReadDir of a file succeeded")
	}
}

// Each operation and name gets a fresh root: a name one operation wrongly
// accepted must not change what the next one finds.
func TestRejectsBadNames(t *testing.T) {
	bad := []string{"", "/etc/x", "/", "..", "../x", "a/../../x", "a/../b", "a//b", "./a", "a/./b", "a/", "a/b/"}
	ops := map[string]func(r *Root, n string) error{
		"WriteFile": func(r *Root, n string) error { return r.WriteFile(n, []byte("x"), 0o644) },
		"Symlink":   func(r *Root, n string) error { return r.Symlink(n, "/x") },
		"Remove":    func(r *Root, n string) error { return r.Remove(n) },
		"ReadFile":  func(r *Root, n string) error { _, err := r.ReadFile(n); return err },
		"ReadDir":   func(r *Root, n string) error { _, err := r.ReadDir(n); return err },
		"Readlink":  func(r *Root, n string) error { _, err := r.Readlink(n); return err },
		"Lstat":     func(r *Root, n string) error { _, err := r.Lstat(n); return err },
		"Exists": func(r *Root, n string) error {
			if r.Exists(n) {
				return nil
			}
			return errors.New("no")
		},
	}
	for _, op := range slices.Sorted(maps.Keys(ops)) {
		t.Run(op, func(t *testing.T) {
			for _, n := range bad {
				t.Run(strconv.Quote(n), func(t *testing.T) {
					r, dir, _ := setup(t)
					mk(t, dir, "a/b")
					if err := ops[op](r, n); err == nil {
						t.Errorf("%s(%q) accepted", op, n)
					} else if op != "Exists" && !strings.Contains(err.Error(), "not a clean path relative to "+dir) {
						t.Errorf("%s(%q): %v", op, n, err)
					}
					if got := content(t, filepath.Join(dir, "a/b")); got != "" {
						t.Errorf("a/b changed: %q", got)
					}
					noTemps(t, filepath.Dir(dir))
				})
			}
		})
	}
}

// A parent directory that is a link leading out of the root: nothing may be
// written, made or removed outside, and the error must say why.
func TestWriteThroughEscapingParentIsRefused(t *testing.T) {
	cases := []struct {
		name  string
		links []string // made under the root; OUT is replaced by the outside dir
		path  string   // written
	}{
		{"absolute", []string{"etc->OUT"}, "etc/sysctl.d/90-nicpersist.conf"},
		{"relative", []string{"etc->../outside"}, "etc/sysctl.d/90-nicpersist.conf"},
		{"relative two up", []string{"etc/", "etc/sysconfig->../../outside"}, "etc/sysconfig/network-scripts/route-eth1"},
		{"absolute as last dir", []string{"etc/sysconfig/network-scripts->OUT"}, "etc/sysconfig/network-scripts/route-eth1"},
		{"chain", []string{"etc->a", "a->b/c", "b/c->../../outside"}, "etc/x"},
		// An absolute link counts as leaving, even where a chroot would stay inside.
		{"absolute into root", []string{"usr/lib/", "etc->/usr/lib"}, "etc/x"},
	}
	for _, tc := range cases {
		// Each operation on a root of its own: one that got through
		// must not be blamed on the next, nor hide what it did.
		for _, op := range []string{"write", "symlink", "remove"} {
			t.Run(tc.name+"/"+op, func(t *testing.T) {
				r, dir, outside := setup(t)
				for _, l := range tc.links {
					mk(t, dir, strings.ReplaceAll(l, "OUT", outside))
				}
				mk(t, outside, "victim=keep")
				var err error
				want := op + " " + filepath.Join(dir, tc.path)
				switch op {
				case "write":
					err = r.WriteFile(tc.path, []byte("x"), 0o644)
				case "symlink":
					err = r.Symlink(tc.path, "/etc/systemd/system/nicpersist.service")
				case "remove":
					err = r.Remove(filepath.Dir(tc.path) + "/victim")
					want = "remove " + filepath.Join(dir, filepath.Dir(tc.path), "victim")
				}
				if err == nil {
					t.Errorf("%s through a link out of the root succeeded", op)
				} else {
					if !strings.HasPrefix(err.Error(), want+": ") || !strings.HasSuffix(err.Error(), escapeMsg+dir) {
						t.Errorf("%s: message %q, want %q...%q", op, err, want, escapeMsg+dir)
					}
					if !errors.Is(err, ErrOutsideRoot) {
						t.Errorf("%s: errors.Is(%q, ErrOutsideRoot) is false", op, err)
					}
				}
				entries, rerr := os.ReadDir(outside)
				if rerr != nil {
					t.Fatal(rerr)
				}
				if len(entries) != 1 || content(t, filepath.Join(outside, "victim")) != "keep" {
					t.Errorf("outside changed: %v", entries)
				}
				if _, err := os.Lstat(filepath.Join(dir, "usr/lib/x")); err == nil {
					t.Error("followed an absolute link")
				}
				noTemps(t, filepath.Dir(dir))
			})
		}
	}
}

func TestReadFollowsLinksInsideRoot(t *testing.T) {
	r, dir, outside := setup(t)
	mk(t, dir,
		"usr/lib/os-release=ID=inside\n",
		"etc/os-release->/usr/lib/os-release",
		"etc/rel-release->../usr/lib/os-release",
		"etc/alt->/usr/lib",
		"etc/chain->/etc/alt/../lib/os-release",
		"etc/clamped->/../../../usr/lib/os-release",
		"etc/dots->/usr/./lib//os-release",
		"etc/self->/",
		"etc/relabs->alt/os-release",
		"loop1->loop2", "loop2->loop1",
		"etc/deep->"+strings.Repeat("../", 10)+"usr/lib/os-release",
	)
	// Where the same links would lead on the host.
	mk(t, outside, "os-release=ID=outside\n")
	for _, name := range []string{
		"etc/os-release", "etc/rel-release", "etc/alt/os-release", "etc/chain",
		"etc/clamped", "etc/dots", "etc/self/usr/lib/os-release", "etc/self/etc/self/etc/os-release",
		"etc/relabs",
	} {
		b, err := r.ReadFile(name)
		if err != nil || string(b) != "ID=inside\n" {
			t.Errorf("ReadFile(%s) = %q, %v", name, b, err)
		}
		if !r.Exists(name) {
			t.Errorf("Exists(%s) = false", name)
		}
	}
	if fi, err := r.Lstat("etc/alt/os-release"); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("Lstat through an absolute parent: %v %v", fi, err)
	}
	if l, err := r.Readlink("etc/self/etc/os-release"); err != nil || l != "/usr/lib/os-release" {
		t.Errorf("Readlink through an absolute parent: %q %v", l, err)
	}
	if _, err := r.ReadFile("loop1"); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("loop: %v", err)
	}
	if _, err := r.ReadFile("etc/deep"); err == nil || !strings.Contains(err.Error(), escapeMsg) {
		t.Errorf("relative link climbing above the root: %v", err)
	}
}

func TestReadThroughEscapingLinkIsRefused(t *testing.T) {
	r, dir, outside := setup(t)
	mk(t, outside, "os-release=ID=outside\n")
	mk(t, dir,
		"etc/escape->../../outside/os-release",
		"etc/escdir->../../outside",
		// Were ".." clamped for relative links, these would read here.
		"outside/os-release=ID=clamped\n",
	)
	for _, name := range []string{"etc/escape", "etc/escdir/os-release"} {
		b, err := r.ReadFile(name)
		if err == nil {
			t.Errorf("ReadFile(%s) = %q through an escaping link", name, b)
			continue
		}
		if want := "read " + filepath.Join(dir, name) + ": " + escapeMsg + dir; err.Error() != want || !errors.Is(err, ErrOutsideRoot) {
			t.Errorf("message %q, want %q wrapping ErrOutsideRoot", err, want)
		}
		if r.Exists(name) && name != "etc/escape" {
			t.Errorf("Exists(%s)", name)
		}
	}
	if _, err := r.ReadDir("etc/escdir"); err == nil {
		t.Error("ReadDir through an escaping link")
	}
	// The link itself is there and can be read as a link.
	if l, err := r.Readlink("etc/escape"); err != nil || l != "../../outside/os-release" {
		t.Errorf("Readlink: %q %v", l, err)
	}
}

func TestWriteReplacesLinkNotTarget(t *testing.T) {
	for _, target := range []string{"OUT/victim", "../outside/victim", "/victim", "victim"} {
		t.Run(target, func(t *testing.T) {
			r, dir, outside := setup(t)
			mk(t, outside, "victim=keep")
			mk(t, dir, "etc/victim=keep", "victim=keep", "etc/f->"+strings.Replace(target, "OUT", outside, 1))
			if err := r.WriteFile("etc/f", []byte("new"), 0o644); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{filepath.Join(outside, "victim"), filepath.Join(dir, "victim"), filepath.Join(dir, "etc/victim")} {
				if got := content(t, p); got != "keep" {
					t.Errorf("%s changed: %q", p, got)
				}
			}
			fi, err := os.Lstat(filepath.Join(dir, "etc/f"))
			if err != nil || !fi.Mode().IsRegular() || content(t, filepath.Join(dir, "etc/f")) != "new" {
				t.Errorf("etc/f: %v %v", fi, err)
			}
			noTemps(t, filepath.Dir(dir))
		})
	}
}

func TestWriteOverDirectory(t *testing.T) {
	ops := map[string]func(r *Root) error{
		"write":   func(r *Root) error { return r.WriteFile("etc/d", []byte("x"), 0o644) },
		"symlink": func(r *Root) error { return r.Symlink("etc/d", "/x") },
		"remove":  func(r *Root) error { return r.Remove("etc/d") },
	}
	for _, op := range slices.Sorted(maps.Keys(ops)) {
		// A root each: a directory one operation replaced would fail the
		// next for the wrong reason.
		t.Run(op, func(t *testing.T) {
			r, dir, _ := setup(t)
			mk(t, dir, "etc/d/keep")
			if err := ops[op](r); err == nil || err.Error() != op+" "+filepath.Join(dir, "etc/d")+": is a directory" {
				t.Errorf("%s: %v", op, err)
			}
			if !r.Exists("etc/d/keep") {
				t.Error("directory content lost")
			}
			noTemps(t, dir)
		})
	}
}

// A write that cannot even create its directory: the old state stays, no
// temporary file is left, and the error says which directory.
func TestWriteUnderAFile(t *testing.T) {
	for _, name := range []string{"etc/sysconfig/route-eth1", "etc/sysconfig/network-scripts/route-eth1"} {
		for _, op := range []string{"WriteFile", "Symlink"} {
			// A root each, so that one call that replaced the file
			// cannot make the next succeed or fail for another reason.
			t.Run(op+"/"+name, func(t *testing.T) {
				r, dir, _ := setup(t)
				mk(t, dir, "etc/sysconfig=old")
				switch op {
				case "WriteFile":
					err := r.WriteFile(name, []byte("x"), 0o644)
					if err == nil || !strings.HasPrefix(err.Error(), "write "+filepath.Join(dir, name)+": ") || !errors.Is(err, syscall.ENOTDIR) {
						t.Errorf("WriteFile(%s): %v", name, err)
					}
				case "Symlink":
					if err := r.Symlink(name, "/x"); err == nil || !errors.Is(err, syscall.ENOTDIR) {
						t.Errorf("Symlink(%s): %v", name, err)
					}
				}
				if got := content(t, filepath.Join(dir, "etc/sysconfig")); got != "old" {
					t.Errorf("old file changed: %q", got)
				}
				noTemps(t, dir)
			})
		}
	}
}

// A write failing at each step keeps the old file and leaves no temporary file.
func TestWriteFailureKeepsOldFile(t *testing.T) {
	injected := errors.New("injected failure")
	for _, step := range []string{"write", "chmod", "sync", "rename"} {
		t.Run(step, func(t *testing.T) {
			r, dir, _ := setup(t)
			mk(t, dir, "etc/f=old", "etc/l->/old")
			if err := os.Chmod(filepath.Join(dir, "etc/f"), 0o640); err != nil {
				t.Fatal(err)
			}
			r.failpoint = func(s string) error {
				if s == step {
					return injected
				}
				return nil
			}
			err := r.WriteFile("etc/f", []byte("new"), 0o755)
			want := "write " + filepath.Join(dir, "etc/f") + ": injected failure"
			if err == nil || err.Error() != want || !errors.Is(err, injected) {
				t.Errorf("WriteFile: %v, want %q", err, want)
			}
			fi, err := os.Stat(filepath.Join(dir, "etc/f"))
			if err != nil {
				t.Fatal(err)
			}
			if got := content(t, filepath.Join(dir, "etc/f")); got != "old" || fi.Mode().Perm() != 0o640 {
				t.Errorf("old file changed: %q %v", got, fi.Mode())
			}
			if step == "rename" {
				if err := r.Symlink("etc/l", "/new"); !errors.Is(err, injected) {
					t.Errorf("Symlink: %v", err)
				}
				if l, _ := os.Readlink(filepath.Join(dir, "etc/l")); l != "/old" {
					t.Errorf("old link changed: %q", l)
				}
			}
			noTemps(t, dir)
		})
	}
}

func TestSymlink(t *testing.T) {
	r, dir, outside := setup(t)
	const link = "etc/systemd/system/multi-user.target.wants/nicpersist.service"
	const target = "/etc/systemd/system/nicpersist.service"
	if err := r.Symlink(link, target); err != nil {
		t.Fatal(err)
	}
	before, err := os.Lstat(filepath.Join(dir, link))
	if err != nil {
		t.Fatal(err)
	}
	r.failpoint = func(s string) error { return errors.New("touched the link at step " + s) }
	if err := r.Symlink(link, target); err != nil {
		t.Fatalf("second Symlink: %v", err)
	}
	r.failpoint = nil
	after, _ := os.Lstat(filepath.Join(dir, link))
	if !os.SameFile(before, after) {
		t.Error("idempotent Symlink replaced the link")
	}
	if l, err := r.Readlink(link); err != nil || l != target {
		t.Fatalf("Readlink: %q %v", l, err)
	}
	// A new target replaces the link; a link to outside is stored, not followed.
	if err := r.Symlink(link, outside+"/x"); err != nil {
		t.Fatal(err)
	}
	if l, _ := os.Readlink(filepath.Join(dir, link)); l != outside+"/x" {
		t.Errorf("link now %q", l)
	}
	// A regular file there is replaced by the link.
	mk(t, dir, "etc/file=x")
	if err := r.Symlink("etc/file", "../x"); err != nil {
		t.Fatal(err)
	}
	if l, err := r.Readlink("etc/file"); err != nil || l != "../x" {
		t.Errorf("file -> link: %q %v", l, err)
	}
	if err := r.Symlink("etc/e", ""); err == nil {
		t.Error("empty target accepted")
	}
	empty(t, outside)
	noTemps(t, dir)
}

func TestRemove(t *testing.T) {
	r, dir, outside := setup(t)
	mk(t, outside, "victim=keep")
	mk(t, dir, "etc/f", "etc/l->"+outside+"/victim", "etc/dangling->nope", "etc/d/")
	for _, name := range []string{"etc/f", "etc/l", "etc/dangling", "etc/f", "etc/missing", "missing/x"} {
		if err := r.Remove(name); err != nil {
			t.Errorf("Remove(%s): %v", name, err)
		}
		if r.Exists(name) {
			t.Errorf("%s still exists", name)
		}
	}
	if got := content(t, filepath.Join(outside, "victim")); got != "keep" {
		t.Errorf("link target removed or changed: %q", got)
	}
	if !r.Exists("etc/d") {
		t.Error("directory removed")
	}
}

func TestRemoveDir(t *testing.T) {
	r, dir, outside := setup(t)
	mk(t, outside, "d/")
	mk(t, dir, "etc/empty/", "etc/full/f", "etc/f", "etc/l->"+outside+"/d", "etc/rel->empty")
	for _, name := range []string{"etc/empty", "etc/missing", "missing/x"} {
		if err := r.RemoveDir(name); err != nil {
			t.Errorf("RemoveDir(%s): %v", name, err)
		}
		if r.Exists(name) {
			t.Errorf("%s still exists", name)
		}
	}
	for name, want := range map[string]error{"etc/full": syscall.ENOTEMPTY, "etc/f": syscall.ENOTDIR, "etc/l": syscall.ENOTDIR, "etc/rel": syscall.ENOTDIR} {
		if err := r.RemoveDir(name); !errors.Is(err, want) {
			t.Errorf("RemoveDir(%s) = %v, want %v", name, err, want)
		}
		if !r.Exists(name) {
			t.Errorf("%s removed", name)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "d")); err != nil {
		t.Errorf("link target: %v", err)
	}
}

func TestTempOf(t *testing.T) {
	for n, want := range map[string]string{".links.nicpersist-tmp-0a1b": "links", ".a.b.nicpersist-tmp-": "a.b", "links.nicpersist-tmp-0a": "", ".links": ""} {
		base, ok := TempOf(n)
		if ok != (want != "") || base != want && ok {
			t.Errorf("TempOf(%q) = %q, %v; want %q", n, base, ok, want)
		}
	}
}

func umask() fs.FileMode {
	m := syscall.Umask(0)
	syscall.Umask(m)
	return fs.FileMode(m)
}

// TestFullDisk writes into a full 64k tmpfs: the error names the file and
// says ENOSPC, the old file stays, and no temporary file is left.
func TestFullDisk(t *testing.T) {
	testenv.Need(t, "mount a 64k tmpfs", "", "mount", "umount")
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0755", "nicpersist-test", dir).CombinedOutput(); err != nil {
		testenv.Skip(t, "cannot mount a tmpfs ("+strings.TrimSpace(string(out))+": "+err.Error()+")")
	}
	// Cleanups run last-registered first: Close, then umount, then TempDir's removal.
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })

	if err := r.WriteFile("etc/f", []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Fill the file system.
	fill, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = fill.Write(make([]byte, 1<<20))
	fill.Close()
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("filling the tmpfs: %v", err)
	}
	err = r.WriteFile("etc/f", make([]byte, 16<<10), 0o644)
	if err == nil {
		t.Fatal("WriteFile on a full file system succeeded")
	}
	want := "write " + filepath.Join(dir, "etc/f") + ": no space left on device"
	if err.Error() != want || !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("got %q, want %q", err, want)
	}
	if got := content(t, filepath.Join(dir, "etc/f")); got != "old\n" {
		t.Errorf("old file damaged: %d bytes", len(got))
	}
	noTemps(t, dir)
	// Once there is room again, the write goes through.
	if err := os.Remove(filepath.Join(dir, "fill")); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("etc/f", make([]byte, 16<<10), 0o644); err != nil {
		t.Errorf("WriteFile after freeing space: %v", err)
	}
	noTemps(t, dir)
}

// RemoveTemps removes exactly the temporary files WriteFile and Symlink would
// make beside the paths given, in the root directory too, and nothing else.
func TestRemoveTemps(t *testing.T) {
	r, dir, _ := setup(t)
	gone := []string{
		"etc/sub/.route-eth1" + tempInfix + "0123",
		"etc/sub/.route-eth1" + tempInfix + "x" + tempInfix + "y",
		"etc/sub/.never-written" + tempInfix + "0123",
		".top" + tempInfix + "abcd",
	}
	kept := []string{
		"etc/sub/route-eth1",
		"etc/sub/.other" + tempInfix + "0123",     // beside no path given
		"etc/sub/route-eth1" + tempInfix + "0123", // no leading dot
		"etc/sub/.route-eth1.tmp-0123",
		"etc/.route-eth1" + tempInfix + "0123", // another directory
		".other" + tempInfix + "abcd",
		"top",
	}
	mk(t, dir, append(append([]string{}, gone...), kept...)...)
	mk(t, dir, "etc/sub/.dir"+tempInfix+"0/keep")
	err := r.RemoveTemps([]string{"etc/sub/route-eth1", "etc/sub/never-written", "top", "missing/dir/x", "etc/sub/dir"})
	if err == nil || !strings.HasPrefix(err.Error(), "remove "+filepath.Join(dir, "etc/sub/.dir"+tempInfix+"0")+": ") || !errors.Is(err, syscall.EISDIR) {
		t.Errorf("a directory named like a temporary file: %v", err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "etc/sub/.dir"+tempInfix+"0")); err != nil {
		t.Fatal(err)
	}
	if err := r.RemoveTemps([]string{"etc/sub/route-eth1", "etc/sub/never-written", "top", "missing/dir/x"}); err != nil {
		t.Fatal(err)
	}
	for _, p := range gone {
		if _, err := os.Lstat(filepath.Join(dir, p)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s survived: %v", p, err)
		}
	}
	for _, p := range kept {
		if _, err := os.Lstat(filepath.Join(dir, p)); err != nil {
			t.Errorf("%s removed: %v", p, err)
		}
	}
}
