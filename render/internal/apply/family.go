package apply

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/plan"
)

// The state of one family, in files named as apply.sh names them (ip4.routes
// and so on), each a list of batch lines:
//
//	routes, rules, main  what a start applied (or may have: a step's lines are
//	                     added before the step runs, so a failed start's stop
//	                     removes them)
//	pre                  "LINE|ROUTE": a route line that found its route in the
//	                     kernel already, and that route, for stop to put back
//	rules.pre            rule lines that found their rule in the kernel already
//	                     ("File exists"); stop leaves them
//	default4.saved       the IPv4 main default our metric-0 default replaced
type familyState struct {
	routes, rules, main, pre, rulesPre []string
}

func (r *runner) st(f int, name string) string {
	return r.spath(fmt.Sprintf("ip%d.%s", f, name))
}

func (r *runner) loadState(f int) (familyState, error) {
	var s familyState
	for _, x := range []struct {
		name string
		dst  *[]string
	}{{"routes", &s.routes}, {"rules", &s.rules}, {"main", &s.main}, {"pre", &s.pre}, {"rules.pre", &s.rulesPre}} {
		l, err := readLines(r.st(f, x.name))
		if err != nil {
			return s, err
		}
		*x.dst = l
	}
	return s, nil
}

// ipCmd is `ip -F ARGS...`.
func ipCmd(f int, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"-" + strconv.Itoa(f)}, args...)...)
}

// ip runs `ip -F ARGS...`, its output going to the journal.
func (r *runner) ip(f int, args ...string) error {
	cmd := ipCmd(f, args...)
	cmd.Stdout, cmd.Stderr = r.Stderr, r.Stderr
	return cmd.Run()
}

// ipOut runs `ip -F ARGS...` and returns what it prints.
func (r *runner) ipOut(f int, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := ipCmd(f, args...)
	cmd.Stdout, cmd.Stderr = &out, r.Stderr
	err := cmd.Run()
	return out.String(), err
}

// batch writes lines to the state file NAME and runs `ip -batch` on it (the
// file, not a pipe: its name is in ip's messages, and a test can fail a step
// by name). With force, ip goes on past failed lines and its error log is
// returned instead of printed.
func (r *runner) batch(f int, name string, lines []string, force bool) (errlog string, err error) {
	path := r.st(f, name)
	if err := writeLines(path, lines); err != nil {
		return "", err
	}
	args := []string{"-batch", path}
	if force {
		args = append([]string{"-force"}, args...)
	}
	cmd := ipCmd(f, args...)
	var eb bytes.Buffer
	cmd.Stdout, cmd.Stderr = r.Stderr, r.Stderr
	if force {
		cmd.Stderr = &eb
	}
	err = cmd.Run()
	// An ip that did not run, or died, has nothing to say: say it, so the
	// log is not taken for one of "File exists" answers only.
	if force && err != nil && eb.Len() == 0 {
		fmt.Fprintf(&eb, "%v\n", err)
	}
	return eb.String(), err
}

