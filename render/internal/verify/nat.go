package verify

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// jumpArgs is the rule that sends POSTROUTING through nicpersist's chain,
// as apply's natJump inserts it.
const jumpArgs = "-A POSTROUTING -j " + unitfiles.NATChain

// natRule is one -A line of iptables-save, and its canonical form.
type natRule struct {
	chain, text, canon string
}

// parseSave reads `iptables-save -t nat`: the chains it declares and its
// rules in order.
func parseSave(save string) (chains map[string]bool, rules []natRule) {
	chains = map[string]bool{}
	for _, l := range strings.Split(save, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, ":"):
			if name, _, _ := strings.Cut(l[1:], " "); name != "" {
				chains[name] = true
			}
		case strings.HasPrefix(l, "-A "):
			chain, canon := canonRule(l)
			rules = append(rules, natRule{chain, l, canon})
		}
	}
	return chains, rules
}

// compareNAT checks one family's chain: the rendered rules, in order and
// nothing else, and one unconditional jump from POSTROUTING. iptables-save
// prints a rule's options in an order of its own, so rules are compared in
// canonical form (see canonRule).
func compareNAT(f plan.Family, want []plan.NAT, save string) []Difference {
	cmd := f.IPTables() + " -t nat "
	chains, rules := parseSave(save)
	var have []natRule
	jumps := 0
	var out []Difference
	_, jump := canonRule(jumpArgs)
	for _, r := range rules {
		if r.chain == unitfiles.NATChain {
			have = append(have, r)
		}
		if r.chain == "POSTROUTING" && r.canon == jump {
			jumps++
		} else if jumpsTo(r.canon, unitfiles.NATChain) {
			out = append(out, Difference{Kind: KindNAT, Key: "nat", What: "another jump to " + unitfiles.NATChain, Want: cmd + jumpArgs, Have: cmd + r.text})
		}
	}
	used := make([]bool, len(have))
	var wantCanon []string
	for _, n := range want {
		text := unitfiles.NATRule(n)
		_, canon := canonRule(text)
		wantCanon = append(wantCanon, canon)
		i := indexFrom(have, 0, canon)
		for i >= 0 && used[i] {
			i = indexFrom(have, i+1, canon)
		}
		if i >= 0 {
			used[i] = true
			continue
		}
		d := Difference{Kind: KindNAT, Key: n.Origin, What: "NAT rule missing", Want: cmd + text}
		if !chains[unitfiles.NATChain] {
			d.Have = "no chain " + unitfiles.NATChain
		}
		out = append(out, d)
	}
	extra := false
	for i, h := range have {
		if !used[i] {
			extra = true
			out = append(out, Difference{Kind: KindNAT, Key: "nat", What: "rule in " + unitfiles.NATChain + " that the profile does not hold", Have: cmd + h.text})
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
				w = append(w, unitfiles.NATRule(n))
			}
			for _, r := range have {
				h = append(h, r.text)
			}
			out = append(out, Difference{Kind: KindNAT, Key: "nat", What: "NAT rules out of order", Want: strings.Join(w, " | "), Have: strings.Join(h, " | ")})
		}
	}
	switch {
	case jumps == 0:
		out = append(out, Difference{Kind: KindNAT, Key: "nat", What: "jump missing", Want: cmd + jumpArgs})
	case jumps > 1:
		out = append(out, Difference{Kind: KindNAT, Key: "nat", What: fmt.Sprintf("jump duplicated (%d times)", jumps), Want: cmd + jumpArgs, Have: fmt.Sprintf("%d jumps", jumps)})
	}
	return out
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
