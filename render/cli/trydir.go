package cli

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nicpersist/nicpersist/render/internal/distro"
	"github.com/nicpersist/nicpersist/render/internal/fsroot"
)

// The try directory (<state>/try) is how `nicpersist try`, its watcher and
// `try --confirm` talk: each writes whole files (temporary file, fsync,
// rename) and the others poll for them, so that any of them may die at any
// moment without leaving a half-read request behind.
const (
	tryLockFile     = "lock"         // flock: held by the try command while it runs
	watcherLockFile = "watcher.lock" // flock: held by the watcher while a try is pending
	tryRecordFile   = "try.json"     // tryRecord: what to apply, and the backup
	tryReadyFile    = "ready"        // watcher -> try: it holds watcher.lock
	tryWrittenFile  = "written"      // try -> watcher: the new files are in place
	tryAbortFile    = "abort"        // try -> watcher: writing them failed
	tryAppliedFile  = "applied"      // watcher -> try: applied, reverts at the deadline
	tryConfirmFile  = "confirm"      // anyone -> watcher: keep it
	tryRevertFile   = "revert"       // try -> watcher: put it back now
	tryResultFile   = "result"       // watcher -> everyone: kept or reverted, why
	tryLogFile      = "watcher.log"  // the detached watcher's output
)

// tryDir is the try directory for a state directory: beside the unit's
// state, so that the unit's RuntimeDirectoryPreserve keeps it and a test
// that isolates the state isolates its tries too.
func tryDir(state string) string { return filepath.Join(state, "try") }

// tryStateDir is the unit's state directory, as `apply` finds it outside
// the unit.
func tryStateDir() string {
	if s := os.Getenv("NICPERSIST_STATE"); s != "" {
		return s
	}
	return "/run/nicpersist"
}

// savedFile is one rendered path as it was before a try.
type savedFile struct {
	Path   string      `json:"path"`
	Exists bool        `json:"exists"`
	Link   string      `json:"link,omitempty"` // the target, for a symbolic link
	Data   []byte      `json:"data,omitempty"`
	Mode   fs.FileMode `json:"mode,omitempty"`
}

func (s savedFile) same(o savedFile) bool {
	return s.Exists == o.Exists && s.Link == o.Link && s.Mode == o.Mode && string(s.Data) == string(o.Data)
}

// tryRecord is what the try command hands its watcher.
type tryRecord struct {
	ID      string    `json:"id"`
	Started time.Time `json:"started"`
	PID     int       `json:"pid"` // the try command
	Profile string    `json:"profile"`
	Root    string    `json:"root"`
	Dir     string    `json:"dir"` // the rendered files apply reads
	State   string    `json:"state"`
	Timeout int       `json:"timeout"` // seconds
	Wait    int       `json:"wait"`    // seconds apply waits for the links
	// WasApplied: the state recorded an applied configuration, which a
	// revert starts again from the restored files; otherwise it stops.
	WasApplied bool `json:"was_applied"`
	// Systemctl: the unit is active on this root; the watcher applies and
	// reverts with `systemctl reload nicpersist.service`.
	Systemctl bool        `json:"systemctl,omitempty"`
	Log       string      `json:"log"` // where the watcher's messages go
	Files     []savedFile `json:"files"`
	Dirs      []string    `json:"dirs,omitempty"` // created by the try; removed on revert when empty
}

// tryRequest is a confirm or revert request, for one try.
type tryRequest struct {
	ID     string `json:"id"`
	Reason string `json:"reason,omitempty"`
}

// tryApplied says when the watcher reverts unless confirmed.
type tryApplied struct {
	ID       string    `json:"id"`
	Deadline time.Time `json:"deadline"`
}

// tryReady says which process watches.
type tryReady struct {
	ID  string `json:"id"`
	PID int    `json:"pid"`
}

// tryResult is how a try ended.
type tryResult struct {
	ID     string    `json:"id"`
	Kept   bool      `json:"kept"`
	Reason string    `json:"reason"`
	Errors []string  `json:"errors,omitempty"`
	At     time.Time `json:"at"`
}

