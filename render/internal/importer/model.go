// Package importer turns an existing set-up, an rc.local script or the
// running kernel, into a nicpersist profile: it works out the kernel state
// the set-up makes, recognises nicpersist's conveniences in it
// (default_route, reply_via_self) and carries the rest over as explicit
// tables, routes, rules, NAT and sysctls. What it cannot carry is listed,
// with the reason, and kept in the profile as a comment.
package importer

import (
	"net/netip"

	"github.com/nicpersist/nicpersist/render/internal/plan"
)

// State is the kernel state a set-up makes, as far as a profile can say it.
type State struct {
	Routes  []Route
	Rules   []Rule
	NAT     []NAT
	Sysctls []Sysctl
	// Names are the table names the set-up knows: rt_tables and the
	// file's own additions.
	Names map[uint32]string
	// DelDefault holds, per family, the line that deleted a main default
	// route the set-up did not add (the DHCP client's): default_route
	// takes its place when the set-up adds another.
	DelDefault map[plan.Family]*Line
	// FileAddrs are interface addresses the set-up itself shows (ip addr
	// add, a route's src), for interfaces the running kernel does not have.
	FileAddrs map[string][]netip.Prefix
	// Live says every link with an address belongs in the profile: an
	// import of the running kernel describes its NICs.
	Live bool
	// StackGateways are the gateways of the defaults the network stack
	// made (DHCP, router advertisements), per link: an interface's
	// gateway when no pattern gives one.
	StackGateways map[string]map[plan.Family]netip.Addr
	Skipped       []Skipped
	Notes         []string
}

// Line is where a fact comes from: "rc.local:5", and the line's text.
type Line struct {
	Where string
	Text  string
}

// Route is one route of the final state.
type Route struct {
	Fam       plan.Family
	Table     uint32
	To        netip.Prefix
	Via       netip.Addr
	Dev       string
	Metric    uint32
	MetricSet bool
	From      *Line
	used      bool
}

// key is what the kernel tells routes apart by.
func (r Route) key() [4]any {
	m := r.Metric
	if r.Fam == plan.V6 && !r.MetricSet {
		m = 1024
	}
	return [4]any{r.Fam, r.Table, r.To, m}
}

// Rule is one policy rule of the final state.
type Rule struct {
	Fam      plan.Family
	Prio     uint32
	PrioNote string // why this priority, when the set-up did not give it
	From, To netip.Prefix
	IIF, OIF string
	FWMark   string // as the profile writes it: "0x10" or "0x10/0xff"
	Table    uint32
	Src      *Line
	used     bool
}

// NAT is one source-NAT rule of POSTROUTING, in the order the kernel
// walks them.
type NAT struct {
	Fam        plan.Family
	Out        string
	Source     netip.Prefix
	Masquerade bool
	ToSource   netip.Addr
	Src        *Line
}

// Sysctl is a profile sysctl key ("ip_forward", "ipv6_forwarding",
// "rp_filter") and its profile value.
type Sysctl struct {
	Key   string
	Value any // bool or string
	Src   *Line
}

// Skipped is a line (or kernel object) that is not carried over.
type Skipped struct {
	Line
	Reason string
}

// Env is what import reads besides its input.
type Env struct {
	// ReadFile reads a file of the system (/etc/iproute2/rt_tables,
	// /etc/sysctl.conf).
	ReadFile func(path string) ([]byte, error)
	// Glob lists files (rt_tables.d/*.conf); nil reads none.
	Glob func(pattern string) ([]string, error)
	// Links are the links of the running kernel with their global
	// addresses; nil when they cannot be read.
	Links map[string][]netip.Prefix
}

func (s *State) skip(l *Line, reason string) {
	// A reason quotes words of the line, which may hold anything.
	s.Skipped = append(s.Skipped, Skipped{Line: *l, Reason: oneLine(reason)})
}
