package plan

import (
	"fmt"
	"net/netip"

	"github.com/nicpersist/nicpersist/render/internal/profile"
)

type routeKey struct {
	f      Family
	table  uint32
	to     netip.Prefix
	metric uint32
}

// keyOf is what the kernel identifies a route by; an IPv6 route without a
// metric gets 1024.
func keyOf(r Route) routeKey {
	m := r.Metric
	if r.Family == V6 && !r.MetricSet {
		m = 1024
	}
	return routeKey{r.Family, r.Table, r.To, m}
}

func (b *builder) routes(pr *profile.Profile) {
	seen := map[routeKey]string{}
	for _, r := range b.p.Routes {
		seen[keyOf(r)] = r.Origin
	}
	for i, in := range pr.Routes {
		p := fmt.Sprintf("route[%d]", i)
		ok := true
		var r Route
		r.Origin = p
		to, set := b.c.str(p+".to", in.To)
		switch {
		case !set:
			if in.To.Bad == nil {
				b.c.p.Errorf(p+".to", "is missing; give a network in CIDR form or \"default\"")
			}
			ok = false
		case to == "default":
		default:
			if r.To, ok = b.c.network(p+".to", to); ok {
				r.Family = familyOf(r.To.Addr())
			}
		}
		if s, set := b.c.str(p+".via", in.Via); set {
			if v, vok := b.c.addr(p+".via", s); vok {
				r.Via = v
				if r.Family != 0 && familyOf(v) != r.Family {
					b.c.p.Errorf(p+".via", "%s is %s but to = %q is %s", s, familyOf(v), to, r.Family)
					ok = false
				}
				r.Family = familyOf(v)
			} else {
				ok = false
			}
		} else if in.Via.Bad != nil {
			ok = false
		}
		if r.Family == 0 {
			r.Family = V4
		}
		if ok && to == "default" {
			r.To = r.Family.Default()
		}
		var dev *iface
		if s, set := b.c.str(p+".dev", in.Dev); set {
			if dev, ok = b.ifRef(p+".dev", s, false); ok {
				r.Dev = s
			}
		} else if in.Dev.Bad != nil {
			ok = false
		} else if r.Via.IsValid() {
			for _, it := range b.ifaces {
				if it.has(r.Family) && it.addr[r.Family].Masked().Contains(r.Via) {
					dev, r.Dev = it, it.name
					break
				}
			}
			if dev == nil {
				b.c.p.Errorf(p+".dev", "is missing and no interface's subnet contains via = %s; set dev", r.Via)
				ok = false
			}
		} else if ok {
			b.c.p.Errorf(p+".dev", "is missing; a route without via needs dev")
			ok = false
		}
		if ok && dev != nil && r.Via.IsValid() {
			ok = b.c.nextHop(p+".via", r.Via.String(), r.Via, dev.addr[r.Family], dev.name)
		}
		if t, tok := b.resolveTable(p+".table", in.Table); tok {
			r.Table = t
		} else {
			ok = false
		}
		if m, set := b.c.uint32In(p+".metric", in.Metric, 0, 0xffffffff); set {
			r.Metric, r.MetricSet = m, true
		} else if in.Metric.Set {
			ok = false
		}
		if !ok {
			continue
		}
		k := keyOf(r)
		if prev, dup := seen[k]; dup {
			b.c.p.Errorf(p, "a route to %s in table %s with metric %d is already made by %s; the kernel keeps one of them", dest(r.To), b.p.TableName(r.Table), r.Metric, prev)
			continue
		}
		seen[k] = p
		b.p.Routes = append(b.p.Routes, r)
	}
}
