package distro

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
	"github.com/nicpersist/nicpersist/templates"
)

// Paths of the ifupdown target's hooks.
const (
	IfupHook     = "etc/network/if-up.d/nicpersist"
	DhclientHook = "etc/dhcp/dhclient-exit-hooks.d/nicpersist"
)

// ifupdownProto marks the routes the hooks add: static, as ifup's own
// routes are. Not plan.Proto: the unit clears stale routes of that one.
const ifupdownProto = "static"

type ifupdownIface struct {
	Name    string
	Batches []*ifupdownBatch
}

// ifupdownBatch is one family's lines: `ip -batch` takes no -4 or -6 per
// line.
type ifupdownBatch struct {
	Family int
	Lines  []string
}

func (x *ifupdownIface) add(f plan.Family, line string) {
	for _, b := range x.Batches {
		if b.Family == int(f) {
			b.Lines = append(b.Lines, line)
			return
		}
	}
	x.Batches = append(x.Batches, &ifupdownBatch{Family: int(f), Lines: []string{line}})
}

// ifupdownNative re-applies each interface's routes and rules from
// ifupdown's if-up.d (after every ifup, at boot and after a bounce handled
// by ifup) and from dhclient's exit hooks (after a lease that may have
// replaced the interface's routes or the main default). Interfaces ifupdown
// does not configure are left to the unit.
func ifupdownNative(p *plan.Plan, f sysroot.Facts, header string) (native, error) {
	n := native{routes: make([]bool, len(p.Routes)), rules: make([]bool, len(p.Rules))}
	var ifaces []*ifupdownIface
	by := map[string]*ifupdownIface{}
	warned := map[string]bool{}
	iface := func(dev string) *ifupdownIface {
		if _, ok := f.Ifaces[dev]; !ok {
			if !warned[dev] {
				warned[dev] = true
				n.warnings = append(n.warnings, fmt.Sprintf("/%s (and the files it sources) has no iface stanza for %s, so ifup never runs for it; its routes and rules are left to %s, which applies them once per start", sysroot.Interfaces, dev, UnitName))
			}
			return nil
		}
		if i, ok := by[dev]; ok {
			return i
		}
		i := &ifupdownIface{Name: dev}
		by[dev] = i
		ifaces = append(ifaces, i)
		return i
	}
	var defaults []string
	type rule struct {
		f    plan.Family
		line string
	}
	rules := map[*ifupdownIface][]rule{}
	for i, r := range p.Routes {
		x := iface(r.Dev)
		if x == nil {
			continue
		}
		line := "route replace " + r.Args()
		if r.Via.IsValid() {
			// The other family's address may not be there yet when ifup
			// runs the hook for the first one.
			line += " onlink"
		}
		x.add(r.Family, line+" proto "+ifupdownProto)
		n.routes[i] = true
		if r.IsMainDefault() && !slices.Contains(defaults, r.Dev) {
			defaults = append(defaults, r.Dev)
		}
	}
	for i, r := range p.Rules {
		home := ruleHome(p, r)
		if home == "" {
			continue
		}
		x := iface(home)
		if x == nil {
			continue
		}
		rules[x] = append(rules[x], rule{r.Family, "rule add " + r.Args()})
		n.rules[i] = true
	}
	for _, x := range ifaces {
		// Rules after the routes: a rule never points at an empty table.
		for _, r := range rules[x] {
			x.add(r.f, r.line)
		}
	}
	if len(ifaces) == 0 {
		return n, nil
	}
	t, err := templates.Parse()
	if err != nil {
		return n, err
	}
	var hook, dh bytes.Buffer
	if err := t.ExecuteTemplate(&hook, "ifupdown-hook.sh.tmpl", map[string]any{"Header": header, "Ifaces": ifaces}); err != nil {
		return n, err
	}
	if err := t.ExecuteTemplate(&dh, "dhclient-exit-hook.tmpl", map[string]any{"Header": header, "Hook": strconv.Quote("/" + IfupHook), "Defaults": defaults}); err != nil {
		return n, err
	}
	n.files = append(n.files,
		File{Path: IfupHook, Kind: Owned, Data: hook.Bytes(), Mode: 0o755},
		// Sourced by dhclient-script, not run: not executable, as Debian's own.
		File{Path: DhclientHook, Kind: Owned, Data: dh.Bytes(), Mode: 0o644})
	return n, nil
}
