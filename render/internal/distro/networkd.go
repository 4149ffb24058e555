package distro

import (
	"bytes"
	"fmt"
	"path"
	"strconv"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
	"github.com/nicpersist/nicpersist/templates"
)

// DropinName is the drop-in nicpersist writes for a .network file. 50 sorts
// before the 9x drop-ins administrators tend to use for overrides.
const DropinName = "50-nicpersist.conf"

// native is what a stack target holds itself: its files, and which routes
// and rules of the plan they carry, so that the unit applies only the rest.
// A rule both add would be there twice (the kernel compares the protocol
// too), and networkd deletes what it does not know at each reconfigure.
type native struct {
	files         []File
	routes, rules []bool // indexed like Plan.Routes and Plan.Rules
	warnings      []string
}

// rest is the plan the unit applies: everything the stack does not hold.
func (n native) rest(p *plan.Plan) *plan.Plan {
	q := *p
	q.Routes, q.Rules = nil, nil
	for i, r := range p.Routes {
		if !n.routes[i] {
			q.Routes = append(q.Routes, r)
		}
	}
	for i, r := range p.Rules {
		if !n.rules[i] {
			q.Rules = append(q.Rules, r)
		}
	}
	// The unit waits only for the links its own routes use.
	used := map[string]map[plan.Family]bool{}
	for _, r := range q.Routes {
		if used[r.Dev] == nil {
			used[r.Dev] = map[plan.Family]bool{}
		}
		used[r.Dev][r.Family] = true
	}
	q.Interfaces = append([]plan.Link(nil), p.Interfaces...)
	for i := range q.Interfaces {
		l := &q.Interfaces[i]
		l.Routed4 = l.Routed4 && used[l.Name][plan.V4]
		l.Routed6 = l.Routed6 && used[l.Name][plan.V6]
	}
	return &q
}

type iniKey struct{ K, V string }

type iniSection struct {
	Name string
	Keys []iniKey
}

// networkdNative puts each interface's routes and rules in a drop-in of the
// .network file networkd really applies to it: a drop-in for any other file
// is read by nobody. What cannot go there stays with the unit, and says why.
func networkdNative(p *plan.Plan, f sysroot.Facts, header string) (native, error) {
	n := native{routes: make([]bool, len(p.Routes)), rules: make([]bool, len(p.Rules))}
	sections := map[string][]iniSection{}
	var order []string
	files := map[string]*sysroot.NetworkFile{}
	dropin := func(dev string) string {
		m, ok := files[dev]
		if !ok {
			var unsure []string
			m, unsure = f.NetworkFor(dev)
			files[dev] = m
			where := "/" + strings.Join(sysroot.NetworkDirs[:4], ", /")
			switch {
			case m == nil && len(unsure) > 0:
				n.warnings = append(n.warnings, fmt.Sprintf("no .network file matches %s by Name= (%s match by other keys, which cannot be checked in the root); its routes and rules are left to %s, which applies them once per start: add Name=%s to the [Match] of the file meant for it", dev, strings.Join(unsure, ", "), UnitName, dev))
			case m == nil:
				n.warnings = append(n.warnings, fmt.Sprintf("no .network file under %s matches %s, so networkd does not manage it; its routes and rules are left to %s, which applies them once per start", where, dev, UnitName))
			case len(unsure) > 0:
				n.warnings = append(n.warnings, fmt.Sprintf("%s sort before /%s but match by keys other than Name=; if one of them matches %s, networkd ignores nicpersist's drop-in for /%s", strings.Join(unsure, ", "), m.Path, dev, m.Path))
			}
		}
		if m == nil {
			return ""
		}
		p := NetworkdDir + "/" + path.Base(m.Path) + ".d/" + DropinName
		if _, ok := sections[p]; !ok {
			order = append(order, p)
			sections[p] = nil
		}
		return p
	}
	for i, r := range p.Routes {
		if r.IsMainDefault() {
			if other := beatenBy(p, f, r); other != "" {
				n.warnings = append(n.warnings, other)
				continue
			}
		}
		d := dropin(r.Dev)
		if d == "" {
			continue
		}
		sections[d] = append(sections[d], networkdRoute(r))
		n.routes[i] = true
	}
	for i, r := range p.Rules {
		home := ruleHome(p, r)
		if home == "" {
			continue
		}
		d := dropin(home)
		if d == "" {
			continue
		}
		sections[d] = append(sections[d], networkdRule(r))
		n.rules[i] = true
	}
	t, err := templates.Parse()
	if err != nil {
		return n, err
	}
	for _, d := range order {
		var b bytes.Buffer
		if err := t.ExecuteTemplate(&b, "networkd-dropin.conf.tmpl", map[string]any{"Sections": sections[d]}); err != nil {
			return n, err
		}
		n.files = append(n.files, File{Path: d, Kind: Owned, Data: append([]byte(header), b.Bytes()...), Mode: 0o644})
	}
	return n, nil
}

