// Package verify compares the running kernel with what a profile's plan says
// must hold, the way `apply start` puts it there: the rules at their
// priorities, the routes of each table, the main table's preferred default,
// the NAT chain and its jump, and the sysctls. Read takes the kernel's
// state; Compare, which needs neither root nor a kernel, says how it
// differs, each difference with the profile key it comes from.
package verify

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/apply"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// Kinds of difference, as --json names them.
const (
	KindRule    = "rule"
	KindRoute   = "route"
	KindDefault = "default"
	KindNAT     = "nat"
	KindSysctl  = "sysctl"
	// The netfilter part beside SNAT.
	KindPortForward = "port_forward"
	KindForward     = "forward_accept"
	KindMark        = "mark"
)

// Difference is one way the kernel is not what the profile says. Key is
// the profile key path the wanted item comes from (its plan Origin), or
// "nat" for the NAT chain as a whole; it is empty for something of
// nicpersist's that no key asks for any more. Want is what should be there
// (empty when nothing should), Have what the kernel has instead (empty when
// nothing).
type Difference struct {
	Kind string `json:"kind"`
	Key  string `json:"key"`
	What string `json:"-"` // "rule missing", "route differs", ...
	Want string `json:"want"`
	Have string `json:"have"`
}

// String is the difference as text mode prints it: key, what, want, and
// what the kernel has instead.
func (d Difference) String() string {
	var b strings.Builder
	if d.Key != "" {
		b.WriteString(d.Key + ": ")
	}
	b.WriteString(d.What)
	if d.Want != "" {
		b.WriteString(": " + d.Want)
	}
	if d.Have != "" {
		b.WriteString("; kernel has " + d.Have)
	}
	return b.String()
}

// Kernel is what Compare reads of the running kernel.
type Kernel struct {
	Routes map[plan.Family][]apply.KernelRoute
	Rules  map[plan.Family][]apply.KernelRule
	Names  map[int32]string // link index: name
	Index  map[string]int32 // link name, alternative names too: index
	// Backend is the netfilter backend the plan was rendered for.
	Backend string
	// NAT is `iptables-save` (ip6tables-save for IPv6) of each family the
	// plan has netfilter rules in, on the iptables backend.
	NAT map[plan.Family]string
	// NFT is `nft list table inet nicpersist` ("" when there is none) and
	// NFTWant the rendered table as this nft lists it, on the nftables
	// backend.
	NFT, NFTWant string
	// Sysctls holds the plan's keys (Sysctl.ProcPath) that exist, with
	// their values.
	Sysctls map[string]string
}

// Compare returns how the kernel differs from the plan, in the order of
// `nicpersist check`: routes (and the main default), rules, NAT, sysctls.
// An empty list means in sync.
func Compare(p *plan.Plan, k *Kernel) []Difference {
	var out []Difference
	for _, f := range unitfiles.Families {
		out = append(out, compareRoutes(p, f, k)...)
	}
	for _, f := range unitfiles.Families {
		out = append(out, compareRules(p, f, k)...)
	}
	switch {
	case k.Backend == plan.BackendNFTables:
		if p.NeedsNetfilter() {
			out = append(out, compareNFT(k.NFTWant, k.NFT)...)
		}
	default:
		for _, f := range unitfiles.Families {
			if _, rules := unitfiles.XRules(p, f); len(rules) > 0 {
				out = append(out, compareXT(p, f, k.NAT[f])...)
			}
		}
	}
	return append(out, compareSysctls(p, k)...)
}

// compareRules checks each rule of the plan: there once at its priority,
// and nothing else at that priority. A rule equal to ours but for who added
// it (its protocol) is ours: apply start takes it for ours too.
func compareRules(p *plan.Plan, f plan.Family, k *Kernel) []Difference {
	var out []Difference
	for _, r := range p.RulesOf(f) {
		want, err := unitfiles.ParseRule(f, r.Args())
		if err != nil {
			// Render writes the same line, and check would have refused it.
			out = append(out, Difference{Kind: KindRule, Key: r.Origin, What: "rule nicpersist cannot read", Want: r.Args(), Have: err.Error()})
			continue
		}
		var same, other []string
		for _, kr := range k.Rules[f] {
			if kr.Priority != r.Priority {
				continue
			}
			if kr.Plain() && kr.Rule == want {
				same = append(same, ruleText(kr))
			} else {
				other = append(other, ruleText(kr))
			}
		}
		d := Difference{Kind: KindRule, Key: r.Origin, Want: ruleText(apply.KernelRule{Rule: want, Action: "lookup"})}
		switch {
		case len(same) == 0:
			d.What, d.Have = "rule missing", strings.Join(other, " | ")
			out = append(out, d)
			continue
		case len(same) > 1:
			d.What, d.Have = fmt.Sprintf("rule duplicated (%d times)", len(same)), strings.Join(same, " | ")
			out = append(out, d)
		}
		if len(other) > 0 {
			d.What, d.Have = "another rule at its priority", strings.Join(other, " | ")
			out = append(out, d)
		}
	}
	return out
}

