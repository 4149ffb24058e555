package distro

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/keyfile"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
)

// NM is the target for NetworkManager with keyfile connections.
const NM = "nm"

// detectNM picks the nm target for --target auto: NetworkManager is enabled
// and serves a profile interface from a keyfile. It runs before the RHEL
// checks, since RHEL 9 creates keyfiles too, and NetworkManager reads no
// route-<if> for a keyfile connection.
func detectNM(f sysroot.Facts) (Choice, bool) {
	if !f.NetworkManager {
		return Choice{}, false
	}
	var names []string
	for name, cs := range f.NM.ByIface {
		for _, c := range cs {
			// A connection only in /run cannot carry a lasting route.
			if c.Dir != sysroot.NMRunDir {
				names = append(names, name+" (/"+c.Path+")")
			}
		}
	}
	if len(names) == 0 {
		return Choice{}, false
	}
	sort.Strings(names)
	return Choice{Target: NM, Reason: "NetworkManager.service is enabled and keyfile connections serve " + strings.Join(names, ", ")}, true
}

// unitRoutes says the unit's batch files route or rule through dev.
func unitRoutes(files []File, dev string) bool {
	for _, f := range files {
		if !strings.HasPrefix(f.Path, Dir+"/ip") || !strings.HasSuffix(f.Path, ".batch") {
			continue
		}
		for _, w := range strings.Fields(string(f.Data)) {
			if w == dev {
				return true
			}
		}
	}
	return false
}

// nmConn is the keyfile nicpersist writes for one connection, and where it
// reads it from.
type nmConn struct {
	sysroot.NMConn
	target  string // the path written: the connection's own, or an /etc copy of a /usr/lib one
	created bool   // target is a copy that render makes
}

// nmConns are the keyfiles that hold an interface's routes: every
// connection that matches it, as any of them may be the one that activates
// (NetworkManager's choice among several depends on its run-time state).
// A connection in /run (an initrd's, or one made with nmcli --temporary)
// is left out: a write there is gone at the next boot, and one to /etc is
// shadowed until then, so the unit keeps that interface's routes.
func nmConns(c Choice, dev string) []nmConn {
	var out []nmConn
	for _, conn := range c.Root.NM.ByIface[dev] {
		switch conn.Dir {
		case sysroot.NMRunDir:
			continue
		case sysroot.NMLibDir:
			// The copy in /etc shadows the vendor's by UUID, whatever its
			// name; a file of that name already there is someone else's.
			target := sysroot.NMEtcDir + "/" + path.Base(conn.Path)
			for _, x := range c.Root.NM.Conns {
				if x.Path == target {
					target = sysroot.NMEtcDir + "/nicpersist-" + path.Base(conn.Path)
				}
			}
			out = append(out, nmConn{conn, target, true})
		default:
			out = append(out, nmConn{conn, conn.Path, false})
		}
	}
	return out
}

// nmHeld says which routes and rules the connections hold natively; the
// unit applies the rest.
func nmHeld(p *plan.Plan, c Choice) (routes, rules map[int]bool) {
	routes, rules = map[int]bool{}, map[int]bool{}
	for i, r := range p.Routes {
		if len(nmConns(c, r.Dev)) > 0 {
			routes[i] = true
		}
	}
	for i, r := range p.Rules {
		if home := ruleHome(p, r); home != "" && len(nmConns(c, home)) > 0 {
			rules[i] = true
		}
	}
	return routes, rules
}

// nmRoute is a route as a keyfile's routeN value and routeN_options.
func nmRoute(r plan.Route) (string, string) {
	v := r.To.String()
	metric := ""
	switch {
	case r.MetricSet:
		metric = strconv.FormatUint(uint64(r.Metric), 10)
	case r.IsMainDefault() && r.Family == plan.V6:
		// The unit's metrics for the preferred default (see README): a
		// route without one would get the connection's route-metric (100
		// and up), which another connection's default may undercut.
		metric = "1"
	case r.IsMainDefault():
		metric = "0"
	}
	switch {
	case r.Via.IsValid() && metric != "":
		v += "," + r.Via.String() + "," + metric
	case r.Via.IsValid():
		v += "," + r.Via.String()
	case metric != "":
		v += ",," + metric
	}
	// An explicit table, main's too: a connection's route-table would
	// otherwise move the route.
	return v, "table=" + strconv.FormatUint(uint64(r.Table), 10)
}

