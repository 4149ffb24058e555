package importer

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/apply"
	"github.com/nicpersist/nicpersist/render/internal/plan"
)

// Kernel is the running kernel as --live reads it.
type Kernel struct {
	Links  []apply.Link
	Routes map[plan.Family][]apply.KernelRoute
	Rules  map[plan.Family][]apply.KernelRule
	// NATSave is `iptables-save -t nat` (and ip6tables-save) output; ""
	// when the command is missing.
	NATSave map[plan.Family]string
	// Sysctl reads a file under /proc/sys ("net/ipv4/ip_forward").
	Sysctl func(key string) (string, bool)
	// Unread says what could not be read, and why: listed as not
	// carried over.
	Unread []Skipped
}

// Route protocols (RTPROT_*) that mean the network stack made the route:
// the kernel for an address, router advertisements, a DHCP client.
const (
	rtprotKernel = 2
	rtprotRA     = 9
	rtprotDHCP   = 16
	rtnUnicast   = 1
	rtnhFOnlink  = 4
	scopeHost    = 254
)

// LiveState is the state of the running kernel, as far as a profile can say
// it.
func LiveState(k Kernel, env Env) *State {
	st := &State{Names: map[uint32]string{}, DelDefault: map[plan.Family]*Line{}, FileAddrs: map[string][]netip.Prefix{},
		Live: true, StackGateways: map[string]map[plan.Family]netip.Addr{}}
	s := &script{st: st, name: "kernel", env: env, vars: map[string]string{}, byName: map[string]uint32{}, conf: map[string]*confFile{}}
	s.readTables()
	names := map[int32]string{}
	for _, l := range k.Links {
		names[l.Index] = l.Name
	}
	for _, f := range []plan.Family{plan.V4, plan.V6} {
		for _, r := range k.Routes[f] {
			if r.Table == plan.TableLocal || r.Table == plan.TableDefault && r.Type != rtnUnicast {
				continue
			}
			if r.Table == plan.TableMain && (r.Proto == rtprotKernel || r.Proto == rtprotRA || r.Proto == rtprotDHCP) {
				if dev := names[r.OIF]; r.Dst.Bits() == 0 && r.Gateway.IsValid() && dev != "" {
					if st.StackGateways[dev] == nil {
						st.StackGateways[dev] = map[plan.Family]netip.Addr{}
					}
					if _, ok := st.StackGateways[dev][f]; !ok {
						st.StackGateways[dev][f] = r.Gateway
					}
				}
				continue // the network stack's own
			}
			if f == plan.V6 && r.Proto == rtprotKernel && r.Dst.Addr().IsLinkLocalUnicast() {
				continue
			}
			rt := Route{Fam: f, Table: r.Table, To: r.Dst, Via: r.Gateway, Dev: names[r.OIF]}
			text := routeText(rt, r)
			ln := &Line{Where: "kernel", Text: "route " + text}
			rt.From = ln
			switch {
			case r.Type != rtnUnicast:
				st.skip(ln, fmt.Sprintf("not carried over: a route of type %d (not unicast) has no profile key", r.Type))
				continue
			case len(r.Multipath) > 0:
				st.skip(ln, "not carried over: a multipath route has no profile key")
				continue
			case r.PrefSrc.IsValid():
				st.skip(ln, "not carried over: src has no profile key")
				continue
			case r.Scope == scopeHost:
				st.skip(ln, "not carried over: scope host has no profile key")
				continue
			case r.Table == plan.TableDefault:
				st.skip(ln, "not carried over: table 253 is the kernel's; the profile cannot hold routes there")
				continue
			}
			if r.Flags&rtnhFOnlink != 0 {
				st.Notes = append(st.Notes, fmt.Sprintf("route %s: onlink is not carried over: a profile route's via must be inside the interface's subnet, where onlink changes nothing", text))
			}
			if f == plan.V4 && r.Metric != 0 || f == plan.V6 && r.Metric != 1024 {
				rt.Metric, rt.MetricSet = r.Metric, true
			}
			st.Routes = append(st.Routes, rt)
		}
		for _, r := range k.Rules[f] {
			if r.Priority == 0 && r.Table == plan.TableLocal || r.Priority == 32766 && r.Table == plan.TableMain || r.Priority == 32767 && r.Table == plan.TableDefault {
				continue // the kernel's own
			}
			rl := Rule{Fam: f, Prio: r.Priority, From: r.From, To: r.To, IIF: r.IIF, OIF: r.OIF, Table: r.Table}
			if r.Mask != 0 {
				rl.FWMark = fmt.Sprintf("0x%x", r.Mark)
				if r.Mask != 0xffffffff {
					rl.FWMark += fmt.Sprintf("/0x%x", r.Mask)
				}
			}
			ln := &Line{Where: "kernel", Text: "rule " + ruleText(rl)}
			rl.Src = ln
			switch {
			case !r.Plain():
				st.skip(ln, "not carried over: the rule has a selector or action a profile cannot say ("+ruleExtra(r)+")")
				continue
			case isKernelTable(r.Table) && r.Table != plan.TableMain:
				st.skip(ln, fmt.Sprintf("not carried over: a rule to the kernel's table %d has no profile key", r.Table))
				continue
			case !rl.From.IsValid() && !rl.To.IsValid() && rl.IIF == "" && rl.OIF == "" && rl.FWMark == "":
				st.skip(ln, "not carried over: a rule without a selector catches all traffic; the profile refuses it")
				continue
			}
			st.Rules = append(st.Rules, rl)
		}
		s.natSave(f, k.NATSave[f])
	}
	if k.Sysctl != nil {
		s.liveSysctls(k)
	}
	for _, u := range k.Unread {
		st.skip(&u.Line, u.Reason)
	}
	return st
}