// ruleText says a rule as `ip rule` would, priority last.
func ruleText(r apply.KernelRule) string {
	var w []string
	if r.Invert {
		w = append(w, "not")
	}
	from := "all"
	if r.From.IsValid() {
		from = r.From.String()
	}
	w = append(w, "from", from)
	if r.To.IsValid() {
		w = append(w, "to", r.To.String())
	}
	if r.TOS != 0 {
		w = append(w, fmt.Sprintf("tos 0x%x", r.TOS))
	}
	if r.Mask != 0 {
		m := fmt.Sprintf("fwmark 0x%x", r.Mark)
		if r.Mask != 0xffffffff {
			m += fmt.Sprintf("/0x%x", r.Mask)
		}
		w = append(w, m)
	}
	if r.IIF != "" {
		w = append(w, "iif", r.IIF)
	}
	if r.OIF != "" {
		w = append(w, "oif", r.OIF)
	}
	w = append(w, r.Other...)
	if r.Realms != 0 {
		w = append(w, "realms", strconv.FormatUint(uint64(r.Realms), 10))
	}
	switch r.Action {
	case "lookup":
		w = append(w, "lookup", tableText(r.Table))
	case "goto":
		// Other says where to.
	default:
		w = append(w, r.Action)
	}
	w = append(w, "priority", strconv.FormatUint(uint64(r.Priority), 10))
	if r.Proto != 0 {
		w = append(w, "proto", protoText(r.Proto))
	}
	return strings.Join(w, " ")
}

func tableText(t uint32) string {
	switch t {
	case plan.TableMain:
		return "main"
	case plan.TableLocal:
		return "local"
	case plan.TableDefault:
		return "default"
	}
	return strconv.FormatUint(uint64(t), 10)
}

// protoText names the protocols of /etc/iproute2/rt_protos that tools set.
func protoText(p uint8) string {
	switch p {
	case 2:
		return "kernel"
	case 3:
		return "boot"
	case 4:
		return "static"
	case 9:
		return "ra"
	case 16:
		return "dhcp"
	}
	return strconv.Itoa(int(p))
}

// kernelMetric is the metric the kernel gives a route of the plan: IPv6
// has no metric 0, it makes it 1024.
func kernelMetric(r plan.Route) uint32 {
	if r.Family == plan.V6 && r.Metric == 0 {
		return 1024
	}
	return r.Metric
}

// compareRoutes checks each route of the plan: a route with its table,
// prefix and metric, going via its gateway and link, and the first of
// those with that key (IPv4 keeps several, the first is used). For the
// main default of default_route it checks that no other default wins.
// Routes of nicpersist's protocol that the plan does not hold are left
// from an older profile.
func compareRoutes(p *plan.Plan, f plan.Family, k *Kernel) []Difference {
	var out []Difference
	krs := k.Routes[f]
	type key struct {
		table  uint32
		dst    netip.Prefix
		metric uint32
	}
	wanted := map[key]bool{}
	for _, r := range p.RoutesOf(f) {
		kk := key{r.Table, r.To, kernelMetric(r)}
		wanted[kk] = true
		kind := KindRoute
		isDefault := r.IsMainDefault() && strings.HasSuffix(r.Origin, ".default_route")
		if isDefault {
			kind = KindDefault
		}
		d := Difference{Kind: kind, Key: r.Origin, Want: planRouteText(r)}
		first, ours := -1, -1
		for i, kr := range krs {
			if kr.Table != kk.table || kr.Dst != kk.dst || kr.Metric != kk.metric || kr.TOS != 0 {
				continue
			}
			if first < 0 {
				first = i
			}
			if ours < 0 && k.isRoute(kr, r) {
				ours = i
			}
		}
		switch {
		case first < 0:
			d.What = "route missing"
			if isDefault {
				d.What = "default route missing"
				if w := winner(krs, f); w >= 0 {
					d.Have = k.routeText(krs[w]) + " (the preferred default)"
				}
			} else {
				// The same prefix with another metric, say.
				var same []string
				for _, kr := range krs {
					if kr.Table == kk.table && kr.Dst == kk.dst {
						same = append(same, k.routeText(kr))
					}
				}
				d.Have = strings.Join(same, " | ")
			}
			out = append(out, d)
		case ours < 0:
			d.What, d.Have = "route differs", k.routeText(krs[first])
			if isDefault {
				d.What = "default route differs"
			}
			out = append(out, d)
		case first != ours:
			// IPv4: a route put ahead of ours (ip route prepend).
			d.What, d.Have = "another route ahead of it", k.routeText(krs[first])
			if isDefault {
				d.What = "another default route wins"
			}
			out = append(out, d)
		case isDefault:
			if w := winner(krs, f); w != ours {
				d.What, d.Have = "another default route wins", k.routeText(krs[w])
				out = append(out, d)
			}
		}
	}
	for _, kr := range krs {
		if kr.Proto == plan.Proto && !wanted[key{kr.Table, kr.Dst, kr.Metric}] {
			out = append(out, Difference{Kind: KindRoute, What: fmt.Sprintf("route of nicpersist (proto %d) that the profile does not hold", plan.Proto), Have: k.routeText(kr)})
		}
	}
	return out
}