// applyFamily applies routes in nicpersist's tables and the rules, then the
// main table (make-before-break: the main table changes only once the
// tables and rules it may depend on are in), and then removes what an
// earlier start applied and this one does not.
func (r *runner) applyFamily(f int) error {
	var newRoutes, newRules, newMain []string
	if b, err := readLines(r.path(fmt.Sprintf("ip%d.batch", f))); err != nil {
		return err
	} else if b != nil {
		newRoutes, newRules, newMain = section(b, "routes"), section(b, "rules"), section(b, "main")
		if err := r.saveDefault(f, newMain); err != nil {
			return err
		}
	}
	s, err := r.loadState(f)
	if err != nil {
		return err
	}
	if len(newRoutes)+len(newRules)+len(newMain)+len(s.routes)+len(s.rules)+len(s.main)+len(s.pre)+len(s.rulesPre) == 0 {
		return nil // a family the profile does not use, now or before
	}
	// put writes a state file only when it changes; an absent file reads
	// as empty.
	put := func(name string, was, now []string) error {
		if slices.Equal(was, now) {
			return nil
		}
		return writeLines(r.st(f, name), now)
	}
	routesAll, rulesAll, mainAll := union(s.routes, newRoutes), union(s.rules, newRules), union(s.main, newMain)
	old := append(append([]string(nil), s.routes...), s.main...)
	allNew := append(append([]string(nil), newRoutes...), newMain...)
	found, err := r.preRoutes(f, missing(old, allNew))
	if err != nil {
		return err
	}
	pre := append(append([]string(nil), s.pre...), found...)
	// What an earlier start added (as opposed to found), for stale removal.
	rulesOurs := missing(s.rulesPre, s.rules)
	routesStale := missing(allNew, s.routes)
	mainStale := missing(allNew, s.main)
	rulesStale := missing(newRules, rulesOurs)
	if err := put("pre", s.pre, pre); err != nil {
		return err
	}

	// Routes and rules go in one `ip -force -batch`: a rule that is there
	// already answers "File exists", which is not a failure; any other
	// error is, and then stop removes all of it (ip goes on past a failed
	// route, so its rules are applied and taken away again).
	if err := put("routes", s.routes, routesAll); err != nil {
		return err
	}
	if err := put("rules", s.rules, rulesAll); err != nil {
		return err
	}
	rulesPre := []string{}
	if tables := append(append([]string(nil), newRoutes...), newRules...); len(tables) > 0 {
		errlog, err := r.batch(f, "tables.new", tables, true)
		// Rules that were there before a start added them are not ours,
		// and stay not ours while the files hold them.
		newSet := set(newRules)
		for _, l := range s.rulesPre {
			if newSet[l] {
				rulesPre = append(rulesPre, l)
			}
		}
		rulesPre = dedupe(append(rulesPre, missing(rulesOurs, existsLines(errlog, tables))...))
		if werr := put("rules.pre", s.rulesPre, rulesPre); werr != nil {
			return werr
		}
		var exit *exec.ExitError
		if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 1 && onlyExists(errlog)) {
			io.WriteString(r.Stderr, errlog)
			return fmt.Errorf("ip -%d -force -batch %s: %w", f, r.st(f, "tables.new"), err)
		}
	} else if err := put("rules.pre", s.rulesPre, nil); err != nil {
		return err
	}
	if err := put("main", s.main, mainAll); err != nil {
		return err
	}
	if len(newMain) > 0 {
		if _, err := r.batch(f, "main.new", newMain, false); err != nil {
			return fmt.Errorf("ip -%d -batch %s: %w", f, r.st(f, "main.new"), err)
		}
	}
	var stale []string
	for _, l := range rulesStale {
		stale = append(stale, ruleDel(l))
	}
	stale = append(stale, undoRoutes(pre, mainStale)...)
	stale = append(stale, undoRoutes(pre, routesStale)...)
	if len(stale) > 0 {
		// What is already gone answers an error; that is what we want.
		r.undo(f, "stale", stale)
	}
	for _, x := range []struct {
		name     string
		was, now []string
	}{{"routes", routesAll, newRoutes}, {"rules", rulesAll, newRules}, {"main", mainAll, newMain}} {
		if err := put(x.name, x.was, x.now); err != nil {
			return err
		}
	}
	allSet := set(allNew)
	var keep []string
	for _, p := range pre {
		line, _, _ := strings.Cut(p, "|")
		if allSet[line] {
			keep = append(keep, p)
		}
	}
	if err := put("pre", pre, keep); err != nil {
		return err
	}
	for _, n := range []string{"tables.new", "main.new", "stale"} {
		os.Remove(r.st(f, n))
	}
	return nil
}

// removeFamily puts back a displaced default first (it replaces ours, so
// there is always a default route), then deletes rules and routes, putting
// back those that were there before the first start.
func (r *runner) removeFamily(f int) {
	if f == 4 {
		saved := r.spath("default4.saved")
		if b, err := os.ReadFile(saved); err == nil && len(bytes.TrimSpace(b)) > 0 {
			if err := r.ip(4, append([]string{"route", "replace"}, strings.Fields(string(b))...)...); err != nil {
				r.logf("could not restore the default route: %s", strings.TrimSpace(string(b)))
			}
		}
		os.Remove(saved)
	}
	s, err := r.loadState(f)
	if err != nil {
		r.logf("%v", err)
		return
	}
	var del []string
	for _, l := range missing(s.rulesPre, s.rules) {
		del = append(del, ruleDel(l))
	}
	del = append(del, undoRoutes(s.pre, s.main)...)
	del = append(del, undoRoutes(s.pre, s.routes)...)
	if len(del) > 0 {
		r.undo(f, "del", del)
	}
	// The state, and the working files of a start of either engine that
	// did not finish (apply.sh's .err, .old, .rules.ours ... among them).
	for _, n := range []string{"del", "rules", "main", "routes", "pre", "rules.pre",
		"tables.new", "routes.new", "rules.new", "main.new", "stale", "err", "exists", "old",
		"all.new", "rules.ours", "routes.stale", "main.stale", "rules.stale"} {
		os.Remove(r.st(f, n))
	}
}

