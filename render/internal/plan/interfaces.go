package plan

import (
	"fmt"
	"net/netip"
	"sort"
	"strconv"

	"github.com/nicpersist/nicpersist/render/internal/profile"
)

// iface is a profile interface once its fields are read.
type iface struct {
	path     string
	name     string
	addr     [7]netip.Prefix // indexed by Family
	gw       [7]netip.Addr
	reply    bool
	def      bool
	table    uint32
	tableSet bool
	ctl      map[string]ifCtl // [interface.sysctl] key -> value
	prio     uint32           // the source rule's priority; 0 = auto-assigned
}

func (i *iface) has(f Family) bool { return i.addr[f].IsValid() }

func (b *builder) interfaces(pr *profile.Profile) {
	for i, in := range pr.Interfaces {
		p := fmt.Sprintf("interface[%d]", i)
		it := &iface{path: p}
		b.ifSysctl(p, it, in.Sysctl)
		name, ok := b.c.str(p+".name", in.Name)
		if !in.Name.Set {
			b.c.p.Errorf(p+".name", "is missing; every [[interface]] needs name = \"<ifname>\"")
		} else if ok && b.c.ifName(p+".name", name) {
			if prev, dup := b.byName[name]; dup {
				b.c.p.Errorf(p+".name", "%q is already described by %s; merge the two [[interface]] entries", name, prev.path)
			} else {
				it.name = name
				b.byName[name] = it
			}
		}
		for _, f := range []Family{V4, V6} {
			ak, gk := p+".address"+f.Suffix(), p+".gateway"+f.Suffix()
			ao, gwo := in.Address, in.Gateway
			if f == V6 {
				ao, gwo = in.Address6, in.Gateway6
			}
			if s, ok := b.c.str(ak, ao); ok {
				if pfx, ok := b.c.ifAddress(ak, s, f); ok {
					it.addr[f] = pfx
				}
			}
			if s, ok := b.c.str(gk, gwo); ok {
				g, ok := b.c.addr(gk, s)
				switch {
				case !ok:
				case familyOf(g) != f:
					b.c.p.Errorf(gk, "%s is %s; this key takes an %s gateway", s, familyOf(g), f)
				case !ao.Set:
					b.c.p.Errorf(gk, "needs the interface's address%s so the gateway can be checked against its subnet", f.Suffix())
				case !it.has(f):
					// the address is already reported
				case b.c.nextHop(gk, s, g, it.addr[f], ""):
					it.gw[f] = g
				}
			}
		}
		it.reply, _ = b.c.boolean(p+".reply_via_self", in.ReplyViaSelf)
		it.def, _ = b.c.boolean(p+".default_route", in.DefaultRoute)
		if id, ok := b.c.tableIDIn(p+".table", in.Table); ok {
			if !it.reply {
				b.c.p.Errorf(p+".table", "is only used with reply_via_self = true; remove it or set reply_via_self")
			} else if b.tableID(p+".table", id) {
				it.table, it.tableSet = id, true
			}
		}
		if prio, ok := b.c.uint32In(p+".priority", in.Priority, 1, maxPriority); ok {
			if !it.reply {
				b.c.p.Errorf(p+".priority", "is only used with reply_via_self = true (it is the priority of the source rule); remove it or set reply_via_self")
			} else {
				it.prio = prio
				if inReservedPrios(prio) {
					b.c.p.Warnf(p+".priority", "%d is in the range amazon-ec2-net-utils uses (10000-13199)", prio)
				}
			}
		}
		if it.reply && !in.Gateway.Set && !in.Gateway6.Set {
			b.c.p.Errorf(p+".reply_via_self", "needs a gateway (or gateway6): replies leave through the interface's own table, whose default route goes via that gateway")
		}
		if it.def && !in.Gateway.Set && !in.Gateway6.Set {
			b.c.p.Errorf(p+".default_route", "needs a gateway (or gateway6) for the default route to go via")
		}
		b.ifaces = append(b.ifaces, it)
	}
	for _, f := range []Family{V4, V6} {
		var first *iface
		for _, it := range b.ifaces {
			if !it.def || !it.gw[f].IsValid() {
				continue
			}
			if first != nil {
				b.c.p.Errorf(it.path+".default_route", "%s already has default_route for %s (%s); only one interface per family can hold the main default route", first.name, f, first.path)
				continue
			}
			first = it
		}
	}
}

// expandInterfaces turns reply_via_self and default_route into routes and
// rules.
func (b *builder) expandInterfaces() {
	for _, it := range b.ifaces {
		if it.name == "" {
			continue
		}
		if it.reply && it.table != 0 {
			var prio uint32
			for _, f := range []Family{V4, V6} {
				if !it.has(f) || !it.gw[f].IsValid() {
					continue
				}
				origin := it.path + ".reply_via_self"
				b.p.Routes = append(b.p.Routes,
					Route{Family: f, To: it.addr[f].Masked(), Dev: it.name, Table: it.table, Origin: origin},
					Route{Family: f, To: f.Default(), Via: it.gw[f], Dev: it.name, Table: it.table, Origin: origin})
				switch {
				case it.prio != 0:
					// Claimed per family, so a [[rule]] of either family
					// that asks for it is reported.
					prio = b.priority(it.path+".priority", f, it.prio)
				case prio == 0:
					prio = b.priority(origin, f, 0)
				default:
					b.prios[[2]uint32{uint32(f), prio}] = origin
				}
				a := it.addr[f].Addr()
				b.p.Rules = append(b.p.Rules, Rule{Family: f, Priority: prio, From: netip.PrefixFrom(a, a.BitLen()), Table: it.table, Origin: origin})
			}
		}
		if it.def {
			for _, f := range []Family{V4, V6} {
				if !it.gw[f].IsValid() {
					continue
				}
				r := Route{Family: f, To: f.Default(), Via: it.gw[f], Dev: it.name, Table: TableMain, Origin: it.path + ".default_route"}
				if f == V6 {
					// Metric 1 wins over router advertisements (1024) and
					// NetworkManager (100+) without displacing them.
					r.Metric, r.MetricSet = 1, true
				}
				b.p.Routes = append(b.p.Routes, r)
			}
		}
	}
}

// ifRef checks a name that must be an interface of the profile.
func (b *builder) ifRef(path, name string, allowLo bool) (*iface, bool) {
	if allowLo && name == "lo" {
		return nil, true
	}
	if !b.c.ifName(path, name) {
		return nil, false
	}
	if it, ok := b.byName[name]; ok {
		return it, true
	}
	var ns []string
	for n := range b.byName {
		ns = append(ns, strconv.Quote(n))
	}
	sort.Strings(ns)
	hint := "add an [[interface]] with name = " + strconv.Quote(name)
	if len(ns) > 0 {
		hint = "use " + joinOr(ns) + ", or " + hint
	}
	b.c.p.Errorf(path, "interface %q is not defined in the profile; %s", name, hint)
	return nil, false
}

func (b *builder) links() {
	for _, it := range b.ifaces {
		if it.name == "" {
			continue
		}
		l := Link{Name: it.name, Addr4: it.addr[V4], Addr6: it.addr[V6]}
		for _, r := range b.p.Routes {
			if r.Dev == it.name {
				if r.Family == V4 {
					l.Routed4 = true
				} else {
					l.Routed6 = true
				}
			}
		}
		b.p.Interfaces = append(b.p.Interfaces, l)
	}
}
