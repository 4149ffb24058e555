package verify

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// natRule is one -A line of iptables-save, and its canonical form.
type natRule struct {
	table, chain, text, canon string
}

// parseSave reads iptables-save output: the chains it declares, as
// "table/chain", and its rules in order.
func parseSave(save string) (chains map[string]bool, rules []natRule) {
	chains = map[string]bool{}
	table := ""
	for _, l := range strings.Split(save, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "*"):
			table = l[1:]
		case strings.HasPrefix(l, ":"):
			if name, _, _ := strings.Cut(l[1:], " "); name != "" {
				chains[table+"/"+name] = true
			}
		case strings.HasPrefix(l, "-A "):
			chain, canon := canonRule(l)
			rules = append(rules, natRule{table, chain, l, canon})
		}
	}
	return chains, rules
}

// chainKind is the kind of difference, and the key of a difference about
// the chain as a whole, for each of nicpersist's chains.
func chainKind(c unitfiles.XChain) (kind, key string) {
	switch c.Key() {
	case unitfiles.XChains[1].Key():
		return KindPortForward, "port_forward"
	case unitfiles.XChains[2].Key():
		return KindForward, "netfilter.forward_accept"
	case unitfiles.XChains[3].Key():
		return KindMark, "mark"
	}
	return KindNAT, "nat"
}

// compareXT checks one family's iptables chains against the rendered
// rules: each chain the plan has rules in, and no other of nicpersist's.
func compareXT(p *plan.Plan, f plan.Family, save string) []Difference {
	tables, rules := unitfiles.XRules(p, f)
	want := map[string][]unitfiles.Rendered{}
	for i, r := range rules {
		chain, _, _ := strings.Cut(strings.TrimPrefix(r.Text, "-A "), " ")
		k := tables[i] + "/" + chain
		want[k] = append(want[k], r)
	}
	var out []Difference
	for _, c := range unitfiles.XChains {
		out = append(out, compareChain(f, c, want[c.Key()], save)...)
	}
	return out
}

// compareNAT checks the SNAT chain alone (the tests of its order use it).
func compareNAT(f plan.Family, want []plan.NAT, save string) []Difference {
	var rs []unitfiles.Rendered
	for _, n := range want {
		rs = append(rs, unitfiles.Rendered{Text: unitfiles.NATRule(n), Origin: n.Origin})
	}
	return compareChain(f, unitfiles.XChains[0], rs, save)
}

// compareChain checks one chain: the rendered rules, in order and nothing
// else, and one unconditional jump from its built-in chain; a chain the
// plan has no rules in must not be there, nor jumped to. iptables-save
// prints a rule's options in an order of its own, so rules are compared in
// canonical form (see canonRule).
func compareChain(f plan.Family, c unitfiles.XChain, want []unitfiles.Rendered, save string) []Difference {
	kind, key := chainKind(c)
	cmd := f.IPTables() + " -t " + c.Table + " "
	jumpArgs := "-A " + c.Hook + " -j " + c.Name
	chains, rules := parseSave(save)
	var have []natRule
	jumps := 0
	var out []Difference
	_, jump := canonRule(jumpArgs)
	for _, r := range rules {
		if r.table != c.Table {
			continue
		}
		if r.chain == c.Name {
			have = append(have, r)
		}
		if r.chain == c.Hook && r.canon == jump {
			jumps++
		} else if jumpsTo(r.canon, c.Name) {
			out = append(out, Difference{Kind: kind, Key: key, What: "another jump to " + c.Name, Want: cmd + jumpArgs, Have: cmd + r.text})
		}
	}
	if len(want) == 0 {
		if chains[c.Key()] || jumps > 0 {
			out = append(out, Difference{Kind: kind, What: fmt.Sprintf("chain %s in %s that the profile does not hold (%d rules, %d jumps)", c.Name, c.Table, len(have), jumps), Have: cmd + "-S " + c.Name})
		}
		return out
	}
	what := "rule"
	if kind == KindNAT {
		what = "NAT rule"
	}
	used := make([]bool, len(have))
	var wantCanon []string
	for _, n := range want {
		_, canon := canonRule(n.Text)
		wantCanon = append(wantCanon, canon)
		i := indexFrom(have, 0, canon)
		for i >= 0 && used[i] {
			i = indexFrom(have, i+1, canon)
		}
		if i >= 0 {
			used[i] = true
			continue
		}
		d := Difference{Kind: originKind(n.Origin, kind), Key: n.Origin, What: what + " missing", Want: cmd + n.Text}
		if !chains[c.Key()] {
			d.Have = "no chain " + c.Name
		}
		out = append(out, d)
	}
	extra := false
	for i, h := range have {
		if !used[i] {
			extra = true
			out = append(out, Difference{Kind: kind, Key: key, What: "rule in " + c.Name + " that the profile does not hold", Have: cmd + h.text})
		}
	}
	if !extra && len(have) == len(want) {
		var haveCanon []string
		for _, h := range have {
			haveCanon = append(haveCanon, h.canon)
		}
		if !slices.Equal(haveCanon, wantCanon) {
			var w, h []string
			for _, n := range want {
				w = append(w, n.Text)
			}
			for _, r := range have {
				h = append(h, r.text)
			}
			out = append(out, Difference{Kind: kind, Key: key, What: what + "s out of order", Want: strings.Join(w, " | "), Have: strings.Join(h, " | ")})
		}
	}
	switch {
	case jumps == 0:
		out = append(out, Difference{Kind: kind, Key: key, What: "jump missing", Want: cmd + jumpArgs})
	case jumps > 1:
		out = append(out, Difference{Kind: kind, Key: key, What: fmt.Sprintf("jump duplicated (%d times)", jumps), Want: cmd + jumpArgs, Have: fmt.Sprintf("%d jumps", jumps)})
	}
	return out
}