// nmGroup is the keyfile group of a family.
func nmGroup(f plan.Family) string {
	if f == plan.V6 {
		return "ipv6"
	}
	return "ipv4"
}

// nmEntry is one key nicpersist sets.
type nmEntry struct{ group, key, value string }

// nmFiles are the connections' keyfiles with the routes and rules of their
// interface in NetworkManager's own keys. Each keeps every key of the
// user's; the keys nicpersist set are listed in File.Keys so that the
// manifest records them and a later render or uninstall removes exactly
// those.
func nmFiles(p *plan.Plan, c Choice) []File {
	var out []File
	done := map[string]bool{}
	for _, l := range p.Interfaces {
		for _, conn := range nmConns(c, l.Name) {
			if done[conn.target] {
				continue
			}
			done[conn.target] = true
			data, keys := nmEdit(p, c, conn)
			if len(keys) == 0 && !conn.created && len(c.Root.NM.Owned[conn.target]) == 0 {
				continue // nothing of nicpersist's there, before or now
			}
			out = append(out, File{Path: conn.target, Kind: Keyfile, Data: data, Mode: 0o600, Keys: keys, Created: conn.created})
		}
	}
	return out
}

// nmWarnings are what the root's NetworkManager does that keeps a native
// route from being applied.
func nmWarnings(c Choice, files []File) []string {
	var out []string
	names := make([]string, 0, len(c.Root.NM.ByIface))
	for n := range c.Root.NM.ByIface {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		conns := nmConns(c, name)
		for _, conn := range c.Root.NM.ByIface[name] {
			if conn.Dir == sysroot.NMRunDir && len(conns) == 0 && unitRoutes(files, name) {
				out = append(out, fmt.Sprintf("%s: /%s is an in-memory NetworkManager connection (gone at reboot), so nicpersist writes nothing into it and nicpersist.service applies %s's routes and rules once per start; make it persistent (nmcli connection modify %s connection.autoconnect yes) and render again", name, conn.Path, name, conn.UUID))
			}
		}
		if len(conns) > 1 {
			var ps []string
			for _, cn := range conns {
				ps = append(ps, "/"+cn.target)
			}
			out = append(out, fmt.Sprintf("%s: %d NetworkManager connections match it (%s); each gets the routes, as any of them may be the one that activates", name, len(conns), strings.Join(ps, ", ")))
		}
		for _, conn := range conns {
			if conn.created {
				out = append(out, fmt.Sprintf("%s: its connection /%s is the vendor's (read-only); nicpersist writes a copy with the same UUID to /%s, which NetworkManager uses in its place", name, conn.Path, conn.target))
			}
		}
		if why := c.Root.NM.Unmanaged[name]; why != "" && len(conns) > 0 {
			out = append(out, fmt.Sprintf("%s: %s keeps it unmanaged, so NetworkManager never activates its connection and nothing applies its routes; remove it from unmanaged-devices, or (udev) set ENV{NM_UNMANAGED}=\"0\" for it in a rule after 85-nm-unmanaged.rules", name, why))
		}
	}
	for _, f := range files {
		if f.Kind != Keyfile {
			continue
		}
		kf := keyfile.Parse(f.Data)
		for _, g := range []string{"ipv4", "ipv6"} {
			used := false
			for _, k := range f.Keys {
				used = used || strings.HasPrefix(k, g+" ")
			}
			if m, _ := kf.Get(g, "method"); used && (m == "disabled" || m == "ignore") {
				out = append(out, fmt.Sprintf("/%s: %s.method=%s, so NetworkManager applies none of the %s routes and rules nicpersist wrote there; set another method", f.Path, g, m, g))
			}
		}
	}
	var left []string
	for _, f := range files {
		if strings.HasPrefix(f.Path, Dir+"/ip") && strings.HasSuffix(f.Path, ".batch") {
			w := strings.Fields(string(f.Data))
			for i := 0; i+1 < len(w); i++ {
				if (w[i] == "dev" || w[i] == "iif" || w[i] == "oif") && w[i+1] != "lo" && !slices.Contains(left, w[i+1]) {
					left = append(left, w[i+1])
				}
			}
		}
	}
	if len(left) > 0 {
		sort.Strings(left)
		out = append(out, fmt.Sprintf("no keyfile connection nicpersist can write serves %s: nicpersist.service applies their routes and rules, once per start (a re-activation or bounce loses them until systemctl reload nicpersist)", strings.Join(left, ", ")))
	}
	return out
}

