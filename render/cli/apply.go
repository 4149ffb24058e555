package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/nicpersist/nicpersist/render/internal/apply"
	"github.com/nicpersist/nicpersist/render/internal/distro"
)

// runApply is what nicpersist.service runs: `apply start` (also its reload)
// and `apply stop`. NICPERSIST_STATE and NICPERSIST_WAIT stand in for the
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
	fl := pflag.NewFlagSet("apply start|stop", pflag.ContinueOnError)
	fl.StringVar(&c.Dir, "dir", "/"+distro.Dir, "the rendered files to apply")
	fl.StringVar(&c.State, "state", state, "where start keeps what it displaced and applied, for stop ($NICPERSIST_STATE, $RUNTIME_DIRECTORY)")
	fl.IntVar(&wait, "wait", wait, "seconds start waits for the links to be up with their addresses ($NICPERSIST_WAIT)")
	if code, ok := parse(fl, args, 1, stdout, stderr); !ok {
		return code
	}
	verb := fl.Arg(0)
	switch {
	case verb == "":
		return usageError(fl, errors.New("want one of start or stop"), stderr)
	case verb != "start" && verb != "stop":
		return usageError(fl, fmt.Errorf("unknown action %q; want start or stop", verb), stderr)
	case wait < 0:
		return usageError(fl, fmt.Errorf("--wait %d: want 0 or more seconds", wait), stderr)
	}
	c.Wait = time.Duration(wait) * time.Second
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
