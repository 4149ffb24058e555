package importer

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/nicpersist/nicpersist/render/internal/plan"
)

// Result is the profile import writes, and what it has to say about it.
type Result struct {
	Profile []byte
	// Skipped is what is not carried over: commented in the profile and
	// listed on stderr.
	Skipped []Skipped
	// Notes are carried over with a difference the user should know of
	// (a route reply_via_self adds, a dropped proto); they do not make the
	// import incomplete.
	Notes []string
}

// ifc is a profile interface in the making.
type ifc struct {
	name     string
	addr     map[plan.Family]netip.Prefix
	addrFrom string
	gw       map[plan.Family]netip.Addr
	def      bool
	reply    bool
	table    uint32
	prio     uint32
	prioNote string
	comments []string
}

type builder struct {
	st     *State
	env    Env
	ifs    map[string]*ifc
	reply  map[uint32]*ifc // reply_via_self tables
	notes  []string
	tables map[uint32]string // explicit [[table]]s: id -> name
}

// Profile writes st as a profile. source names what it was imported from,
// for the header.
func Profile(st *State, env Env, source string) *Result {
	b := &builder{st: st, env: env, ifs: map[string]*ifc{}, reply: map[uint32]*ifc{}, tables: map[uint32]string{}}
	b.notes = append(b.notes, st.Notes...)
	b.defaultRoutes()
	b.replyViaSelf()
	// Every interface a route, rule or NAT rule names must be in the
	// profile.
	for i := range st.Routes {
		r := &st.Routes[i]
		if r.used {
			continue
		}
		if r.Dev == "" && r.Via.IsValid() {
			r.Dev = b.devFor(r.Via)
		}
		if r.Dev != "" {
			b.iface(r.Dev)
		}
		if r.Table != plan.TableMain {
			b.table(r.Table)
		}
	}
	for _, r := range st.Rules {
		if r.used {
			continue
		}
		for _, d := range []string{r.IIF, r.OIF} {
			if d != "" && d != "lo" {
				b.iface(d)
			}
		}
		if r.Table != plan.TableMain {
			b.table(r.Table)
		}
	}
	for _, n := range st.NAT {
		b.iface(n.Out)
	}
	// rp_filter from net.ipv4.conf.all acts on every NIC, the profile's
	// on its interfaces: every link with an address joins the profile.
	all := st.Live
	for _, s := range st.Sysctls {
		all = all || s.Key == "rp_filter"
	}
	if all {
		for n, addrs := range env.Links {
			if n != "lo" && len(addrs) > 0 {
				b.iface(n)
			}
		}
	}
	b.stackGateways()
	for _, f := range []plan.Family{plan.V4, plan.V6} {
		if s := st.DelDefault[f]; s != nil {
			st.skip(s, "not carried over: it deletes the system's default route, and the file adds no default via an interface in its place (default_route replaces, it never only deletes)")
		}
	}
	for i, n := range b.notes {
		b.notes[i] = oneLine(n)
	}
	res := &Result{Skipped: st.Skipped, Notes: b.notes}
	res.Profile = []byte(b.write(source))
	return res
}

// iface returns the profile interface name, made on first use with its
// address from the running kernel, else from the file.
func (b *builder) iface(name string) *ifc {
	if it, ok := b.ifs[name]; ok {
		return it
	}
	it := &ifc{name: name, addr: map[plan.Family]netip.Prefix{}, gw: map[plan.Family]netip.Addr{}}
	b.ifs[name] = it
	addrs, from := b.env.Links[name], "the running kernel"
	if len(addrs) == 0 {
		addrs, from = b.st.FileAddrs[name], "the file"
	}
	for _, a := range addrs {
		f := famOf(a.Addr())
		if _, ok := it.addr[f]; !ok && !a.Addr().IsLinkLocalUnicast() {
			it.addr[f] = a
			it.addrFrom = from
		}
	}
	return it
}

