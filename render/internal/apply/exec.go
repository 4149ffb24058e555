package apply

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// executor runs a plan's steps against the running kernel and records the
// state as the steps say.
type executor struct {
	Config
	noWait map[string]bool // iptables commands that refuse -w (before 1.6.2 for *-restore)
	saved  *State          // what the state file holds now
	// xtViews: nicpersist's iptables chains and jumps as this run's one
	// iptables-save per family showed them, kept up to date by its own
	// steps.
	xtViews map[plan.Family]*xtView
}

// PartError is a start whose routes, rules and sysctls are in place but
// whose packet-filter part (NAT, port forwards, marks) failed to load.
type PartError struct {
	Errs []error
}

func (e *PartError) Error() string {
	return "routes, rules and sysctls applied, but NAT, port forwards and marks are not loaded: " + errors.Join(e.Errs...).Error()
}

// run runs the steps in order. With stopOnError (a start), the first failed
// step ends the run and its error is returned, except a packet-filter step:
// its failure is logged, the family's further packet-filter steps are
// skipped and the rest runs, and a *PartError says so at the end. Otherwise
// (a stop) every step runs, whatever can be done is.
func (x *executor) run(p Plan, stopOnError bool) error {
	var part []error
	failed := map[plan.Family]bool{}
	for i := 0; i < len(p.Steps); i++ {
		s := p.Steps[i]
		if s.Record != nil {
			if err := x.record(*s.Record); err != nil {
				return err
			}
		}
		if s.Op == nil {
			continue
		}
		o := *s.Op
		if o.Kind == opNATRemove {
			// Removals of one family that follow each other with no record
			// between run as one iptables-restore.
			chains := []unitfiles.XChain{o.Chain}
			for i+1 < len(p.Steps) && p.Steps[i+1].Record == nil && p.Steps[i+1].Op != nil &&
				p.Steps[i+1].Op.Kind == opNATRemove && p.Steps[i+1].Op.Family == o.Family {
				i++
				chains = append(chains, p.Steps[i].Op.Chain)
			}
			x.natRemove(o.Family, chains...)
			continue
		}
		if o.Kind.netfilter() && failed[o.Family] {
			continue
		}
		err := x.do(o, stopOnError)
		switch {
		case err == nil || !stopOnError:
		case o.Kind.netfilter():
			x.logf("%v", err)
			failed[o.Family] = true
			part = append(part, err)
		default:
			return err
		}
	}
	if err := x.record(p.Final); err != nil {
		return err
	}
	if len(part) > 0 {
		return &PartError{part}
	}
	return nil
}

// record writes the state when it differs from what the file holds.
func (x *executor) record(st State) error {
	if x.saved != nil && stateEqual(*x.saved, st) {
		return nil
	}
	if err := writeState(filepath.Join(x.State, stateFile), st); err != nil {
		return err
	}
	c := st.clone()
	x.saved = &c
	return nil
}

func (x *executor) logf(format string, a ...any) {
	fmt.Fprintf(x.Stderr, "nicpersist: "+format+"\n", a...)
}

func (x *executor) do(o Op, starting bool) error {
	switch o.Kind {
	case opSysctls:
		return x.sysctls(o.Sysctls, starting)
	case opNATRestore:
		return x.natRestore(o.Family, o.Data)
	case opNATJump:
		return x.natJump(o.Family, o.Chain)
	case opNATRemove:
		x.natRemove(o.Family, o.Chain)
	case opNFTLoad:
		return x.nftLoad(o.Data)
	case opNFTRemove:
		x.nftRemove()
	case opTables:
		errlog, err := x.batch(o.Family, o.Name, o.Lines, true)
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1 && onlyExists(errlog)) {
			x.Stderr.Write([]byte(errlog))
			return fmt.Errorf("ip -%d -force -batch %s: %w", o.Family, filepath.Join(x.State, o.Name), err)
		}
	case opMain:
		if _, err := x.batch(o.Family, o.Name, o.Lines, false); err != nil {
			return fmt.Errorf("ip -%d -batch %s: %w", o.Family, filepath.Join(x.State, o.Name), err)
		}
	case opUndo:
		x.undo(o.Family, o.Name, o.Lines)
	case opRestoreDefault:
		cmd := ipCmd(o.Family, append([]string{"route", "replace"}, strings.Fields(o.Lines[0])...)...)
		cmd.Stdout, cmd.Stderr = x.Stderr, x.Stderr
		if err := cmd.Run(); err != nil {
			x.logf("could not restore the default route: %s", o.Lines[0])
		}
	}
	return nil
}

