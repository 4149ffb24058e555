package sysroot

import (
	"net/netip"
	"path"
	"sort"
	"strconv"
	"strings"
)

// NetworkDirs are the directories systemd-networkd reads .network files
// from, highest precedence first: a file in an earlier directory hides a
// file of the same name in a later one (systemd.network(5)).
var NetworkDirs = []string{"etc/systemd/network", "run/systemd/network", "usr/local/lib/systemd/network", "usr/lib/systemd/network", "lib/systemd/network"}

// NetworkFile is one .network file networkd would read, as far as choosing
// it for an interface and seeing its default routes need.
type NetworkFile struct {
	Path string // under the root, as networkd would open it
	// Names are the [Match] Name= patterns, "!" negations included; empty
	// when the file has no Name=.
	Names []string
	// Other are the other [Match] keys (MACAddress=, Driver=, ...), whose
	// truth depends on the hardware and cannot be read from the root.
	Other []string
	// Defaults are the static main-table default routes it configures:
	// [Network] Gateway= and gateway-only [Route] sections.
	Defaults []StaticDefault
}

// StaticDefault is a default route a .network file adds itself.
type StaticDefault struct {
	Gateway netip.Addr
	Metric  uint32 // networkd's default: 0 for IPv4, 1024 for IPv6
	Key     string // where it is written, for messages: "[Network] Gateway=172.22.5.65"
}

// readNetworkFiles lists the .network files networkd would consider, in the
// order it tries them: by file name, whatever the directory. A masked file
// (empty, or a link to /dev/null) hides the others of its name and is not
// listed.
func readNetworkFiles(t Tree) []NetworkFile {
	seen := map[string]bool{}
	var names []string
	where := map[string]string{}
	for _, d := range NetworkDirs {
		entries, _ := t.ReadDir(d)
		for _, n := range entries {
			if !strings.HasSuffix(n, ".network") || seen[n] {
				continue
			}
			seen[n] = true
			names = append(names, n)
			where[n] = d + "/" + n
		}
	}
	sort.Strings(names)
	var out []NetworkFile
	for _, n := range names {
		b, err := t.ReadFile(where[n])
		if err != nil || len(strings.TrimSpace(string(b))) == 0 {
			continue // masked, or unreadable: networkd would skip it too
		}
		f := parseNetwork(string(b))
		f.Path = where[n]
		out = append(out, f)
	}
	return out
}

// parseNetwork reads the keys of a .network file that matter here. Drop-ins
// of the file are not read: a Name= or a Gateway= there is rare enough that
// the lint does not chase it.
func parseNetwork(s string) NetworkFile {
	var f NetworkFile
	section := ""
	type route struct{ gw, dst, metric, table string }
	var routes []route
	var cur *route
	s = strings.ReplaceAll(s, "\\\n", " ")
	for _, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		if l == "" || l[0] == '#' || l[0] == ';' {
			continue
		}
		if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
			section = l[1 : len(l)-1]
			cur = nil
			if section == "Route" {
				routes = append(routes, route{})
				cur = &routes[len(routes)-1]
			}
			continue
		}
		k, v, ok := strings.Cut(l, "=")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch {
		case section == "Match" && k == "Name":
			if v == "" {
				f.Names = nil
			} else {
				f.Names = append(f.Names, strings.Fields(v)...)
			}
		case section == "Match":
			f.Other = append(f.Other, k+"=")
		case section == "Network" && k == "Gateway":
			if g, err := netip.ParseAddr(v); err == nil {
				f.Defaults = append(f.Defaults, StaticDefault{Gateway: g, Metric: defaultMetric(g), Key: "[Network] Gateway=" + v})
			}
		case section == "Route" && cur != nil:
			switch k {
			case "Gateway":
				cur.gw = v
			case "Destination":
				cur.dst = v
			case "Metric":
				cur.metric = v
			case "Table":
				cur.table = v
			}
		}
	}
	for _, r := range routes {
		g, err := netip.ParseAddr(r.gw)
		if err != nil || (r.dst != "" && !strings.HasSuffix(r.dst, "/0")) || (r.table != "" && r.table != "main" && r.table != "254") {
			continue
		}
		d := StaticDefault{Gateway: g, Metric: defaultMetric(g), Key: "[Route] Gateway=" + r.gw}
		if r.metric != "" {
			m, err := strconv.ParseUint(r.metric, 10, 32)
			if err != nil {
				continue
			}
			d.Metric = uint32(m)
			d.Key += " Metric=" + r.metric
		}
		f.Defaults = append(f.Defaults, d)
	}
	return f
}