func routeText(rt Route, r apply.KernelRoute) string {
	var b strings.Builder
	b.WriteString(dest(rt.To))
	if rt.Via.IsValid() {
		b.WriteString(" via " + rt.Via.String())
	}
	if rt.Dev != "" {
		b.WriteString(" dev " + rt.Dev)
	}
	if r.Table != plan.TableMain {
		fmt.Fprintf(&b, " table %d", r.Table)
	}
	fmt.Fprintf(&b, " proto %d metric %d", r.Proto, r.Metric)
	return b.String()
}

func ruleText(r Rule) string {
	return plan.Rule{Family: r.Fam, Priority: r.Prio, From: r.From, To: r.To, IIF: r.IIF, OIF: r.OIF, FWMark: r.FWMark, Table: r.Table}.Args()
}

// natSave reads POSTROUTING of iptables-save, with the rules of
// nicpersist's own chain where POSTROUTING jumps to it.
func (s *script) natSave(f plan.Family, save string) {
	chains := map[string][][]string{}
	for _, l := range strings.Split(save, "\n") {
		if !strings.HasPrefix(l, "-A ") {
			continue
		}
		w, err := split(l, nil)
		if err != nil || len(w) < 2 {
			continue
		}
		var args []string
		for _, x := range w {
			args = append(args, x.s)
		}
		chains[args[1]] = append(chains[args[1]], args[2:])
	}
	const own = "NICPERSIST-POSTROUTING"
	for _, rule := range chains["POSTROUTING"] {
		if len(rule) == 2 && rule[0] == "-j" && rule[1] == own {
			for _, r := range chains[own] {
				s.natRule(f, own, r)
			}
			continue
		}
		s.natRule(f, "POSTROUTING", rule)
	}
}

func (s *script) natRule(f plan.Family, chain string, rule []string) {
	ln := &Line{Where: "kernel", Text: fmt.Sprintf("%s -t nat -A %s %s", f.IPTables(), chain, strings.Join(rule, " "))}
	s.iptables(ln, f, append([]string{"-t", "nat", "-A", "POSTROUTING"}, rule...))
}

// liveSysctls reads forwarding and rp_filter. rp_filter carries over when
// every link with an address (but lo) has the same effective value (the
// larger of all and the link's own).
func (s *script) liveSysctls(k Kernel) {
	ln := &Line{Where: "kernel", Text: "sysctl"}
	if v, ok := k.Sysctl("net/ipv4/ip_forward"); ok {
		s.setSysctl(&Line{Where: "kernel", Text: "net.ipv4.ip_forward = " + v}, "net.ipv4.ip_forward", v)
	}
	if v, ok := k.Sysctl("net/ipv6/conf/all/forwarding"); ok {
		s.setSysctl(&Line{Where: "kernel", Text: "net.ipv6.conf.all.forwarding = " + v}, "net.ipv6.conf.all.forwarding", v)
	}
	all, ok := k.Sysctl("net/ipv4/conf/all/rp_filter")
	if !ok {
		return
	}
	eff := map[string][]string{}
	for _, l := range k.Links {
		if l.Name == "lo" || len(l.Addrs) == 0 {
			continue // not a NIC in use: the profile will not name it
		}
		v, ok := k.Sysctl("net/ipv4/conf/" + l.Name + "/rp_filter")
		if !ok {
			continue
		}
		e := max(strings.TrimSpace(v), strings.TrimSpace(all))
		eff[e] = append(eff[e], l.Name)
	}
	switch len(eff) {
	case 0:
		return
	case 1:
		for v := range eff {
			ln.Text = "net.ipv4.conf.*.rp_filter = " + v
			s.setSysctl(ln, "net.ipv4.conf.all.rp_filter", v)
		}
	default:
		var parts []string
		for v, ls := range eff {
			parts = append(parts, fmt.Sprintf("%s on %s", v, strings.Join(ls, ", ")))
		}
		sort.Strings(parts)
		ln.Text = "net.ipv4.conf.*.rp_filter"
		s.st.skip(ln, "not carried over: rp_filter differs between links ("+strings.Join(parts, "; ")+"); the profile's rp_filter is one value for every profile interface")
	}
}

// ruleExtra names what makes a kernel rule more than a profile [[rule]].
func ruleExtra(r apply.KernelRule) string {
	var w []string
	if r.Invert {
		w = append(w, "not")
	}
	if r.Action != "lookup" {
		w = append(w, r.Action)
	}
	if r.TOS != 0 {
		w = append(w, fmt.Sprintf("tos 0x%x", r.TOS))
	}
	if r.Realms != 0 {
		w = append(w, fmt.Sprintf("realms %d", r.Realms))
	}
	return strings.Join(append(w, r.Other...), ", ")
}
