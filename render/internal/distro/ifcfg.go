package distro

import (
	"fmt"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/nicpersist/nicpersist/render/internal/keyfile"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
)

// What NetworkManager's ifcfg-rh reader and initscripts do with the files
// the rhel target renders, read in their sources (NetworkManager 1.14 to
// 1.54, initscripts 9.49 and 10.00); Debian has neither, so golden and unit
// tests encode these rules rather than run them.

// ifcfgConn is the ifcfg file that serves an interface.
type ifcfgConn struct {
	name string // the part after "ifcfg-": route files are found by it
	vars *keyfile.Vars
}

// ifcfgFor finds the ifcfg file that serves dev: the one whose DEVICE is
// dev, else one named ifcfg-<dev> without a DEVICE. NetworkManager finds a
// connection's route-/rule- files from this name (ifcfg-System_eth1 reads
// route-System_eth1), not from the device.
func ifcfgFor(c Choice, dev string) (ifcfgConn, bool) {
	names := make([]string, 0, len(c.Root.Scripts))
	for n := range c.Root.Scripts {
		if strings.HasPrefix(n, "ifcfg-") {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var fallback *ifcfgConn
	for _, n := range names {
		v := keyfile.ParseVars([]byte(c.Root.Scripts[n]))
		name := strings.TrimPrefix(n, "ifcfg-")
		d, ok := v.Get("DEVICE")
		switch {
		case ok && d == dev:
			return ifcfgConn{name, v}, true
		case !ok && name == dev && fallback == nil:
			fallback = &ifcfgConn{name, v}
		}
	}
	if fallback != nil {
		return *fallback, true
	}
	return ifcfgConn{}, false
}

// routeFileName is the name route-/rule- files of dev take.
func routeFileName(c Choice, dev string) string {
	if ic, ok := ifcfgFor(c, dev); ok {
		return ic.name
	}
	return dev
}

// nativeRules says the ifcfg file of home carries its rules as
// ROUTING_RULE_n: NetworkManager reads them there since 1.18, and adds and
// removes them with the connection.
func nativeRules(c Choice, home string) bool {
	if c.Target != RHEL || c.Stack != NetworkManager || !sysroot.VersionAtLeast(c.Root.NM.Version, 1, 18) {
		return false
	}
	_, ok := ifcfgFor(c, home)
	return ok
}

// rhelHeld are the routes and rules the stack applies itself from the
// rendered files; the unit applies the rest. The unit's `ip route replace`
// of a route the stack added would relabel it with nicpersist's protocol,
// so that the unit's stop deletes what the stack put there.
func rhelHeld(p *plan.Plan, c Choice) (routes, rules map[int]bool) {
	routes, rules = map[int]bool{}, map[int]bool{}
	for i, r := range p.Routes {
		// Main-table defaults are never in a route file (ifcfgFiles).
		if !r.IsMainDefault() && routesHeld(c, r.Dev, r.Family) {
			routes[i] = true
		}
	}
	for i, r := range p.Rules {
		if home := ruleHome(p, r); home != "" && nativeRules(c, home) {
			rules[i] = true
		}
	}
	return routes, rules
}

// routesHeld says the stack adds every route of dev's route-/route6- file
// (of fam) each time dev comes up. Where it may not, the unit keeps them:
// a route the unit relabels is a lesser harm than one no one applies.
func routesHeld(c Choice, dev string, fam plan.Family) bool {
	ic, ok := ifcfgFor(c, dev)
	if !ok {
		// ifup has no configuration to bring dev up with, and
		// NetworkManager has no ifcfg connection to read a route file for.
		return false
	}
	v6ok := fam == plan.V4 || ipv6Init(ic)
	switch c.Stack {
	case NetworkScripts:
		return v6ok
	case NetworkManager:
		// An unknown version may be one that drops `default ... table N`.
		if c.Root.NM.Version == "" || !sysroot.VersionAtLeast(c.Root.NM.Version, 1, 22) {
			return false
		}
		// An unmanaged device's connection is never activated.
		if v, _ := ic.vars.Get("NM_CONTROLLED"); strings.EqualFold(v, "no") || strings.EqualFold(v, "false") || v == "0" {
			return false
		}
		// Mirrors the warning in Warnings: any rule file of the connection
		// makes NetworkManager ignore its route files.
		if _, ok := c.Root.Scripts["rule-"+ic.name]; ok {
			return false
		}
		if _, ok := c.Root.Scripts["rule6-"+ic.name]; ok {
			return false
		}
		return v6ok || sysroot.VersionAtLeast(c.Root.NM.Version, 1, 33)
	}
	return false
}

// ipv6Init is the IPV6INIT=yes without which ifup-routes, and
// NetworkManager up to 1.32, skip route6-<name>.
func ipv6Init(ic ifcfgConn) bool {
	v, _ := ic.vars.Get("IPV6INIT")
	return v == "yes"
}

// Compiled on first use: package init runs at every start of the binary
// (the unit at boot, verify), most of which never need it.
var svformat = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`(?m)^\s*ADDRESS[0-9]+=`) })