func defaultMetric(g netip.Addr) uint32 {
	if g.Is4() {
		return 0
	}
	return 1024
}

// MatchesName says whether the file's Name= patterns accept the interface
// name, as networkd's strv_fnmatch_or_empty with "!" negations does: a file
// without Name= accepts every name.
func (f NetworkFile) MatchesName(name string) bool {
	if len(f.Names) == 0 {
		return true
	}
	var pos, neg bool
	for _, p := range f.Names {
		if strings.HasPrefix(p, "!") {
			if ok, _ := path.Match(p[1:], name); ok {
				neg = true
			}
			continue
		}
		pos = true
		if ok, _ := path.Match(p, name); ok {
			return !neg && !f.negated(name)
		}
	}
	// Only negations: every name they do not exclude.
	return !pos && !neg
}

func (f NetworkFile) negated(name string) bool {
	for _, p := range f.Names {
		if strings.HasPrefix(p, "!") {
			if ok, _ := path.Match(p[1:], name); ok {
				return true
			}
		}
	}
	return false
}

// NetworkFor returns the .network file networkd applies to the interface:
// the first, in networkd's order, whose Name= accepts it. A file that
// matches only by keys that cannot be checked offline (MACAddress= and the
// like, without Name=) is passed over and returned as unsure, so the caller
// can say so.
func (fs Facts) NetworkFor(name string) (match *NetworkFile, unsure []string) {
	for i := range fs.NetworkFiles {
		f := &fs.NetworkFiles[i]
		if !f.MatchesName(name) {
			continue
		}
		if len(f.Names) == 0 && len(f.Other) > 0 {
			unsure = append(unsure, "/"+f.Path)
			continue
		}
		return f, unsure
	}
	return nil, unsure
}

// Stacks is what the root says about the network stacks of Debian and
// Ubuntu: which is installed and enabled, and their configuration files.
type Stacks struct {
	// Networkd says systemd-networkd.service is enabled.
	Networkd bool
	// NetworkFiles are the .network files, in networkd's order.
	NetworkFiles []NetworkFile
	// Netplan says netplan is installed; NetplanFiles are its YAML files
	// (etc/netplan, run/netplan, lib/netplan), in the order it reads them.
	Netplan      bool
	NetplanFiles []string
	// NetplanDefs are the device definitions of NetplanFiles but
	// nicpersist's own (NetplanOwn), in netplan's order.
	NetplanDefs []NetplanDef
	// Ifupdown says ifupdown is installed and networking.service enabled;
	// Ifaces maps each interface with an iface stanza to its file.
	Ifupdown bool
	Ifaces   map[string]string
}

func readStacks(t Tree) Stacks {
	s := Stacks{NetworkFiles: readNetworkFiles(t)}
	for _, w := range []string{"etc/systemd/system/multi-user.target.wants/systemd-networkd.service", "etc/systemd/system/dbus-org.freedesktop.network1.service"} {
		s.Networkd = s.Networkd || t.Exists(w)
	}
	s.Netplan = t.Exists("usr/sbin/netplan") || t.Exists("usr/share/netplan/netplan.script")
	seen := map[string]bool{}
	var names []string
	where := map[string]string{}
	for _, d := range NetplanDirs {
		entries, _ := t.ReadDir(d)
		for _, n := range entries {
			if !strings.HasSuffix(n, ".yaml") || seen[n] {
				continue
			}
			seen[n] = true
			names = append(names, n)
			where[n] = d + "/" + n
		}
	}
	sort.Strings(names)
	for _, n := range names {
		s.NetplanFiles = append(s.NetplanFiles, where[n])
		if where[n] != NetplanOwn {
			s.NetplanDefs = append(s.NetplanDefs, readNetplan(t, []string{where[n]})...)
		}
	}
	s.Ifupdown = (t.Exists("usr/sbin/ifup") || t.Exists("sbin/ifup")) &&
		t.Exists("etc/systemd/system/multi-user.target.wants/networking.service")
	s.Ifaces = readIfaces(t)
	return s
}

// NetplanDirs are where netplan reads YAML, highest precedence first: a file
// in /etc hides one of the same name in /run and /lib.
var NetplanDirs = []string{"etc/netplan", "run/netplan", "lib/netplan"}

// NetplanOwn is the netplan file nicpersist renders. 90 sorts it after
// cloud-init's 50-cloud-init.yaml and the installers' 00- and 01- files, so
// its routes merge into their definitions.
const NetplanOwn = "etc/netplan/90-nicpersist.yaml"
