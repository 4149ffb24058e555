package importer

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/nicpersist/nicpersist/render/internal/plan"
)

// script is an rc.local as it runs: the state it has made so far.
type script struct {
	st     *State
	name   string // the file as messages name it
	env    Env
	vars   map[string]string
	byName map[string]uint32 // table names, rt_tables and the file's own
	// prios holds each family's rule priorities, the kernel's own rules
	// included, for the priority the kernel gives a rule added without one.
	prios map[plan.Family][]uint32
	// conf holds the sysctl.conf files the file edits: their text now and
	// as the file found it.
	conf    map[string]*confFile
	exit    *Line  // the line that ended the script
	exitWhy string // how it ended it
	// errexit is set -e: a command that fails ends the script, unless
	// guarded (cmd || true).
	errexit, guarded bool
}

type confFile struct {
	orig, now string
	missing   bool
	// keys the file edits in it (by sed or an append), in order: what a
	// later sysctl -p sets on the file's behalf. The other lines the boot
	// sets anyway.
	keys []string
}

func (c *confFile) touch(line string) {
	k := confKey(line)
	if k != "" && !slices.Contains(c.keys, k) {
		c.keys = append(c.keys, k)
	}
}

// confKey is the key of a sysctl.conf line, "" for a comment or blank.
func confKey(line string) string {
	line = strings.TrimSpace(line)
	if line == "" || line[0] == '#' || line[0] == ';' {
		return ""
	}
	k, _, found := strings.Cut(strings.TrimPrefix(line, "-"), "=")
	if !found {
		return ""
	}
	return strings.ReplaceAll(strings.TrimSpace(k), "/", ".")
}

// ParseRCLocal works out the state that running src (an rc.local named
// name) makes. The error is a *SyntaxError when no shell would read it.
func ParseRCLocal(name string, src []byte, env Env) (*State, error) {
	lines, err := logicalLines(string(src))
	if err != nil {
		return nil, err
	}
	st := &State{Names: map[uint32]string{}, DelDefault: map[plan.Family]*Line{}, FileAddrs: map[string][]netip.Prefix{}}
	s := &script{
		st: st, name: name, env: env, vars: map[string]string{},
		byName: map[string]uint32{},
		prios:  map[plan.Family][]uint32{plan.V4: {0, 32766, 32767}, plan.V6: {0, 32766}},
		conf:   map[string]*confFile{},
	}
	s.readTables()
	for _, l := range lines {
		s.logical(l)
	}
	return st, nil
}

// readTables reads the table names ip knows before the file runs.
func (s *script) readTables() {
	for id, n := range map[uint32]string{plan.TableMain: "main", plan.TableLocal: "local", plan.TableDefault: "default", 0: "unspec"} {
		s.byName[n] = id
	}
	if s.env.ReadFile == nil {
		return
	}
	// iproute2 reads /etc's file, else (from 6.5) the distribution's, then
	// the rt_tables.d drop-ins of both.
	for _, f := range []string{"/etc/iproute2/rt_tables", "/usr/share/iproute2/rt_tables", "/usr/lib/iproute2/rt_tables"} {
		if b, err := s.env.ReadFile(f); err == nil {
			s.rtTables(string(b))
			break
		}
	}
	if s.env.Glob == nil {
		return
	}
	for _, dir := range []string{"/usr/share/iproute2/rt_tables.d", "/usr/lib/iproute2/rt_tables.d", "/etc/iproute2/rt_tables.d"} {
		files, _ := s.env.Glob(dir + "/*.conf")
		for _, f := range files {
			if b, err := s.env.ReadFile(f); err == nil {
				s.rtTables(string(b))
			}
		}
	}
}

func (s *script) rtTables(text string) {
	for _, l := range strings.Split(text, "\n") {
		if i := strings.IndexByte(l, '#'); i >= 0 {
			l = l[:i]
		}
		f := strings.Fields(l)
		if len(f) < 2 {
			continue
		}
		id, err := strconv.ParseUint(f[0], 0, 32)
		if err != nil {
			continue
		}
		s.byName[f[1]] = uint32(id)
		if !isKernelTable(uint32(id)) {
			s.st.Names[uint32(id)] = f[1]
		}
	}
}

func isKernelTable(id uint32) bool {
	return id == 0 || id == plan.TableMain || id == plan.TableLocal || id == plan.TableDefault
}

// fail records a command that fails when the file runs: under set -e,
// unless guarded, the file stops there.
func (s *script) fail(ln *Line, reason string) {
	s.st.skip(ln, reason)
	if s.errexit && !s.guarded {
		s.exit, s.exitWhy = ln, "set -e stops the file at "+ln.Where+", which fails"
	}
}

func (s *script) where(l logical) string { return fmt.Sprintf("%s:%d", s.name, l.line) }

// logical runs one line of the file.
func (s *script) logical(l logical) {
	text := strings.TrimSpace(l.text)
	if text == "" || strings.HasPrefix(text, "#") {
		if l.line == 1 && strings.HasPrefix(text, "#!") && slices.Contains(strings.Fields(text)[1:], "-e") {
			s.errexit = true // #!/bin/sh -e
		}
		return // comments and the shebang
	}
	ln := &Line{Where: s.where(l), Text: oneLine(text)}
	if s.exit != nil {
		s.st.skip(ln, fmt.Sprintf("never runs: %s", s.exitWhy))
		return
	}
	words, err := split(text, s.vars)
	if err != nil {
		s.st.skip(ln, "not carried over: the line "+strings.TrimPrefix(err.Error(), "line 0: "))
		return
	}
	// Commands joined by ; and && run in turn here; "|| true" only hides
	// a failure, which the state does not see.
	var cmd []word
	for i := 0; i <= len(words); i++ {
		if i < len(words) && !words[i].op {
			cmd = append(cmd, words[i])
			continue
		}
		if i < len(words) {
			switch op := words[i].s; {
			case op == ";" || op == "&&":
			case op == "||" && i+1 < len(words) && (words[i+1].s == "true" || words[i+1].s == ":") && (i+2 == len(words) || words[i+2].op):
				i++
				s.guarded = true
			case strings.ContainsAny(op, "<>"):
				cmd = append(cmd, words[i])
				continue
			default:
				s.st.skip(ln, fmt.Sprintf("not carried over: import does not follow %q in a line", op))
				return
			}
		}
		if len(cmd) > 0 {
			ok := s.command(ln, cmd)
			s.guarded = false
			if !ok {
				return
			}
		}
		cmd = nil
	}
}

