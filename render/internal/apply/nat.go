package apply

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

const natChain = "NICPERSIST-POSTROUTING"

// xtables runs an iptables command with -w (wait for the xtables lock, which
// firewalld or docker may hold at boot). iptables-restore learnt -w later than
// iptables (1.6.2; CentOS 7 has 1.4.21), so a usage error that names the
// option runs it again without, and the command is remembered.
func (r *runner) xtables(cmd string, stdin []byte, quiet bool, args ...string) error {
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

func natCmd(f int) string {
	if f == 6 {
		return "ip6tables"
	}
	return "iptables"
}

// nat restores nicpersist's own chain (the file declares it, so --noflush
// flushes it first), then jumps to it once from POSTROUTING. Without a
// rules file, a chain an earlier start made (the nat4 or nat6 mark) goes.
func (r *runner) nat(f int) error {
	cmd := natCmd(f)
	rules, err := os.ReadFile(r.path(cmd + ".rules"))
	if err != nil {
		if !os.IsNotExist(err) {
			return err
		}
		// At boot the state is empty and there is nothing to remove; on a
		// reload, a chain an earlier start made goes (the mark, or any
		// state at all: apply.sh did not always write the mark).
		if exists(r.spath("nat"+strconv.Itoa(f))) || r.started() {
			r.natRemove(f)
		}
		return nil
	}
	if _, err := exec.LookPath(cmd); err != nil {
		r.logf("%s is not installed", cmd)
		return err
	}
	// Marked before it runs, as the routes are: a failed start's stop
	// removes the chain.
	if err := os.WriteFile(r.spath("nat"+strconv.Itoa(f)), nil, 0o644); err != nil {
		return err
	}
	if err := r.xtables(cmd+"-restore", rules, false, "--noflush"); err != nil {
		return fmt.Errorf("%s-restore --noflush %s: %w", cmd, r.path(cmd+".rules"), err)
	}
	if r.xtables(cmd, nil, true, "-t", "nat", "-C", "POSTROUTING", "-j", natChain) == nil {
		return nil
	}
	if err := r.xtables(cmd, nil, false, "-t", "nat", "-I", "POSTROUTING", "1", "-j", natChain); err != nil {
		return fmt.Errorf("%s -t nat -I POSTROUTING 1 -j %s: %w", cmd, natChain, err)
	}
	return nil
}

// started says the state holds anything from an earlier start.
func (r *runner) started() bool {
	ents, err := os.ReadDir(r.State)
	return err == nil && len(ents) > 0
}

func (r *runner) natRemove(f int) {
	cmd := natCmd(f)
	os.Remove(r.spath("nat" + strconv.Itoa(f)))
	if _, err := exec.LookPath(cmd); err != nil {
		return
	}
	for i := 0; i < 100 && r.xtables(cmd, nil, true, "-t", "nat", "-D", "POSTROUTING", "-j", natChain) == nil; i++ {
	}
	r.xtables(cmd, nil, true, "-t", "nat", "-F", natChain)
	r.xtables(cmd, nil, true, "-t", "nat", "-X", natChain)
}
