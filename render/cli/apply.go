package cli

import (
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"github.com/spf13/pflag"

	"github.com/nicpersist/nicpersist/render/apply"
	"github.com/nicpersist/nicpersist/render/target"
)

// runApply is what nicpersist.service runs: `apply start` (also its reload)
// and `apply stop`. The environment apply.sh reads is honoured too, so the
// two are interchangeable under one unit.
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
	fl := pflag.NewFlagSet("apply", pflag.ContinueOnError)
	fl.StringVar(&c.Dir, "dir", "/"+target.Dir, "the rendered files to apply")
	fl.StringVar(&c.State, "state", state, "where start keeps what it displaced and applied, for stop ($NICPERSIST_STATE, $RUNTIME_DIRECTORY)")
	fl.IntVar(&wait, "wait", wait, "seconds start waits for the links to be up with their addresses ($NICPERSIST_WAIT)")
	fl.SetOutput(io.Discard)
	err := fl.Parse(args)
	if err == pflag.ErrHelp {
		fmt.Fprintf(stdout, "Usage of nicpersist apply start|stop:\n%s", fl.FlagUsages())
		return ExitOK
	}
	if err == nil && fl.NArg() != 1 {
		err = fmt.Errorf("want one of start or stop")
	}
	verb := fl.Arg(0)
	if err == nil && verb != "start" && verb != "stop" {
		err = fmt.Errorf("unknown action %q; want start or stop", verb)
	}
	if err == nil && wait < 0 {
		err = fmt.Errorf("--wait %d: want 0 or more seconds", wait)
	}
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist apply: %v\nUsage of nicpersist apply start|stop:\n%s", err, fl.FlagUsages())
		return ExitInvalid
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
