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
		sound := b.object()
		r := Route{Origin: p}
		to, toOK := b.c.str(p+".to", in.To)
		switch {
		case !in.To.Set:
			b.c.p.Errorf(p+".to", "is missing; give a network in CIDR form or \"default\"")
		case !toOK, to == "default":
		default:
			if n, ok := b.c.network(p+".to", to); ok {
				r.To, r.Family = n, familyOf(n.Addr())
			}
		}
		if s, ok := b.c.str(p+".via", in.Via); ok {
			if v, ok := b.c.addr(p+".via", s); ok {
				r.Via = v
				if r.Family != 0 && familyOf(v) != r.Family {
					b.c.p.Errorf(p+".via", "%s is %s but to = %q is %s", s, familyOf(v), to, r.Family)
				}
				r.Family = familyOf(v)
			}
		}
		if r.Family == 0 {
			r.Family = V4
		}
		if to == "default" {
			r.To = r.Family.Default()
		}
		var dev *iface
		s, devOK := b.c.str(p+".dev", in.Dev)
		switch {
		case devOK:
			if dev, devOK = b.ifRef(p+".dev", s, false); devOK {
				r.Dev = s
			}
		case in.Dev.Set:
			// its type is already reported
		case r.Via.IsValid():
			for _, it := range b.ifaces {
				if it.has(r.Family) && it.addr[r.Family].Masked().Contains(r.Via) {
					dev, r.Dev = it, it.name
					break
				}
			}
			if dev == nil {
				b.c.p.Errorf(p+".dev", "is missing and no interface's subnet contains via = %s; set dev", r.Via)
			}
		case sound():
			b.c.p.Errorf(p+".dev", "is missing; a route without via needs dev")
		}
		if dev != nil && r.Via.IsValid() {
			b.c.nextHop(p+".via", r.Via.String(), r.Via, dev.addr[r.Family], dev.name)
		}
		if t, ok := b.resolveTable(p+".table", in.Table); ok {
			r.Table = t
		}
		if m, ok := b.c.uint32In(p+".metric", in.Metric, 0, 0xffffffff); ok {
			r.Metric, r.MetricSet = m, true
		}
		if !sound() {
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
