package plan

import (
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strconv"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/diag"
	"github.com/nicpersist/nicpersist/render/internal/profile"
)

// Numbering defaults. Tables 10-255 and 10000-13199 and priorities
// 10000-13199 and 32765 down belong to other multi-NIC tools and the kernel;
// 1000 is clear of all of them and leaves room for 9000 objects.
const (
	DefaultTableBase    = 1000
	DefaultPriorityBase = 1000
	maxPriority         = 32765 // 32766 and 32767 are the kernel's main and default rules
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
}

func (i *iface) has(f Family) bool { return i.addr[f].IsValid() }

type builder struct {
	c        checker
	p        *Plan
	ifaces   []*iface
	byName   map[string]*iface
	tableIDs map[uint32]string // id -> path that claimed it
	names    map[string]uint32 // table name -> id
	prios    map[[2]uint32]string
	explicit map[uint32]bool // priorities [[rule]]s ask for, kept from auto-assignment
	tBase    uint32
	pBase    uint32
	nextTab  uint32
	nextPrio uint32
	fwd4     *bool
	fwd6     *bool
	rpf      string
}

// Build checks a decoded profile and expands it into a Plan. Every problem
// goes to l; the Plan is nil when any of them is an error.
func Build(d *profile.Decoded, l *diag.List) *Plan {
	b := &builder{
		c:        checker{p: l},
		p:        &Plan{},
		byName:   map[string]*iface{},
		tableIDs: map[uint32]string{},
		names:    map[string]uint32{"main": TableMain},
		prios:    map[[2]uint32]string{},
		explicit: map[uint32]bool{},
	}
	pr := d.Profile
	b.version(pr)
	b.numbering(pr)
	b.sysctl(pr)
	b.interfaces(pr)
	b.tables(pr)
	b.autoTables()
	for _, r := range pr.Rules {
		if r.Priority.Set && r.Priority.Bad == nil && r.Priority.V > 0 && r.Priority.V <= maxPriority {
			b.explicit[uint32(r.Priority.V)] = true
		}
	}
	b.expandInterfaces()
	b.routes(pr)
	b.rules(pr)
	b.nat(pr)
	b.sysctls()
	b.links()
	b.lint()
	if l.HasErrors() {
		return nil
	}
	sort.Slice(b.p.Tables, func(i, j int) bool { return b.p.Tables[i].ID < b.p.Tables[j].ID })
	return b.p
}

func (b *builder) version(pr *profile.Profile) {
	v := pr.Version
	switch {
	case v.Bad != nil:
		b.c.p.Errorf("version", "must be the integer 1, not %s", profile.TypeName(v.Bad))
	case !v.Set:
		b.c.p.Errorf("version", "is missing; put `version = 1` at the top of the profile")
	case v.V != 1:
		b.c.p.Errorf("version", "%d is not supported; this nicpersist reads version = 1", v.V)
	}
}

func (b *builder) numbering(pr *profile.Profile) {
	b.tBase, b.pBase = DefaultTableBase, DefaultPriorityBase
	if v, ok := b.c.uint32In("numbering.table_base", pr.Numbering.TableBase, 1, 0xfffff000); ok {
		b.tBase = v
		if inReservedTables(v) {
			b.c.p.Warnf("numbering.table_base", "%d is inside a range other multi-NIC tools use (10-255, 10000-13199); the default is %d", v, DefaultTableBase)
		}
	}
	if v, ok := b.c.uint32In("numbering.priority_base", pr.Numbering.PriorityBase, 1, maxPriority); ok {
		b.pBase = v
		if inReservedPrios(v) {
			b.c.p.Warnf("numbering.priority_base", "%d is inside a range other multi-NIC tools use (10000-13199); the default is %d", v, DefaultPriorityBase)
		}
	}
	b.nextTab, b.nextPrio = b.tBase, b.pBase
}

func inReservedTables(id uint32) bool {
	return id >= 10 && id <= 255 || id >= 10000 && id <= 13199
}

func inReservedPrios(p uint32) bool { return p >= 10000 && p <= 13199 }

func (b *builder) sysctl(pr *profile.Profile) {
	s := pr.Sysctl
	if v, ok := b.c.boolean("sysctl.ip_forward", s.IPForward); ok {
		b.fwd4 = &v
	}
	if v, ok := b.c.boolean("sysctl.ipv6_forwarding", s.IPv6Forwarding); ok {
		b.fwd6 = &v
	}
	if v, ok := b.c.str("sysctl.rp_filter", s.RPFilter); ok {
		switch v {
		case "strict", "loose", "off":
			b.rpf = v
		default:
			b.c.p.Errorf("sysctl.rp_filter", "%q is not one of \"strict\", \"loose\", \"off\"", v)
		}
	}
}

