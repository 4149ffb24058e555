package cli

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/nicpersist/nicpersist/render/internal/apply"
	"github.com/nicpersist/nicpersist/render/internal/distro"
	"github.com/nicpersist/nicpersist/render/internal/fsroot"
)

// watcher applies a try's files, waits for a confirmation, and puts the
// files and the kernel back without one. It runs apart from the terminal
// that started the try (a transient unit, or a process in its own session),
// so that losing the SSH session that the change cut does not lose the
// revert.
type watcher struct {
	dir  string
	rec  tryRecord
	log  io.Writer
	sigs chan os.Signal
}

// writtenTimeout bounds the wait for the try command to write the files:
// it has them rendered already, so only a dead or stuck command takes long.
const writtenTimeout = 60 * time.Second

func runWatcher(dir, id string, stderr io.Writer) int {
	// A watcher started from a terminal in a session of its own still gets
	// SIGHUP should it ever acquire one; it must survive the terminal.
	signal.Ignore(syscall.SIGHUP)
	w := &watcher{dir: dir, log: stderr, sigs: make(chan os.Signal, 2)}
	// SIGTERM is a shutdown or `systemctl stop nicpersist-try`: unconfirmed,
	// the change must not outlive it (nor reach the next boot's files).
	signal.Notify(w.sigs, syscall.SIGTERM, syscall.SIGINT)
	lock, ok, err := lockFile(filepath.Join(dir, watcherLockFile))
	if err != nil || !ok {
		w.logf("another watcher holds %s (%v); this one quits", filepath.Join(dir, watcherLockFile), err)
		return ExitRuntime
	}
	defer lock.Close()
	if ok, err := readJSON(dir, tryRecordFile, &w.rec); err != nil || !ok || w.rec.ID != id {
		w.logf("the try %s this watcher was started for is gone (%v); this one quits", id, err)
		return ExitRuntime
	}
	if err := writeJSON(dir, tryReadyFile, tryReady{ID: id, PID: os.Getpid()}); err != nil {
		w.logf("%v", err)
		return ExitRuntime
	}
	w.logf("watching the try %s of %s (root %s, timeout %d s)", id, w.rec.Profile, w.rec.Root, w.rec.Timeout)

	if reason, ok := w.waitWritten(); !ok {
		return w.finish(false, reason, w.restoreFiles())
	}
	if err := w.applyKernel(); err != nil {
		return w.revert("applying failed: " + err.Error())
	}
	deadline := time.Now().Add(time.Duration(w.rec.Timeout) * time.Second)
	if err := writeJSON(dir, tryAppliedFile, tryApplied{ID: id, Deadline: deadline}); err != nil {
		return w.revert(err.Error())
	}
	w.logf("applied; reverting at %s unless confirmed", deadline.Format(time.RFC3339))
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case s := <-w.sigs:
			return w.revert(fmt.Sprintf("the watcher got %v", s))
		case <-tick.C:
		}
		var req tryRequest
		if ok, _ := readJSON(dir, tryConfirmFile, &req); ok && req.ID == id {
			return w.finish(true, "confirmed", nil)
		}
		if ok, _ := readJSON(dir, tryRevertFile, &req); ok && req.ID == id {
			return w.revert(req.Reason)
		}
		if !time.Now().Before(deadline) {
			return w.revert(fmt.Sprintf("no confirmation within %d s", w.rec.Timeout))
		}
	}
}

func (w *watcher) logf(format string, args ...any) {
	fmt.Fprintf(w.log, "%s nicpersist try: %s\n", time.Now().Format(time.RFC3339), fmt.Sprintf(format, args...))
}

// waitWritten waits for the try command to say the files are written; ok
// is false, with the reason, when they must be put back at once.
func (w *watcher) waitWritten() (reason string, ok bool) {
	deadline := time.Now().Add(writtenTimeout)
	for {
		var req tryRequest
		if ok, _ := readJSON(w.dir, tryWrittenFile, &req); ok && req.ID == w.rec.ID {
			return "", true
		}
		if ok, _ := readJSON(w.dir, tryAbortFile, &req); ok && req.ID == w.rec.ID {
			return req.Reason, false
		}
		select {
		case s := <-w.sigs:
			return fmt.Sprintf("the watcher got %v", s), false
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "the try command did not finish writing the files", false
		}
	}
}

// applyKernel applies the try's files: through the unit when it is active
// on this root, so that its own state and journal follow; otherwise with
// the unit's code and state directory.
func (w *watcher) applyKernel() error {
	if w.rec.Systemctl {
		return w.systemctl("reload")
	}
	return apply.Start(w.applyConfig())
}

func (w *watcher) applyConfig() apply.Config {
	return apply.Config{Dir: w.rec.Dir, State: w.rec.State, Wait: time.Duration(w.rec.Wait) * time.Second, Stderr: w.log}
}

func (w *watcher) systemctl(verb string) error {
	out, err := exec.Command("systemctl", verb, distro.UnitName).CombinedOutput()
	w.log.Write(out)
	if err != nil {
		return fmt.Errorf("systemctl %s %s: %v: %s", verb, distro.UnitName, err, bytes.TrimSpace(out))
	}
	return nil
}

// revert puts back the files, then the kernel state from them: a start
// from the restored files reconciles the kernel to them (a failed start
// has already undone itself); with nothing applied before, a stop.
func (w *watcher) revert(reason string) int {
	w.logf("reverting: %s", reason)
	var errs []error
	if err := w.restoreFiles(); err != nil {
		errs = append(errs, err)
	}
	var err error
	switch {
	case w.rec.Systemctl:
		if err = w.systemctl("reload"); err != nil {
			// The revert must not hang on one systemctl call (seen: the
			// reload's control process failing to join its cgroup,
			// status 219): the unit's own code with its own state puts
			// the kernel back all the same.
			w.logf("%v; putting the kernel back with the unit's code instead", err)
			err = apply.Start(w.applyConfig())
		}
	case w.rec.WasApplied:
		err = apply.Start(w.applyConfig())
	default:
		err = apply.Stop(w.applyConfig())
	}
	if err != nil {
		errs = append(errs, fmt.Errorf("putting back the kernel state: %w", err))
	}
	return w.finish(false, reason, errs...)
}

func (w *watcher) restoreFiles() error {
	r, err := fsroot.Open(w.rec.Root)
	if err != nil {
		return err
	}
	defer r.Close()
	if err := restoreFiles(r, w.rec.Files, w.rec.Dirs); err != nil {
		return fmt.Errorf("putting back the files: %w", err)
	}
	return nil
}

// finish records the result, for the try command and --confirm.
func (w *watcher) finish(kept bool, reason string, errs ...error) int {
	res := tryResult{ID: w.rec.ID, Kept: kept, Reason: reason, At: time.Now()}
	for _, err := range errs {
		if err != nil {
			res.Errors = append(res.Errors, err.Error())
			w.logf("%v", err)
		}
	}
	if err := writeJSON(w.dir, tryResultFile, res); err != nil {
		w.logf("%v", err)
	}
	switch {
	case kept:
		w.logf("confirmed: keeping the try's files and kernel state")
	case len(res.Errors) > 0:
		w.logf("reverted (%s), with errors", reason)
		return ExitRuntime
	default:
		w.logf("reverted (%s)", reason)
	}
	// A revert is the watcher doing its job: a transient unit that did it
	// does not show as failed.
	return ExitOK
}