// oneLine keeps a line printable in a one-line comment.
func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	var b strings.Builder
	for _, r := range s {
		if !unicode.IsPrint(r) || r == utf8.RuneError {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Compiled on first use: package init runs at every start of the binary
// (the unit at boot, verify), most of which never need it.
var assignRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^([A-Za-z_][A-Za-z0-9_]*)=(.*)$`) })

// command runs one command; false ends the line (the reason is recorded).
func (s *script) command(ln *Line, cmd []word) bool {
	// Redirections: /dev/null is nothing; a file is the command's output.
	var args []string
	var out, mode string
	for i := 0; i < len(cmd); i++ {
		w := cmd[i]
		if !w.op {
			args = append(args, w.s)
			continue
		}
		if strings.Contains(w.s, ">&") && len(w.s) > strings.Index(w.s, ">&")+2 {
			continue // 2>&1: a descriptor duplicated, no file
		}
		if i+1 >= len(cmd) || cmd[i+1].op {
			s.st.skip(ln, fmt.Sprintf("not carried over: %q without a file", w.s))
			return false
		}
		target := cmd[i+1].s
		i++
		if target == "/dev/null" || strings.HasPrefix(w.s, "2") || w.s == "<" {
			continue
		}
		out, mode = target, strings.TrimLeft(w.s, "0123456789&")
	}
	if len(args) == 0 {
		return true
	}
	// Variable assignments before a command apply to it only.
	n := 0
	for n < len(args) && assignRE().MatchString(args[n]) {
		n++
	}
	if n == len(args) {
		for _, a := range args {
			m := assignRE().FindStringSubmatch(a)
			s.vars[m[1]] = m[2]
		}
		return true
	}
	args = args[n:]
	switch path.Base(args[0]) {
	case "export", "readonly", "local":
		for _, a := range args[1:] {
			if m := assignRE().FindStringSubmatch(a); m != nil {
				s.vars[m[1]] = m[2]
			}
		}
		return true
	case "set":
		for i, a := range args[1:] {
			switch {
			case strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "--") && strings.Contains(a, "e"):
				s.errexit = true
			case strings.HasPrefix(a, "+") && strings.Contains(a, "e"):
				s.errexit = false
			case a == "errexit" && i > 0 && (args[i] == "-o" || args[i] == "+o"):
				s.errexit = args[i] == "-o"
			}
		}
		return true
	case "true", ":", "sleep", "logger":
		return true // no state: pauses, logging
	case "touch":
		if len(args) == 2 && args[1] == "/var/lock/subsys/local" {
			return true // rc.local's own lock file on RHEL
		}
	case "exit":
		s.exit, s.exitWhy = ln, "it comes after the exit at "+ln.Where
		return false
	case "ip":
		return s.ip(ln, args[1:])
	case "route":
		return s.netTools(ln, args[1:])
	case "iptables", "ip6tables", "iptables-legacy", "iptables-nft", "ip6tables-legacy", "ip6tables-nft":
		fam := plan.V4
		if strings.HasPrefix(path.Base(args[0]), "ip6") {
			fam = plan.V6
		}
		return s.iptables(ln, fam, args[1:])
	case "sysctl":
		return s.sysctl(ln, args[1:])
	case "echo", "printf":
		return s.echo(ln, args, out, mode)
	case "sed":
		return s.sed(ln, args[1:])
	}
	s.st.skip(ln, fmt.Sprintf("not carried over: %s is not a command import knows; it has no profile key", path.Base(args[0])))
	return false
}

// --- ip ---

// matches is iproute2's abbreviation rule: w is a prefix of the keyword.
func matches(w, keyword string) bool { return w != "" && strings.HasPrefix(keyword, w) }

func (s *script) ip(ln *Line, args []string) bool {
	var fam plan.Family
	for len(args) > 0 && strings.HasPrefix(args[0], "-") {
		switch a := args[0]; {
		case a == "-4":
			fam = plan.V4
		case a == "-6":
			fam = plan.V6
		case a == "-f" || a == "-family":
			if len(args) < 2 {
				s.st.skip(ln, "not carried over: -f without a family")
				return false
			}
			switch args[1] {
			case "inet":
				fam = plan.V4
			case "inet6":
				fam = plan.V6
			default:
				s.st.skip(ln, fmt.Sprintf("not carried over: family %s has no profile key", args[1]))
				return false
			}
			args = args[1:]
		case a == "-s" || a == "-d" || a == "-details" || a == "-stats" || a == "-N" || a == "-c" || a == "-br":
		default:
			s.st.skip(ln, fmt.Sprintf("not carried over: ip option %s is not one import follows", a))
			return false
		}
		args = args[1:]
	}
	if len(args) == 0 {
		s.st.skip(ln, "not carried over: ip without an object")
		return false
	}
	obj, rest := args[0], args[1:]
	switch {
	case matches(obj, "address") || obj == "addr":
		return s.ipAddr(ln, rest)
	case matches(obj, "route"):
		return s.ipRoute(ln, fam, rest)
	case matches(obj, "rule") && len(obj) >= 2:
		return s.ipRule(ln, fam, rest)
	}
	s.st.skip(ln, fmt.Sprintf("not carried over: ip %s has no profile key (nicpersist steers traffic; it does not configure links, addresses or neighbours)", obj))
	return false
}

func isShow(verb string) bool {
	return verb == "" || matches(verb, "show") || matches(verb, "list") || verb == "ls" || matches(verb, "get")
}

// ipAddr reads addresses the file assigns: nicpersist does not assign
// addresses, but the interface's address is what a profile needs.
func (s *script) ipAddr(ln *Line, args []string) bool {
	if len(args) == 0 || isShow(args[0]) {
		return true
	}
	if (args[0] == "add" || args[0] == "replace") && len(args) >= 2 {
		if p, err := netip.ParsePrefix(args[1]); err == nil {
			for i := 2; i+1 < len(args); i++ {
				if args[i] == "dev" {
					s.st.FileAddrs[args[i+1]] = append(s.st.FileAddrs[args[i+1]], p)
				}
			}
		}
	}
	s.st.skip(ln, "not carried over: nicpersist does not assign addresses (DHCP or the cloud does); the address is used for the interface's entry")
	return false
}

// parseDest reads a route's destination: default, a prefix or a bare
// address (a host route).
func parseDest(w string, fam plan.Family) (netip.Prefix, bool) {
	switch w {
	case "default", "all", "any":
		if fam == 0 {
			fam = plan.V4
		}
		return fam.Default(), true
	}
	if p, err := netip.ParsePrefix(w); err == nil {
		return p.Masked(), p == p.Masked()
	}
	if a, err := netip.ParseAddr(w); err == nil && a.Zone() == "" {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

func famOf(a netip.Addr) plan.Family {
	if a.Is4() {
		return plan.V4
	}
	return plan.V6
}

// table resolves a table argument as ip does: a name from rt_tables or a
// number.
func (s *script) table(w string) (uint32, bool) {
	if id, ok := s.byName[w]; ok {
		return id, true
	}
	id, err := strconv.ParseUint(w, 0, 32)
	return uint32(id), err == nil
}

func (s *script) ipRoute(ln *Line, fam plan.Family, args []string) bool {
	if len(args) == 0 || isShow(args[0]) {
		return true
	}
	verb := args[0]
	switch {
	case verb == "add" || verb == "a" || verb == "ad":
		verb = "add"
	case matches(verb, "append") || matches(verb, "prepend"):
		verb = "add"
	case matches(verb, "replace"), matches(verb, "change"), verb == "chg":
		verb = "replace"
	case matches(verb, "delete") || verb == "del":
		verb = "del"
	default:
		s.st.skip(ln, fmt.Sprintf("not carried over: ip route %s is not a change import can carry", verb))
		return false
	}
	r := Route{Fam: fam, Table: plan.TableMain, From: ln}
	var dstSet, viaSet, devSet, metricSet bool
	var extra []string
	var src netip.Addr
	var onlink bool
	next := func(i int) (string, bool) {
		if i+1 >= len(args) {
			s.st.skip(ln, fmt.Sprintf("not carried over: %s without a value", args[i]))
			return "", false
		}
		return args[i+1], true
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch a {
		case "via", "dev", "oif", "table", "metric", "preference", "priority", "src", "proto", "protocol", "scope", "to", "from":
			v, ok := next(i)
			if !ok {
				return false
			}
			i++
			switch a {
			case "via":
				if v == "inet" || v == "inet6" {
					if v, ok = next(i); !ok {
						return false
					}
					i++
				}
				g, err := netip.ParseAddr(v)
				if err != nil {
					s.st.skip(ln, fmt.Sprintf("not carried over: via %s is not an address", v))
					return false
				}
				r.Via, viaSet = g, true
			case "dev", "oif":
				r.Dev, devSet = v, true
			case "table":
				t, ok := s.table(v)
				if !ok {
					s.fail(ln, fmt.Sprintf("not carried over: table %q is neither a number nor a name in rt_tables, so ip refuses the line", v))
					return false
				}
				r.Table = t
			case "metric", "preference", "priority":
				m, err := strconv.ParseUint(v, 0, 32)
				if err != nil {
					s.st.skip(ln, fmt.Sprintf("not carried over: %s %s is not a number", a, v))
					return false
				}
				r.Metric, r.MetricSet, metricSet = uint32(m), true, true
			case "src":
				src, _ = netip.ParseAddr(v)
				extra = append(extra, "src "+v)
			case "proto", "protocol":
				s.st.Notes = append(s.st.Notes, fmt.Sprintf("%s: proto %s is not carried over: the routes nicpersist adds have proto %d, so that it removes only its own", ln.Where, v, plan.Proto))
			case "scope":
				if (v == "link" && !viaSet) || v == "global" || v == "universe" {
					continue // what the kernel would pick anyway
				}
				extra = append(extra, "scope "+v)
			case "to", "from":
				if a == "from" {
					extra = append(extra, "from "+v)
					continue
				}
				d, ok := parseDest(v, fam)
				if !ok {
					s.st.skip(ln, fmt.Sprintf("not carried over: %s is not a destination ip reads as a network", v))
					return false
				}
				r.To, dstSet = d, true
			}
		case "onlink":
			onlink = true
		case "unicast":
		case "blackhole", "unreachable", "prohibit", "throw", "local", "broadcast", "multicast", "nat", "anycast":
			if !dstSet {
				s.st.skip(ln, fmt.Sprintf("not carried over: a %s route has no profile key", a))
				return false
			}
			extra = append(extra, a)
		case "nexthop":
			s.st.skip(ln, "not carried over: a multipath route (nexthop) has no profile key")
			return false
		default:
			if !dstSet {
				d, ok := parseDest(a, fam)
				if !ok {
					s.st.skip(ln, fmt.Sprintf("not carried over: %q is not a destination ip reads as a network (host bits set?)", a))
					return false
				}
				r.To, dstSet = d, true
				continue
			}
			s.st.skip(ln, fmt.Sprintf("not carried over: route attribute %q has no profile key", a))
			return false
		}
	}
	if !dstSet {
		s.st.skip(ln, "not carried over: a route without a destination")
		return false
	}
	// The family: the option, else the destination's, else via's.
	dfam := famOf(r.To.Addr())
	if r.To.Bits() == 0 && (args[1] == "default" || hasWord(args, "default")) && fam == 0 && viaSet {
		dfam = famOf(r.Via)
		r.To = dfam.Default()
	}
	if fam != 0 && fam != dfam {
		s.st.skip(ln, fmt.Sprintf("not carried over: %s is not %s", dest(r.To), fam))
		return false
	}
	r.Fam = dfam
	if viaSet && famOf(r.Via) != r.Fam {
		s.st.skip(ln, fmt.Sprintf("not carried over: via %s is not %s like %s (a route via another family has no profile key)", r.Via, r.Fam, dest(r.To)))
		return false
	}
	if r.Table == plan.TableLocal || r.Table == plan.TableDefault || r.Table == 0 {
		s.st.skip(ln, fmt.Sprintf("not carried over: table %d is the kernel's; the profile cannot hold routes there", r.Table))
		return false
	}
	// An on-link route with src shows the interface's address.
	if src.IsValid() && !viaSet && devSet && r.To.Contains(src) && r.To.Bits() > 0 {
		s.st.FileAddrs[r.Dev] = append(s.st.FileAddrs[r.Dev], netip.PrefixFrom(src, r.To.Bits()))
	}
	if verb == "del" {
		return s.delRoute(ln, r, viaSet, devSet, metricSet)
	}
	if !viaSet && !devSet {
		s.st.skip(ln, "not carried over: a route with neither via nor dev")
		return false
	}
	if len(extra) > 0 {
		s.st.skip(ln, fmt.Sprintf("not carried over: %s has no profile key", strings.Join(extra, ", ")))
		return false
	}
	if onlink {
		s.st.Notes = append(s.st.Notes, fmt.Sprintf("%s: onlink is not carried over: a profile route's via must be inside the interface's subnet, where onlink changes nothing", ln.Where))
	}
	return s.addRoute(ln, r, verb == "replace")
}

func hasWord(args []string, w string) bool { return slices.Contains(args, w) }

func dest(p netip.Prefix) string {
	if p.Bits() == 0 {
		return "default"
	}
	return p.String()
}

// addRoute adds or replaces a route in the state, as the kernel would.
func (s *script) addRoute(ln *Line, r Route, replace bool) bool {
	for i, old := range s.st.Routes {
		if old.key() == r.key() {
			if !replace {
				s.fail(ln, fmt.Sprintf("not carried over: %s already made this route, so ip refuses it (File exists)", old.From.Where))
				return false
			}
			s.st.Routes[i] = r
			return true
		}
	}
	s.st.Routes = append(s.st.Routes, r)
	return true
}

// delRoute deletes the first route that matches what the line gives.
func (s *script) delRoute(ln *Line, r Route, viaSet, devSet, metricSet bool) bool {
	for i, old := range s.st.Routes {
		if old.Fam == r.Fam && old.Table == r.Table && old.To == r.To &&
			(!viaSet || old.Via == r.Via) && (!devSet || old.Dev == r.Dev) && (!metricSet || old.Metric == r.Metric) {
			s.st.Routes = slices.Delete(s.st.Routes, i, i+1)
			return true
		}
	}
	if r.Table == plan.TableMain && r.To.Bits() == 0 {
		s.st.DelDefault[r.Fam] = ln
		return true
	}
	s.st.skip(ln, "not carried over: it deletes a route the file did not add; nicpersist adds routes and removes only its own")
	return false
}

// --- ip rule ---

func (s *script) ipRule(ln *Line, fam plan.Family, args []string) bool {
	if len(args) == 0 || isShow(args[0]) {
		return true
	}
	verb := args[0]
	switch {
	case verb == "add" || verb == "a" || verb == "ad":
		verb = "add"
	case matches(verb, "delete") || verb == "del":
		verb = "del"
	default:
		s.st.skip(ln, fmt.Sprintf("not carried over: ip rule %s is not a change import can carry", verb))
		return false
	}
	r := Rule{Fam: fam, Src: ln}
	prioSet, tableSet := false, false
	var ruleFam plan.Family
	setFam := func(f plan.Family) bool {
		if ruleFam != 0 && ruleFam != f {
			s.st.skip(ln, "not carried over: it mixes IPv4 and IPv6")
			return false
		}
		ruleFam = f
		return true
	}
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch a {
		case "from", "to", "iif", "dev", "oif", "fwmark", "pref", "priority", "preference", "order", "table", "lookup", "protocol", "proto":
			if i+1 >= len(args) {
				s.st.skip(ln, fmt.Sprintf("not carried over: %s without a value", a))
				return false
			}
			v := args[i+1]
			i++
			switch a {
			case "from", "to":
				if v == "all" {
					continue
				}
				p, err := netip.ParsePrefix(v)
				if err != nil {
					ad, aerr := netip.ParseAddr(v)
					if aerr != nil {
						s.st.skip(ln, fmt.Sprintf("not carried over: %s %s is not an address or network", a, v))
						return false
					}
					p = netip.PrefixFrom(ad, ad.BitLen())
				}
				if !setFam(famOf(p.Addr())) {
					return false
				}
				// The kernel keeps the prefix and masks the address.
				if a == "from" {
					r.From = p.Masked()
				} else {
					r.To = p.Masked()
				}
			case "iif", "dev":
				r.IIF = v
			case "oif":
				r.OIF = v
			case "fwmark":
				m, ok := fwmark(v)
				if !ok {
					s.st.skip(ln, fmt.Sprintf("not carried over: fwmark %s is not a mark[/mask]", v))
					return false
				}
				r.FWMark = m
			case "pref", "priority", "preference", "order":
				p, err := strconv.ParseUint(v, 0, 32)
				if err != nil {
					s.st.skip(ln, fmt.Sprintf("not carried over: %s %s is not a number", a, v))
					return false
				}
				r.Prio, prioSet = uint32(p), true
			case "table", "lookup":
				t, ok := s.table(v)
				if !ok {
					s.fail(ln, fmt.Sprintf("not carried over: table %q is neither a number nor a name in rt_tables, so ip refuses the line", v))
					return false
				}
				r.Table, tableSet = t, true
			case "protocol", "proto":
				s.st.Notes = append(s.st.Notes, fmt.Sprintf("%s: rule protocol %s is not carried over (it does not change what the rule matches)", ln.Where, v))
			}
		default:
			s.st.skip(ln, fmt.Sprintf("not carried over: rule selector or action %q has no profile key", a))
			return false
		}
	}
	if fam != 0 && ruleFam != 0 && fam != ruleFam {
		s.st.skip(ln, fmt.Sprintf("not carried over: its addresses are not %s", fam))
		return false
	}
	if ruleFam == 0 {
		ruleFam = fam
	}
	if ruleFam == 0 {
		ruleFam = plan.V4
	}
	r.Fam = ruleFam
	if verb == "del" {
		for i, old := range s.st.Rules {
			if old.Fam == r.Fam && (!prioSet || old.Prio == r.Prio) && (!r.From.IsValid() || old.From == r.From) && (!r.To.IsValid() || old.To == r.To) &&
				(r.IIF == "" || old.IIF == r.IIF) && (r.OIF == "" || old.OIF == r.OIF) && (r.FWMark == "" || old.FWMark == r.FWMark) && (!tableSet || old.Table == r.Table) {
				s.st.Rules = slices.Delete(s.st.Rules, i, i+1)
				s.unprio(r.Fam, old.Prio)
				return true
			}
		}
		s.st.skip(ln, "not carried over: it deletes a rule the file did not add; nicpersist adds rules and removes only its own")
		return false
	}
	if !tableSet {
		s.st.skip(ln, "not carried over: a rule without table/lookup (the profile's rules look up a table)")
		return false
	}
	if isKernelTable(r.Table) && r.Table != plan.TableMain {
		s.st.skip(ln, fmt.Sprintf("not carried over: a rule to the kernel's table %d has no profile key", r.Table))
		return false
	}
	if !r.From.IsValid() && !r.To.IsValid() && r.IIF == "" && r.OIF == "" && r.FWMark == "" {
		s.st.skip(ln, "not carried over: a rule without a selector catches all traffic; the profile refuses it")
		return false
	}
	if !prioSet {
		// fib_default_rule_pref: one less than the second rule's priority,
		// when that is not 0.
		l := s.prios[r.Fam]
		if len(l) >= 2 && l[1] > 0 {
			r.Prio = l[1] - 1
		}
		r.PrioNote = fmt.Sprintf("%s gives no priority: the kernel gave it %d when the file ran", ln.Where, r.Prio)
	} else {
		for _, old := range s.st.Rules {
			if old.Fam == r.Fam && old.Prio == r.Prio && old.From == r.From && old.To == r.To && old.IIF == r.IIF && old.OIF == r.OIF && old.FWMark == r.FWMark && old.Table == r.Table {
				s.fail(ln, fmt.Sprintf("not carried over: %s already made this rule, so ip refuses it (File exists)", old.Src.Where))
				return false
			}
		}
	}
	l := append(s.prios[r.Fam], r.Prio)
	slices.Sort(l)
	s.prios[r.Fam] = l
	s.st.Rules = append(s.st.Rules, r)
	return true
}

func (s *script) unprio(f plan.Family, p uint32) {
	if i := slices.Index(s.prios[f], p); i >= 0 {
		s.prios[f] = slices.Delete(s.prios[f], i, i+1)
	}
}

// fwmark canonicalises a mark as the profile writes it.
func fwmark(v string) (string, bool) {
	mark, mask, hasMask := strings.Cut(v, "/")
	m, err := strconv.ParseUint(mark, 0, 32)
	if err != nil {
		return "", false
	}
	out := fmt.Sprintf("0x%x", m)
	if hasMask {
		k, err := strconv.ParseUint(mask, 0, 32)
		if err != nil {
			return "", false
		}
		if k != 0xffffffff {
			out += fmt.Sprintf("/0x%x", k)
		}
	}
	return out, true
}

// --- net-tools route ---

func (s *script) netTools(ln *Line, args []string) bool {
	fam := plan.V4
	for len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "-net" && args[0] != "-host" {
		switch args[0] {
		case "-A":
			if len(args) < 2 || (args[1] != "inet" && args[1] != "inet6") {
				s.st.skip(ln, "not carried over: route -A takes inet or inet6 here")
				return false
			}
			if args[1] == "inet6" {
				fam = plan.V6
			}
			args = args[1:]
		case "-6":
			fam = plan.V6
		case "-4", "-n", "-e", "-ee", "-v":
		default:
			s.st.skip(ln, fmt.Sprintf("not carried over: route option %s is not one import follows", args[0]))
			return false
		}
		args = args[1:]
	}
	if len(args) == 0 || args[0] == "-n" {
		return true // route: prints the table
	}
	verb := args[0]
	if verb != "add" && verb != "del" {
		s.st.skip(ln, fmt.Sprintf("not carried over: route %s is not a change import can carry", verb))
		return false
	}
	r := Route{Fam: fam, Table: plan.TableMain, From: ln}
	host, viaSet, devSet, metricSet := false, false, false, false
	var target string
	var mask netip.Addr
	for i := 1; i < len(args); i++ {
		a := args[i]
		switch a {
		case "-net":
		case "-host":
			host = true
		case "default":
			target = "default"
		case "gw", "netmask", "metric", "dev":
			if i+1 >= len(args) {
				s.st.skip(ln, fmt.Sprintf("not carried over: %s without a value", a))
				return false
			}
			v := args[i+1]
			i++
			switch a {
			case "gw":
				g, err := netip.ParseAddr(v)
				if err != nil {
					s.st.skip(ln, fmt.Sprintf("not carried over: gw %s is not an address", v))
					return false
				}
				r.Via, viaSet = g, true
			case "netmask":
				m, err := netip.ParseAddr(v)
				if err != nil || !m.Is4() {
					s.st.skip(ln, fmt.Sprintf("not carried over: netmask %s is not an IPv4 mask", v))
					return false
				}
				mask = m
			case "metric":
				m, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					s.st.skip(ln, fmt.Sprintf("not carried over: metric %s is not a number", v))
					return false
				}
				r.Metric, r.MetricSet, metricSet = uint32(m), m != 0, m != 0
			case "dev":
				r.Dev, devSet = v, true
			}
		case "reject", "mod", "dyn", "reinstate", "mss", "window", "irtt":
			s.st.skip(ln, fmt.Sprintf("not carried over: route %s has no profile key", a))
			return false
		default:
			switch {
			case target == "":
				target = a
			case !devSet:
				r.Dev, devSet = a, true // the last word may be the device
			default:
				s.st.skip(ln, fmt.Sprintf("not carried over: %q is not a route argument import reads", a))
				return false
			}
		}
	}
	switch {
	case target == "" || target == "default" || target == "0.0.0.0" && !mask.IsValid():
		r.To = fam.Default()
	case fam == plan.V6:
		d, ok := parseDest(target, fam)
		if !ok {
			s.st.skip(ln, fmt.Sprintf("not carried over: %s is not a network", target))
			return false
		}
		r.To = d
	default:
		a, err := netip.ParseAddr(target)
		bits := 32
		if err != nil {
			p, perr := netip.ParsePrefix(target)
			if perr != nil || !p.Addr().Is4() {
				s.st.skip(ln, fmt.Sprintf("not carried over: %s is not an IPv4 network", target))
				return false
			}
			a, bits = p.Addr(), p.Bits()
		} else if mask.IsValid() {
			bits = maskBits(mask)
			if bits < 0 {
				s.st.skip(ln, fmt.Sprintf("not carried over: netmask %s is not contiguous", mask))
				return false
			}
		} else if !host {
			// net-tools reads a bare -net address by its class; nobody
			// means that today.
			s.st.skip(ln, fmt.Sprintf("not carried over: -net %s without netmask or /len", target))
			return false
		}
		p := netip.PrefixFrom(a, bits)
		if p.Masked() != p {
			s.st.skip(ln, fmt.Sprintf("not carried over: %s has host bits set, which route refuses", p))
			return false
		}
		r.To = p
	}
	if verb == "del" {
		return s.delRoute(ln, r, viaSet, devSet, metricSet)
	}
	if !viaSet && !devSet {
		s.st.skip(ln, "not carried over: a route with neither gw nor dev")
		return false
	}
	return s.addRoute(ln, r, false)
}

func maskBits(m netip.Addr) int {
	b := m.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	n := 0
	for v&0x80000000 != 0 {
		n++
		v <<= 1
	}
	if v != 0 {
		return -1
	}
	return n
}

// --- iptables ---

func (s *script) iptables(ln *Line, fam plan.Family, args []string) bool {
	table := "filter"
	var chain, op string
	n := NAT{Fam: fam, Src: ln}
	var target string
	pos := 0
	for i := 0; i < len(args); i++ {
		a := args[i]
		val := func() (string, bool) {
			if i+1 >= len(args) {
				s.st.skip(ln, fmt.Sprintf("not carried over: %s without a value", a))
				return "", false
			}
			i++
			return args[i], true
		}
		switch a {
		case "-w", "--wait":
			if i+1 < len(args) && allDigits(args[i+1]) {
				i++
			}
		case "-t", "--table":
			v, ok := val()
			if !ok {
				return false
			}
			table = v
		case "-A", "--append", "-I", "--insert":
			v, ok := val()
			if !ok {
				return false
			}
			chain, op = v, a
			if (a == "-I" || a == "--insert") && i+1 < len(args) && allDigits(args[i+1]) {
				pos, _ = strconv.Atoi(args[i+1])
				i++
			}
		case "-s", "--source", "--src":
			v, ok := val()
			if !ok {
				return false
			}
			p, ok := parseDest(v, fam)
			if !ok || famOf(p.Addr()) != fam {
				s.st.skip(ln, fmt.Sprintf("not carried over: -s %s is not an %s network", v, fam))
				return false
			}
			if p.Bits() > 0 {
				n.Source = p
			}
		case "-o", "--out-interface":
			v, ok := val()
			if !ok {
				return false
			}
			n.Out = v
		case "-j", "--jump":
			v, ok := val()
			if !ok {
				return false
			}
			target = v
		case "--to-source", "--to":
			v, ok := val()
			if !ok {
				return false
			}
			ad, err := netip.ParseAddr(v)
			if err != nil || famOf(ad) != fam {
				s.st.skip(ln, fmt.Sprintf("not carried over: --to-source %s: only one %s address (no range, no port) has a profile key", v, fam))
				return false
			}
			n.ToSource = ad
		default:
			if op == "" && (a == "-D" || a == "--delete" || a == "-F" || a == "--flush" || a == "-X" || a == "-N" || a == "-P" || a == "-Z") {
				s.st.skip(ln, fmt.Sprintf("not carried over: iptables %s is not an addition import can carry; nicpersist's NAT lives in its own chain", a))
				return false
			}
			if op == "" && (a == "-L" || a == "-S" || a == "--list" || a == "-n" || a == "-v") {
				continue
			}
			s.st.skip(ln, fmt.Sprintf("not carried over: iptables %s has no profile key (a profile NAT rule has -s, -o and MASQUERADE or SNAT --to-source)", a))
			return false
		}
	}
	if op == "" {
		return true // a listing
	}
	if table != "nat" || chain != "POSTROUTING" {
		s.st.skip(ln, fmt.Sprintf("not carried over: only nat POSTROUTING has a profile key (this is %s %s)", table, chain))
		return false
	}
	switch target {
	case "MASQUERADE":
		n.Masquerade = true
		if n.ToSource.IsValid() {
			s.st.skip(ln, "not carried over: MASQUERADE --to has no profile key")
			return false
		}
	case "SNAT":
		if !n.ToSource.IsValid() {
			s.st.skip(ln, "not carried over: SNAT without --to-source")
			return false
		}
	default:
		s.st.skip(ln, fmt.Sprintf("not carried over: -j %s has no profile key (MASQUERADE and SNAT do)", target))
		return false
	}
	if n.Out == "" {
		s.st.skip(ln, "not carried over: a NAT rule without -o; the profile's [[nat]] needs out_interface")
		return false
	}
	if op == "-I" || op == "--insert" {
		// Positions count within the family's rules.
		idx, seen := 0, 0
		want := max(pos, 1)
		for idx < len(s.st.NAT) && seen < want-1 {
			if s.st.NAT[idx].Fam == fam {
				seen++
			}
			idx++
		}
		s.st.NAT = slices.Insert(s.st.NAT, idx, n)
		return true
	}
	s.st.NAT = append(s.st.NAT, n)
	return true
}

// --- sysctls ---

// sysctlKey maps a kernel key to the profile's, with the value's meaning.
func (s *script) setSysctl(ln *Line, key, value string) bool {
	key = strings.ReplaceAll(strings.Trim(key, "/"), "/", ".")
	value = strings.TrimSpace(value)
	set := func(k string, v any) bool {
		for i, o := range s.st.Sysctls {
			if o.Key == k {
				s.st.Sysctls = slices.Delete(s.st.Sysctls, i, i+1)
				break
			}
		}
		s.st.Sysctls = append(s.st.Sysctls, Sysctl{Key: k, Value: v, Src: ln})
		return true
	}
	boolean := func(k string) bool {
		switch value {
		case "0":
			return set(k, false)
		case "1":
			return set(k, true)
		}
		s.st.skip(ln, fmt.Sprintf("not carried over: %s = %s: the profile's %s takes 0 or 1", key, value, k))
		return false
	}
	switch key {
	case "net.ipv4.ip_forward", "net.ipv4.conf.all.forwarding":
		return boolean("ip_forward")
	case "net.ipv6.conf.all.forwarding":
		return boolean("ipv6_forwarding")
	case "net.ipv4.conf.all.rp_filter":
		v, ok := map[string]string{"0": "off", "1": "strict", "2": "loose"}[value]
		if !ok {
			s.st.skip(ln, fmt.Sprintf("not carried over: rp_filter %s is not 0, 1 or 2", value))
			return false
		}
		return set("rp_filter", v)
	}
	if strings.HasSuffix(key, ".rp_filter") {
		s.st.skip(ln, fmt.Sprintf("not carried over: %s: the profile's rp_filter is one value for every profile interface (net.ipv4.conf.all.rp_filter carries over)", key))
		return false
	}
	s.st.skip(ln, fmt.Sprintf("not carried over: %s has no profile key (ip_forward, ipv6_forwarding and rp_filter do); a sysctl.d file keeps it", key))
	return false
}

func (s *script) sysctl(ln *Line, args []string) bool {
	load := ""
	var sets [][2]string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-w" || a == "-q" || a == "-e" || a == "--write" || a == "--quiet":
		case a == "-p" || a == "--load":
			load = "/etc/sysctl.conf"
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && !strings.Contains(args[i+1], "=") {
				load = args[i+1]
				i++
			}
		case strings.HasPrefix(a, "-p"):
			load = a[2:]
		case strings.HasPrefix(a, "--load="):
			load = strings.TrimPrefix(a, "--load=")
		case strings.HasPrefix(a, "-"):
			s.st.skip(ln, fmt.Sprintf("not carried over: sysctl %s is not an option import follows", a))
			return false
		case strings.Contains(a, "="):
			k, v, _ := strings.Cut(a, "=")
			sets = append(sets, [2]string{strings.TrimSpace(k), v})
		default:
			// sysctl KEY only reads it.
		}
	}
	ok := true
	for _, kv := range sets {
		ok = s.setSysctl(ln, kv[0], kv[1]) && ok
	}
	if load != "" {
		ok = s.loadConf(ln, load) && ok
	}
	return ok
}

// conffile is the file as the script has left it so far.
func (s *script) conffile(p string) *confFile {
	if c, ok := s.conf[p]; ok {
		return c
	}
	c := &confFile{}
	if s.env.ReadFile != nil {
		if b, err := s.env.ReadFile(p); err == nil {
			c.orig, c.now = string(b), string(b)
		} else {
			c.missing = true
		}
	} else {
		c.missing = true
	}
	s.conf[p] = c
	return c
}

// loadConf is sysctl -p: it sets the keys the file edited in the conf
// file, to their value there now. Editing is what the file means: where it
// ran before, the edit is already in the file and the sed matches nothing,
// but the key still has the value it set. Keys the file did not edit the
// boot sets anyway, from the same file.
func (s *script) loadConf(ln *Line, p string) bool {
	c := s.conffile(p)
	if len(c.keys) == 0 {
		s.st.Notes = append(s.st.Notes, fmt.Sprintf("%s: sysctl -p re-applies %s, which the boot applies anyway; the file edits no key in it, so there is nothing to carry over", ln.Where, p))
		return true
	}
	values := map[string]string{}
	for _, l := range strings.Split(c.now, "\n") {
		if k := confKey(l); k != "" {
			_, v, _ := strings.Cut(l, "=")
			values[k] = v
		}
	}
	ok := true
	for _, k := range c.keys {
		v, set := values[k]
		if !set {
			why := fmt.Sprintf("%s has no line in %s as it is on this machine (the edit matches nothing here)", k, p)
			if c.missing {
				why = fmt.Sprintf("%s does not exist on this machine", p)
			}
			s.st.skip(ln, fmt.Sprintf("not carried over: sysctl -p: %s, so running the script does not set %s", why, k))
			ok = false
			continue
		}
		ok = s.setSysctl(ln, k, v) && ok
	}
	return ok
}

// echo handles echo V > /proc/sys/..., echo "N name" >> rt_tables and
// echo "k = v" >> /etc/sysctl.conf.
func (s *script) echo(ln *Line, args []string, out, mode string) bool {
	words := args[1:]
	if path.Base(args[0]) == "printf" {
		if len(words) == 0 {
			return true
		}
		if strings.ContainsAny(words[0], "%") && words[0] != "%s\\n" && words[0] != "%s\n" {
			s.st.skip(ln, "not carried over: printf with a format import does not evaluate")
			return false
		}
		words = words[1:]
	} else {
		for len(words) > 0 && (words[0] == "-n" || words[0] == "-e" || words[0] == "-ne") {
			words = words[1:]
		}
	}
	text := strings.Join(words, " ")
	text = strings.ReplaceAll(text, `\n`, "\n")
	switch {
	case out == "":
		return true // prints a message
	case strings.HasPrefix(out, "/proc/sys/"):
		return s.setSysctl(ln, strings.TrimPrefix(out, "/proc/sys/"), text)
	case out == "/etc/iproute2/rt_tables" || strings.HasPrefix(out, "/etc/iproute2/rt_tables.d/"):
		if mode != ">>" {
			s.st.skip(ln, fmt.Sprintf("not carried over: it overwrites %s; nicpersist writes its own rt_tables.d entry", out))
			return false
		}
		s.rtTables(text)
		return true
	case strings.HasSuffix(out, "sysctl.conf") || strings.HasPrefix(out, "/etc/sysctl.d/"):
		c := s.conffile(out)
		if mode == ">>" {
			if c.now != "" && !strings.HasSuffix(c.now, "\n") {
				c.now += "\n"
			}
			c.now += text + "\n"
		} else {
			c.now = text + "\n"
		}
		for _, l := range strings.Split(text, "\n") {
			c.touch(l)
		}
		if strings.HasPrefix(out, "/etc/sysctl.d/") {
			// The boot reads sysctl.d, and so must the profile.
			return s.loadConf(ln, out)
		}
		return true
	}
	s.st.skip(ln, fmt.Sprintf("not carried over: writing %s has no profile key", out))
	return false
}

// sed handles sed -i 's/A/B/g' FILE on sysctl.conf files.
func (s *script) sed(ln *Line, args []string) bool {
	inPlace, ere := false, false
	var exprs, files []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-e" || a == "--expression":
			if i+1 < len(args) {
				exprs = append(exprs, args[i+1])
				i++
			}
		case a == "-r" || a == "-E" || a == "--regexp-extended":
			ere = true
		case a == "--in-place" || strings.HasPrefix(a, "--in-place="):
			inPlace = true
		case strings.HasPrefix(a, "-") && len(a) > 1 && !strings.HasPrefix(a, "--"):
		flags:
			for _, c := range a[1:] {
				switch c {
				case 'i':
					inPlace = true
					if strings.HasSuffix(a, "i") || strings.ContainsAny(a[strings.IndexByte(a, 'i')+1:], ".~") {
						break flags // what follows -i is a backup suffix
					}
				case 'r', 'E':
					ere = true
				case 'e':
				default:
					s.st.skip(ln, fmt.Sprintf("not carried over: sed -%c is not an option import follows", c))
					return false
				}
			}
		default:
			if len(exprs) == 0 && !hasE(args) {
				exprs = append(exprs, a)
			} else {
				files = append(files, a)
			}
		}
	}
	if !inPlace {
		return true // prints only
	}
	for _, f := range files {
		if !strings.HasSuffix(f, "sysctl.conf") && !strings.HasPrefix(f, "/etc/sysctl.d/") {
			s.st.skip(ln, fmt.Sprintf("not carried over: editing %s has no profile key", f))
			return false
		}
	}
	for _, e := range exprs {
		re, repl, global, err := sedSubst(e, ere)
		if err != nil {
			s.st.skip(ln, "not carried over: "+err.Error())
			return false
		}
		for _, f := range files {
			c := s.conffile(f)
			var lines []string
			for _, l := range strings.Split(c.now, "\n") {
				old := l
				if global {
					l = re.ReplaceAllString(l, repl)
				} else if loc := re.FindStringSubmatchIndex(l); loc != nil {
					var dst []byte
					dst = re.ExpandString(dst, repl, l, loc)
					l = l[:loc[0]] + string(dst) + l[loc[1]:]
				}
				if l != old {
					c.touch(l)
				}
				lines = append(lines, l)
			}
			c.now = strings.Join(lines, "\n")
			// The key the replacement writes, as the file means it even
			// where the edit is already done.
			c.touch(strings.NewReplacer("\\", "", "^", "", "$", "").Replace(replText(e)))
		}
	}
	return true
}

func hasE(args []string) bool {
	return slices.Contains(args, "-e") || slices.Contains(args, "--expression")
}

// replText is the replacement of an s command, as written.
func replText(e string) string {
	if len(e) < 2 {
		return ""
	}
	parts := strings.Split(e[2:], string(e[1]))
	if len(parts) < 2 {
		return ""
	}
	return parts[1]
}

// sedSubst reads one s/A/B/flags command as a Go regexp and template.
func sedSubst(e string, ere bool) (*regexp.Regexp, string, bool, error) {
	if len(e) < 2 || e[0] != 's' {
		return nil, "", false, fmt.Errorf("sed %q: only s/…/…/ substitutions are understood", e)
	}
	d := e[1]
	var parts []string
	var cur strings.Builder
	for i := 2; i < len(e); i++ {
		if e[i] == '\\' && i+1 < len(e) && e[i+1] == d {
			cur.WriteByte(d)
			i++
			continue
		}
		if e[i] == '\\' && i+1 < len(e) {
			cur.WriteByte(e[i])
			cur.WriteByte(e[i+1])
			i++
			continue
		}
		if e[i] == d {
			parts = append(parts, cur.String())
			cur.Reset()
			continue
		}
		cur.WriteByte(e[i])
	}
	parts = append(parts, cur.String())
	if len(parts) != 3 {
		return nil, "", false, fmt.Errorf("sed %q: only s/…/…/ substitutions are understood", e)
	}
	pat, repl, flags := parts[0], parts[1], parts[2]
	for _, c := range flags {
		if c != 'g' {
			return nil, "", false, fmt.Errorf("sed flag %q is not one import follows", c)
		}
	}
	if !ere {
		pat = breToERE(pat)
	}
	re, err := regexp.Compile(pat)
	if err != nil {
		return nil, "", false, fmt.Errorf("sed pattern %q: %v", parts[0], err)
	}
	// & is the match and \1 a group; $ is literal.
	var t strings.Builder
	for i := 0; i < len(repl); i++ {
		switch c := repl[i]; {
		case c == '$':
			t.WriteString("$$")
		case c == '&':
			t.WriteString("${0}")
		case c == '\\' && i+1 < len(repl):
			i++
			if repl[i] >= '0' && repl[i] <= '9' {
				t.WriteString("${" + string(repl[i]) + "}")
			} else if repl[i] == 'n' {
				t.WriteByte('\n')
			} else {
				t.WriteByte(repl[i])
			}
		default:
			t.WriteByte(c)
		}
	}
	return re, t.String(), strings.Contains(flags, "g"), nil
}

// breToERE turns a POSIX basic expression into an extended one: in BRE,
// ( ) { } + ? | are literal and \( \) \{ \} \+ \? \| are the operators.
func breToERE(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c == '\\' && i+1 < len(p) {
			n := p[i+1]
			if strings.IndexByte("(){}+?|", n) >= 0 {
				b.WriteByte(n)
			} else {
				b.WriteByte('\\')
				b.WriteByte(n)
			}
			i++
			continue
		}
		if strings.IndexByte("(){}+?|", c) >= 0 {
			b.WriteByte('\\')
		}
		b.WriteByte(c)
	}
	return b.String()
}
