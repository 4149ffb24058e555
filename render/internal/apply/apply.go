// Package apply holds what nicpersist.service runs: it puts the files that
// render wrote under /etc/nicpersist into the running kernel (sysctls, NAT,
// routes and rules) and takes them out again.
//
// It is a reconcile step and an executor. planStart and planStop decide,
// from what the rendered files want, the recorded state and what the kernel
// has, which operations to run and which state to record before each; they
// change nothing, so their decisions are tested without root. The executor
// runs the operations (`ip -batch`, iptables-restore, sysctl writes) and
// writes the state, one typed JSON file, atomically.
package apply

import (
	"errors"
	"io"
	"os"
	"time"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// Config says where the rendered files and the state are.
type Config struct {
	Dir    string        // the rendered files (ip4.batch, links, ...)
	State  string        // what start displaced and applied, for stop
	Wait   time.Duration // how long start waits for the links
	Stderr io.Writer     // the journal: ip's own messages and ours
}

func newExecutor(c Config) (*executor, State, error) {
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	x := &executor{Config: c, noWait: map[string]bool{}, xtViews: map[plan.Family]*xtView{}}
	if err := os.MkdirAll(c.State, 0o755); err != nil {
		return nil, State{}, err
	}
	st, legacy, err := loadState(c.State)
	if err != nil {
		return nil, State{}, err
	}
	if legacy {
		if err := saveState(c.State, st, true); err != nil {
			return nil, State{}, err
		}
		x.logf("converted the state an older nicpersist recorded in %s", c.State)
	}
	saved := st.clone()
	x.saved = &saved
	return x, st, nil
}

// Start applies the files. On failure it removes what it applied, so the
// machine is as it was before the first start, and returns the error. Files
// it cannot read (a newer format, say) are an error before anything is
// touched.
//
// A packet-filter part that fails (iptables or nft missing, or refusing
// the rules) is the exception: the routes, rules and sysctls stay, for
// they are what keeps SSH to the machine working, and Start returns a
// *PartError. The state records all of it, so stop removes it all.
func Start(c Config) error {
	want, err := unitfiles.Read(c.Dir)
	if err != nil {
		return err
	}
	x, st, err := newExecutor(c)
	if err != nil {
		return err
	}
	err = x.waitLinks(want.Links)
	if err == nil {
		var p Plan
		if p, err = planStart(want, st, liveKernel{x}); err == nil {
			err = x.run(p, true)
		}
	}
	var part *PartError
	if errors.As(err, &part) {
		x.logf("start: the routes, rules and sysctls stay; NAT, port forwards and marks are not in place")
		return err
	}
	if err != nil {
		x.logf("start failed; removing what was applied")
		x.run(planStop(*x.saved), false)
		return err
	}
	return nil
}

// Stop removes what start added and puts back what it displaced. It goes on
// past errors: whatever can be put back is.
func Stop(c Config) error {
	x, st, err := newExecutor(c)
	if err != nil {
		return err
	}
	return x.run(planStop(st), false)
}

// Applied says whether the state in dir records anything a start applied:
// what `nicpersist try` must put back on a revert by starting again, rather
// than by stopping. A missing directory has nothing applied.
func Applied(dir string) (bool, error) {
	st, _, err := loadState(dir)
	if err != nil {
		return false, err
	}
	return !st.Empty(), nil
}
