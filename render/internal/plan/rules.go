package plan

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/profile"
)

func (b *builder) rules(pr *profile.Profile) {
	for i, in := range pr.Rules {
		p := fmt.Sprintf("rule[%d]", i)
		sound := b.object()
		r := Rule{Origin: p}
		fam := map[Family]bool{}
		for _, sel := range []struct {
			key string
			o   profile.Opt[string]
			dst *netip.Prefix
		}{{"from", in.From, &r.From}, {"to", in.To, &r.To}} {
			s, ok := b.c.str(p+"."+sel.key, sel.o)
			if !ok {
				continue
			}
			if n, ok := b.c.network(p+"."+sel.key, s); ok && n.Bits() == 0 {
				b.c.p.Errorf(p+"."+sel.key, "%s matches every address, which makes the rule catch all traffic; leave %s out, or give a narrower network", s, sel.key)
			} else if ok {
				*sel.dst = n
				fam[familyOf(n.Addr())] = true
			}
		}
		if len(fam) == 2 {
			b.c.p.Errorf(p+".to", "mixes IPv4 and IPv6 with from; write one rule per family")
		}
		for _, sel := range []struct {
			key string
			o   profile.Opt[string]
			dst *string
		}{{"iif", in.IIF, &r.IIF}, {"oif", in.OIF, &r.OIF}} {
			if s, ok := b.c.str(p+"."+sel.key, sel.o); ok {
				if _, ok := b.ifRef(p+"."+sel.key, s, true); ok {
					*sel.dst = s
				}
			}
		}
		if m, ok := b.c.fwmark(p+".fwmark", in.FWMark); ok && (m == "0x0" || strings.HasPrefix(m, "0x0/") || strings.HasSuffix(m, "/0x0")) {
			b.c.p.Errorf(p+".fwmark", "%s matches every packet (a zero mark or mask), which makes the rule catch all traffic; give a non-zero mark and mask", m)
		} else if ok {
			r.FWMark = m
		}
		if !in.From.Set && !in.To.Set && !in.IIF.Set && !in.OIF.Set && !in.FWMark.Set {
			b.c.p.Errorf(p, "has no selector; give at least one of from, to, iif, oif, fwmark (a rule without one catches all traffic)")
		}
		if !in.Table.Set {
			b.c.p.Errorf(p+".table", "is missing; a rule must say which table to look up")
		} else if t, ok := b.resolveTable(p+".table", in.Table); ok {
			r.Table = t
		}
		prio, prioOK := b.c.uint32In(p+".priority", in.Priority, 1, maxPriority)
		if !sound() {
			continue
		}
		r.Family = b.ruleFamily(r, fam)
		if prioOK && inReservedPrios(prio) {
			b.c.p.Warnf(p+".priority", "%d is in the range amazon-ec2-net-utils uses (10000-13199)", prio)
		}
		if pr := b.priority(p+".priority", r.Family, prio); pr != 0 {
			r.Priority = pr
			b.p.Rules = append(b.p.Rules, r)
		}
	}
}

// ruleFamily is the family of the rule's addresses, else of the routes in its
// table, else IPv4.
func (b *builder) ruleFamily(r Rule, fam map[Family]bool) Family {
	for f := range fam {
		return f
	}
	has4, has6 := false, false
	for _, rt := range b.p.Routes {
		if rt.Table == r.Table {
			has4 = has4 || rt.Family == V4
			has6 = has6 || rt.Family == V6
		}
	}
	if has6 && !has4 {
		return V6
	}
	return V4
}
