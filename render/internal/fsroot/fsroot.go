// Package fsroot reads and writes files under one directory and never outside
// it. Every operation goes through Go's os.Root, which resolves each path
// component with openat and refuses ".." and symbolic links that would leave
// the directory, even when the tree changes under it.
//
// Reads (ReadFile, Exists, ReadDir, Lstat, Readlink) additionally follow
// absolute symbolic links relative to the root, as a chroot would: in an image
// root, /etc/os-release -> /usr/lib/os-release means <root>/usr/lib/os-release.
// A relative link that climbs above the root is refused.
//
// Writes (WriteFile, Symlink, Remove) follow no symbolic link that os.Root
// refuses: a parent directory that is an absolute link, or a relative link
// leading out of the root, makes them fail. Writes are atomic: a temporary
// file in the destination directory, fsync, rename, fsync of the directory.
package fsroot

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
)

// maxLinks is how many symbolic links one path may go through (Linux's limit).
const maxLinks = 40

// tempInfix marks the temporary files WriteFile and Symlink create.
const tempInfix = ".nicpersist-tmp-"

// Root is a directory tree that every path is resolved under.
type Root struct {
	dir  string
	root *os.Root
	// osEscape is the (unexported) error os.Root returns when a path or a
	// symbolic link would leave the root, captured by Open.
	osEscape error
	// failpoint, when set (by tests), is called before each step of a write
	// and makes the write fail with the error it returns.
	failpoint func(step string) error
}

// ErrOutsideRoot is wrapped by every error that refuses a path because a
// symbolic link would lead out of the root: errors.Is(err, ErrOutsideRoot).
var ErrOutsideRoot = errors.New("refusing to follow a symbolic link out of")

// errEscapes is what the read-side resolver returns for a relative link that
// climbs above the root.
type errEscapes struct{}

func (errEscapes) Error() string { return "path escapes from parent" }

// Open opens dir, which must exist and be a directory.
func Open(dir string) (*Root, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", dir, unwrapPath(err))
	}
	r := &Root{dir: dir, root: root}
	// os.Root does not export the error it gives for an escape; ".." always
	// escapes, so ask for it once and recognise it by identity later.
	var pe *fs.PathError
	if _, err := root.Lstat(".."); errors.As(err, &pe) {
		r.osEscape = pe.Err
	}
	return r, nil
}

// Close releases the directory.
func (r *Root) Close() error { return r.root.Close() }

// Dir is the directory given to Open.
func (r *Root) Dir() string { return r.dir }

// Path is name as the user sees it: joined to the directory given to Open.
func (r *Root) Path(name string) string { return filepath.Join(r.dir, filepath.FromSlash(name)) }

// check refuses names that are not clean, slash-separated paths relative to
// the root: "", absolute paths, "..", "a//b", "./a", "a/" and the like.
func (r *Root) check(op, name string) error {
	if !fs.ValidPath(name) {
		return fmt.Errorf("%s %q: not a clean path relative to %s", op, name, r.dir)
	}
	return nil
}

// escapes reports whether err is the resolver's or os.Root's refusal of a
// path that would leave the root. TestOpen makes sure osEscape is captured.
func (r *Root) escapes(err error) bool {
	return errors.Is(err, errEscapes{}) || (r.osEscape != nil && errors.Is(err, r.osEscape))
}

// fail names the path as the user sees it, and says plainly when a symbolic
// link tried to lead out of the root.
func (r *Root) fail(op, name string, err error) error {
	if err == nil {
		return nil
	}
	if r.escapes(err) {
		return fmt.Errorf("%s %s: %w %s", op, r.Path(name), ErrOutsideRoot, r.dir)
	}
	return fmt.Errorf("%s %s: %w", op, r.Path(name), unwrapPath(err))
}

// unwrapPath drops os's own *PathError or *LinkError, whose path is relative
// to the root and would repeat what fail already says.
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

// resolve rewrites name into a path with no symbolic links in it (as the tree
// is now), following links inside the root by hand: an absolute target starts
// again at the root and its ".." stop at the root, as in a chroot; a relative
// target that climbs above the root is refused. With followLast false the last
// component is left as it is (for Lstat and Readlink).
//
// The result is only ever handed to os.Root, so a link that changes between
// resolve and the real operation cannot lead out of the root either.
func (r *Root) resolve(name string, followLast bool) (string, error) {
	type comp struct {
		name  string
		clamp bool // ".." at the root stays at the root
	}
	split := func(p string, clamp bool) []comp {
		var cs []comp
		for _, s := range strings.Split(p, "/") {
			if s != "" && s != "." {
				cs = append(cs, comp{s, clamp})
			}
		}
		return cs
	}
	todo := split(name, false)
	var done []string
	links := 0
	for len(todo) > 0 {
		c := todo[0]
		todo = todo[1:]
		if c.name == ".." {
			switch {
			case len(done) > 0:
				done = done[:len(done)-1]
			case !c.clamp:
				return "", errEscapes{}
			}
			continue
		}
		cur := strings.Join(append(slices.Clip(done), c.name), "/")
		if len(todo) == 0 && !followLast {
			done = append(done, c.name)
			break
		}
		fi, err := r.root.Lstat(cur)
		if err != nil {
			return "", err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			done = append(done, c.name)
			continue
		}
		if links++; links > maxLinks {
			return "", syscall.ELOOP
		}
		target, err := r.root.Readlink(cur)
		if err != nil {
			return "", err
		}
		if target == "" {
			return "", syscall.ENOENT
		}
		abs := path.IsAbs(target)
		if abs {
			done = done[:0]
		}
		todo = append(split(target, abs), todo...)
	}
	if len(done) == 0 {
		return ".", nil
	}
	return strings.Join(done, "/"), nil
}

