package apply

import (
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// xtables runs an iptables command with -w (wait for the xtables lock, which
// firewalld or docker may hold at boot). iptables-restore learnt -w later than
// iptables (1.6.2; CentOS 7 has 1.4.21), so a usage error that names the
// option runs it again without, and the command is remembered.
func (r *executor) xtables(cmd string, stdin []byte, quiet bool, args ...string) error {
	run := func(wait bool) (string, error) {
		a := args
		if wait {
			a = append([]string{"-w"}, args...)
		}
		c := exec.Command(cmd, a...)
		if stdin != nil {
			c.Stdin = bytes.NewReader(stdin)
		}
		var eb bytes.Buffer
		c.Stdout, c.Stderr = r.Stderr, &eb
		err := c.Run()
		return eb.String(), err
	}
	wait := !r.noWait[cmd]
	msg, err := run(wait)
	if err != nil && wait && refusesWait(msg) {
		r.noWait[cmd] = true
		msg, err = run(false)
	}
	if err != nil && !quiet {
		io.WriteString(r.Stderr, msg)
	}
	return err
}

// refusesWait recognises how iptables versions without -w say so:
// "invalid option -- 'w'" (getopt), "unknown option `-w'" and
// `unknown option "-w"` (iptables 1.4.x).
func refusesWait(msg string) bool {
	if !strings.Contains(msg, "option") {
		return false
	}
	for _, w := range []string{"'w'", "`-w'", "-w'", `"-w"`, "--wait"} {
		if strings.Contains(msg, w) {
			return true
		}
	}
	return false
}

// natRestore restores nicpersist's own chain: the file declares it, so
// --noflush flushes it first and a re-run replaces rather than appends.
func (r *executor) natRestore(f plan.Family, rules []byte) error {
	cmd := f.IPTables()
	if _, err := exec.LookPath(cmd); err != nil {
		r.logf("%s is not installed", cmd)
		return err
	}
	if err := r.xtables(cmd+"-restore", rules, false, "--noflush"); err != nil {
		return fmt.Errorf("%s-restore --noflush %s: %w", cmd, filepath.Join(r.Dir, unitfiles.NATName(f)), err)
	}
	return nil
}

// natJump jumps to the chain from POSTROUTING once: iptables-restore
// --noflush would append a second jump on every run, so it is -C || -I.
func (r *executor) natJump(f plan.Family) error {
	cmd := f.IPTables()
	if r.xtables(cmd, nil, true, "-t", "nat", "-C", "POSTROUTING", "-j", unitfiles.NATChain) == nil {
		return nil
	}
	if err := r.xtables(cmd, nil, false, "-t", "nat", "-I", "POSTROUTING", "1", "-j", unitfiles.NATChain); err != nil {
		return fmt.Errorf("%s -t nat -I POSTROUTING 1 -j %s: %w", cmd, unitfiles.NATChain, err)
	}
	return nil
}

// natRemove deletes every jump to the chain, then the chain; what is not
// there is no error.
func (r *executor) natRemove(f plan.Family) {
	cmd := f.IPTables()
	if _, err := exec.LookPath(cmd); err != nil {
		return
	}
	for i := 0; i < 100 && r.xtables(cmd, nil, true, "-t", "nat", "-D", "POSTROUTING", "-j", unitfiles.NATChain) == nil; i++ {
	}
	r.xtables(cmd, nil, true, "-t", "nat", "-F", unitfiles.NATChain)
	r.xtables(cmd, nil, true, "-t", "nat", "-X", unitfiles.NATChain)
}