// beatenBy says why a main-table default route cannot be networkd's own: a
// static default of another interface's .network file with a metric no
// higher than it. A drop-in cannot take that one away (an empty Gateway= is
// refused), and two defaults of equal metric replace each other at every
// reconfigure. The unit then keeps the route, as the systemd target does.
func beatenBy(p *plan.Plan, f sysroot.Facts, r plan.Route) string {
	for _, l := range p.Interfaces {
		m, _ := f.NetworkFor(l.Name)
		if m == nil {
			continue
		}
		for _, d := range m.Defaults {
			if d.Gateway.Is4() != (r.Family == plan.V4) || d.Metric > r.Metric {
				continue
			}
			if l.Name == r.Dev && d.Gateway == r.Via {
				continue // the same route: networkd adds it once
			}
			return fmt.Sprintf("/%s gives %s a static default route (%s, metric %d) that a drop-in cannot outrank, so the default via %s stays with %s, and networkd puts %s's back each time it reconfigures it; to make it networkd's, change that line in /%s to a [Route] section with Gateway=%s and Metric=1024, as DHCP's own default has",
				m.Path, l.Name, d.Key, d.Metric, r.Dev, UnitName, l.Name, m.Path, d.Gateway)
		}
	}
	return ""
}

func networkdRoute(r plan.Route) iniSection {
	s := iniSection{Name: "Route"}
	add := func(k, v string) { s.Keys = append(s.Keys, iniKey{k, v}) }
	add("Destination", r.To.String())
	if r.Via.IsValid() {
		add("Gateway", r.Via.String())
		// networkd adds static routes before DHCP has given the link its
		// address; without onlink the kernel refuses the gateway as
		// unreachable and networkd fails the link, DHCP client and all.
		// The profile has checked that the gateway is on the link's subnet.
		add("GatewayOnLink", "yes")
	} else if r.Family == plan.V4 {
		// As `ip route` picks for a route without a gateway.
		add("Scope", "link")
	}
	if r.Table != plan.TableMain {
		add("Table", strconv.FormatUint(uint64(r.Table), 10))
	}
	if r.MetricSet || r.Family == plan.V4 {
		add("Metric", strconv.FormatUint(uint64(r.Metric), 10))
	}
	return s
}

func networkdRule(r plan.Rule) iniSection {
	s := iniSection{Name: "RoutingPolicyRule"}
	add := func(k, v string) { s.Keys = append(s.Keys, iniKey{k, v}) }
	if r.From.IsValid() {
		add("From", r.From.String())
	}
	if r.To.IsValid() {
		add("To", r.To.String())
	}
	if r.FWMark != "" {
		add("FirewallMark", decimalMark(r.FWMark))
	}
	if r.IIF != "" {
		add("IncomingInterface", r.IIF)
	}
	if r.OIF != "" {
		add("OutgoingInterface", r.OIF)
	}
	if !r.From.IsValid() && !r.To.IsValid() && r.Family == plan.V6 {
		// networkd takes a rule without addresses for IPv4.
		add("Family", "ipv6")
	}
	add("Table", strconv.FormatUint(uint64(r.Table), 10))
	add("Priority", strconv.FormatUint(uint64(r.Priority), 10))
	return s
}

// decimalMark turns the plan's "0x10/0xff" into networkd's "16/255".
func decimalMark(m string) string {
	parts := strings.Split(m, "/")
	for i, x := range parts {
		if v, err := strconv.ParseUint(x, 0, 32); err == nil {
			parts[i] = strconv.FormatUint(v, 10)
		}
	}
	return strings.Join(parts, "/")
}