// sysctls writes values under /proc/sys. A key that does not exist (an
// interface not there yet) is skipped: systemd-sysctl sets it when udev
// sees the interface, as sysctl.d(5) says.
func (x *executor) sysctls(s []unitfiles.Sysctl, starting bool) error {
	for _, kv := range s {
		p := "/proc/sys/" + kv.Key
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if err := os.WriteFile(p, []byte(kv.Value+"\n"), 0o644); err != nil {
			if starting {
				x.logf("cannot set %s", kv.Key)
				return err
			}
			x.logf("cannot put back %s: %v", kv.Key, err)
		}
	}
	return nil
}

// ipCmd is `ip -F ARGS...`.
func ipCmd(f plan.Family, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"-" + strconv.Itoa(int(f))}, args...)...)
}

// batch writes lines to the state directory's file NAME and runs `ip
// -batch` on it (the file, not a pipe: its name is in ip's messages, and a
// test can fail a step by name); the file goes afterwards. With force, ip
// goes on past failed lines and its error log is returned instead of
// printed.
func (x *executor) batch(f plan.Family, name string, lines []string, force bool) (errlog string, err error) {
	path := filepath.Join(x.State, name)
	if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		return "", err
	}
	defer os.Remove(path)
	args := []string{"-batch", path}
	if force {
		args = append([]string{"-force"}, args...)
	}
	cmd := ipCmd(f, args...)
	var eb bytes.Buffer
	cmd.Stdout, cmd.Stderr = x.Stderr, x.Stderr
	if force {
		cmd.Stderr = &eb
	}
	err = cmd.Run()
	// An ip that did not run, or died, has nothing to say: say it, so the
	// log is not taken for one of "File exists" answers only.
	if force && err != nil && eb.Len() == 0 {
		fmt.Fprintf(&eb, "%v\n", err)
	}
	return eb.String(), err
}

// undo runs a batch of deletions and put-backs in which errors are
// expected (what is already gone); should ip stop early, the lines run one
// by one, so that one bad line does not keep the others from running.
func (x *executor) undo(f plan.Family, name string, lines []string) {
	errlog, err := x.batch(f, name, lines, true)
	if !stoppedEarly(errlog, err) {
		return
	}
	x.logf("ip -%d -batch %s stopped early; running its lines one by one:\n%s", f, filepath.Join(x.State, name), strings.TrimSpace(errlog))
	for _, l := range lines {
		ipCmd(f, strings.Fields(l)...).Run() // output discarded: nil Stdout/Stderr
	}
}

// onlyExists says an `ip -force -batch` error log holds only "File exists"
// answers: every message says it and belongs to a failed line, and every
// failed line has one. An ip that stopped early (a line it could not parse
// ends even a -force batch) or said nothing does not pass.
func onlyExists(errlog string) bool {
	failed, said := 0, false
	for _, l := range strings.Split(errlog, "\n") {
		switch {
		case strings.HasPrefix(l, "Command failed "):
			if !said {
				return false
			}
			failed++
			said = false
		case strings.TrimSpace(l) == "":
		case strings.Contains(l, "File exists"):
			said = true
		default:
			return false
		}
	}
	return failed > 0 && !said
}

// stoppedEarly says an `ip -force -batch` did not get through its lines:
// it failed and its log does not end with the "Command failed" of a line
// it went past (a line it cannot parse ends even a -force batch).
func stoppedEarly(errlog string, err error) bool {
	if err == nil {
		return false
	}
	lines := strings.Split(strings.TrimSpace(errlog), "\n")
	return !strings.HasPrefix(lines[len(lines)-1], "Command failed ")
}

// stateEqual compares two states as their files would read: an empty
// list is no list, an empty family no family.
func stateEqual(a, b State) bool {
	return reflect.DeepEqual(a.normal(), b.normal())
}

func (s State) normal() State {
	s = s.clone()
	s.Version = StateVersion
	if len(s.Sysctls) == 0 {
		s.Sysctls = nil
	}
	if len(s.XT4) == 0 {
		s.XT4 = nil
	}
	if len(s.XT6) == 0 {
		s.XT6 = nil
	}
	for _, p := range []**FamilyState{&s.IP4, &s.IP6} {
		if (*p).empty() {
			*p = nil
			continue
		}
		for _, l := range []*[]string{&(*p).Routes, &(*p).Rules, &(*p).Main, &(*p).RulesPre} {
			if len(*l) == 0 {
				*l = nil
			}
		}
		if len((*p).Pre) == 0 {
			(*p).Pre = nil
		}
	}
	return s
}
