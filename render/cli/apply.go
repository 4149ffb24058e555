package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/nicpersist/nicpersist/render/internal/apply"
	"github.com/nicpersist/nicpersist/render/internal/distro"
)

// runApply is what nicpersist.service runs: `apply start` (also its reload)
// and `apply stop`; and `apply watch`, what nicpersist-watch.service runs on
// the ifupdown target. NICPERSIST_STATE and NICPERSIST_WAIT stand in for the
// flags, so a drop-in can set them without changing ExecStart.
func runApply(args []string, stdout, stderr io.Writer) int {
	state := os.Getenv("NICPERSIST_STATE")
	if state == "" {
		state = os.Getenv("RUNTIME_DIRECTORY")
	}
	if state == "" {
		state = "/run/nicpersist"
	}
	wait := 60
	if w, err := strconv.Atoi(os.Getenv("NICPERSIST_WAIT")); err == nil && w >= 0 {
		wait = w
	}
	c := apply.Config{Stderr: stderr}
	fl := pflag.NewFlagSet("apply start|stop|watch", pflag.ContinueOnError)
	fl.StringVar(&c.Dir, "dir", "/"+distro.Dir, "the rendered files to apply")
	fl.StringVar(&c.State, "state", state, "where start keeps what it displaced and applied, for stop ($NICPERSIST_STATE, $RUNTIME_DIRECTORY)")
	fl.IntVar(&wait, "wait", wait, "seconds start waits for the links to be up with their addresses ($NICPERSIST_WAIT)")
	if code, ok := parse(fl, args, 1, stdout, stderr); !ok {
		return code
	}
	verb := fl.Arg(0)
	switch {
	case verb == "":
		return usageError(fl, errors.New("want one of start, stop or watch"), stderr)
	case verb != "start" && verb != "stop" && verb != "watch":
		return usageError(fl, fmt.Errorf("unknown action %q; want start, stop or watch", verb), stderr)
	case wait < 0:
		return usageError(fl, fmt.Errorf("--wait %d: want 0 or more seconds", wait), stderr)
	}
	c.Wait = time.Duration(wait) * time.Second
	if verb == "watch" {
		return runWatch(c.Dir, stderr)
	}
	// A short run at boot: collect garbage only past 64 MiB (10,000 routes
	// stay well under it) rather than spend the boot's time on it.
	debug.SetGCPercent(-1)
	debug.SetMemoryLimit(64 << 20)
	run := apply.Start
	if verb == "stop" {
		run = apply.Stop
	}
	if err := run(c); err != nil {
		fmt.Fprintf(stderr, "nicpersist: %s: %v\n", verb, err)
		return ExitRuntime
	}
	return ExitOK
}

// runWatch runs until systemd stops it (SIGTERM) or netlink fails; the
// unit's Restart=on-failure starts it again after a failure.
func runWatch(dir string, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	err := apply.Watch(ctx, apply.WatchConfig{Dir: dir, Hook: "/" + distro.IfupHook, IfState: "/run/network/ifstate", Stderr: stderr})
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist: watch: %v\n", err)
		return ExitRuntime
	}
	return ExitOK
}