// winner is the index of the main table's preferred default route: the
// lowest metric, and of equal metrics the first; -1 if there is none.
func winner(krs []apply.KernelRoute, f plan.Family) int {
	w := -1
	for i, kr := range krs {
		if kr.Table != plan.TableMain || kr.Dst != f.Default() || kr.TOS != 0 {
			continue
		}
		if w < 0 || kr.Metric < krs[w].Metric {
			w = i
		}
	}
	return w
}

// isRoute says the kernel's route goes where the plan's does: a unicast
// route via its gateway (none when on-link) out of its link.
func (k *Kernel) isRoute(kr apply.KernelRoute, r plan.Route) bool {
	idx, ok := k.Index[r.Dev]
	return ok && kr.Type == apply.RTNUnicast && len(kr.Multipath) == 0 && kr.Gateway == r.Via && kr.OIF == idx
}

// planRouteText and routeText say routes alike, as `ip route` does, with
// the table when it is not main and the metric always.
func planRouteText(r plan.Route) string {
	return routeWords(apply.RTNUnicast, r.To, []hop{{r.Via, r.Dev, 0}}, r.Table, kernelMetric(r), 0, 0)
}

func (k *Kernel) routeText(kr apply.KernelRoute) string {
	dev := func(idx int32) string {
		if idx == 0 {
			return ""
		}
		if n, ok := k.Names[idx]; ok {
			return n
		}
		return "if" + strconv.Itoa(int(idx))
	}
	var hops []hop
	if len(kr.Multipath) > 0 {
		for _, h := range kr.Multipath {
			hops = append(hops, hop{h.Gateway, dev(h.OIF), h.Weight})
		}
	} else {
		hops = []hop{{kr.Gateway, dev(kr.OIF), 0}}
	}
	return routeWords(kr.Type, kr.Dst, hops, kr.Table, kr.Metric, kr.Proto, kr.Flags)
}

type hop struct {
	via    netip.Addr
	dev    string
	weight int // multipath only
}

// routeTypes names the RTN_* types a route of a table may have.
var routeTypes = map[uint8]string{2: "local", 3: "broadcast", 4: "anycast", 5: "multicast", 6: "blackhole", 7: "unreachable", 8: "prohibit", 9: "throw", 10: "nat"}

func routeWords(typ uint8, dst netip.Prefix, hops []hop, table, metric uint32, proto uint8, flags uint32) string {
	var w []string
	if typ != apply.RTNUnicast {
		t := routeTypes[typ]
		if t == "" {
			t = "type " + strconv.Itoa(int(typ))
		}
		w = append(w, t)
	}
	if dst.Bits() == 0 {
		w = append(w, "default")
	} else {
		w = append(w, dst.String())
	}
	for _, h := range hops {
		if h.weight > 0 {
			w = append(w, "nexthop")
		}
		if h.via.IsValid() {
			w = append(w, "via", h.via.String())
		}
		if h.dev != "" {
			w = append(w, "dev", h.dev)
		}
		if h.weight > 0 {
			w = append(w, "weight", strconv.Itoa(h.weight))
		}
	}
	if table != plan.TableMain {
		w = append(w, "table", tableText(table))
	}
	w = append(w, "metric", strconv.FormatUint(uint64(metric), 10))
	if proto != 0 {
		w = append(w, "proto", protoText(proto))
	}
	if flags&apply.NexthopLinkdown != 0 {
		w = append(w, "linkdown")
	}
	if flags&apply.NexthopDead != 0 {
		w = append(w, "dead")
	}
	return strings.Join(w, " ")
}

// compareSysctls checks each key's value. A key under
// net/ipv4/conf/<if>/ that does not exist means the interface is absent.
func compareSysctls(p *plan.Plan, k *Kernel) []Difference {
	var out []Difference
	for _, s := range p.Sysctls {
		d := Difference{Kind: KindSysctl, Key: s.Origin, Want: s.Key + " = " + s.Value}
		v, ok := k.Sysctls[s.ProcPath()]
		switch {
		case ok && v == s.Value:
			continue
		case ok:
			d.What, d.Have = "sysctl differs", s.Key+" = "+v
		default:
			d.What, d.Have = "sysctl missing", "no such key"
			if w := strings.Split(s.ProcPath(), "/"); len(w) == 5 && w[2] == "conf" && w[3] != "all" && w[3] != "default" {
				if _, there := k.Index[w[3]]; !there {
					d.What, d.Have = "interface absent", "no interface "+w[3]
				}
			}
		}
		out = append(out, d)
	}
	return out
}
