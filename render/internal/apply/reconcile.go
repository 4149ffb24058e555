package apply

import (
	"fmt"
	"slices"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// Kernel is what the reconcile step asks of the running kernel. It only
// reads; the executor's live one reads over netlink and, where the text
// form of a route is needed, with `ip`. Tests give a table of answers.
type Kernel interface {
	// Routes returns routes that may have the key (table, prefix, metric)
	// of a candidate line, each as `ip route replace` takes it, with its
	// table: at least every route that has such a key.
	Routes(f plan.Family, cand []string) ([]string, error)
	// ForeignDefault4 returns the IPv4 main-table default of metric 0 that
	// nicpersist did not add, as `ip route replace` takes it; "" if none.
	ForeignDefault4() (string, error)
	// Rules returns the family's policy rules.
	Rules(f plan.Family) ([]unitfiles.Rule, error)
	// Sysctl returns a key's value, and false when the key does not exist.
	Sysctl(key string) (string, bool)
}

type opKind int

const (
	opSysctls        opKind = iota // write Sysctls, skipping keys that do not exist
	opNATRestore                   // iptables-restore --noflush Data
	opNATJump                      // jump to Chain from its built-in chain once
	opNATRemove                    // Chain's jumps and Chain, if there
	opTables                       // ip -force -batch: "File exists" is not a failure
	opMain                         // ip -batch
	opUndo                         // ip -force -batch whose failures are expected
	opRestoreDefault               // ip -4 route replace Lines[0]
	opNFTLoad                      // nft -f Data: replaces table inet nicpersist
	opNFTRemove                    // nft delete table inet nicpersist, if there
)

// netfilter says an op loads packet-filter rules. Their failure at start
// does not undo the routes and rules (see Start).
func (k opKind) netfilter() bool {
	return k == opNATRestore || k == opNATJump || k == opNFTLoad
}

// Op is one thing the executor does to the kernel.
type Op struct {
	Kind    opKind
	Family  plan.Family
	Name    string // batch ops: the file, in the state directory, that ip reads
	Lines   []string
	Data    []byte
	Sysctls []unitfiles.Sysctl
	Chain   unitfiles.XChain // opNATJump, opNATRemove
}

// Step records a state, when Record is set, and then runs an op, when Op
// is set. The record comes first: should the op fail or the machine stop,
// the state on disk covers what the op may have done.
type Step struct {
	Record *State
	Op     *Op
}

// Plan is the reconcile step's answer: the steps in order, and the state
// once they all succeed.
type Plan struct {
	Steps []Step
	Final State
}

type planner struct {
	k    Kernel
	cur  State
	plan Plan
}

func (p *planner) record() {
	s := p.cur.clone()
	p.plan.Steps = append(p.plan.Steps, Step{Record: &s})
}

func (p *planner) op(o Op) {
	p.plan.Steps = append(p.plan.Steps, Step{Op: &o})
}

// planStart decides what a start (or reload) does, from what the rendered
// files want, what the state says earlier starts did, and what the kernel
// has: sysctls, NAT, then each family's routes and rules.
func planStart(want *unitfiles.Set, st State, k Kernel) (Plan, error) {
	p := &planner{k: k, cur: st.clone()}
	p.cur.upgrade()
	p.sysctls(want.Sysctls)
	for _, f := range unitfiles.Families {
		p.nat(f, want.NAT[f])
	}
	p.nft(want.NFT)
	for _, f := range unitfiles.Families {
		if err := p.family(f, want.Batches[f]); err != nil {
			return Plan{}, err
		}
	}
	p.plan.Final = p.cur.clone()
	return p.plan, nil
}

// sysctls saves a key's value the first time it is to be set, so that stop
// puts back what was there before nicpersist; a key that does not exist
// (an interface not there yet) is left to systemd-sysctl, which sets it
// when udev sees the interface.
func (p *planner) sysctls(want []unitfiles.Sysctl) {
	if len(want) == 0 {
		return
	}
	saved := map[string]bool{}
	for _, s := range p.cur.Sysctls {
		saved[s.Key] = true
	}
	changed := !p.cur.SysctlsSaved
	p.cur.SysctlsSaved = true
	for _, s := range want {
		if saved[s.Key] {
			continue
		}
		if v, ok := p.k.Sysctl(s.Key); ok {
			p.cur.Sysctls = append(p.cur.Sysctls, unitfiles.Sysctl{Key: s.Key, Value: v})
			saved[s.Key] = true
			changed = true
		}
	}
	if changed {
		p.record()
	}
	p.op(Op{Kind: opSysctls, Sysctls: want})
}

// nat restores nicpersist's chains and jumps to each; a chain an earlier
// start made that the rules no longer declare goes.
func (p *planner) nat(f plan.Family, rules []byte) {
	had := p.cur.xt(f)
	want := unitfiles.DeclaredChains(rules)
	if rules != nil {
		if all := union(*had, want); len(all) != len(*had) {
			*had = all
			p.record()
		}
		p.op(Op{Kind: opNATRestore, Family: f, Data: rules})
		for _, k := range want {
			c, _ := unitfiles.ChainByKey(k)
			p.op(Op{Kind: opNATJump, Family: f, Chain: c})
		}
	}
	if gone := missing(want, *had); len(gone) > 0 {
		for _, k := range gone {
			if c, ok := unitfiles.ChainByKey(k); ok {
				p.op(Op{Kind: opNATRemove, Family: f, Chain: c})
			}
		}
		*had = missing(gone, *had)
		p.record()
	}
}

// nft loads nicpersist's nftables table, which replaces itself; without a
// file, a table an earlier start loaded goes.
func (p *planner) nft(data []byte) {
	switch {
	case data != nil:
		if !p.cur.NFT {
			p.cur.NFT = true
			p.record()
		}
		p.op(Op{Kind: opNFTLoad, Data: data})
	case p.cur.NFT:
		p.op(Op{Kind: opNFTRemove})
		p.cur.NFT = false
		p.record()
	}
}

// family applies routes in nicpersist's tables and the rules, then the main
// table (make-before-break: the main table changes only once the tables and
// rules it may depend on are in), and then removes what an earlier start
// applied and this one does not.
func (p *planner) family(f plan.Family, want unitfiles.Batch) error {
	if f == plan.V4 {
		if err := p.saveDefault(want.Main); err != nil {
			return err
		}
	}
	old := p.cur.family(f)
	if old == nil {
		old = &FamilyState{}
	}
	if want.Empty() && old.empty() {
		return nil // a family the profile does not use, now or before
	}
	allNew := concat(want.Routes, want.Main)
	found, err := p.preRoutes(f, missing(concat(old.Routes, old.Main), allNew))
	if err != nil {
		return err
	}
	pre := append(slices.Clone(old.Pre), found...)
	// Rules an earlier start added, as opposed to found.
	rulesOurs := missing(old.RulesPre, old.Rules)
	rulesPre, err := p.rulesPre(f, old.RulesPre, rulesOurs, want.Rules)
	if err != nil {
		return err
	}
	// Until the stale step is done the state still lists the old rules, so
	// it keeps those found before: a failed start's stop must leave them.
	cur := &FamilyState{
		Routes: union(old.Routes, want.Routes), Rules: union(old.Rules, want.Rules), Main: old.Main,
		Pre: pre, RulesPre: union(rulesPre, old.RulesPre),
	}
	p.cur.setFamily(f, cur)
	p.record()
	// A rule that is there already answers "File exists", which is not a
	// failure; any other error is, and then stop removes all of it (ip goes
	// on past a failed route, so its rules are applied and taken away
	// again).
	if tables := concat(want.Routes, want.Rules); len(tables) > 0 {
		p.op(Op{Kind: opTables, Family: f, Name: fmt.Sprintf("ip%d.tables.new", f), Lines: tables})
	}
	if len(want.Main) > 0 {
		cur.Main = union(old.Main, want.Main)
		p.cur.setFamily(f, cur)
		p.record()
		p.op(Op{Kind: opMain, Family: f, Name: fmt.Sprintf("ip%d.main.new", f), Lines: want.Main})
	}
	// Files that no longer put our metric-0 default in place of the
	// system's: the one it displaced comes back in place of ours, rather
	// than leaving the machine without a default until stop.
	dropDefault := f == plan.V4 && p.cur.DefaultSaved && ownsDefault4(old.Main) && !ownsDefault4(want.Main)
	undoPre := pre
	if dropDefault && p.cur.Default != "" {
		undoPre = slices.Clone(pre)
		for _, l := range missing(allNew, old.Main) {
			if strings.HasPrefix(l, "route replace default ") && !strings.Contains(l, " metric ") {
				undoPre = append(undoPre, PreRoute{l, p.cur.Default})
			}
		}
	}
	var stale []string
	for _, l := range missing(want.Rules, rulesOurs) {
		stale = append(stale, ruleDel(l))
	}
	stale = append(stale, undoRoutes(undoPre, missing(allNew, old.Main))...)
	stale = append(stale, undoRoutes(pre, missing(allNew, old.Routes))...)
	if len(stale) > 0 {
		p.op(Op{Kind: opUndo, Family: f, Name: fmt.Sprintf("ip%d.stale", f), Lines: stale})
	}
	newSet := make(map[string]bool, len(allNew))
	for _, l := range allNew {
		newSet[l] = true
	}
	var keep []PreRoute
	for _, x := range pre {
		if newSet[x.Line] {
			keep = append(keep, x)
		}
	}
	p.cur.setFamily(f, &FamilyState{Routes: want.Routes, Rules: want.Rules, Main: want.Main, Pre: keep, RulesPre: rulesPre})
	if dropDefault {
		p.cur.DefaultSaved, p.cur.Default = false, ""
	}
	return nil
}

// saveDefault keeps, once, the IPv4 main default that our metric-0 default
// replaces (legacy dhclient, network-scripts), to put it back on stop.
func (p *planner) saveDefault(main []string) error {
	if p.cur.DefaultSaved || !ownsDefault4(main) {
		return nil
	}
	d, err := p.k.ForeignDefault4()
	if err != nil {
		return err
	}
	p.cur.DefaultSaved, p.cur.Default = true, d
	p.record()
	return nil
}

// ownsDefault4 says the main-table lines put our own metric-0 default in
// place of the system's: a default with a device and no metric.
func ownsDefault4(main []string) bool {
	ours := false
	for _, l := range main {
		if strings.HasPrefix(l, "route replace default ") {
			if strings.Contains(l, " metric ") {
				return false
			}
			if strings.Contains(l, "dev") {
				ours = true
			}
		}
	}
	return ours
}

// preRoutes returns the candidate lines whose route, the same table, prefix
// and metric, is in the kernel already, each with that route: a route-<if>
// line that ifup or NetworkManager applied before the unit, or the user's
// own route. The IPv4 main-table metric-0 default is saveDefault's.
func (p *planner) preRoutes(f plan.Family, cand []string) ([]PreRoute, error) {
	var c []string
	for _, l := range cand {
		w := strings.Fields(l)
		if f == plan.V4 && len(w) > 2 && w[2] == "default" && !strings.Contains(l, " table ") && !strings.Contains(l, " metric ") {
			continue
		}
		c = append(c, l)
	}
	if len(c) == 0 {
		return nil, nil
	}
	routes, err := p.k.Routes(f, c)
	if err != nil || len(routes) == 0 {
		return nil, err
	}
	byKey := map[string]string{}
	for _, rt := range routes {
		if k := routeKey(f, rt); byKey[k] == "" {
			byKey[k] = rt
		}
	}
	var out []PreRoute
	for _, l := range c {
		if rt, ok := byKey[routeKey(f, l)]; ok {
			out = append(out, PreRoute{l, rt})
		}
	}
	return out, nil
}

// rulesPre returns the rule lines that are not nicpersist's: those an
// earlier start found and the files still hold, and those the kernel has
// now that no earlier start added.
func (p *planner) rulesPre(f plan.Family, oldPre, ours, want []string) ([]string, error) {
	var out []string
	for _, l := range oldPre {
		if slices.Contains(want, l) {
			out = append(out, l)
		}
	}
	cand := missing(concat(ours, out), want)
	if len(cand) == 0 {
		return out, nil
	}
	krs, err := p.k.Rules(f)
	if err != nil {
		return nil, err
	}
	for _, l := range cand {
		r, err := unitfiles.ParseRule(f, strings.TrimPrefix(l, "rule add "))
		if err == nil && slices.ContainsFunc(krs, func(k unitfiles.Rule) bool { return refuses(k, r) }) {
			out = append(out, l)
		}
	}
	return out, nil
}

// refuses says the kernel, having rule k, answers "File exists" to r (and
// `ip rule del` of r deletes k): as the kernel's rule_exists, it compares
// from and to only when r gives them.
func refuses(k, r unitfiles.Rule) bool {
	return k.Priority == r.Priority && k.Table == r.Table && k.IIF == r.IIF && k.OIF == r.OIF &&
		k.Mark == r.Mark && k.Mask == r.Mask &&
		(!r.From.IsValid() || k.From == r.From) && (!r.To.IsValid() || k.To == r.To)
}

// planStop decides what stop does: put back a displaced default first (it
// replaces ours, so there is always a default route), then delete rules and
// routes, putting back those that were there before the first start; then
// NAT, then the sysctls' old values.
func planStop(st State) Plan {
	p := &planner{}
	st = st.clone()
	st.upgrade()
	for _, f := range []plan.Family{plan.V6, plan.V4} {
		if f == plan.V4 && st.DefaultSaved && st.Default != "" {
			p.op(Op{Kind: opRestoreDefault, Family: f, Lines: []string{st.Default}})
		}
		fs := st.family(f)
		if fs.empty() {
			continue
		}
		var del []string
		for _, l := range missing(fs.RulesPre, fs.Rules) {
			del = append(del, ruleDel(l))
		}
		del = append(del, undoRoutes(fs.Pre, fs.Main)...)
		del = append(del, undoRoutes(fs.Pre, fs.Routes)...)
		if len(del) > 0 {
			p.op(Op{Kind: opUndo, Family: f, Name: fmt.Sprintf("ip%d.del", f), Lines: del})
		}
	}
	for _, f := range []plan.Family{plan.V6, plan.V4} {
		for _, k := range *st.xt(f) {
			if c, ok := unitfiles.ChainByKey(k); ok {
				p.op(Op{Kind: opNATRemove, Family: f, Chain: c})
			}
		}
	}
	if st.NFT {
		p.op(Op{Kind: opNFTRemove})
	}
	if st.SysctlsSaved && len(st.Sysctls) > 0 {
		p.op(Op{Kind: opSysctls, Sysctls: st.Sysctls})
	}
	return p.plan
}

// undoRoutes turns "route replace" lines into the batch that undoes them:
// `route replace` of the route that was there before (from pre), else
// `route del`.
func undoRoutes(pre []PreRoute, lines []string) []string {
	was := map[string]string{}
	for _, x := range pre {
		was[x.Line] = x.Route
	}
	var out []string
	for _, l := range lines {
		if rt, ok := was[l]; ok {
			out = append(out, "route replace "+rt)
			continue
		}
		out = append(out, "route del "+strings.TrimPrefix(l, "route replace "))
	}
	return out
}

func ruleDel(l string) string { return "rule del " + strings.TrimPrefix(l, "rule add ") }

var routeTypes = map[string]bool{"unicast": true, "local": true, "broadcast": true, "multicast": true,
	"anycast": true, "blackhole": true, "unreachable": true, "prohibit": true, "throw": true, "nat": true}

// routeKey is a route's table, prefix and metric, which identify it, from a
// batch line ("route replace ...") or a listed route.
func routeKey(f plan.Family, line string) string {
	w := strings.Fields(line)
	i := 0
	if len(w) > 0 && w[0] == "route" {
		i = 2
	}
	if i < len(w) && routeTypes[w[i]] {
		i++
	}
	if i >= len(w) {
		return ""
	}
	dst := w[i]
	metric := "0"
	if f == plan.V4 {
		dst = strings.TrimSuffix(dst, "/32")
	} else {
		dst = strings.TrimSuffix(dst, "/128")
		metric = "1024"
	}
	table := "main"
	for ; i < len(w)-1; i++ {
		switch w[i] {
		case "table":
			table = w[i+1]
		case "metric":
			metric = w[i+1]
		}
	}
	if table == "254" {
		table = "main"
	}
	return table + " " + dst + " " + metric
}

func concat(a, b []string) []string {
	return append(append([]string(nil), a...), b...)
}

// missing returns the lines of b that are not in a, in b's order.
func missing(a, b []string) []string {
	if len(b) == 0 {
		return nil
	}
	in := make(map[string]bool, len(a))
	for _, l := range a {
		in[l] = true
	}
	var out []string
	for _, l := range b {
		if !in[l] {
			out = append(out, l)
		}
	}
	return out
}

// union returns a's lines and then those of b not in a.
func union(a, b []string) []string {
	return append(append([]string(nil), a...), missing(a, b)...)
}