func newTryID() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// writeJSON writes v to dir/name whole or not at all.
func writeJSON(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return err
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), filepath.Join(dir, name))
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("writing %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

// readJSON reads dir/name into v; ok is false when the file is not there.
func readJSON(dir, name string, v any) (ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := json.Unmarshal(b, v); err != nil {
		return false, fmt.Errorf("%s: %v", filepath.Join(dir, name), err)
	}
	return true, nil
}

// lockFile takes an exclusive flock on path without waiting; ok is false
// when another process holds it. The lock lasts as long as the file is open.
func lockFile(path string) (f *os.File, ok bool, err error) {
	f, err = os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, false, err
	}
	switch err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); {
	case err == nil:
		return f, true, nil
	case errors.Is(err, syscall.EWOULDBLOCK):
		f.Close()
		return nil, false, nil
	default:
		f.Close()
		return nil, false, fmt.Errorf("lock %s: %w", path, err)
	}
}

// watcherAlive says whether a watcher holds the try directory's watcher
// lock: whether a try is pending.
func watcherAlive(dir string) (bool, error) {
	if _, err := os.Stat(filepath.Join(dir, watcherLockFile)); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	f, ok, err := lockFile(filepath.Join(dir, watcherLockFile))
	if err != nil {
		return false, err
	}
	if ok {
		f.Close()
	}
	return !ok, nil
}

// clearTryDir removes what an earlier try left, but the locks.
func clearTryDir(dir string) error {
	for _, name := range []string{tryRecordFile, tryReadyFile, tryWrittenFile, tryAbortFile, tryAppliedFile, tryConfirmFile, tryRevertFile, tryResultFile, tryLogFile} {
		if err := os.Remove(filepath.Join(dir, name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// saveFiles reads each path as it is now, and the directories a write of
// them would create.
func saveFiles(r *fsroot.Root, paths []string) ([]savedFile, []string, error) {
	var saved []savedFile
	dirs := map[string]bool{}
	for _, p := range paths {
		s, err := currentFile(r, p)
		if err != nil {
			return nil, nil, err
		}
		saved = append(saved, s)
		for d := path.Dir(p); d != "." && d != "/" && !dirs[d]; d = path.Dir(d) {
			if _, err := r.Lstat(d); !errors.Is(err, fs.ErrNotExist) {
				break
			}
			dirs[d] = true
		}
	}
	// The manifest goes back last: until then it lists every path a revert
	// stopped part way may have left, as a render's manifest does.
	slices.SortStableFunc(saved, func(a, b savedFile) int {
		return boolCmp(a.Path == distro.Manifest, b.Path == distro.Manifest)
	})
	return saved, slices.Sorted(maps.Keys(dirs)), nil
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

func currentFile(r *fsroot.Root, p string) (savedFile, error) {
	s := savedFile{Path: p}
	fi, err := r.Lstat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return s, nil
	case err != nil:
		return s, err
	case fi.Mode()&fs.ModeSymlink != 0:
		s.Exists = true
		s.Link, err = r.Readlink(p)
		return s, err
	case !fi.Mode().IsRegular():
		return s, fmt.Errorf("%s: not a regular file or symbolic link", r.Path(p))
	}
	s.Exists, s.Mode = true, fi.Mode().Perm()
	s.Data, err = r.ReadFile(p)
	return s, err
}

// restoreFiles puts every saved path back as it was, writing only what
// differs, and removes the directories the try created once they are
// empty. It goes on past errors: whatever can be put back is.
func restoreFiles(r *fsroot.Root, saved []savedFile, dirs []string) error {
	var errs []error
	var paths []string
	for _, s := range saved {
		paths = append(paths, s.Path)
		cur, err := currentFile(r, s.Path)
		if err == nil && cur.same(s) {
			continue
		}
		switch {
		case !s.Exists:
			err = r.Remove(s.Path)
		case s.Link != "":
			err = r.Symlink(s.Path, s.Link)
		default:
			err = r.WriteFile(s.Path, s.Data, s.Mode)
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	// A write killed part way may have left its temporary files.
	if err := r.RemoveTemps(paths); err != nil {
		errs = append(errs, err)
	}
	// Deepest first, so that a parent is empty by the time its turn comes.
	slices.SortFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	for _, d := range dirs {
		if err := r.RemoveDir(d); err != nil && !errors.Is(err, syscall.ENOTEMPTY) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
