package verify

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/apply"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// Read takes what Compare needs from the kernel of this process's network
// namespace: routes and rules of both families (a family the profile no
// longer uses may still hold routes of nicpersist's), the links, the
// plan's sysctls and, for each family the plan has NAT in, the nat table.
// Netlink cannot read xtables, so that is `iptables-save -t nat`, started
// first so that it runs while netlink is read. Read changes nothing.
func Read(p *plan.Plan) (*Kernel, error) {
	k := &Kernel{
		Routes:  map[plan.Family][]apply.KernelRoute{},
		Rules:   map[plan.Family][]apply.KernelRule{},
		NAT:     map[plan.Family]string{},
		Sysctls: map[string]string{},
	}
	type save struct {
		f        plan.Family
		cmd      *exec.Cmd
		out, err bytes.Buffer
	}
	var saves []*save
	defer func() {
		for _, s := range saves {
			if s.cmd.ProcessState == nil {
				s.cmd.Process.Kill()
				s.cmd.Wait()
			}
		}
	}()
	for _, f := range unitfiles.Families {
		if len(p.NATOf(f)) == 0 {
			continue
		}
		name := f.IPTables() + "-save"
		path, err := exec.LookPath(name)
		if err != nil {
			return nil, fmt.Errorf("%s is not installed, and the profile has %s NAT: install the iptables package", name, f)
		}
		s := &save{f: f, cmd: exec.Command(path, "-t", "nat")}
		s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.err
		if err := s.cmd.Start(); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		saves = append(saves, s)
	}
	var err error
	if k.Names, k.Index, err = apply.LinkNames(); err != nil {
		return nil, err
	}
	for _, f := range unitfiles.Families {
		if k.Routes[f], err = apply.DumpRoutes(f); err != nil {
			return nil, err
		}
		if k.Rules[f], err = apply.DumpRules(f); err != nil {
			return nil, err
		}
	}
	for _, s := range p.Sysctls {
		b, err := os.ReadFile("/proc/sys/" + s.ProcPath())
		switch {
		case err == nil:
			k.Sysctls[s.ProcPath()] = strings.TrimRight(string(b), "\n")
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("reading sysctl %s: %w", s.Key, err)
		}
	}
	for _, s := range saves {
		name := s.f.IPTables() + "-save -t nat"
		if err := s.cmd.Wait(); err != nil {
			msg := strings.TrimSpace(s.err.String())
			if msg == "" {
				msg = err.Error()
			}
			return nil, fmt.Errorf("%s: %s", name, msg)
		}
		k.NAT[s.f] = s.out.String()
	}
	return k, nil
}