// ReadFile returns a regular file's bytes, following symbolic links inside
// the root. errors.Is(err, fs.ErrNotExist) when it is missing.
func (r *Root) ReadFile(name string) ([]byte, error) {
	if err := r.check("read", name); err != nil {
		return nil, err
	}
	real, err := r.resolve(name, true)
	if err != nil {
		return nil, r.fail("read", name, err)
	}
	// O_NONBLOCK: a FIFO must not hang the render; it is refused below.
	f, err := r.root.OpenFile(real, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, r.fail("read", name, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, r.fail("read", name, err)
	}
	if !fi.Mode().IsRegular() {
		if fi.IsDir() {
			return nil, r.fail("read", name, syscall.EISDIR)
		}
		return nil, fmt.Errorf("read %s: not a regular file (%v)", r.Path(name), fi.Mode().Type())
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, r.fail("read", name, err)
	}
	return b, nil
}

// Exists reports whether name exists. Links in its parent directories are
// followed as ReadFile follows them; the last component is not followed, so a
// dangling link exists.
func (r *Root) Exists(name string) bool {
	_, err := r.Lstat(name)
	return err == nil
}

// ReadDir lists a directory's entry names, sorted, following symbolic links
// inside the root. A missing directory is empty.
func (r *Root) ReadDir(name string) ([]string, error) {
	if err := r.check("read directory", name); err != nil {
		return nil, err
	}
	real, err := r.resolve(name, true)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, r.fail("read directory", name, err)
	}
	f, err := r.root.Open(real)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, r.fail("read directory", name, err)
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, r.fail("read directory", name, err)
	}
	slices.Sort(names)
	return names, nil
}

// Lstat describes name without following it if it is a symbolic link; links
// in its parent directories are followed as ReadFile follows them.
func (r *Root) Lstat(name string) (fs.FileInfo, error) {
	if err := r.check("stat", name); err != nil {
		return nil, err
	}
	real, err := r.resolve(name, false)
	if err != nil {
		return nil, r.fail("stat", name, err)
	}
	fi, err := r.root.Lstat(real)
	if err != nil {
		return nil, r.fail("stat", name, err)
	}
	return fi, nil
}

// Readlink returns a symbolic link's target, as stored.
// errors.Is(err, fs.ErrNotExist) when name is missing.
func (r *Root) Readlink(name string) (string, error) {
	if err := r.check("readlink", name); err != nil {
		return "", err
	}
	real, err := r.resolve(name, false)
	if err != nil {
		return "", r.fail("readlink", name, err)
	}
	t, err := r.root.Readlink(real)
	if err != nil {
		return "", r.fail("readlink", name, err)
	}
	return t, nil
}

// Remove removes a file or symbolic link, never a directory; a missing one is
// not an error.
func (r *Root) Remove(name string) error { return r.remove("remove", name, false) }

// RemoveDir removes name when it is an empty directory (never a symbolic
// link to one); a missing one is not an error. A directory that is not empty
// stays, and the error says so: errors.Is(err, syscall.ENOTEMPTY).
func (r *Root) RemoveDir(name string) error { return r.remove("remove directory", name, true) }

// remove removes name when it is a directory exactly when dir says so.
func (r *Root) remove(op, name string, dir bool) error {
	if err := r.check(op, name); err != nil {
		return err
	}
	fi, err := r.root.Lstat(name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return r.fail(op, name, err)
	case fi.IsDir() && !dir:
		return r.fail(op, name, syscall.EISDIR)
	case !fi.IsDir() && dir:
		return r.fail(op, name, syscall.ENOTDIR)
	}
	if err := r.root.Remove(name); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if dir && errors.Is(err, syscall.EEXIST) {
			err = syscall.ENOTEMPTY // rmdir(2) may say either
		}
		return r.fail(op, name, err)
	}
	return r.syncDir(op, name)
}

