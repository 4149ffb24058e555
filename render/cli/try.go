package cli

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"time"
	"unsafe"

	"github.com/spf13/pflag"

	"github.com/nicpersist/nicpersist/render/internal/apply"
	"github.com/nicpersist/nicpersist/render/internal/changeset"
	"github.com/nicpersist/nicpersist/render/internal/distro"
)

// tryHelp heads `nicpersist try --help`.
const tryHelp = `Renders the profile, applies it to the running kernel now, and waits for a
confirmation: Enter on the terminal, or "nicpersist try --confirm" from
another shell. Without one (timeout, Ctrl-C, the terminal going away, or a
failed apply) the previous rendered files and kernel state are put back.
The revert is done by a watcher that outlives the terminal: a transient
unit (nicpersist-try.service) under systemd, a detached process otherwise.
Exit status: 0 confirmed, 1 reverted or failed, 2 invalid usage or profile.
`

const (
	defaultTryTimeout = 120
	// defaultTryWait is how long a try's apply waits for the links: a try
	// runs on a machine that is up, where a link that is not there by now
	// is a mistake in the profile.
	defaultTryWait = 10
	tryUnitName    = "nicpersist-try"
	// readyTimeout bounds the watcher's start, and the wait for its result
	// once it has what it needs.
	readyTimeout = 30 * time.Second
	// unitApplyTime bounds a reload of nicpersist.service: its
	// TimeoutStartSec.
	unitApplyTime = 120 * time.Second
)

