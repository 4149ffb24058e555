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
		ok := true
		var r Rule
		r.Origin = p
		fam := map[Family]bool{}
		for _, sel := range []struct {
			key string
			o   profile.Opt[string]
			dst *netip.Prefix
		}{{"from", in.From, &r.From}, {"to", in.To, &r.To}} {
			if s, set := b.c.str(p+"."+sel.key, sel.o); set {
				if n, nok := b.c.network(p+"."+sel.key, s); nok && n.Bits() == 0 {
					b.c.p.Errorf(p+"."+sel.key, "%s matches every address, which makes the rule catch all traffic; leave %s out, or give a narrower network", s, sel.key)
					ok = false
				} else if nok {
					*sel.dst = n
					fam[familyOf(n.Addr())] = true
				} else {
					ok = false
				}
			} else if sel.o.Bad != nil {
				ok = false
			}
		}
		if len(fam) == 2 {
			b.c.p.Errorf(p+".to", "mixes IPv4 and IPv6 with from; write one rule per family")
			ok = false
		}
		for _, sel := range []struct {
			key string
			o   profile.Opt[string]
			dst *string
		}{{"iif", in.IIF, &r.IIF}, {"oif", in.OIF, &r.OIF}} {
			if s, set := b.c.str(p+"."+sel.key, sel.o); set {
				if _, iok := b.ifRef(p+"."+sel.key, s, true); iok {
					*sel.dst = s
				} else {
					ok = false
				}
			} else if sel.o.Bad != nil {
				ok = false
			}
		}
		if m, set := b.c.fwmark(p+".fwmark", in.FWMark); set && (m == "0x0" || strings.HasPrefix(m, "0x0/") || strings.HasSuffix(m, "/0x0")) {
			b.c.p.Errorf(p+".fwmark", "%s matches every packet (a zero mark or mask), which makes the rule catch all traffic; give a non-zero mark and mask", m)
			ok = false
		} else if set {
			r.FWMark = m
		} else if in.FWMark.Set {
			ok = false
		}
		if !in.From.Set && !in.To.Set && !in.IIF.Set && !in.OIF.Set && !in.FWMark.Set {
			b.c.p.Errorf(p, "has no selector; give at least one of from, to, iif, oif, fwmark (a rule without one catches all traffic)")
			ok = false
		}
		if !in.Table.Set {
			b.c.p.Errorf(p+".table", "is missing; a rule must say which table to look up")
			ok = false
		} else if t, tok := b.resolveTable(p+".table", in.Table); tok {
			r.Table = t
		} else {
			ok = false
		}
		prio, pset := b.c.uint32In(p+".priority", in.Priority, 1, maxPriority)
		if in.Priority.Set && !pset {
			ok = false
		}
		if !ok {
			continue
		}
		r.Family = b.ruleFamily(r, fam)
		if pset && inReservedPrios(prio) {
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
