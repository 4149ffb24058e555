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
	// The jumps the save does not show go into the same input, after the
	// chains: one process instead of a -C and an -I per chain.
	v := r.view(f)
	in := rules
	declared := unitfiles.DeclaredChains(rules)
	if v != nil {
		in = append([]byte(nil), rules...)
		if len(in) > 0 && in[len(in)-1] != '\n' {
			in = append(in, '\n')
		}
		for _, k := range declared {
			if c, _ := unitfiles.ChainByKey(k); v.jumps[k] == 0 {
				in = fmt.Appendf(in, "*%s\n-I %s 1 -j %s\nCOMMIT\n", c.Table, c.Hook, c.Name)
			}
		}
	}
	if err := r.xtables(cmd+"-restore", in, false, "--noflush"); err != nil {
		delete(r.xtViews, f) // part of it may have been applied: ask again
		return fmt.Errorf("%s-restore --noflush %s: %w", cmd, filepath.Join(r.Dir, unitfiles.NATName(f)), err)
	}
	if v != nil {
		for _, k := range declared {
			v.chains[k] = true
			v.jumps[k] = max(v.jumps[k], 1)
		}
	}
	return nil
}

// xtView is what one iptables-save showed of nicpersist's chains: which
// exist and how many jumps to each its built-in chain holds. It saves a
// process per chain: with iptables-nft every iptables call reads the whole
// ruleset, Docker's too.
type xtView struct {
	chains map[string]bool // XChain.Key()
	jumps  map[string]int
}

// view returns the family's view, reading it once per run; nil when
// iptables-save cannot say (then each step asks iptables itself).
func (r *executor) view(f plan.Family) *xtView {
	if r.xtViews == nil {
		r.xtViews = map[plan.Family]*xtView{}
	}
	if v, ok := r.xtViews[f]; ok {
		return v
	}
	var v *xtView
	c := exec.Command(f.IPTables() + "-save")
	if out, err := c.Output(); err == nil {
		v = parseSave(string(out))
	}
	r.xtViews[f] = v
	return v
}

// parseSave reads iptables-save output for nicpersist's chains and jumps.
func parseSave(out string) *xtView {
	v := &xtView{chains: map[string]bool{}, jumps: map[string]int{}}
	table := ""
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(l, "*"):
			table = strings.TrimSpace(l[1:])
		case strings.HasPrefix(l, ":"):
			name, _, _ := strings.Cut(l[1:], " ")
			if c, ok := unitfiles.ChainByKey(table + "/" + name); ok {
				v.chains[c.Key()] = true
			}
		case strings.HasPrefix(l, "-A "):
			for _, c := range unitfiles.XChains {
				if c.Table == table && l == "-A "+c.Hook+" -j "+c.Name {
					v.jumps[c.Key()]++
				}
			}
		}
	}
	return v
}

// natJump jumps to a chain from its built-in chain once: iptables-restore
// --noflush would append a second jump on every run, so it is -C || -I
// (the -C answered by the run's iptables-save where it can be).
func (r *executor) natJump(f plan.Family, c unitfiles.XChain) error {
	cmd := f.IPTables()
	if v := r.view(f); v != nil && v.jumps[c.Key()] > 0 {
		return nil
	} else if v == nil && r.xtables(cmd, nil, true, "-t", c.Table, "-C", c.Hook, "-j", c.Name) == nil {
		return nil
	}
	if err := r.xtables(cmd, nil, false, "-t", c.Table, "-I", c.Hook, "1", "-j", c.Name); err != nil {
		return fmt.Errorf("%s -t %s -I %s 1 -j %s: %w", cmd, c.Table, c.Hook, c.Name, err)
	}
	if v := r.view(f); v != nil {
		v.jumps[c.Key()]++
	}
	return nil
}

// natRemove deletes every jump to each chain, then the chain; what is not
// there is no error. Where iptables-save showed them, one iptables-restore
// does it all.
func (r *executor) natRemove(f plan.Family, chains ...unitfiles.XChain) {
	cmd := f.IPTables()
	if _, err := exec.LookPath(cmd); err != nil {
		return
	}
	if v := r.view(f); v != nil {
		var b strings.Builder
		for _, c := range chains {
			k := c.Key()
			if !v.chains[k] && v.jumps[k] == 0 {
				continue
			}
			b.WriteString("*" + c.Table + "\n")
			for i := 0; i < v.jumps[k]; i++ {
				b.WriteString("-D " + c.Hook + " -j " + c.Name + "\n")
			}
			if v.chains[k] {
				b.WriteString("-F " + c.Name + "\n-X " + c.Name + "\n")
			}
			b.WriteString("COMMIT\n")
		}
		if b.Len() == 0 {
			return
		}
		if r.xtables(cmd+"-restore", []byte(b.String()), true, "--noflush") == nil {
			for _, c := range chains {
				delete(v.chains, c.Key())
				delete(v.jumps, c.Key())
			}
			return
		}
		delete(r.xtViews, f) // something else changed it: ask again
	}
	for _, c := range chains {
		for i := 0; i < 100 && r.xtables(cmd, nil, true, "-t", c.Table, "-D", c.Hook, "-j", c.Name) == nil; i++ {
		}
		r.xtables(cmd, nil, true, "-t", c.Table, "-F", c.Name)
		r.xtables(cmd, nil, true, "-t", c.Table, "-X", c.Name)
	}
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