func runTry(args []string, stdin *os.File, stdout, stderr io.Writer) int {
	var c common
	var tgt, stack, watchDir, watchID string
	var timeout int
	var confirm bool
	fl := pflag.NewFlagSet("try", pflag.ContinueOnError)
	c.register(fl)
	fl.StringVar(&tgt, "target", "auto", "auto, rhel or systemd")
	fl.StringVar(&stack, "rhel-stack", "auto", "for --target rhel: auto, network-scripts or networkmanager")
	fl.IntVar(&timeout, "timeout", defaultTryTimeout, "seconds to wait for a confirmation before reverting")
	fl.BoolVar(&confirm, "confirm", false, "keep the pending try (from another shell)")
	// The watcher's mode: what the try starts detached, or as a transient
	// unit; not for users.
	fl.StringVar(&watchDir, "watcher", "", "")
	fl.StringVar(&watchID, "watch-id", "", "")
	fl.MarkHidden("watcher")
	fl.MarkHidden("watch-id")
	var help bytes.Buffer
	if code, ok := parse(fl, args, 0, &help, stderr); !ok {
		if help.Len() > 0 {
			fmt.Fprint(stdout, tryHelp+"\n"+help.String())
		}
		return code
	}
	switch {
	case watchDir != "":
		return runWatcher(watchDir, watchID, stderr)
	case confirm:
		for _, f := range []string{"profile", "root", "target", "rhel-stack", "timeout"} {
			if fl.Changed(f) {
				return usageError(fl, fmt.Errorf("--confirm takes no other flag (--%s given)", f), stderr)
			}
		}
		return runConfirm(tryDir(tryStateDir()), stdout, stderr)
	case timeout < 1:
		return usageError(fl, fmt.Errorf("--timeout %d: want 1 or more seconds", timeout), stderr)
	}
	wait := defaultTryWait
	if w, err := strconv.Atoi(os.Getenv("NICPERSIST_WAIT")); err == nil && w >= 0 {
		wait = w
	}

	l, code := load(c, stderr)
	if l == nil {
		return code
	}
	defer l.root.Close()
	_, files, _, code := renderFiles(l, "try", tgt, stack, stderr)
	if files == nil {
		return code
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(stderr, "nicpersist try: applies to the running kernel, which needs root; nothing changed")
		return ExitRuntime
	}
	changes, err := changeset.Compute(l.root, files, l.name)
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist: nothing changed:\n%v\n", err)
		return ExitRuntime
	}

	state, err := filepath.Abs(tryStateDir())
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist try: %v\n", err)
		return ExitRuntime
	}
	dir := tryDir(state)
	// The state directory as apply and the unit make it; the try's own
	// files are root's alone.
	err = os.MkdirAll(state, 0o755)
	if err == nil {
		err = os.MkdirAll(dir, 0o700)
	}
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist try: %v; nothing changed\n", err)
		return ExitRuntime
	}
	lock, ok, err := lockFile(filepath.Join(dir, tryLockFile))
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist try: %v; nothing changed\n", err)
		return ExitRuntime
	}
	if !ok {
		fmt.Fprintf(stderr, "nicpersist try: another try is starting or waiting for its confirmation (%s); confirm it with `nicpersist try --confirm` or let it revert, then try again; nothing changed\n", dir)
		return ExitRuntime
	}
	defer lock.Close()
	if alive, err := watcherAlive(dir); err != nil || alive {
		var rec tryRecord
		var applied tryApplied
		readJSON(dir, tryRecordFile, &rec)
		when := "applying"
		if ok, _ := readJSON(dir, tryAppliedFile, &applied); ok && applied.ID == rec.ID {
			when = "reverts at " + applied.Deadline.Local().Format(time.TimeOnly) + " unless confirmed"
		}
		fmt.Fprintf(stderr, "nicpersist try: a try of %s is pending (started %s, %s); confirm it with `nicpersist try --confirm` or let it revert, then try again; nothing changed\n",
			rec.Profile, rec.Started.Local().Format(time.TimeOnly), when)
		return ExitRuntime
	}
	if err := setAsideAbandoned(dir, stderr); err != nil {
		fmt.Fprintf(stderr, "nicpersist try: %v; nothing changed\n", err)
		return ExitRuntime
	}

	// Absolute: the watcher runs elsewhere (from /, or as a unit).
	root, err := filepath.Abs(l.root.Dir())
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist try: %v; nothing changed\n", err)
		return ExitRuntime
	}
	rec := tryRecord{ID: newTryID(), Started: time.Now(), PID: os.Getpid(), Profile: l.name, Root: root,
		Dir: filepath.Join(root, distro.Dir), State: state, Timeout: timeout, Wait: wait}
	if rec.WasApplied, err = apply.Applied(state); err != nil {
		fmt.Fprintf(stderr, "nicpersist try: %v; nothing changed\n", err)
		return ExitRuntime
	}
	var paths []string
	for _, ch := range changes {
		paths = append(paths, ch.Path)
	}
	if rec.Files, rec.Dirs, err = saveFiles(l.root, paths); err != nil {
		fmt.Fprintf(stderr, "nicpersist try: backing up the rendered files: %v; nothing changed\n", err)
		return ExitRuntime
	}
	useUnit := systemdHere()
	rec.Systemctl = useUnit && rec.Root == "/" && unitActive()
	rec.Log = filepath.Join(dir, tryLogFile)
	if useUnit {
		rec.Log = "journalctl -u " + tryUnitName
	}
	if err := writeJSON(dir, tryRecordFile, rec); err != nil {
		fmt.Fprintf(stderr, "nicpersist try: %v; nothing changed\n", err)
		return ExitRuntime
	}
	if err := startWatcher(dir, rec.ID, useUnit); err != nil {
		os.Remove(filepath.Join(dir, tryRecordFile))
		fmt.Fprintf(stderr, "nicpersist try: starting the watcher: %v; nothing changed\n", err)
		return ExitRuntime
	}

	// From here the watcher puts everything back unless told to keep it;
	// Ctrl-C and the terminal going away become revert requests.
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)
	if err := changeset.Write(l.root, changes); err != nil {
		fmt.Fprintf(stderr, "nicpersist try: writing the rendered files: %v\n", err)
		writeJSON(dir, tryAbortFile, tryRequest{ID: rec.ID, Reason: "writing the rendered files failed"})
		return reportResult(dir, rec, waitResult(dir, rec.ID, readyTimeout), stdout, stderr)
	}
	printChanges(stdout, changes, false, true)
	if err := writeJSON(dir, tryWrittenFile, tryRequest{ID: rec.ID}); err != nil {
		fmt.Fprintf(stderr, "nicpersist try: %v; the watcher puts the files back\n", err)
		return reportResult(dir, rec, waitResult(dir, rec.ID, readyTimeout+time.Duration(timeout)*time.Second), stdout, stderr)
	}
	fmt.Fprintln(stdout, "Applying...")
	fg := &tryForeground{dir: dir, rec: rec, sigs: sigs, stdout: stdout, stderr: stderr}
	return fg.wait(stdin)
}