// saveDefault keeps, once, the IPv4 main default that our metric-0 default
// replaces (legacy dhclient, network-scripts), to put it back on stop.
func (r *runner) saveDefault(f int, mainLines []string) error {
	saved := r.spath("default4.saved")
	if f != 4 || exists(saved) {
		return nil
	}
	ours := false
	for _, l := range mainLines {
		if strings.HasPrefix(l, "route replace default ") {
			if strings.Contains(l, " metric ") {
				return nil
			}
			if strings.Contains(l, "dev") {
				ours = true
			}
		}
	}
	if !ours {
		return nil
	}
	var keep []string
	// Netlink says whether there is such a default at all, without a
	// process; `ip` prints it in the form `ip route replace` takes back.
	if has, err := hasForeignDefault4(); err != nil || has {
		out, err := r.ipOut(4, "route", "show", "table", "main", "default")
		if err != nil {
			return err
		}
		// A multipath default's nexthops are on lines of their own.
		for _, l := range joinNexthops(out) {
			if strings.Contains(l, " metric ") || strings.Contains(l, " proto "+strconv.Itoa(plan.Proto)) {
				continue
			}
			keep = append(keep, cleanRoute(l))
			break
		}
	}
	return writeLines(saved, keep)
}

// cleanRoute drops the words `ip route show` prints about a route's state
// (linkdown, offload, expires 300sec, ...), which `ip route replace` refuses.
func cleanRoute(l string) string {
	w := strings.Fields(l)
	out := w[:0]
	for i := 0; i < len(w); i++ {
		if i > 0 && takesArg[w[i-1]] {
			out = append(out, w[i]) // a value: a link may be called trap
			continue
		}
		switch w[i] {
		case "rt_offload_failed", "rt_offload", "rt_trap", "linkdown", "dead", "offload", "trap":
			continue
		case "expires":
			if i+1 < len(w) && strings.HasSuffix(w[i+1], "sec") {
				i++
				continue
			}
		}
		out = append(out, w[i])
	}
	return strings.Join(out, " ")
}

// takesArg are the words of `ip route show` followed by a value.
var takesArg = map[string]bool{"dev": true, "via": true, "src": true, "table": true, "proto": true,
	"scope": true, "metric": true, "weight": true, "pref": true, "realm": true, "realms": true,
	"mtu": true, "advmss": true, "nhid": true, "from": true, "tos": true, "dsfield": true}

// preRoutes returns "LINE|ROUTE" for each candidate line whose route, the
// same table, prefix and metric, is in the kernel already: a route-<if> line
// that ifup or NetworkManager applied before the unit, or the user's own
// route. ROUTE is that route as `ip route replace` takes it; stop puts it
// back rather than deleting it. The IPv4 main-table metric-0 default is
// saveDefault's.
func (r *runner) preRoutes(f int, cand []string) ([]string, error) {
	var c []string
	for _, l := range cand {
		w := strings.Fields(l)
		if f == 4 && len(w) > 2 && w[2] == "default" && !strings.Contains(l, " table ") && !strings.Contains(l, " metric ") {
			continue
		}
		c = append(c, l)
	}
	if len(c) == 0 {
		return nil, nil
	}
	// Only tables where netlink finds a route of a candidate's prefix are
	// read with `ip`: at boot that is none or one, not one process each.
	tables := present(f, c)
	route := map[string]string{}
	for _, t := range tables {
		out, err := r.ipOut(f, "route", "show", "table", t)
		if err != nil {
			continue // a table that does not exist yet
		}
		for _, rt := range joinNexthops(out) {
			// `ip route replace` takes the table before a multipath
			// route's nexthops, not after.
			rt = cleanRoute(rt)
			if head, hops, ok := strings.Cut(rt, " nexthop "); ok {
				rt = head + " table " + t + " nexthop " + hops
			} else {
				rt += " table " + t
			}
			if k := routeKey(f, rt); route[k] == "" {
				route[k] = rt
			}
		}
	}
	var out []string
	for _, l := range c {
		if rt, ok := route[routeKey(f, l)]; ok {
			out = append(out, l+"|"+rt)
		}
	}
	return out, nil
}

