package fsroot

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func setup(t *testing.T) (*Root, string, string) {
	t.Helper()
	base := t.TempDir()
	dir, outside := filepath.Join(base, "root"), filepath.Join(base, "outside")
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

func noTemps(t *testing.T, dir string) {
	t.Helper()
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.Contains(d.Name(), ".nicpersist-tmp-") {
			t.Errorf("temporary file left behind: %s", p)
		}
		return nil
	})
}

func TestWriteReadReplace(t *testing.T) {
	r, dir, _ := setup(t)
	if err := r.WriteFile("etc/a/b.conf", []byte("one\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.WriteFile("etc/a/b.conf", []byte("two\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := r.ReadFile("etc/a/b.conf")
	if err != nil || string(b) != "two\n" {
		t.Fatalf("read %q, %v", b, err)
	}
	fi, _ := os.Stat(filepath.Join(dir, "etc/a/b.conf"))
	if fi.Mode().Perm() != 0o755 {
		t.Errorf("mode %v", fi.Mode())
	}
	if _, err := r.ReadFile("etc/missing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	noTemps(t, dir)
}

func TestRejectsBadNames(t *testing.T) {
	r, _, _ := setup(t)
	for _, n := range []string{"", "/etc/x", "../x", "a/../../x", "a//b", "./a", ".."} {
		if err := r.WriteFile(n, nil, 0o644); err == nil {
			t.Errorf("WriteFile(%q) accepted", n)
		}
	}
}

func TestSymlinkOutOfRootIsRefused(t *testing.T) {
	for _, link := range []string{"ABS", "../outside", "../../outside"} {
		t.Run(link, func(t *testing.T) {
			r, dir, outside := setup(t)
			target := link
			if link == "ABS" {
				target = outside
			}
			os.Symlink(target, filepath.Join(dir, "etc"))
			err := r.WriteFile("etc/sysctl.d/90.conf", []byte("x"), 0o644)
			if err == nil {
				t.Fatal("wrote through a link out of the root")
			}
			if link != "ABS" && !strings.Contains(err.Error(), "refusing to follow a symbolic link out of") {
				t.Errorf("message: %v", err)
			}
			if err := r.Symlink("etc/x.wants/y", "/z"); err == nil {
				t.Error("made a link through a link out of the root")
			}
			if entries, _ := os.ReadDir(outside); len(entries) != 0 {
				t.Errorf("wrote outside the root: %v", entries)
			}
		})
	}
}

func TestReadFollowsAbsoluteLinksInsideRoot(t *testing.T) {
	r, dir, outside := setup(t)
	os.MkdirAll(filepath.Join(dir, "usr/lib"), 0o755)
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.WriteFile(filepath.Join(dir, "usr/lib/os-release"), []byte("ID=inside\n"), 0o644)
	os.WriteFile(filepath.Join(outside, "os-release"), []byte("ID=outside\n"), 0o644)
	os.Symlink("/usr/lib/os-release", filepath.Join(dir, "etc/os-release"))
	b, err := r.ReadFile("etc/os-release")
	if err != nil || string(b) != "ID=inside\n" {
		t.Fatalf("read %q, %v", b, err)
	}
	if !r.Exists("etc/os-release") {
		t.Error("Exists through an absolute link")
	}
	os.Symlink("../../outside/os-release", filepath.Join(dir, "etc/escape"))
	if b, err := r.ReadFile("etc/escape"); err == nil {
		t.Errorf("read through an escaping link: %q", b)
	}
}

func TestWriteReplacesLinkNotTarget(t *testing.T) {
	r, dir, outside := setup(t)
	os.WriteFile(filepath.Join(outside, "victim"), []byte("keep"), 0o644)
	os.MkdirAll(filepath.Join(dir, "etc"), 0o755)
	os.Symlink(filepath.Join(outside, "victim"), filepath.Join(dir, "etc/f"))
	if err := r.WriteFile("etc/f", []byte("new"), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "victim")); string(b) != "keep" {
		t.Errorf("target changed: %q", b)
	}
	if fi, _ := os.Lstat(filepath.Join(dir, "etc/f")); fi.Mode()&fs.ModeSymlink != 0 {
		t.Error("still a link")
	}
}

func TestSymlinkIdempotentAndRemove(t *testing.T) {
	r, dir, _ := setup(t)
	for i := 0; i < 2; i++ {
		if err := r.Symlink("etc/w/u.service", "/etc/u.service"); err != nil {
			t.Fatal(err)
		}
	}
	if l, err := r.Readlink("etc/w/u.service"); err != nil || l != "/etc/u.service" {
		t.Fatalf("%q %v", l, err)
	}
	if err := r.Remove("etc/w/u.service"); err != nil {
		t.Fatal(err)
	}
	if err := r.Remove("etc/w/u.service"); err != nil {
		t.Errorf("removing a missing file: %v", err)
	}
	if err := r.Remove("etc/w"); err == nil {
		t.Error("removed a directory")
	}
	noTemps(t, dir)
}

func TestFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("NICPERSIST_E2E") == "1" {
			t.Fatal("needs root to mount a tmpfs, and NICPERSIST_E2E=1 forbids skipping")
		}
		t.Skip("skipping: needs root to mount a tiny tmpfs")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "nptest", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", dir).Run() })
	r, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if err := r.WriteFile("etc/f", []byte("old\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err = r.WriteFile("etc/f", make([]byte, 256<<10), 0o644)
	if err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), filepath.Join(dir, "etc/f")) {
		t.Fatalf("want ENOSPC naming the file, got %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "etc/f")); string(b) != "old\n" {
		t.Errorf("old file damaged: %d bytes", len(b))
	}
	noTemps(t, dir)
}