// tryForeground is the try command once the watcher has what it needs.
type tryForeground struct {
	dir    string
	rec    tryRecord
	sigs   chan os.Signal
	stdout io.Writer
	stderr io.Writer
	asked  bool // a confirm or revert request is written
}

// wait relays the terminal to the watcher until it reports a result.
func (f *tryForeground) wait(stdin *os.File) int {
	lines := make(chan bool, 1) // true: a line; false: the terminal is gone
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	var applied tryApplied
	// The watcher applies within its wait for the links, plus ip's time.
	wait := time.Duration(f.rec.Wait) * time.Second
	if f.rec.Systemctl {
		wait = unitApplyTime // the unit's reload waits for links by its own settings
	}
	limit := time.Now().Add(wait + readyTimeout)
	for {
		select {
		case s := <-f.sigs:
			reason := map[os.Signal]string{syscall.SIGINT: "interrupted (Ctrl-C)", syscall.SIGTERM: "terminated (SIGTERM)",
				syscall.SIGHUP: "the terminal went away (SIGHUP)"}[s]
			f.request(tryRevertFile, reason)
		case line := <-lines:
			if line {
				f.request(tryConfirmFile, "")
			} else {
				f.request(tryRevertFile, "the terminal went away (end of input)")
			}
		case <-tick.C:
		}
		var res tryResult
		if ok, _ := readJSON(f.dir, tryResultFile, &res); ok && res.ID == f.rec.ID {
			return reportResult(f.dir, f.rec, &res, f.stdout, f.stderr)
		}
		if applied.ID == "" {
			if ok, _ := readJSON(f.dir, tryAppliedFile, &applied); ok && applied.ID == f.rec.ID {
				// Flushed before the question, so that an answer to it stays.
				if stdin != nil {
					flushTerminal(stdin)
				}
				left := time.Until(applied.Deadline).Round(time.Second) / time.Second
				fmt.Fprintf(f.stdout, "Applied. Press Enter within %d s, or run `nicpersist try --confirm`, to keep it; otherwise it is reverted.\n", left)
				limit = applied.Deadline.Add(readyTimeout)
				if stdin != nil {
					go readLines(stdin, lines)
				}
			} else {
				applied.ID = ""
			}
		}
		if alive, _ := watcherAlive(f.dir); !alive || time.Now().After(limit) {
			// The result may have come with the watcher's exit.
			if ok, _ := readJSON(f.dir, tryResultFile, &res); ok && res.ID == f.rec.ID {
				return reportResult(f.dir, f.rec, &res, f.stdout, f.stderr)
			}
			return reportResult(f.dir, f.rec, nil, f.stdout, f.stderr)
		}
	}
}

// request writes a confirm or revert request, once: the first word counts.
func (f *tryForeground) request(name, reason string) {
	if f.asked {
		return
	}
	f.asked = true
	// Before anything is printed: the terminal may be gone, and the
	// request is what matters.
	err := writeJSON(f.dir, name, tryRequest{ID: f.rec.ID, Reason: reason})
	if err != nil {
		fmt.Fprintf(f.stderr, "nicpersist try: %v\n", err)
		return
	}
	if name == tryConfirmFile {
		fmt.Fprintln(f.stdout, "Confirming...")
	} else {
		fmt.Fprintf(f.stdout, "Reverting: %s...\n", reason)
	}
}

