// Package fsroot reads and writes files under one directory and never outside
// it: every operation goes through Go's os.Root, which refuses paths and
// symbolic links that leave the directory, even when they change under it.
// Writes are atomic: a temporary file in the destination directory, fsync,
// rename, fsync of the directory.
package fsroot

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// Root is a directory tree that every path is resolved under.
type Root struct {
	dir  string
	root *os.Root
}

// Open opens dir, which must be a directory.
func Open(dir string) (*Root, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", dir, unwrapPath(err))
	}
	return &Root{dir: dir, root: r}, nil
}

// Close releases the directory.
func (r *Root) Close() error { return r.root.Close() }

// Dir is the directory given to Open.
func (r *Root) Dir() string { return r.dir }

func (r *Root) show(name string) string { return filepath.Join(r.dir, filepath.FromSlash(name)) }

// check refuses names that are not clean relative paths.
func (r *Root) check(name string) error {
	if name == "" || path.IsAbs(name) || path.Clean(name) != name || name == ".." || strings.HasPrefix(name, "../") {
		return fmt.Errorf("%q: not a clean path relative to %s", name, r.dir)
	}
	return nil
}

// wrap names the path as the user sees it and says plainly when a symbolic
// link tried to lead out of the root.
func (r *Root) wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	inner := unwrapPath(err)
	if strings.Contains(inner.Error(), "escapes from parent") || strings.Contains(inner.Error(), "path escapes") {
		return fmt.Errorf("%s %s: refusing to follow a symbolic link out of %s", op, r.show(name), r.dir)
	}
	return fmt.Errorf("%s %s: %w", op, r.show(name), inner)
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}

// resolve follows absolute symbolic links by hand, relative to the root, as a
// chroot would; os.Root refuses them. Relative links are left to os.Root.
func (r *Root) resolve(name string) (string, error) {
	parts := strings.Split(name, "/")
	var done []string
	links := 0
	for len(parts) > 0 {
		p := parts[0]
		parts = parts[1:]
		switch p {
		case "", ".":
			continue
		case "..":
			if len(done) > 0 {
				done = done[:len(done)-1]
			}
			continue
		}
		cur := path.Join(append(done, p)...)
		fi, err := r.root.Lstat(cur)
		if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, p)
			if err != nil {
				// Let the real operation report it.
				return path.Join(append(done, parts...)...), nil
			}
			continue
		}
		links++
		if links > 40 {
			return "", fmt.Errorf("too many levels of symbolic links")
		}
		t, err := r.root.Readlink(cur)
		if err != nil {
			return "", err
		}
		if path.IsAbs(t) {
			done = nil
		}
		parts = append(strings.Split(t, "/"), parts...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return path.Join(done...), nil
}

// ReadFile returns a file's bytes. errors.Is(err, fs.ErrNotExist) when missing.
func (r *Root) ReadFile(name string) ([]byte, error) {
	if err := r.check(name); err != nil {
		return nil, err
	}
	b, err := r.root.ReadFile(name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		// An absolute link on the way: resolve it inside the root.
		if real, rerr := r.resolve(name); rerr == nil && real != name {
			b, err = r.root.ReadFile(real)
		}
	}
	return b, r.wrap("read", name, err)
}

// Exists reports whether name exists, following links inside the root.
func (r *Root) Exists(name string) bool {
	if r.check(name) != nil {
		return false
	}
	if _, err := r.root.Lstat(name); err == nil {
		return true
	}
	real, err := r.resolve(name)
	if err != nil {
		return false
	}
	_, err = r.root.Lstat(real)
	return err == nil
}

// ReadDir lists a directory's entry names, sorted; a missing directory is empty.
func (r *Root) ReadDir(name string) ([]string, error) {
	if err := r.check(name); err != nil {
		return nil, err
	}
	real, err := r.resolve(name)
	if err != nil {
		return nil, r.wrap("read", name, err)
	}
	f, err := r.root.Open(real)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, r.wrap("read", name, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, nil // not a directory: nothing in it
	}
	sort.Strings(names)
	return names, nil
}

// Lstat describes name without following a final symbolic link.
func (r *Root) Lstat(name string) (fs.FileInfo, error) {
	if err := r.check(name); err != nil {
		return nil, err
	}
	fi, err := r.root.Lstat(name)
	return fi, r.wrap("stat", name, err)
}

// Readlink returns a symbolic link's target.
func (r *Root) Readlink(name string) (string, error) {
	if err := r.check(name); err != nil {
		return "", err
	}
	t, err := r.root.Readlink(name)
	if err != nil {
		return "", r.wrap("readlink", name, err)
	}
	return t, nil
}

// Remove removes a file or symbolic link; a missing one is not an error.
func (r *Root) Remove(name string) error {
	if err := r.check(name); err != nil {
		return err
	}
	if fi, err := r.root.Lstat(name); err == nil && fi.IsDir() {
		return fmt.Errorf("remove %s: is a directory", r.show(name))
	}
	err := r.root.Remove(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return r.wrap("remove", name, err)
	}
	return r.syncDir(path.Dir(name))
}

func tempName(name string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return path.Join(path.Dir(name), "."+path.Base(name)+".nicpersist-tmp-"+hex.EncodeToString(b[:])), nil
}

func (r *Root) mkdirs(name string) error {
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	return r.wrap("create directory for", name, r.root.MkdirAll(dir, 0o755))
}

func (r *Root) syncDir(dir string) error {
	d, err := r.root.Open(dir)
	if err != nil {
		return r.wrap("open directory", dir, err)
	}
	defer d.Close()
	return r.wrap("sync directory", dir, d.Sync())
}

// WriteFile writes data to name atomically with mode perm. A symbolic link at
// name is replaced, never written through.
func (r *Root) WriteFile(name string, data []byte, perm fs.FileMode) (err error) {
	if err := r.check(name); err != nil {
		return err
	}
	if fi, err := r.root.Lstat(name); err == nil && fi.IsDir() {
		return fmt.Errorf("write %s: is a directory", r.show(name))
	}
	if err := r.mkdirs(name); err != nil {
		return err
	}
	tmp, err := tempName(name)
	if err != nil {
		return err
	}
	f, err := r.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return r.wrap("write", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			r.root.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return r.wrap("write", name, err)
	}
	if err = f.Chmod(perm.Perm()); err != nil {
		return r.wrap("write", name, err)
	}
	if err = f.Sync(); err != nil {
		return r.wrap("write", name, err)
	}
	if err = f.Close(); err != nil {
		return r.wrap("write", name, err)
	}
	if err = r.root.Rename(tmp, name); err != nil {
		return r.wrap("write", name, err)
	}
	return r.syncDir(path.Dir(name))
}

// Symlink makes name a symbolic link to target, atomically. target is stored
// as given and never followed here.
func (r *Root) Symlink(name, target string) (err error) {
	if err := r.check(name); err != nil {
		return err
	}
	if cur, err := r.root.Readlink(name); err == nil && cur == target {
		return nil
	}
	if fi, err := r.root.Lstat(name); err == nil && fi.IsDir() {
		return fmt.Errorf("symlink %s: is a directory", r.show(name))
	}
	if err := r.mkdirs(name); err != nil {
		return err
	}
	tmp, err := tempName(name)
	if err != nil {
		return err
	}
	if err := r.root.Symlink(target, tmp); err != nil {
		return r.wrap("symlink", name, err)
	}
	if err := r.root.Rename(tmp, name); err != nil {
		r.root.Remove(tmp)
		return r.wrap("symlink", name, err)
	}
	return r.syncDir(path.Dir(name))
}