// WriteFile writes data to name atomically with mode perm, creating parent
// directories (0755). A symbolic link at name is replaced, never written
// through; a directory there is an error.
func (r *Root) WriteFile(name string, data []byte, perm fs.FileMode) error {
	const op = "write"
	if err := r.check(op, name); err != nil {
		return err
	}
	if err := r.prepare(op, name); err != nil {
		return err
	}
	tmp, err := r.tempName(op, name)
	if err != nil {
		return err
	}
	f, err := r.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return r.fail(op, name, err)
	}
	werr := func() error {
		if err := r.step("write"); err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			return err
		}
		if err := r.step("chmod"); err != nil {
			return err
		}
		// Before the fsync, so that the mode is as durable as the data.
		if err := f.Chmod(perm.Perm()); err != nil {
			return err
		}
		if err := r.step("sync"); err != nil {
			return err
		}
		if err := f.Sync(); err != nil {
			return err
		}
		return nil
	}()
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	return r.finish(op, name, tmp, werr)
}

// Symlink makes name a symbolic link to target, atomically, creating parent
// directories. target is stored as given and never followed here. Nothing
// changes when name already is a link to target.
func (r *Root) Symlink(name, target string) error {
	const op = "symlink"
	if err := r.check(op, name); err != nil {
		return err
	}
	if target == "" {
		return fmt.Errorf("%s %s: empty link target", op, r.Path(name))
	}
	if cur, err := r.root.Readlink(name); err == nil && cur == target {
		return nil
	}
	if err := r.prepare(op, name); err != nil {
		return err
	}
	tmp, err := r.tempName(op, name)
	if err != nil {
		return err
	}
	if err := r.root.Symlink(target, tmp); err != nil {
		return r.fail(op, name, err)
	}
	return r.finish(op, name, tmp, nil)
}

// finish ends a write whose temporary file tmp is complete unless err says
// otherwise: it renames tmp over name and syncs the directory, or removes tmp
// and reports err.
func (r *Root) finish(op, name, tmp string, err error) error {
	if err == nil {
		if err = r.step("rename"); err == nil {
			err = r.root.Rename(tmp, name)
		}
	}
	if err != nil {
		r.root.Remove(tmp)
		return r.fail(op, name, err)
	}
	return r.syncDir(op, name)
}

// prepare readies name, already checked, for a write: it refuses a directory
// there and creates the parent directories.
func (r *Root) prepare(op, name string) error {
	if fi, err := r.root.Lstat(name); err == nil && fi.IsDir() {
		return r.fail(op, name, syscall.EISDIR)
	}
	dir := path.Dir(name)
	if dir == "." {
		return nil
	}
	if err := r.root.MkdirAll(dir, 0o755); err != nil {
		if r.escapes(err) {
			return r.fail(op, name, err)
		}
		if errors.Is(err, fs.ErrExist) {
			// os.Root says EEXIST when the directory is a file; os.MkdirAll
			// says ENOTDIR, which is what the user needs to hear.
			err = syscall.ENOTDIR
		}
		return fmt.Errorf("%s %s: create directory %s: %w", op, r.Path(name), r.Path(dir), unwrapPath(err))
	}
	return nil
}

// tempName is a fresh name next to name: ".<base>.nicpersist-tmp-<random>".
func (r *Root) tempName(op, name string) (string, error) {
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", r.fail(op, name, err)
	}
	return path.Join(path.Dir(name), "."+path.Base(name)+tempInfix+hex.EncodeToString(b[:])), nil
}

// RemoveTemps removes the .<base>.nicpersist-tmp-* files beside paths that
// WriteFile or Symlink left when killed between creating and renaming them.
// Other files, and directories it cannot read, are left alone.
func (r *Root) RemoveTemps(paths []string) error {
	byDir := map[string]map[string]bool{}
	for _, p := range paths {
		dir, base := path.Split(p)
		dir = strings.TrimSuffix(dir, "/")
		if dir == "" {
			dir = "."
		}
		if byDir[dir] == nil {
			byDir[dir] = map[string]bool{}
		}
		byDir[dir][base] = true
	}
	for dir, bases := range byDir {
		names, err := r.ReadDir(dir)
		if err != nil {
			continue // a missing or unreadable directory holds no temporary file of ours
		}
		for _, n := range names {
			if base, ok := TempOf(n); ok && bases[base] {
				if err := r.Remove(path.Join(dir, n)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// TempOf reports whether the directory entry n is a temporary file that
// WriteFile or Symlink makes for a file named base beside it.
func TempOf(n string) (base string, ok bool) {
	base, _, ok = strings.Cut(strings.TrimPrefix(n, "."), tempInfix)
	return base, ok && strings.HasPrefix(n, ".")
}

// syncDir makes the last change to name's directory durable.
func (r *Root) syncDir(op, name string) error {
	err := r.step("syncdir")
	if err == nil {
		var d *os.File
		if d, err = r.root.Open(path.Dir(name)); err == nil {
			err = d.Sync()
			d.Close()
		}
	}
	if err != nil {
		return fmt.Errorf("%s %s: sync directory %s: %w", op, r.Path(name), r.Path(path.Dir(name)), unwrapPath(err))
	}
	return nil
}

func (r *Root) step(s string) error {
	if r.failpoint == nil {
		return nil
	}
	return r.failpoint(s)
}
