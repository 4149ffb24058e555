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

// natRestore restores nicpersist's own chains: the file declares them, so
// --noflush flushes each first and a re-run replaces rather than appends.
func (r *executor) natRestore(f plan.Family, rules []byte) error {
	cmd := f.IPTables()
	if _, err := exec.LookPath(cmd + "-restore"); err != nil {
		return fmt.Errorf("%s-restore is not installed (install the iptables package, or render with [netfilter] backend = \"nftables\"): %w", cmd, err)
	}
	if err := r.xtables(cmd+"-restore", rules, false, "--noflush"); err != nil {
		return fmt.Errorf("%s-restore --noflush %s: %w", cmd, filepath.Join(r.Dir, unitfiles.NATName(f)), err)
	}
	return nil
}

// natJump jumps to a chain from its built-in chain once: iptables-restore
// --noflush would append a second jump on every run, so it is -C || -I.
func (r *executor) natJump(f plan.Family, c unitfiles.XChain) error {
	cmd := f.IPTables()
	if r.xtables(cmd, nil, true, "-t", c.Table, "-C", c.Hook, "-j", c.Name) == nil {
		return nil
	}
	if err := r.xtables(cmd, nil, false, "-t", c.Table, "-I", c.Hook, "1", "-j", c.Name); err != nil {
		return fmt.Errorf("%s -t %s -I %s 1 -j %s: %w", cmd, c.Table, c.Hook, c.Name, err)
	}
	return nil
}

// natRemove deletes every jump to a chain, then the chain; what is not
// there is no error.
func (r *executor) natRemove(f plan.Family, c unitfiles.XChain) {
	cmd := f.IPTables()
	if _, err := exec.LookPath(cmd); err != nil {
		return
	}
	for i := 0; i < 100 && r.xtables(cmd, nil, true, "-t", c.Table, "-D", c.Hook, "-j", c.Name) == nil; i++ {
	}
	r.xtables(cmd, nil, true, "-t", c.Table, "-F", c.Name)
	r.xtables(cmd, nil, true, "-t", c.Table, "-X", c.Name)
}

// nftLoad replaces nicpersist's nftables table in one transaction: the file
// declares, deletes and defines it, so nft applies all of it or nothing.
func (r *executor) nftLoad(data []byte) error {
	if _, err := exec.LookPath("nft"); err != nil {
		return fmt.Errorf("nft is not installed (install the nftables package, or render with [netfilter] backend = \"iptables\"): %w", err)
	}
	c := exec.Command("nft", "-f", "-")
	c.Stdin = bytes.NewReader(data)
	c.Stdout, c.Stderr = r.Stderr, r.Stderr
	if err := c.Run(); err != nil {
		return fmt.Errorf("nft -f %s: %w", filepath.Join(r.Dir, unitfiles.NFTName), err)
	}
	return nil
}

// nftRemove deletes nicpersist's table; declaring it first makes the delete
// succeed when it is not there.
func (r *executor) nftRemove() {
	if _, err := exec.LookPath("nft"); err != nil {
		return
	}
	c := exec.Command("nft", "-f", "-")
	c.Stdin = strings.NewReader("table " + unitfiles.NFTTable + "\ndelete table " + unitfiles.NFTTable + "\n")
	c.Stdout, c.Stderr = r.Stderr, r.Stderr
	if err := c.Run(); err != nil {
		r.logf("could not delete nftables table %s: %v", unitfiles.NFTTable, err)
	}
}
