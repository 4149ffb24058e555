// Package apply holds what nicpersist.service runs: it puts the files that
// render wrote under /etc/nicpersist into the running kernel (sysctls, NAT,
// routes and rules) and takes them out again.
//
// It does what templates/apply.sh does, step for step and with the same state
// files, so that either one can stop or reload what the other started. It
// exists because the script's fixed cost, about a hundred short processes,
// was several times the cost of the routes themselves: here the state is
// kept in memory, the kernel is read over netlink, and `ip` runs once per
// step and family.
package apply

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Config says where the rendered files and the state are.
type Config struct {
	Dir    string        // the rendered files (ip4.batch, links, ...)
	State  string        // what start displaced and applied, for stop
	Wait   time.Duration // how long start waits for the links
	Stderr io.Writer     // the journal: ip's own messages and ours
}

type runner struct {
	Config
	noWait map[string]bool // iptables commands that refuse -w (before 1.6.2 for *-restore)
}

// Start applies the files. On failure it removes what it applied, so the
// machine is as it was before the first start, and returns the error.
func Start(c Config) error {
	r := newRunner(c)
	if err := os.MkdirAll(c.State, 0o755); err != nil {
		return err
	}
	if err := r.start(); err != nil {
		r.logf("start failed; removing what was applied")
		r.stop()
		return err
	}
	return nil
}

// Stop removes what start added and puts back what it displaced. It goes on
// past errors: whatever can be put back is.
func Stop(c Config) error {
	r := newRunner(c)
	if err := os.MkdirAll(c.State, 0o755); err != nil {
		return err
	}
	r.stop()
	return nil
}

func newRunner(c Config) *runner {
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	return &runner{Config: c, noWait: map[string]bool{}}
}

func (r *runner) start() error {
	if err := r.waitLinks(); err != nil {
		return err
	}
	if err := r.applySysctls(); err != nil {
		return err
	}
	for _, f := range []int{4, 6} {
		if err := r.nat(f); err != nil {
			return err
		}
	}
	for _, f := range []int{4, 6} {
		if err := r.applyFamily(f); err != nil {
			return err
		}
	}
	return nil
}

func (r *runner) stop() {
	r.removeFamily(6)
	r.removeFamily(4)
	r.natRemove(6)
	r.natRemove(4)
	r.restoreSysctls()
}

func (r *runner) logf(format string, a ...any) {
	fmt.Fprintf(r.Stderr, "nicpersist: "+format+"\n", a...)
}

func (r *runner) path(name string) string  { return filepath.Join(r.Dir, name) }
func (r *runner) spath(name string) string { return filepath.Join(r.State, name) }

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// readLines returns the non-empty lines of a file; an absent file has none.
func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) != "" {
			out = append(out, l)
		}
	}
	return out, nil
}

// writeLines replaces a state file whole (a temporary file and a rename, as
// the script's `> f.tmp && mv`): a crash leaves the old list or the new one.
func writeLines(path string, lines []string) error {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// missing returns the lines of b that are not in a, in b's order.
func missing(a, b []string) []string {
	in := set(a)
	var out []string
	for _, l := range b {
		if !in[l] {
			out = append(out, l)
		}
	}
	return out
}

// union returns a's lines and then those of b not in a.
func union(a, b []string) []string {
	return append(append([]string(nil), a...), missing(a, b)...)
}

// section returns the lines of one "#@ NAME" section of a batch file.
func section(lines []string, name string) []string {
	var out []string
	cur := ""
	for _, l := range lines {
		if strings.HasPrefix(l, "#@ ") {
			// The header's first word, as apply.sh's awk reads it ($2).
			cur = ""
			if w := strings.Fields(l[3:]); len(w) > 0 {
				cur = w[0]
			}
			continue
		}
		if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
			continue
		}
		if cur == name {
			out = append(out, l)
		}
	}
	return out
}
