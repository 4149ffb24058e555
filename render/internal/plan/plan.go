// Package plan holds what a profile means once its conveniences are expanded:
// plain tables, routes, rules, NAT and sysctls, every table id and rule
// priority a number. Targets render a Plan; they never see the profile.
package plan

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// Family is 4 or 6, as in `ip -4` and `ip -6`.
type Family int

const (
	V4 Family = 4
	V6 Family = 6
)

// String names the family in messages: "IPv4" or "IPv6".
func (f Family) String() string {
	if f == V6 {
		return "IPv6"
	}
	return "IPv4"
}

// Suffix tells the IPv6 name of a key or file from the IPv4 one:
// address/address6, route-<if>/route6-<if>.
func (f Family) Suffix() string {
	if f == V6 {
		return "6"
	}
	return ""
}

// IPTables is the command that holds the family's NAT rules.
func (f Family) IPTables() string { return "ip" + f.Suffix() + "tables" }

// SubnetBits is the usual prefix length of a subnet, for examples in messages.
func (f Family) SubnetBits() int {
	if f == V6 {
		return 64
	}
	return 24
}

// Default is the destination of the family's default route.
func (f Family) Default() netip.Prefix {
	if f == V6 {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
}

func familyOf(a netip.Addr) Family {
	if a.Is4() {
		return V4
	}
	return V6
}

// Well-known table ids.
const (
	TableMain    = 254
	TableDefault = 253
	TableLocal   = 255
)

// Proto marks the routes the unit installs, so stop and stale clean-up touch
// nothing else. 241 is unassigned in iproute2's rt_protos.
const Proto = 241

// Plan is the expanded, validated profile.
type Plan struct {
	Tables     []Table
	Routes     []Route
	Rules      []Rule
	NAT        []NAT
	Sysctls    []Sysctl
	Interfaces []Link
	Netfilter  Netfilter
	Forwards   []Forward
	Marks      []Mark
}

// Backends of [netfilter] backend.
const (
	BackendAuto     = "auto"
	BackendNFTables = "nftables"
	BackendIPTables = "iptables"
)

// Netfilter is how the packet-filter parts are loaded.
type Netfilter struct {
	Backend       string // BackendAuto unless the profile chose
	ForwardAccept bool
}

// Forward is one port forward: packets of Proto to ports [PortLo, PortHi]
// arriving on In go to To (and ToPort, when not 0).
type Forward struct {
	Family         Family
	In             string
	Proto          string // "tcp" or "udp"
	PortLo, PortHi uint16
	To             netip.Addr
	ToPort         uint16
	Origin         string
}

// Mark sets Mark (under Mask) on packets arriving that match every
// selector given.
type Mark struct {
	Family         Family
	In             string // "" = any
	Proto          string // "" = any
	PortLo, PortHi uint16 // 0 = any
	Source         netip.Prefix
	Mark, Mask     uint32
	Origin         string
}

// NeedsNetfilter says the plan has something for iptables or nft to load.
func (p *Plan) NeedsNetfilter() bool {
	return len(p.NAT)+len(p.Forwards)+len(p.Marks) > 0
}

// ForwardsOf returns the port forwards of one family.
func (p *Plan) ForwardsOf(f Family) []Forward {
	var out []Forward
	for _, x := range p.Forwards {
		if x.Family == f {
			out = append(out, x)
		}
	}
	return out
}

// MarksOf returns the marks of one family.
func (p *Plan) MarksOf(f Family) []Mark {
	var out []Mark
	for _, x := range p.Marks {
		if x.Family == f {
			out = append(out, x)
		}
	}
	return out
}

// Link is a profile interface as the apply script waits for it.
type Link struct {
	Name  string
	Addr4 netip.Prefix // zero when none
	Addr6 netip.Prefix
	// Routed says a route uses the link: it must be up with its address before
	// the unit can add the route ("Device for nexthop is not up").
	Routed4, Routed6 bool
}

// Table is a routing table id and its rt_tables name.
type Table struct {
	ID     uint32
	Name   string
	Origin string // key path that made it
}

// Route is one route. Via is invalid for on-link routes.
type Route struct {
	Family Family
	To     netip.Prefix
	Via    netip.Addr
	Dev    string
	Table  uint32
	Metric uint32
	// MetricSet keeps "metric 0" in rendered lines when it was chosen on purpose.
	MetricSet bool
	Origin    string
}

// Rule is one policy rule; its priority is always set.
type Rule struct {
	Family   Family
	Priority uint32
	From, To netip.Prefix // zero when not a selector
	IIF, OIF string
	FWMark   string // canonical "0x10" or "0x10/0xff"; empty when not a selector
	Table    uint32
	Origin   string
}

// NAT is one source-NAT rule.
type NAT struct {
	Family     Family
	Out        string
	Source     netip.Prefix // zero = any
	Masquerade bool
	ToSource   netip.Addr
	Origin     string
}

// Sysctl is one key and value; Key uses '/' separators when an interface name
// in it has a '.', as sysctl.d(5) requires.
type Sysctl struct {
	Key    string
	Value  string
	Origin string
}

// ProcPath is the key's path under /proc/sys.
func (s Sysctl) ProcPath() string {
	if strings.Contains(s.Key, "/") {
		return s.Key
	}
	return strings.ReplaceAll(s.Key, ".", "/")
}

func dest(p netip.Prefix) string {
	if p.Bits() == 0 {
		return "default"
	}
	return p.String()
}

// Args is the route as `ip route` arguments, tables by number. The same line
// is valid for ifup-routes, NetworkManager's ifcfg-rh reader and ip -batch.
func (r Route) Args() string {
	var b strings.Builder
	b.WriteString(dest(r.To))
	if r.Via.IsValid() {
		b.WriteString(" via " + r.Via.String())
	}
	b.WriteString(" dev " + r.Dev)
	if r.Table != TableMain {
		b.WriteString(" table " + strconv.FormatUint(uint64(r.Table), 10))
	}
	if r.MetricSet {
		b.WriteString(" metric " + strconv.FormatUint(uint64(r.Metric), 10))
	}
	return b.String()
}

// Args is the rule as `ip rule` arguments, priority first.
func (r Rule) Args() string {
	var b strings.Builder
	fmt.Fprintf(&b, "priority %d", r.Priority)
	if r.From.IsValid() {
		b.WriteString(" from " + r.From.String())
	}
	if r.To.IsValid() {
		b.WriteString(" to " + r.To.String())
	}
	if r.FWMark != "" {
		b.WriteString(" fwmark " + r.FWMark)
	}
	if r.IIF != "" {
		b.WriteString(" iif " + r.IIF)
	}
	if r.OIF != "" {
		b.WriteString(" oif " + r.OIF)
	}
	fmt.Fprintf(&b, " table %d", r.Table)
	return b.String()
}

// IsMainDefault says the route is a default route in the main table: the one
// route whose replacement may displace the system's own.
func (r Route) IsMainDefault() bool { return r.Table == TableMain && r.To.Bits() == 0 }

// RoutesOf returns the routes of one family.
func (p *Plan) RoutesOf(f Family) []Route {
	var out []Route
	for _, r := range p.Routes {
		if r.Family == f {
			out = append(out, r)
		}
	}
	return out
}

// RulesOf returns the rules of one family.
func (p *Plan) RulesOf(f Family) []Rule {
	var out []Rule
	for _, r := range p.Rules {
		if r.Family == f {
			out = append(out, r)
		}
	}
	return out
}

// NATOf returns the NAT rules of one family.
func (p *Plan) NATOf(f Family) []NAT {
	var out []NAT
	for _, n := range p.NAT {
		if n.Family == f {
			out = append(out, n)
		}
	}
	return out
}

// TableName returns the name of a table id, or its number.
func (p *Plan) TableName(id uint32) string {
	switch id {
	case TableMain:
		return "main"
	}
	for _, t := range p.Tables {
		if t.ID == id {
			return t.Name
		}
	}
	return strconv.FormatUint(uint64(id), 10)
}

// InterfaceNames are the profile's interfaces, in profile order.
func (p *Plan) InterfaceNames() []string {
	out := make([]string, 0, len(p.Interfaces))
	for _, l := range p.Interfaces {
		out = append(out, l.Name)
	}
	return out
}