func (b *builder) interfaces(pr *profile.Profile) {
	for i, in := range pr.Interfaces {
		p := fmt.Sprintf("interface[%d]", i)
		it := &iface{path: p}
		name, set := b.c.str(p+".name", in.Name)
		if !set && in.Name.Bad == nil {
			b.c.p.Errorf(p+".name", "is missing; every [[interface]] needs name = \"<ifname>\"")
		} else if set && b.c.ifName(p+".name", name) {
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
				case f == V6 && g.IsLinkLocalUnicast():
					it.gw[f] = g
				case !it.addr[f].Masked().Contains(g):
					b.c.p.Errorf(gk, "%s is not inside %s", s, it.addr[f].Masked())
				case g == it.addr[f].Addr():
					b.c.p.Errorf(gk, "%s is the interface's own address; give the router's address", s)
				case notHostOf(g, it.addr[f]) != "":
					b.c.p.Errorf(gk, "%s is the %s address of %s; give the router's address", g, notHostOf(g, it.addr[f]), it.addr[f].Masked())
				default:
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
		if it.reply && !it.gw[V4].IsValid() && !it.gw[V6].IsValid() && in.Gateway.Bad == nil && in.Gateway6.Bad == nil && !in.Gateway.Set && !in.Gateway6.Set {
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

// tableID claims a table id for path, reporting reserved and duplicate ids.
func (b *builder) tableID(path string, id uint32) bool {
	switch id {
	case 0, TableDefault, TableMain, TableLocal:
		b.c.p.Errorf(path, "%d is reserved by the kernel (0 unspec, 253 default, 254 main, 255 local); pick another id", id)
		return false
	}
	if prev, dup := b.tableIDs[id]; dup {
		b.c.p.Errorf(path, "table %d is already used by %s", id, prev)
		return false
	}
	b.tableIDs[id] = path
	if inReservedTables(id) {
		b.c.p.Warnf(path, "table %d is in a range other multi-NIC tools use (10-255, 10000-13199); omit it to get one from %d", id, b.tBase)
	}
	return true
}

func (b *builder) tables(pr *profile.Profile) {
	for i, t := range pr.Tables {
		p := fmt.Sprintf("table[%d]", i)
		id, idOK := b.c.tableIDIn(p+".id", t.ID)
		if !t.ID.Set && t.ID.Bad == nil {
			b.c.p.Errorf(p+".id", "is missing; every [[table]] needs id = <number>")
		}
		name, set := b.c.str(p+".name", t.Name)
		if !set && t.Name.Bad == nil {
			b.c.p.Errorf(p+".name", "is missing; every [[table]] needs name = \"<name>\"")
		}
		nameOK := set && b.tableName(p+".name", name)
		if idOK {
			idOK = b.tableID(p+".id", id)
		}
		if idOK && nameOK {
			b.names[name] = id
			b.p.Tables = append(b.p.Tables, Table{ID: id, Name: name, Origin: p})
		}
	}
}

func (b *builder) tableName(path, name string) bool {
	switch {
	case name == "":
		b.c.p.Errorf(path, "is empty")
	case len(name) > 63:
		b.c.p.Errorf(path, "%q is longer than 63 characters", name)
	case name == "main" || name == "local" || name == "default" || name == "unspec":
		b.c.p.Errorf(path, "%q is a kernel table name; pick another name", name)
	default:
		if _, err := strconv.ParseUint(name, 0, 32); err == nil {
			b.c.p.Errorf(path, "%q is a number; a table name must not read as an id", name)
			return false
		}
		if bad, ok := safeWord(name); !ok {
			b.c.p.Errorf(path, "%q contains %q; use letters, digits, '-', '_' and '.'", name, bad)
			return false
		}
		if _, dup := b.names[name]; dup {
			b.c.p.Errorf(path, "table name %q is already defined", name)
			return false
		}
		return true
	}
	return false
}

// autoTables gives reply_via_self interfaces without an id the next free ids
// from the base, in profile order, so the same profile gets the same numbers.
func (b *builder) autoTables() {
	for _, it := range b.ifaces {
		if !it.reply || it.name == "" {
			continue
		}
		if !it.tableSet {
			for b.tableIDs[b.nextTab] != "" || isKernelTable(b.nextTab) || inReservedTables(b.nextTab) && !inReservedTables(b.tBase) {
				b.nextTab++
			}
			it.table = b.nextTab
			b.tableIDs[it.table] = it.path + ".reply_via_self"
		}
		name := "nicpersist-" + it.name
		if _, dup := b.names[name]; dup {
			b.c.p.Errorf(it.path+".reply_via_self", "the table name %q it creates is already defined by a [[table]]; rename that table", name)
			continue
		}
		b.names[name] = it.table
		b.p.Tables = append(b.p.Tables, Table{ID: it.table, Name: name, Origin: it.path + ".reply_via_self"})
	}
}

func isKernelTable(id uint32) bool {
	return id == 0 || id == TableDefault || id == TableMain || id == TableLocal
}

// priority claims an explicit priority or hands out the next free one. IPv4
// and IPv6 rules live in separate lists, so a priority is claimed per family.
func (b *builder) priority(path string, f Family, explicit uint32) uint32 {
	if explicit != 0 {
		k := [2]uint32{uint32(f), explicit}
		if prev, dup := b.prios[k]; dup {
			b.c.p.Errorf(path, "priority %d is already used by %s", explicit, prev)
		}
		b.prios[k] = path
		return explicit
	}
	for {
		p := b.nextPrio
		_, used4 := b.prios[[2]uint32{uint32(V4), p}]
		_, used6 := b.prios[[2]uint32{uint32(V6), p}]
		if !used4 && !used6 && !b.explicit[p] && !(inReservedPrios(p) && !inReservedPrios(b.pBase)) {
			break
		}
		b.nextPrio++
	}
	if b.nextPrio > maxPriority {
		b.c.p.Errorf(path, "no rule priority left between numbering.priority_base (%d) and %d; lower the base", b.pBase, maxPriority)
		return 0
	}
	b.prios[[2]uint32{uint32(f), b.nextPrio}] = path
	return b.nextPrio
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
				if prio == 0 {
					prio = b.priority(origin, f, 0)
				} else {
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

// resolveTable reads a table given by name or id.
func (b *builder) resolveTable(path string, s profile.Scalar) (uint32, bool) {
	switch {
	case s.Bad != nil:
		b.c.p.Errorf(path, "must be a table name or id, not %s", profile.TypeName(s.Bad))
	case !s.Set:
		return TableMain, true
	case s.IsInt:
		if s.Int == TableMain {
			return TableMain, true
		}
		if s.Int >= 0 && s.Int <= math.MaxUint32 {
			if _, ok := b.tableIDs[uint32(s.Int)]; ok {
				return uint32(s.Int), true
			}
		}
		b.c.p.Errorf(path, "table %d is not defined; add a [[table]] with id = %d, or use %s", s.Int, s.Int, b.knownTables())
	default:
		if id, ok := b.names[s.Str]; ok {
			return id, true
		}
		if n, err := strconv.ParseUint(s.Str, 10, 32); err == nil {
			return b.resolveTable(path, profile.Scalar{Int: int64(n), IsInt: true, Set: true})
		}
		b.c.p.Errorf(path, "table %q is not defined; add a [[table]] with name = %q, or use %s", s.Str, s.Str, b.knownTables())
	}
	return 0, false
}

func (b *builder) knownTables() string {
	var ns []string
	for n := range b.names {
		ns = append(ns, strconv.Quote(n))
	}
	sort.Strings(ns)
	if len(ns) == 1 {
		return ns[0]
	}
	return "one of " + joinOr(ns)
}

func joinOr(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := ""
	for i, x := range s {
		switch {
		case i == 0:
		case i == len(s)-1:
			out += " or "
		default:
			out += ", "
		}
		out += x
	}
	return out
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
		if ok && dev != nil && r.Via.IsValid() && !(r.Family == V6 && r.Via.IsLinkLocalUnicast()) {
			switch {
			case !dev.has(r.Family):
				b.c.p.Errorf(p+".via", "%s is %s but interface %s has no %s address in the profile; add it so the gateway can be checked", r.Via, r.Family, dev.name, r.Family)
				ok = false
			case !dev.addr[r.Family].Masked().Contains(r.Via):
				b.c.p.Errorf(p+".via", "%s is not inside %s (the subnet of %s)", r.Via, dev.addr[r.Family].Masked(), dev.name)
				ok = false
			case r.Via == dev.addr[r.Family].Addr():
				b.c.p.Errorf(p+".via", "%s is the address of %s itself; give the router's address", r.Via, dev.name)
				ok = false
			case notHostOf(r.Via, dev.addr[r.Family]) != "":
				b.c.p.Errorf(p+".via", "%s is the %s address of %s; give the router's address", r.Via, notHostOf(r.Via, dev.addr[r.Family]), dev.addr[r.Family].Masked())
				ok = false
			}
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

func (b *builder) nat(pr *profile.Profile) {
	for i, in := range pr.NAT {
		p := fmt.Sprintf("nat[%d]", i)
		ok := true
		n := NAT{Origin: p, Family: 0}
		var out *iface
		if s, set := b.c.str(p+".out_interface", in.OutInterface); set {
			if out, ok = b.ifRef(p+".out_interface", s, false); ok {
				n.Out = s
			}
		} else {
			if in.OutInterface.Bad == nil {
				b.c.p.Errorf(p+".out_interface", "is missing; name the interface whose outgoing traffic is translated")
			}
			ok = false
		}
		if s, set := b.c.str(p+".source", in.Source); set {
			if src, sok := b.c.network(p+".source", s); sok {
				n.Source, n.Family = src, familyOf(src.Addr())
			} else {
				ok = false
			}
		} else if in.Source.Bad != nil {
			ok = false
		}
		masq, mset := b.c.boolean(p+".masquerade", in.Masquerade)
		if in.Masquerade.Bad != nil {
			ok = false
		}
		to, tset := b.c.str(p+".to_source", in.ToSource)
		if in.ToSource.Bad != nil {
			ok = false
		}
		switch {
		case masq && tset:
			b.c.p.Errorf(p, "sets both masquerade = true and to_source; keep one")
			ok = false
		case tset:
			if a, aok := b.c.addr(p+".to_source", to); aok {
				if n.Family != 0 && familyOf(a) != n.Family {
					b.c.p.Errorf(p+".to_source", "%s is %s but source is %s", to, familyOf(a), n.Family)
					ok = false
				}
				n.ToSource, n.Family = a, familyOf(a)
				if out != nil && (!out.has(n.Family) || out.addr[n.Family].Addr() != a) {
					b.c.p.Warnf(p+".to_source", "%s is not the profile address of %s; replies come back only if the address is routed to this host", a, out.name)
				}
			} else {
				ok = false
			}
		case masq:
			n.Masquerade = true
		case mset || in.Masquerade.Bad == nil:
			b.c.p.Errorf(p, "needs masquerade = true or to_source = \"<address>\"")
			ok = false
		}
		if n.Family == 0 {
			n.Family = V4
		}
		if ok {
			b.p.NAT = append(b.p.NAT, n)
		}
	}
}

// sysctls lists the keys in the order sysctl.d applies them: "all" before the
// interfaces, so an interface value is the one that counts.
func (b *builder) sysctls() {
	add := func(k, v, origin string) {
		b.p.Sysctls = append(b.p.Sysctls, Sysctl{Key: k, Value: v, Origin: origin})
	}
	if b.fwd4 != nil {
		add("net.ipv4.ip_forward", boolDigit(*b.fwd4), "sysctl.ip_forward")
	}
	if b.fwd6 != nil {
		add("net.ipv6.conf.all.forwarding", boolDigit(*b.fwd6), "sysctl.ipv6_forwarding")
	}
	if b.rpf == "" {
		return
	}
	v := map[string]string{"off": "0", "strict": "1", "loose": "2"}[b.rpf]
	if b.rpf == "off" {
		// The effective value is max(all, interface): off needs both.
		add("net.ipv4.conf.all.rp_filter", "0", "sysctl.rp_filter")
	}
	for _, it := range b.ifaces {
		if it.name == "" {
			continue
		}
		add(confKey(it.name, "rp_filter"), v, "sysctl.rp_filter")
	}
}

// confKey builds net.ipv4.conf.<if>.<key>; a name with '.' (a VLAN such as
// eth0.100) needs the '/' form, as sysctl.d(5) says.
func confKey(name, key string) string {
	for _, r := range name {
		if r == '.' {
			return "net/ipv4/conf/" + name + "/" + key
		}
	}
	return "net.ipv4.conf." + name + "." + key
}

func boolDigit(v bool) string {
	if v {
		return "1"
	}
	return "0"
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

// tableIDIn reads a table id; 0 passes through so that tableID can say it is
// reserved rather than out of range.
func (c checker) tableIDIn(path string, o profile.Opt[int64]) (uint32, bool) {
	if o.Set && o.Bad == nil && o.V == 0 {
		return 0, true
	}
	return c.uint32In(path, o, 1, 0xffffffff)
}