// joinNexthops puts a multipath route's "nexthop ..." lines onto its first.
func joinNexthops(out string) []string {
	var routes []string
	for _, l := range strings.Split(out, "\n") {
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && len(routes) > 0 {
			routes[len(routes)-1] += " " + strings.TrimSpace(l)
			continue
		}
		routes = append(routes, l)
	}
	return routes
}

var routeTypes = map[string]bool{"unicast": true, "local": true, "broadcast": true, "multicast": true,
	"anycast": true, "blackhole": true, "unreachable": true, "prohibit": true, "throw": true, "nat": true}

// routeKey is a route's table, prefix and metric, which identify it, from a
// batch line ("route replace ...") or a listed route.
func routeKey(f int, line string) string {
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
	if f == 4 {
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

// undoRoutes turns "route replace" lines into the batch that undoes them:
// `route replace` of the route that was there before (from pre), else
// `route del`.
func undoRoutes(pre, lines []string) []string {
	was := map[string]string{}
	for _, p := range pre {
		if line, rt, ok := strings.Cut(p, "|"); ok {
			was[line] = rt
		}
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

// existsLines returns the lines of a batch that `ip -force -batch` answered
// with "File exists": it prints a line's errors, then "Command failed FILE:N".
func existsLines(errlog string, lines []string) []string {
	var out []string
	msg := ""
	for _, l := range strings.Split(errlog, "\n") {
		if strings.HasPrefix(l, "Command failed ") {
			w := strings.Fields(l)
			loc := w[len(w)-1]
			n, err := strconv.Atoi(loc[strings.LastIndex(loc, ":")+1:])
			if err == nil && strings.Contains(msg, "File exists") && n >= 1 && n <= len(lines) {
				out = append(out, lines[n-1])
			}
			msg = ""
			continue
		}
		msg += l
	}
	return out
}

// onlyExists says an `ip -force -batch` error log holds only "File exists"
// answers: every message says it and belongs to a failed line, and every
// failed line has one. An ip that stopped early (a line it could not parse
// ends even a -force batch) or said nothing does not pass.
func onlyExists(errlog string) bool {
	failed, said := 0, false
	for _, l := range strings.Split(errlog, "\n") {
		switch {
		case strings.HasPrefix(l, "Command failed "):
			if !said {
				return false
			}
			failed++
			said = false
		case strings.TrimSpace(l) == "":
		case strings.Contains(l, "File exists"):
			said = true
		default:
			return false
		}
	}
	return failed > 0 && !said
}

// stoppedEarly says an `ip -force -batch` did not get through its lines:
// it failed and its log does not end with the "Command failed" of a line
// it went past (a line it cannot parse ends even a -force batch).
func stoppedEarly(errlog string, err error) bool {
	if err == nil {
		return false
	}
	lines := strings.Split(strings.TrimSpace(errlog), "\n")
	return !strings.HasPrefix(lines[len(lines)-1], "Command failed ")
}

// undo runs a batch of deletions and put-backs in which errors are
// expected (what is already gone); should ip stop early, the lines run one
// by one, so that one bad line does not keep the others from running.
func (r *runner) undo(f int, name string, lines []string) {
	errlog, err := r.batch(f, name, lines, true)
	if !stoppedEarly(errlog, err) {
		return
	}
	r.logf("ip -%d -batch %s stopped early; running its lines one by one:\n%s", f, r.st(f, name), strings.TrimSpace(errlog))
	for _, l := range lines {
		ipCmd(f, strings.Fields(l)...).Run() // output discarded: nil Stdout/Stderr
	}
}

func set(lines []string) map[string]bool {
	m := make(map[string]bool, len(lines))
	for _, l := range lines {
		m[l] = true
	}
	return m
}

func dedupe(lines []string) []string {
	seen := map[string]bool{}
	out := lines[:0:0]
	for _, l := range lines {
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}