// ifcfgChecks refuses what would make the rendered files silently
// useless, with what to do instead.
func ifcfgChecks(p *plan.Plan, c Choice, files []File) error {
	var errs []string
	for _, f := range files {
		base := strings.TrimPrefix(f.Path, ScriptsDir+"/")
		if !strings.HasPrefix(base, "route") {
			continue
		}
		cur := c.Root.Scripts[base]
		if svformat().MatchString(cur) {
			errs = append(errs, fmt.Sprintf("/%s is in the key=value form (ADDRESS0=...): NetworkManager then ignores every `ip route` line in it and ifup-routes runs it as a shell script, so nicpersist's lines would fail in it; rewrite it as one `ip route` argument line per route, and render again. Your routes as lines:\n%s", f.Path, convertSvformat(cur)))
		}
	}
	if c.Stack == NetworkManager {
		for _, l := range p.Interfaces {
			ic, ok := ifcfgFor(c, l.Name)
			if !ok {
				continue
			}
			for _, k := range []string{"IPV4_ROUTE_TABLE", "IPV6_ROUTE_TABLE"} {
				if v, ok := ic.vars.Get(k); ok && v != "" && v != "0" {
					errs = append(errs, fmt.Sprintf("/%s/ifcfg-%s: %s=%s makes NetworkManager own every routing table on %s and remove the routes nicpersist.service adds there; remove %s (nicpersist puts each route in its own table)", ScriptsDir, ic.name, k, v, l.Name, k))
				}
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "\n"))
	}
	return nil
}

// convertSvformat writes the ADDRESSn/NETMASKn/GATEWAYn/METRICn/OPTIONSn
// routes of a key=value route file as `ip route` argument lines.
func convertSvformat(text string) string {
	v := keyfile.ParseVars([]byte(text))
	var idx []int
	for _, k := range v.Keys() {
		if n, ok := strings.CutPrefix(k, "ADDRESS"); ok {
			if i, err := strconv.Atoi(n); err == nil {
				idx = append(idx, i)
			}
		}
	}
	sort.Ints(idx)
	var b strings.Builder
	for _, i := range idx {
		n := strconv.Itoa(i)
		addr, _ := v.Get("ADDRESS" + n)
		bits := 32
		if m, ok := v.Get("NETMASK" + n); ok {
			if a, err := netip.ParseAddr(m); err == nil && a.Is4() {
				x := a.As4()
				bits = 0
				for _, by := range x {
					for ; by&0x80 != 0; by <<= 1 {
						bits++
					}
				}
			}
		}
		fmt.Fprintf(&b, "  %s/%d", addr, bits)
		if g, ok := v.Get("GATEWAY" + n); ok && g != "" {
			b.WriteString(" via " + g)
		}
		if m, ok := v.Get("METRIC" + n); ok && m != "" {
			b.WriteString(" metric " + m)
		}
		if o, ok := v.Get("OPTIONS" + n); ok && o != "" {
			b.WriteString(" " + o)
		}
		b.WriteString("\n")
	}
	return strings.TrimRight(b.String(), "\n")
}

