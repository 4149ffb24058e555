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

// Save is a running `iptables-save` (ip6tables-save for IPv6), every
// table: nicpersist has chains in nat, filter and mangle;
// netlink cannot read xtables. It takes longer than all else verify does
// (a few milliseconds, most of it the program's own start), so it runs
// while the rest is read.
type Save struct {
	f        plan.Family
	cmd      *exec.Cmd
	out, err bytes.Buffer
	fail     error // it could not start
}

// StartSave starts the family's iptables-save. That it cannot start (it
// is not installed) is kept for Wait: it matters only when the profile has
// NAT in that family.
func StartSave(f plan.Family) *Save {
	s := &Save{f: f}
	name := f.IPTables() + "-save"
	path, err := exec.LookPath(name)
	if err != nil {
		s.fail = fmt.Errorf("%s is not installed, and the profile has %s NAT: install the iptables package", name, f)
		return s
	}
	s.cmd = exec.Command(path)
	s.cmd.Stdout, s.cmd.Stderr = &s.out, &s.err
	if err := s.cmd.Start(); err != nil {
		s.fail = fmt.Errorf("%s: %w", name, err)
	}
	return s
}

// Wait returns what it printed.
func (s *Save) Wait() (string, error) {
	if s.fail != nil {
		return "", s.fail
	}
	if err := s.cmd.Wait(); err != nil {
		msg := strings.TrimSpace(s.err.String())
		if msg == "" {
			msg = err.Error()
		}
		return "", fmt.Errorf("%s-save: %s", s.f.IPTables(), msg)
	}
	return s.out.String(), nil
}

// Stop ends a save whose output is not needed.
func (s *Save) Stop() {
	if s == nil || s.fail != nil || s.cmd.ProcessState != nil {
		return
	}
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// Read takes what Compare needs from the kernel of this process's network
// namespace: routes and rules of both families (a family the profile no
// longer uses may still hold routes of nicpersist's), the links, the
// plan's sysctls and, for each family the plan has netfilter rules in on
// the iptables backend, its iptables-save (on nftables, nicpersist's table
// and the rendered one as nft lists it).
// ahead are saves the caller started before it had the plan (nil ones
// are skipped); Read starts those the plan needs that are not among them
// before it reads netlink, and stops those it does not need. Read changes
// nothing.
func Read(p *plan.Plan, backend string, ahead ...*Save) (*Kernel, error) {
	k := &Kernel{
		Backend: backend,
		Routes:  map[plan.Family][]apply.KernelRoute{},
		Rules:   map[plan.Family][]apply.KernelRule{},
		NAT:     map[plan.Family]string{},
		Sysctls: map[string]string{},
	}
	needs := func(f plan.Family) bool {
		_, rules := unitfiles.XRules(p, f)
		return backend != plan.BackendNFTables && len(rules) > 0
	}
	saves := map[plan.Family]*Save{}
	for _, s := range ahead {
		if s != nil && needs(s.f) && saves[s.f] == nil {
			saves[s.f] = s
		} else {
			s.Stop()
		}
	}
	for _, f := range unitfiles.Families {
		if needs(f) && saves[f] == nil {
			saves[f] = StartSave(f)
		}
	}
	defer func() {
		for _, s := range saves {
			s.Stop()
		}
	}()
	for _, f := range unitfiles.Families {
		if s := saves[f]; s != nil && s.fail != nil {
			return nil, s.fail // not installed: nothing else is worth reading
		}
	}
	var err error
	if backend == plan.BackendNFTables && p.NeedsNetfilter() {
		if k.NFT, err = readNFT(); err != nil {
			return nil, err
		}
		// The rendered file reads as nft lists it but for the priorities'
		// names, so an unchanged table compares equal at once; only when it
		// does not, the rendered table is listed by this nft (in a scratch
		// namespace, which costs tens of milliseconds or more), lest a
		// difference of printing be taken for drift.
		if k.NFTWant, err = predictNFT(p); err != nil {
			return nil, err
		}
		if k.NFT != "" && len(compareNFT(k.NFTWant, k.NFT)) > 0 {
			if k.NFTWant, err = canonNFT(p); err != nil {
				return nil, err
			}
		}
	}
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
	for _, f := range unitfiles.Families {
		if s := saves[f]; s != nil {
			if k.NAT[f], err = s.Wait(); err != nil {
				return nil, err
			}
		}
	}
	return k, nil
}