// nmEdit returns the connection's keyfile with nicpersist's keys in it,
// and those keys as "group key=value".
func nmEdit(p *plan.Plan, c Choice, conn nmConn) ([]byte, []string) {
	kf := keyfile.Parse(conn.Data)
	// The keys an earlier render set: each goes, unless its value is no
	// longer ours (the user reused the key).
	for _, e := range c.Root.NM.Owned[conn.target] {
		g, kv, _ := strings.Cut(e, " ")
		k, v, _ := strings.Cut(kv, "=")
		if cur, ok := kf.Get(g, k); ok && cur == v {
			kf.Delete(g, k)
		}
	}
	var want []nmEntry
	type item struct {
		list, value, options string
	}
	per := map[string][]item{}
	for _, r := range p.Routes {
		if !matches(c, conn, r.Dev) {
			continue
		}
		v, o := nmRoute(r)
		per[nmGroup(r.Family)] = append(per[nmGroup(r.Family)], item{"route", v, o})
	}
	for _, r := range p.Rules {
		if home := ruleHome(p, r); home != "" && matches(c, conn, home) {
			per[nmGroup(r.Family)] = append(per[nmGroup(r.Family)], item{"routing-rule", r.Args(), ""})
		}
	}
	for _, g := range []string{"ipv4", "ipv6"} {
		items := per[g]
		if len(items) == 0 {
			continue
		}
		// NetworkManager rewrites a keyfile it saves (nmcli connection
		// modify), numbering the routes from 1 again: a key holding
		// exactly one of ours is ours under a new number, and goes, so
		// that the render does not add it twice.
		for _, k := range kf.Keys(g) {
			list, _, ok := listKey(k)
			if !ok {
				continue
			}
			v, _ := kf.Get(g, k)
			o, _ := kf.Get(g, k+"_options")
			for _, it := range items {
				if it.list == list && it.value == v && it.options == o {
					kf.Delete(g, k)
					kf.Delete(g, k+"_options")
					break
				}
			}
		}
		next := map[string]int{}
		for _, k := range kf.Keys(g) {
			if list, n, ok := listKey(k); ok && n >= next[list] {
				next[list] = n + 1
			}
		}
		for _, it := range items {
			if next[it.list] == 0 {
				next[it.list] = 1
			}
			key := it.list + strconv.Itoa(next[it.list])
			next[it.list]++
			want = append(want, nmEntry{g, key, it.value})
			if it.options != "" {
				want = append(want, nmEntry{g, key + "_options", it.options})
			}
		}
	}
	var keys []string
	for _, e := range want {
		kf.Set(e.group, e.key, e.value)
		keys = append(keys, e.group+" "+e.key+"="+e.value)
	}
	return kf.Bytes(), keys
}

// matches says the connection is one of those serving dev.
func matches(c Choice, conn nmConn, dev string) bool {
	for _, x := range c.Root.NM.ByIface[dev] {
		if x.Path == conn.Path {
			return true
		}
	}
	return false
}

// listKey splits a keyfile list key: route3, routes3 and route (index 0)
// are of list "route", routing-rule2 of "routing-rule". Options keys and
// addresses are not lists nicpersist numbers.
func listKey(k string) (string, int, bool) {
	for _, list := range []string{"routing-rule", "routes", "route"} {
		rest, ok := strings.CutPrefix(k, list)
		if !ok {
			continue
		}
		if list == "routes" {
			list = "route"
		}
		if rest == "" {
			return list, 0, true
		}
		n, err := strconv.Atoi(rest)
		if err != nil || n < 0 {
			return "", 0, false
		}
		return list, n, true
	}
	return "", 0, false
}