// routeKey is what makes two `ip route` argument lines the same route to
// the kernel: NetworkManager writes a route back in its own words
// ("0.0.0.0/0 via 172.22.5.65 table 1000" for "default via 172.22.5.65 dev
// eth1 table 1000").
func routeKey(line string, v6 bool) string {
	w := strings.Fields(line)
	if len(w) == 0 || strings.HasPrefix(w[0], "#") {
		return ""
	}
	dst := w[0]
	switch {
	case dst == "default" && v6:
		dst = "::/0"
	case dst == "default":
		dst = "0.0.0.0/0"
	case !strings.Contains(dst, "/") && strings.Contains(dst, ":"):
		dst += "/128"
	case !strings.Contains(dst, "/"):
		dst += "/32"
	}
	if p, err := netip.ParsePrefix(dst); err == nil {
		dst = p.Masked().String()
	}
	kv := map[string]string{"table": "main"}
	var extra []string
	for i := 1; i+1 < len(w); i += 2 {
		switch w[i] {
		case "dev", "proto":
		case "via", "metric":
			kv[w[i]] = w[i+1]
		case "table":
			if w[i+1] != "254" {
				kv["table"] = w[i+1]
			}
		default:
			extra = append(extra, w[i]+" "+w[i+1])
		}
	}
	sort.Strings(extra)
	return strings.Join([]string{dst, kv["via"], kv["table"], kv["metric"], strings.Join(extra, ",")}, "|")
}

// rewritten returns the lines of a route file that NetworkManager wrote
// back from nicpersist's block when it saved the connection (nmcli
// connection modify drops the markers): the file is one the manifest gives
// a block, it has no marker left, and the line is one of the block's
// routes in other words. They go, so that the render does not add the
// routes a second time.
func rewritten(c Choice, path string, block []string) []string {
	cur, ok := c.Root.Scripts[strings.TrimPrefix(path, ScriptsDir+"/")]
	if !ok || !c.Root.Blocks[path] || strings.Contains(cur, sysroot.Begin) || strings.Contains(cur, sysroot.End) {
		return nil
	}
	v6 := strings.Contains(path, "/route6-")
	ours := map[string]bool{}
	for _, l := range block {
		ours[routeKey(l, v6)] = true
	}
	var drop []string
	for _, l := range strings.Split(cur, "\n") {
		if k := routeKey(l, v6); k != "" && ours[k] {
			drop = append(drop, l)
		}
	}
	return drop
}

// ifcfgRuleFiles are ROUTING_RULE_n keys for the ifcfg files, so that
// NetworkManager adds the rules with the connection. Keys nicpersist set
// before (the manifest) go first; a key NetworkManager renumbered on a
// save is known by its value.
func ifcfgRuleFiles(p *plan.Plan, c Choice) []File {
	per := map[string][]plan.Rule{}
	var order []string
	for _, r := range p.Rules {
		home := ruleHome(p, r)
		if home == "" || !nativeRules(c, home) {
			continue
		}
		ic, _ := ifcfgFor(c, home)
		if _, ok := per[ic.name]; !ok {
			order = append(order, ic.name)
		}
		per[ic.name] = append(per[ic.name], r)
	}
	var out []File
	for _, name := range order {
		path := ScriptsDir + "/ifcfg-" + name
		v := keyfile.ParseVars([]byte(c.Root.Scripts["ifcfg-"+name]))
		for _, e := range c.Root.NM.Owned[path] {
			_, kv, _ := strings.Cut(e, " ")
			k, val, _ := strings.Cut(kv, "=")
			if cur, ok := v.Get(k); ok && cur == val {
				v.Delete(k)
			}
		}
		want := map[string]bool{}
		for _, r := range per[name] {
			want[ruleKey(r.Args())] = true
		}
		next := map[string]int{}
		for _, k := range v.Keys() {
			pre, n, ok := ruleVar(k)
			if !ok {
				continue
			}
			if val, _ := v.Get(k); want[ruleKey(val)] {
				v.Delete(k)
				continue
			}
			if n >= next[pre] {
				next[pre] = n + 1
			}
		}
		var keys []string
		for _, r := range per[name] {
			pre := "ROUTING_RULE_"
			if r.Family == plan.V6 {
				pre = "ROUTING_RULE6_"
			}
			if next[pre] == 0 {
				next[pre] = 1
			}
			k := pre + strconv.Itoa(next[pre])
			next[pre]++
			v.Set(k, r.Args())
			keys = append(keys, "- "+k+"="+r.Args())
		}
		out = append(out, File{Path: path, Kind: Keyfile, Data: v.Bytes(), Keys: keys})
	}
	return out
}