// devFor is the interface whose subnet holds a gateway: the kernel's
// links first, then the file's addresses.
func (b *builder) devFor(gw netip.Addr) string {
	for _, src := range []map[string][]netip.Prefix{b.env.Links, b.st.FileAddrs} {
		names := make([]string, 0, len(src))
		for n := range src {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			for _, a := range src[n] {
				if a.Masked().Contains(gw) && a.Bits() < a.Addr().BitLen() {
					return n
				}
			}
		}
	}
	return ""
}

// defaultRoutes finds default_route: a default via a gateway in the main
// table with the metric default_route gives (IPv4 0, where the DHCP
// client's default was; IPv6 1). Other defaults stay explicit routes.
func (b *builder) defaultRoutes() {
	for i := range b.st.Routes {
		r := &b.st.Routes[i]
		if r.Table != plan.TableMain || r.To.Bits() != 0 || !r.Via.IsValid() ||
			r.Fam == plan.V4 && r.Metric != 0 || r.Fam == plan.V6 && (!r.MetricSet || r.Metric != 1) {
			continue
		}
		dev := r.Dev
		if dev == "" {
			dev = b.devFor(r.Via)
		}
		if dev == "" {
			continue
		}
		it := b.iface(dev)
		if g, ok := it.gw[r.Fam]; ok && g != r.Via {
			continue
		}
		it.def, it.gw[r.Fam] = true, r.Via
		it.comments = append(it.comments, fmt.Sprintf("default_route: %s", origin(r.From)))
		r.used = true
		b.st.DelDefault[r.Fam] = nil
	}
}

// replyViaSelf finds per-NIC tables: a default via the NIC's gateway, and
// a rule from the NIC's address to that table.
func (b *builder) replyViaSelf() {
	for _, f := range []plan.Family{plan.V4, plan.V6} {
		for ri := range b.st.Rules {
			rule := &b.st.Rules[ri]
			if rule.used || rule.Fam != f || rule.Table == plan.TableMain || !rule.From.IsValid() || rule.From.Bits() != rule.From.Addr().BitLen() ||
				rule.To.IsValid() || rule.IIF != "" || rule.OIF != "" || rule.FWMark != "" || rule.Prio == 0 {
				continue
			}
			def := -1
			for i, r := range b.st.Routes {
				if !r.used && r.Fam == f && r.Table == rule.Table && r.To.Bits() == 0 && r.Via.IsValid() && !r.MetricSet {
					def = i
					break
				}
			}
			if def < 0 {
				continue
			}
			r := &b.st.Routes[def]
			dev := r.Dev
			if dev == "" {
				dev = b.devFor(r.Via)
			}
			if dev == "" {
				continue
			}
			it := b.iface(dev)
			addr, ok := it.addr[f]
			if !ok {
				// The table's on-link route may show the subnet.
				for _, o := range b.st.Routes {
					if o.Table == rule.Table && o.Dev == dev && !o.Via.IsValid() && o.To.Contains(rule.From.Addr()) && o.To.Bits() > 0 {
						addr, ok = netip.PrefixFrom(rule.From.Addr(), o.To.Bits()), true
						it.addr[f], it.addrFrom = addr, "the file's routes"
					}
				}
			}
			// An IPv6 gateway may be link-local, as router advertisements
			// give it.
			onLink := addr.Masked().Contains(r.Via) || f == plan.V6 && r.Via.IsLinkLocalUnicast()
			if !ok || addr.Addr() != rule.From.Addr() || !onLink {
				continue
			}
			if it.reply && (it.table != rule.Table || it.prio != rule.Prio) || b.reply[rule.Table] != nil && b.reply[rule.Table] != it {
				continue
			}
			if g, ok := it.gw[f]; ok && g != r.Via {
				continue
			}
			it.reply, it.table, it.prio, it.gw[f] = true, rule.Table, rule.Prio, r.Via
			if rule.PrioNote != "" {
				it.prioNote = rule.PrioNote
			}
			b.reply[rule.Table] = it
			rule.used, r.used = true, true
			it.comments = append(it.comments, fmt.Sprintf("reply_via_self: table %d: %s; %s", rule.Table, origin(r.From), origin(rule.Src)))
			subnet := false
			for i := range b.st.Routes {
				o := &b.st.Routes[i]
				if !o.used && o.Fam == f && o.Table == rule.Table && o.To == addr.Masked() && o.Dev == dev && !o.Via.IsValid() && !o.MetricSet {
					o.used, subnet = true, true
				}
			}
			if !subnet {
				b.notes = append(b.notes, fmt.Sprintf("adds route %q: reply_via_self always puts %s's subnet in its table, which %s does not", fmt.Sprintf("%s dev %s table %d", addr.Masked(), dev, rule.Table), dev, r.From.Where))
			}
		}
	}
}

