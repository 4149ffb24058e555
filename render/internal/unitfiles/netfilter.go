package unitfiles

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/plan"
)

// NFTName is the nftables file: the whole of nicpersist's table, which
// `nft -f` replaces atomically.
const NFTName = "nftables.nft"

// NFTTable is the nftables table nicpersist owns: one inet table holds both
// families, so one `nft -f` replaces everything at once.
const NFTTable = "inet nicpersist"

// XChain is an iptables chain nicpersist owns, in Table, jumped to from the
// built-in chain Hook.
type XChain struct {
	Table, Hook, Name string
}

// Key names the chain in the state: "table/chain".
func (c XChain) Key() string { return c.Table + "/" + c.Name }

// ChainByKey returns the chain a Key names.
func ChainByKey(k string) (XChain, bool) {
	for _, c := range XChains {
		if c.Key() == k {
			return c, true
		}
	}
	return XChain{}, false
}

// DeclaredChains returns the keys of nicpersist's chains that an
// iptables-restore input declares (":CHAIN - [0:0]" under "*table").
func DeclaredChains(data []byte) []string {
	var out []string
	table := ""
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, ":"):
			name, _, _ := strings.Cut(l[1:], " ")
			if c, ok := ChainByKey(table + "/" + name); ok {
				out = append(out, c.Key())
			}
		}
	}
	return out
}

// XChains are every chain nicpersist may own, in the order the rules file
// declares them. Apply jumps to those a file declares and removes the
// others, so a reload whose profile lost its marks loses their chain.
var XChains = []XChain{
	{"nat", "POSTROUTING", NATChain},
	{"nat", "PREROUTING", "NICPERSIST-PREROUTING"},
	{"filter", "FORWARD", "NICPERSIST-FORWARD"},
	{"mangle", "PREROUTING", "NICPERSIST-PREROUTING"},
}

// xtablesRules returns the iptables-restore rules of one family by chain,
// and whether anything beyond SNAT is in them (a file an older nicpersist,
// which jumps only to NICPERSIST-POSTROUTING, would half apply).
func xtablesRules(p *plan.Plan, f plan.Family) (map[XChain][]Rendered, bool) {
	out := map[XChain][]Rendered{}
	nat, dnat, fwd, mangle := XChains[0], XChains[1], XChains[2], XChains[3]
	for _, n := range p.NATOf(f) {
		out[nat] = append(out[nat], Rendered{NATRule(n), n.Origin})
	}
	for _, x := range p.ForwardsOf(f) {
		out[dnat] = append(out[dnat], Rendered{fmt.Sprintf("-A %s -i %s -p %s -m %s --dport %s -j DNAT --to-destination %s",
			dnat.Name, x.In, x.Proto, x.Proto, portsX(x.PortLo, x.PortHi), hostPort(x.To, x.ToPort)), x.Origin})
	}
	for _, m := range p.MarksOf(f) {
		var b strings.Builder
		b.WriteString("-A " + mangle.Name)
		if m.Source.IsValid() {
			b.WriteString(" -s " + m.Source.String())
		}
		if m.In != "" {
			b.WriteString(" -i " + m.In)
		}
		if m.Proto != "" {
			b.WriteString(" -p " + m.Proto)
			if m.PortLo != 0 {
				fmt.Fprintf(&b, " -m %s --dport %s", m.Proto, portsX(m.PortLo, m.PortHi))
			}
		}
		fmt.Fprintf(&b, " -j MARK --set-xmark 0x%x/0x%x", m.Mark, m.Mask)
		out[mangle] = append(out[mangle], Rendered{b.String(), m.Origin})
	}
	if p.Netfilter.ForwardAccept && (len(p.NATOf(f))+len(p.ForwardsOf(f)) > 0) {
		out[fwd] = append(out[fwd], Rendered{"-A " + fwd.Name + " -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT", "netfilter.forward_accept"})
		for _, n := range p.NATOf(f) {
			src := ""
			if n.Source.IsValid() {
				src = " -s " + n.Source.String()
			}
			out[fwd] = append(out[fwd], Rendered{fmt.Sprintf("-A %s%s -o %s -j ACCEPT", fwd.Name, src, n.Out), n.Origin})
		}
		for _, x := range p.ForwardsOf(f) {
			out[fwd] = append(out[fwd], Rendered{fmt.Sprintf("-A %s -d %s -i %s -p %s -m %s --dport %s -m conntrack --ctstate DNAT -j ACCEPT",
				fwd.Name, netip.PrefixFrom(x.To, x.To.BitLen()), x.In, x.Proto, x.Proto, portsX(destPorts(x))), x.Origin})
		}
	}
	return out, len(out[dnat])+len(out[fwd])+len(out[mangle]) > 0
}

// destPorts are the ports a forwarded packet has after DNAT.
func destPorts(x plan.Forward) (uint16, uint16) {
	if x.ToPort != 0 {
		return x.ToPort, x.ToPort
	}
	return x.PortLo, x.PortHi
}

func portsX(lo, hi uint16) string {
	if lo == hi {
		return strconv.Itoa(int(lo))
	}
	return fmt.Sprintf("%d:%d", lo, hi)
}

func portsN(lo, hi uint16) string {
	if lo == hi {
		return strconv.Itoa(int(lo))
	}
	return fmt.Sprintf("%d-%d", lo, hi)
}