// originKind is the kind of a rule's difference from the profile key it
// comes from: a forward accept made for a [[nat]] is of kind forward_accept.
func originKind(origin, chainKind string) string {
	if chainKind == KindForward {
		return KindForward
	}
	switch {
	case strings.HasPrefix(origin, "nat["):
		return KindNAT
	case strings.HasPrefix(origin, "port_forward["):
		return KindPortForward
	case strings.HasPrefix(origin, "mark["):
		return KindMark
	}
	return chainKind
}

// indexFrom is the index of the first rule from i on with the canonical
// form, or -1.
func indexFrom(rs []natRule, i int, canon string) int {
	for ; i < len(rs); i++ {
		if rs[i].canon == canon {
			return i
		}
	}
	return -1
}

// jumpsTo says a canonical rule jumps or goes to the chain.
func jumpsTo(canon, chain string) bool {
	return strings.Contains(" "+canon+" ", " -j "+chain+" ") || strings.Contains(" "+canon+" ", " -g "+chain+" ")
}

// longOpts are the long names of iptables' own options.
var longOpts = map[string]string{
	"--append": "-A", "--source": "-s", "--src": "-s", "--destination": "-d", "--dst": "-d",
	"--in-interface": "-i", "--out-interface": "-o", "--protocol": "-p", "--jump": "-j",
	"--goto": "-g", "--match": "-m", "--fragment": "-f",
}

type opt struct {
	neg  bool
	name string
	args []string
}

func (o opt) String() string {
	s := o.name
	if o.neg {
		s = "! " + s
	}
	if len(o.args) > 0 {
		s += " " + strings.Join(o.args, " ")
	}
	return s
}

// isOption says a word starts an option: "-s", "--to-source", not "-1".
func isOption(w string) bool {
	return len(w) > 1 && w[0] == '-' && !(w[1] >= '0' && w[1] <= '9')
}

// canonRule returns a rule's chain and canonical form: options in long
// or short spelling made short, addresses as masked prefixes, and the
// options of the rule itself, of each match (-m) and of the target (-j)
// sorted; matches keep their order, which iptables keeps.
func canonRule(line string) (chain, canon string) {
	words := splitWords(line)
	var segs [][]opt
	var cur []opt
	neg := false
	for i := 0; i < len(words); i++ {
		w := words[i]
		if w == "!" {
			neg = true
			continue
		}
		if !isOption(w) {
			cur = append(cur, opt{name: w}) // a stray word: kept as it is
			continue
		}
		o := opt{neg: neg, name: w}
		if s, ok := longOpts[w]; ok {
			o.name = s
		}
		neg = false
		for i+1 < len(words) && words[i+1] != "!" && !isOption(words[i+1]) {
			i++
			o.args = append(o.args, words[i])
		}
		switch o.name {
		case "-A":
			if len(o.args) > 0 {
				chain = o.args[0]
			}
			continue
		case "-s", "-d":
			for j, a := range o.args {
				o.args[j] = canonAddr(a)
			}
		case "-p":
			for j, a := range o.args {
				o.args[j] = strings.ToLower(a)
			}
		case "-m", "-j", "-g":
			segs = append(segs, cur)
			cur = []opt{o}
			continue
		}
		cur = append(cur, o)
	}
	segs = append(segs, cur)
	var parts []string
	for i, s := range segs {
		head := 0
		if i > 0 && len(s) > 0 {
			head = 1 // -m NAME or -j TARGET stays first
		}
		slices.SortStableFunc(s[head:], func(a, b opt) int { return strings.Compare(a.String(), b.String()) })
		for _, o := range s {
			parts = append(parts, o.String())
		}
	}
	return chain, strings.Join(parts, " ")
}

// canonAddr makes an address or prefix a masked prefix: iptables-save adds
// /32 or /128 to an address and masks a prefix.
func canonAddr(s string) string {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked().String()
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return netip.PrefixFrom(a, a.BitLen()).String()
	}
	return s
}

// splitWords splits an iptables-save line at spaces, keeping a
// double-quoted word (a comment) whole, its backslash escapes undone.
func splitWords(line string) []string {
	var out []string
	var b strings.Builder
	in, quoted, esc := false, false, false
	for _, r := range line {
		switch {
		case esc:
			b.WriteRune(r)
			esc = false
		case quoted && r == '\\':
			esc = true
		case r == '"':
			quoted = !quoted
			in = true
		case !quoted && (r == ' ' || r == '\t'):
			if in {
				out = append(out, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteRune(r)
			in = true
		}
	}
	if in {
		out = append(out, b.String())
	}
	return out
}