// stackGateways gives an interface without default_route or
// reply_via_self the gateway of the stack's default through it. It renders
// nothing, but says which NICs have one, so that check can warn when the
// default moves away from them. Not with a convenience: they expand every
// family with a gateway.
func (b *builder) stackGateways() {
	for name, gws := range b.st.StackGateways {
		it, ok := b.ifs[name]
		if !ok || it.reply || it.def {
			continue
		}
		for _, f := range []plan.Family{plan.V4, plan.V6} {
			g, hint := gws[f]
			a, ok := it.addr[f]
			if !hint {
				continue
			}
			if _, set := it.gw[f]; set || !ok || !a.Masked().Contains(g) && !(f == plan.V6 && g.IsLinkLocalUnicast()) {
				continue
			}
			it.gw[f] = g
			it.comments = append(it.comments, fmt.Sprintf("gateway%s: the network stack's default route via %s", f.Suffix(), g))
		}
	}
}

// Compiled on first use: package init runs at every start of the binary
// (the unit at boot, verify), most of which never need it.
var tableNameRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_.-]{1,63}$`) })

// table names an explicit table: its rt_tables name when the profile
// takes it.
func (b *builder) table(id uint32) {
	if _, ok := b.tables[id]; ok || b.reply[id] != nil {
		return
	}
	name := b.st.Names[id]
	_, numeric := strconv.ParseUint(name, 10, 64)
	if !tableNameRE().MatchString(name) || numeric == nil || slices.Contains([]string{"main", "local", "default", "unspec"}, name) || strings.HasPrefix(name, "nicpersist-") {
		name = fmt.Sprintf("table%d", id)
	}
	b.tables[id] = name
}

func (b *builder) tableRef(id uint32) string {
	if it := b.reply[id]; it != nil {
		return strconv.FormatUint(uint64(id), 10)
	}
	return quote(b.tables[id])
}

// quote writes a TOML basic string.
func quote(s string) string {
	var q strings.Builder
	q.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			q.WriteByte('\\')
			q.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&q, "\\u%04x", r)
		default:
			q.WriteRune(r)
		}
	}
	q.WriteByte('"')
	return q.String()
}

// comment keeps text inside one TOML comment line.
func comment(s string) string {
	var q strings.Builder
	for _, r := range s {
		if r < 0x20 && r != '\t' || r == 0x7f {
			fmt.Fprintf(&q, "\\x%02x", r)
			continue
		}
		q.WriteRune(r)
	}
	return q.String()
}

func (b *builder) write(source string) string {
	var w strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&w, format, a...) }
	p("# Written by nicpersist import from %s.\n", comment(source))
	p("# Check it (nicpersist check --profile FILE) before rendering it.\n")
	if len(b.st.Skipped) > 0 {
		p("#\n# Not carried over (edit the profile for these, then delete this list):\n")
		for _, s := range b.st.Skipped {
			p("#   %s: %s\n#     %s\n", comment(s.Where), comment(s.Text), comment(s.Reason))
		}
	}
	if len(b.notes) > 0 {
		p("#\n# Notes:\n")
		for _, n := range b.notes {
			p("#   %s\n", comment(n))
		}
	}
	p("version = 1\n")
	if len(b.st.Sysctls) > 0 {
		p("\n[sysctl]\n")
		for _, s := range b.st.Sysctls {
			v := fmt.Sprint(s.Value)
			if str, ok := s.Value.(string); ok {
				v = quote(str)
			}
			p("%s = %s  # %s\n", s.Key, v, comment(origin(s.Src)))
		}
	}
	names := make([]string, 0, len(b.ifs))
	for n := range b.ifs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		it := b.ifs[n]
		p("\n[[interface]]\n")
		for _, c := range it.comments {
			p("# %s\n", comment(c))
		}
		p("name = %s\n", quote(n))
		for _, f := range []plan.Family{plan.V4, plan.V6} {
			a, ok := it.addr[f]
			if !ok {
				continue
			}
			// A gateway is written only for the family a pattern matched:
			// reply_via_self and default_route expand every family with
			// both an address and a gateway.
			_, gw := it.gw[f]
			p("address%s = %s  # from %s\n", f.Suffix(), quote(a.String()), comment(it.addrFrom))
			if gw {
				p("gateway%s = %s\n", f.Suffix(), quote(it.gw[f].String()))
			}
		}
		if len(it.addr) == 0 {
			p("# address = \"?\"  # import found no address for %s: set the address it has (needed to check gateways)\n", comment(n))
			for _, f := range []plan.Family{plan.V4, plan.V6} {
				if g, ok := it.gw[f]; ok {
					p("gateway%s = %s\n", f.Suffix(), quote(g.String()))
				}
			}
		}
		if it.def {
			p("default_route = true\n")
		}
		if it.reply {
			p("reply_via_self = true\n")
			p("table = %d\n", it.table)
			if it.prioNote != "" {
				p("priority = %d  # %s\n", it.prio, comment(it.prioNote))
			} else {
				p("priority = %d\n", it.prio)
			}
		}
	}
	for _, n := range b.st.NAT {
		p("\n[[nat]]  # %s\n", comment(origin(n.Src)))
		p("out_interface = %s\n", quote(n.Out))
		if n.Source.IsValid() {
			p("source = %s\n", quote(n.Source.String()))
		}
		if n.Masquerade {
			p("masquerade = true\n")
		} else {
			p("to_source = %s\n", quote(n.ToSource.String()))
		}
	}
	ids := make([]uint32, 0, len(b.tables))
	for id := range b.tables {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		p("\n[[table]]\nid = %d\nname = %s\n", id, quote(b.tables[id]))
	}
	for _, r := range b.st.Routes {
		if r.used {
			continue
		}
		p("\n[[route]]  # %s\n", comment(origin(r.From)))
		p("to = %s\n", quote(dest(r.To)))
		if r.Via.IsValid() {
			p("via = %s\n", quote(r.Via.String()))
		}
		if r.Dev != "" {
			p("dev = %s\n", quote(r.Dev))
		}
		if r.Table != plan.TableMain {
			p("table = %s\n", b.tableRef(r.Table))
		}
		if r.MetricSet {
			p("metric = %d\n", r.Metric)
		}
	}
	for _, r := range b.st.Rules {
		if r.used {
			continue
		}
		p("\n[[rule]]  # %s\n", comment(origin(r.Src)))
		if r.PrioNote != "" {
			p("priority = %d  # %s\n", r.Prio, comment(r.PrioNote))
		} else {
			p("priority = %d\n", r.Prio)
		}
		if r.From.IsValid() {
			p("from = %s\n", quote(r.From.String()))
		}
		if r.To.IsValid() {
			p("to = %s\n", quote(r.To.String()))
		}
		if r.IIF != "" {
			p("iif = %s\n", quote(r.IIF))
		}
		if r.OIF != "" {
			p("oif = %s\n", quote(r.OIF))
		}
		if r.FWMark != "" {
			p("fwmark = %s\n", quote(r.FWMark))
		}
		if r.Table == plan.TableMain {
			p("table = \"main\"\n")
		} else {
			p("table = %s\n", b.tableRef(r.Table))
		}
	}
	return w.String()
}

// origin names where an object comes from: the file's line, or for the
// kernel, what it is there.
func origin(l *Line) string {
	if l.Where == "kernel" {
		return "kernel: " + l.Text
	}
	return l.Where
}