// readLines sends true for each line read, and false once, when the input
// ends on a terminal (it went away). Input that is not a terminal (a pipe,
// /dev/null) may end without meaning anything: then only the timeout or
// --confirm ends the try.
func readLines(in *os.File, lines chan<- bool) {
	tty := isTerminal(in)
	r := bufio.NewReader(in)
	for {
		_, err := r.ReadString('\n')
		if err != nil {
			if tty {
				lines <- false
			}
			return
		}
		lines <- true
	}
}

func isTerminal(f *os.File) bool {
	var t syscall.Termios
	_, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), syscall.TCGETS, uintptr(unsafe.Pointer(&t)))
	return e == 0
}

// flushTerminal drops what was typed on a terminal before the question:
// an Enter pressed while the apply ran must not confirm a change nobody
// has seen working. TCFLSH is 0x540B in asm-generic's ioctls, which these
// architectures use; package syscall defines it for some only.
func flushTerminal(f *os.File) {
	switch runtime.GOARCH {
	case "amd64", "arm64", "386", "arm", "riscv64", "s390x":
		if isTerminal(f) {
			syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), 0x540B, syscall.TCIFLUSH)
		}
	}
}

// waitResult polls for the try's result for up to d, or until the
// watcher is gone (nil then: it ended without one).
func waitResult(dir, id string, d time.Duration) *tryResult {
	deadline := time.Now().Add(d)
	for {
		var res tryResult
		if ok, _ := readJSON(dir, tryResultFile, &res); ok && res.ID == id {
			return &res
		}
		if alive, _ := watcherAlive(dir); !alive {
			if ok, _ := readJSON(dir, tryResultFile, &res); ok && res.ID == id {
				return &res
			}
			return nil
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// reportResult says how the try ended: 0 kept, 1 otherwise.
func reportResult(dir string, rec tryRecord, res *tryResult, stdout, stderr io.Writer) int {
	if res == nil {
		fmt.Fprintf(stderr, "nicpersist try: the watcher has not said how the try ended; see %s, and %s\n", rec.Log, filepath.Join(dir, tryRecordFile))
		return ExitRuntime
	}
	for _, e := range res.Errors {
		fmt.Fprintf(stderr, "nicpersist try: %s\n", e)
	}
	if res.Kept {
		fmt.Fprintln(stdout, "Confirmed: the new files and kernel state stay.")
		return ExitOK
	}
	if len(res.Errors) > 0 {
		fmt.Fprintf(stdout, "Reverted (%s), but not everything could be put back: see above and %s.\n", res.Reason, rec.Log)
		return ExitRuntime
	}
	fmt.Fprintf(stdout, "Reverted (%s): the previous files and kernel state are back.\n", res.Reason)
	return ExitRuntime
}

// runConfirm asks the pending try's watcher to keep it.
func runConfirm(dir string, stdout, stderr io.Writer) int {
	alive, err := watcherAlive(dir)
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist try --confirm: %v\n", err)
		return ExitRuntime
	}
	if !alive {
		msg := "no try is pending; nothing to confirm"
		var res tryResult
		if ok, _ := readJSON(dir, tryResultFile, &res); ok {
			what := "reverted (" + res.Reason + ")"
			if res.Kept {
				what = "confirmed"
			}
			msg += fmt.Sprintf(" (the last try was %s at %s)", what, res.At.Format(time.RFC3339))
		}
		fmt.Fprintf(stderr, "nicpersist try --confirm: %s\n", msg)
		return ExitRuntime
	}
	var rec tryRecord
	if _, err := readJSON(dir, tryRecordFile, &rec); err != nil || rec.ID == "" {
		fmt.Fprintf(stderr, "nicpersist try --confirm: reading the pending try: %v\n", err)
		return ExitRuntime
	}
	if err := writeJSON(dir, tryConfirmFile, tryRequest{ID: rec.ID}); err != nil {
		fmt.Fprintf(stderr, "nicpersist try --confirm: %v\n", err)
		return ExitRuntime
	}
	// The watcher takes the request once its apply is done.
	res := waitResult(dir, rec.ID, readyTimeout+max(unitApplyTime, time.Duration(rec.Wait)*time.Second))
	if res != nil && !res.Kept {
		fmt.Fprintf(stderr, "nicpersist try --confirm: too late: the try was reverted (%s)\n", res.Reason)
		return ExitRuntime
	}
	return reportResult(dir, rec, res, stdout, stderr)
}

// setAsideAbandoned keeps the record of a try whose watcher died without
// a result (killed, say): its backup may be all that is left of the files
// before it.
func setAsideAbandoned(dir string, stderr io.Writer) error {
	var rec tryRecord
	ok, err := readJSON(dir, tryRecordFile, &rec)
	if err != nil || !ok {
		return clearTryDir(dir)
	}
	var res tryResult
	if done, _ := readJSON(dir, tryResultFile, &res); !done || res.ID != rec.ID {
		kept := filepath.Join(dir, "abandoned-"+rec.ID+".json")
		if err := os.Rename(filepath.Join(dir, tryRecordFile), kept); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "nicpersist try: warning: the try of %s started %s ended without a confirmation or a revert (its watcher was killed); the files from before it are in %s\n",
			rec.Profile, rec.Started.Format(time.RFC3339), kept)
	}
	return clearTryDir(dir)
}

// systemdHere says whether the watcher can be a transient unit: systemd
// runs the machine (sd_booted's test) and this process is in its network
// namespace, so the unit's apply reaches the kernel this try changes.
func systemdHere() bool {
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		return false
	}
	if _, err := exec.LookPath("systemd-run"); err != nil {
		return false
	}
	self, err1 := os.Readlink("/proc/self/ns/net")
	init, err2 := os.Readlink("/proc/1/ns/net")
	return err1 == nil && err2 == nil && self == init
}