// ruleVar splits ROUTING_RULE_3 / ROUTING_RULE6_3.
func ruleVar(k string) (string, int, bool) {
	for _, pre := range []string{"ROUTING_RULE6_", "ROUTING_RULE_"} {
		if rest, ok := strings.CutPrefix(k, pre); ok {
			n, err := strconv.Atoi(rest)
			return pre, n, err == nil && n >= 0
		}
	}
	return "", 0, false
}

// ruleKey compares rules as NetworkManager writes them back: a host
// prefix without its length.
func ruleKey(s string) string {
	w := strings.Fields(s)
	for i, x := range w {
		w[i] = strings.TrimSuffix(strings.TrimSuffix(x, "/32"), "/128")
	}
	return strings.Join(w, " ")
}

// ifcfgWarnings are what the stack will do with the rendered files that
// the user should know.
func ifcfgWarnings(c Choice, files []File) []string {
	var out []string
	for _, f := range files {
		base := strings.TrimPrefix(f.Path, ScriptsDir+"/")
		kind, name, ok := strings.Cut(base, "-")
		if !ok || f.Kind != Block {
			continue
		}
		switch kind {
		case "route":
			if c.Stack == NetworkManager && c.Root.NM.Version != "" && !sysroot.VersionAtLeast(c.Root.NM.Version, 1, 22) && strings.Contains(string(f.Data), "default ") {
				out = append(out, fmt.Sprintf("/%s: NetworkManager %s drops `default ... table N` lines (fixed in 1.22; RHEL 8.0 and 8.1), so nicpersist.service applies this file's routes itself, once per start: update NetworkManager, or run systemctl reload nicpersist after the connection comes up", f.Path, c.Root.NM.Version))
			}
		case "route6":
			text, ok := c.Root.Scripts["ifcfg-"+name]
			// From 1.34 NetworkManager reads route6- without IPV6INIT=yes.
			reads := c.Stack == NetworkManager && c.Root.NM.Version != "" && sysroot.VersionAtLeast(c.Root.NM.Version, 1, 33)
			if ok && !reads && !ipv6Init(ifcfgConn{name, keyfile.ParseVars([]byte(text))}) {
				out = append(out, fmt.Sprintf("/%s/ifcfg-%s has no IPV6INIT=yes: ifup-routes, and NetworkManager up to 1.32, do not read /%s then, so only nicpersist.service applies its routes; set IPV6INIT=yes", ScriptsDir, name, f.Path))
			}
		case "rule", "rule6":
			for i, l := range strings.Split(c.Root.Scripts[base], "\n") {
				t := strings.TrimSpace(l)
				if t == "" || strings.HasPrefix(t, "#") || strings.HasPrefix(t, sysroot.Begin) {
					continue
				}
				w := " " + t + " "
				if !strings.Contains(w, " priority ") && !strings.Contains(w, " pref ") && !strings.Contains(w, " preference ") && !strings.Contains(w, " order ") {
					out = append(out, fmt.Sprintf("/%s:%d: %q has no priority: ifup-routes adds it again on every ifup (a duplicate each time), and the kernel numbers it below the last rule, ahead of nicpersist's; give it a priority", f.Path, i+1, t))
				}
			}
		}
	}
	for _, l := range sortedKeys(c.Root.NM.ByIface) {
		if _, ok := ifcfgFor(c, l); ok {
			continue
		}
		for _, conn := range c.Root.NM.ByIface[l] {
			out = append(out, fmt.Sprintf("%s: its NetworkManager connection /%s is a keyfile, which reads no route-%s; render with --target nm (--target auto picks it)", l, conn.Path, l))
		}
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