func hostPort(a netip.Addr, port uint16) string {
	if port == 0 {
		return a.String()
	}
	return netip.AddrPortFrom(a, port).String()
}

// Rendered is one rule as a file holds it, and the profile key it comes
// from.
type Rendered struct {
	Text, Origin string
}

// XRules lists a family's iptables rules as `iptables -t TABLE` arguments,
// for check to print.
func XRules(p *plan.Plan, f plan.Family) (table []string, rules []Rendered) {
	m, _ := xtablesRules(p, f)
	for _, c := range XChains {
		for _, r := range m[c] {
			table, rules = append(table, c.Table), append(rules, r)
		}
	}
	return table, rules
}

// NFTRules lists the nftables rules, each as `nft add rule` arguments,
// for check to print.
func NFTRules(p *plan.Plan) []string {
	var out []string
	for _, c := range nftChains(p) {
		for _, r := range c.Rules {
			out = append(out, NFTTable+" "+c.Name+" "+r)
		}
	}
	return out
}

// NFTChain is a base chain of nicpersist's nftables table.
type NFTChain struct {
	Name, Type, Hook string
	Priority         int
	Rules            []string
}

// nftChains returns the chains that have rules, each rule ending with a
// comment naming the profile key it comes from.
func nftChains(p *plan.Plan) []NFTChain {
	post := NFTChain{Name: "postrouting", Type: "nat", Hook: "postrouting", Priority: 100}
	pre := NFTChain{Name: "prerouting", Type: "nat", Hook: "prerouting", Priority: -100}
	mark := NFTChain{Name: "marks", Type: "filter", Hook: "prerouting", Priority: -150}
	fwd := NFTChain{Name: "forward", Type: "filter", Hook: "forward", Priority: 0}
	fam := func(f plan.Family) (string, string) {
		if f == plan.V6 {
			return "ip6", "ipv6"
		}
		return "ip", "ipv4"
	}
	comment := func(origin string) string { return " comment " + strconv.Quote(origin) }
	for _, n := range p.NAT {
		ip, proto := fam(n.Family)
		sel := "meta nfproto " + proto
		if n.Source.IsValid() {
			sel = ip + " saddr " + n.Source.String()
		}
		act := "masquerade"
		if !n.Masquerade {
			act = "snat " + ip + " to " + n.ToSource.String()
		}
		post.Rules = append(post.Rules, fmt.Sprintf("%s oifname %q %s%s", sel, n.Out, act, comment(n.Origin)))
	}
	for _, x := range p.Forwards {
		ip, proto := fam(x.Family)
		pre.Rules = append(pre.Rules, fmt.Sprintf("meta nfproto %s iifname %q %s dport %s dnat %s to %s%s",
			proto, x.In, x.Proto, portsN(x.PortLo, x.PortHi), ip, hostPort(x.To, x.ToPort), comment(x.Origin)))
	}
	for _, m := range p.Marks {
		ip, proto := fam(m.Family)
		var sel []string
		if m.Source.IsValid() {
			sel = append(sel, ip+" saddr "+m.Source.String())
		} else {
			sel = append(sel, "meta nfproto "+proto)
		}
		if m.In != "" {
			sel = append(sel, fmt.Sprintf("iifname %q", m.In))
		}
		if m.Proto != "" {
			if m.PortLo != 0 {
				sel = append(sel, m.Proto+" dport "+portsN(m.PortLo, m.PortHi))
			} else {
				sel = append(sel, "meta l4proto "+m.Proto)
			}
		}
		set := fmt.Sprintf("meta mark set 0x%08x", m.Mark)
		if m.Mask != 0xffffffff {
			// (mark & ~mask) | value, with the and-mask as nft lists it
			// (the value's bits set in it change nothing), so that verify
			// finds the listing equal to the file.
			set = fmt.Sprintf("meta mark set meta mark & 0x%08x | 0x%08x", ^m.Mask|m.Mark, m.Mark)
		}
		mark.Rules = append(mark.Rules, strings.Join(sel, " ")+" "+set+comment(m.Origin))
	}
	if p.Netfilter.ForwardAccept && len(p.NAT)+len(p.Forwards) > 0 {
		fwd.Rules = append(fwd.Rules, "ct state established,related accept"+comment("netfilter.forward_accept"))
		for _, n := range p.NAT {
			ip, proto := fam(n.Family)
			sel := "meta nfproto " + proto
			if n.Source.IsValid() {
				sel = ip + " saddr " + n.Source.String()
			}
			fwd.Rules = append(fwd.Rules, fmt.Sprintf("%s oifname %q accept%s", sel, n.Out, comment(n.Origin)))
		}
		for _, x := range p.Forwards {
			ip, _ := fam(x.Family)
			lo, hi := destPorts(x)
			fwd.Rules = append(fwd.Rules, fmt.Sprintf("%s daddr %s iifname %q %s dport %s ct status dnat accept%s",
				ip, x.To, x.In, x.Proto, portsN(lo, hi), comment(x.Origin)))
		}
	}
	var out []NFTChain
	for _, c := range []NFTChain{post, pre, mark, fwd} {
		if len(c.Rules) > 0 {
			out = append(out, c)
		}
	}
	return out
}