func unitActive() bool {
	return exec.Command("systemctl", "is-active", "--quiet", distro.UnitName).Run() == nil
}

// startWatcher starts the watcher and waits until it holds the watcher
// lock.
func startWatcher(dir, id string, useUnit bool) error {
	exited := make(chan error, 1)
	if useUnit {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		cmd := exec.Command("systemd-run", "--unit", tryUnitName, "--collect", "--quiet",
			"--description", "nicpersist try: reverts unless confirmed",
			// A revert on SIGTERM (a shutdown) takes the apply's time.
			"--property", "TimeoutStopSec=90",
			"--", exe, "try", "--watcher", dir, "--watch-id", id)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("systemd-run: %v: %s", err, bytes.TrimSpace(out))
		}
	} else {
		log, err := os.OpenFile(filepath.Join(dir, tryLogFile), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return err
		}
		defer log.Close()
		// /proc/self/exe: this very binary, even if a package upgrade
		// replaces the file; argv[0] as given, which names the program.
		cmd := exec.Command("/proc/self/exe", "try", "--watcher", dir, "--watch-id", id)
		cmd.Args[0] = os.Args[0]
		cmd.Stdout, cmd.Stderr = log, log
		cmd.Dir = "/" // holds no mount busy for as long as it waits
		// Its own session: no terminal, no SIGHUP when the terminal goes.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
		if err := cmd.Start(); err != nil {
			return err
		}
		// Reaps it should it end before this process.
		go func() { exited <- cmd.Wait() }()
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		var r tryReady
		if ok, _ := readJSON(dir, tryReadyFile, &r); ok && r.ID == id {
			return nil
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(dir, tryLogFile))
			return fmt.Errorf("it ended at once (%v): %s", err, bytes.TrimSpace(log))
		default:
		}
		if time.Now().After(deadline) {
			return errors.New("it did not start within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
