// Package unitfiles owns the files render writes under /etc/nicpersist for
// nicpersist.service to apply: ip4.batch and ip6.batch (routes and rules),
// links (what to wait for), sysctl.list, and iptables.rules and
// ip6tables.rules (NAT). It writes them (through templates/) and parses them
// back, so that render and apply cannot disagree on a format. Each file
// carries a format number: a binary refuses a file from a newer nicpersist
// rather than misread it.
package unitfiles

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/templates"
)

// Format is the newest format this nicpersist writes and reads. A file
// without a format line is format 1: nicpersist wrote no number before.
// Files whose format did not change keep number 1, so an older nicpersist
// still reads what it can apply whole: format 2 is an iptables.rules with
// more than SNAT (older binaries jump only to NICPERSIST-POSTROUTING), and
// nftables.nft.
const Format = 2

// format1 is the number of the files older nicpersists read correctly.
const format1 = 1

// NATChain is the iptables chain nicpersist owns in the nat table.
const NATChain = "NICPERSIST-POSTROUTING"

// File names, in the rendered directory.
const (
	Links   = "links"
	Sysctls = "sysctl.list"
)

// BatchName is the routes-and-rules file of a family.
func BatchName(f plan.Family) string { return "ip" + strconv.Itoa(int(f)) + ".batch" }

// NATName is the iptables-restore input of a family.
func NATName(f plan.Family) string { return f.IPTables() + ".rules" }

// Families in the order apply works through them.
var Families = [...]plan.Family{plan.V4, plan.V6}

// Batch is one family's routes and rules as `ip -batch` lines, in the order
// apply runs them: the routes of nicpersist's tables (so a rule never points
// at an empty table), the rules, and the main table last.
type Batch struct {
	Routes, Rules, Main []string
}

// Empty says the family has nothing to apply.
func (b Batch) Empty() bool { return len(b.Routes)+len(b.Rules)+len(b.Main) == 0 }

// Link is an interface a route goes through; apply waits until it is up
// with Addr (any address when Addr is invalid).
type Link struct {
	Dev  string
	Addr netip.Addr
}

// Sysctl is a key under /proc/sys ("net/ipv4/ip_forward") and its value.
type Sysctl struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Set is every file of a rendered directory, parsed.
type Set struct {
	Batches map[plan.Family]Batch
	Links   []Link
	Sysctls []Sysctl
	NAT     map[plan.Family][]byte // iptables-restore --noflush input
	NFT     []byte                 // nft -f input; nil when not rendered
}

// File is one rendered file, without the generated header the caller adds.
type File struct {
	Name string
	Body []byte
}

// Render returns the files for a plan, those with nothing to say left out.
// backend is plan.BackendNFTables or plan.BackendIPTables, as chosen for the
// root.
func Render(p *plan.Plan, backend string) ([]File, error) {
	if backend == "" {
		backend = plan.BackendIPTables // what nicpersist rendered before it had a choice
	}
	t, err := templates.Parse()
	if err != nil {
		return nil, err
	}
	var out []File
	exec := func(name, tmpl string, data any) error {
		var b bytes.Buffer
		if err := t.ExecuteTemplate(&b, tmpl, data); err != nil {
			return err
		}
		out = append(out, File{name, b.Bytes()})
		return nil
	}
	if backend == plan.BackendNFTables {
		if c := nftChains(p); len(c) > 0 {
			if err := exec(NFTName, "nftables.nft.tmpl", map[string]any{"Format": Format, "Table": NFTTable, "Chains": c}); err != nil {
				return nil, err
			}
		}
	}
	for _, f := range Families {
		if rules, more := xtablesRules(p, f); backend == plan.BackendIPTables && len(rules) > 0 {
			type table struct {
				Name          string
				Chains, Rules []string
			}
			var tables []table
			for _, c := range XChains {
				if len(rules[c]) == 0 {
					continue
				}
				if len(tables) == 0 || tables[len(tables)-1].Name != c.Table {
					tables = append(tables, table{Name: c.Table})
				}
				t := &tables[len(tables)-1]
				t.Chains = append(t.Chains, c.Name)
				for _, r := range rules[c] {
					t.Rules = append(t.Rules, r.Text)
				}
			}
			format := format1
			if more {
				format = Format
			}
			if err := exec(NATName(f), "iptables.rules.tmpl", map[string]any{"Format": format, "Tables": tables}); err != nil {
				return nil, err
			}
		}
		var b Batch
		for _, r := range p.RoutesOf(f) {
			if r.Table == plan.TableMain {
				b.Main = append(b.Main, r.Args())
			} else {
				b.Routes = append(b.Routes, r.Args())
			}
		}
		for _, r := range p.RulesOf(f) {
			b.Rules = append(b.Rules, r.Args())
		}
		if b.Empty() {
			continue
		}
		if err := exec(BatchName(f), "ip.batch.tmpl", map[string]any{"Format": format1, "Proto": plan.Proto,
			"Routes": b.Routes, "Rules": b.Rules, "Main": b.Main}); err != nil {
			return nil, err
		}
	}
	var links []Link
	for _, l := range p.Interfaces {
		for _, x := range []struct {
			routed bool
			addr   netip.Prefix
		}{{l.Routed4, l.Addr4}, {l.Routed6, l.Addr6}} {
			if x.routed {
				links = append(links, Link{Dev: l.Name, Addr: x.addr.Addr()})
			}
		}
	}
	if len(links) > 0 {
		if err := exec(Links, "links.tmpl", map[string]any{"Format": format1, "Links": links}); err != nil {
			return nil, err
		}
	}
	if len(p.Sysctls) > 0 {
		var s []Sysctl
		for _, x := range p.Sysctls {
			s = append(s, Sysctl{x.ProcPath(), x.Value})
		}
		if err := exec(Sysctls, "sysctl.list.tmpl", map[string]any{"Format": format1, "Sysctls": s}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// NATRule is one NAT rule as an iptables -A line in nicpersist's chain.
func NATRule(n plan.NAT) string {
	var b strings.Builder
	b.WriteString("-A " + NATChain)
	if n.Source.IsValid() {
		b.WriteString(" -s " + n.Source.String())
	}
	b.WriteString(" -o " + n.Out)
	if n.Masquerade {
		b.WriteString(" -j MASQUERADE")
	} else {
		b.WriteString(" -j SNAT --to-source " + n.ToSource.String())
	}
	return b.String()
}

// Read parses every file of a rendered directory; an absent file has
// nothing to apply. All problems are returned, joined.
func Read(dir string) (*Set, error) {
	s := &Set{Batches: map[plan.Family]Batch{}, NAT: map[plan.Family][]byte{}}
	var errs []error
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
		return b
	}
	for _, f := range Families {
		if b := read(BatchName(f)); b != nil {
			batch, err := ParseBatch(filepath.Join(dir, BatchName(f)), f, b)
			errs = append(errs, err)
			s.Batches[f] = batch
		}
		if b := read(NATName(f)); b != nil {
			_, err := lines(filepath.Join(dir, NATName(f)), b)
			errs = append(errs, err)
			s.NAT[f] = b
		}
	}
	if b := read(NFTName); b != nil {
		_, err := lines(filepath.Join(dir, NFTName), b)
		errs = append(errs, err)
		s.NFT = b
	}
	if b := read(Links); b != nil {
		var err error
		s.Links, err = ParseLinks(filepath.Join(dir, Links), b)
		errs = append(errs, err)
	}
	if b := read(Sysctls); b != nil {
		var err error
		s.Sysctls, err = ParseSysctls(filepath.Join(dir, Sysctls), b)
		errs = append(errs, err)
	}
	return s, errors.Join(errs...)
}

type line struct {
	n    int
	text string
}

// lines checks a file's format line and returns its lines that are neither
// blank nor comments, with their numbers. "#@ " lines other than the format
// are kept: they are a batch file's section headers.
func lines(name string, data []byte) ([]line, error) {
	var out []line
	for i, l := range strings.Split(string(data), "\n") {
		l = strings.TrimRight(l, " \t\r")
		switch {
		case strings.HasPrefix(l, "#@ format"):
			w := strings.Fields(l)
			n, err := strconv.Atoi(w[len(w)-1])
			if len(w) != 3 || err != nil || n < 1 {
				return nil, fmt.Errorf("%s:%d: %q is not a format line (#@ format N)", name, i+1, l)
			}
			if n > Format {
				return nil, fmt.Errorf("%s:%d: format %d is from a newer nicpersist; this one reads format %d and older: install the nicpersist that rendered it, or render again with this one", name, i+1, n, Format)
			}
		case strings.HasPrefix(l, "#@"):
			out = append(out, line{i + 1, l})
		case l == "" || strings.HasPrefix(l, "#"):
		default:
			out = append(out, line{i + 1, l})
		}
	}
	return out, nil
}

// ParseBatch reads an ip4.batch or ip6.batch file.
func ParseBatch(name string, f plan.Family, data []byte) (Batch, error) {
	var b Batch
	ls, err := lines(name, data)
	if err != nil {
		return b, err
	}
	var errs []error
	var cur *[]string
	verb := ""
	for _, l := range ls {
		if h, ok := strings.CutPrefix(l.text, "#@"); ok {
			switch strings.TrimSpace(h) {
			case "routes":
				cur, verb = &b.Routes, "route replace "
			case "rules":
				cur, verb = &b.Rules, "rule add "
			case "main":
				cur, verb = &b.Main, "route replace "
			default:
				errs = append(errs, fmt.Errorf("%s:%d: unknown section %q; want routes, rules or main", name, l.n, l.text))
				cur = nil
			}
			continue
		}
		args, ok := strings.CutPrefix(l.text, verb)
		switch {
		case cur == nil:
			errs = append(errs, fmt.Errorf("%s:%d: %q is outside a section", name, l.n, l.text))
			continue
		case !ok:
			errs = append(errs, fmt.Errorf("%s:%d: %q in this section must start with %q", name, l.n, l.text, verb))
			continue
		case verb == "rule add ":
			if _, err := ParseRule(f, args); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %v", name, l.n, err))
				continue
			}
		default:
			if _, err := ParseRoute(f, args); err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %v", name, l.n, err))
				continue
			}
		}
		*cur = append(*cur, l.text)
	}
	return b, errors.Join(errs...)
}

// ParseLinks reads the links file: "DEV ADDRESS" lines, "-" for any address.
func ParseLinks(name string, data []byte) ([]Link, error) {
	ls, err := lines(name, data)
	if err != nil {
		return nil, err
	}
	var out []Link
	var errs []error
	for _, l := range ls {
		w := strings.Fields(l.text)
		if len(w) != 2 || strings.HasPrefix(l.text, "#") {
			errs = append(errs, fmt.Errorf("%s:%d: %q is not DEV ADDRESS", name, l.n, l.text))
			continue
		}
		k := Link{Dev: w[0]}
		if w[1] != "-" {
			a, err := netip.ParseAddr(w[1])
			if err != nil {
				errs = append(errs, fmt.Errorf("%s:%d: %q is not an address or -", name, l.n, w[1]))
				continue
			}
			k.Addr = a
		}
		out = append(out, k)
	}
	return out, errors.Join(errs...)
}

// ParseSysctls reads sysctl.list: "KEY VALUE" lines, KEY under /proc/sys.
func ParseSysctls(name string, data []byte) ([]Sysctl, error) {
	ls, err := lines(name, data)
	if err != nil {
		return nil, err
	}
	var out []Sysctl
	var errs []error
	for _, l := range ls {
		w := strings.Fields(l.text)
		if len(w) < 2 || strings.HasPrefix(l.text, "#") {
			errs = append(errs, fmt.Errorf("%s:%d: %q is not KEY VALUE", name, l.n, l.text))
			continue
		}
		if err := CheckKey(w[0]); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %v", name, l.n, err))
			continue
		}
		out = append(out, Sysctl{w[0], strings.Join(w[1:], " ")})
	}
	return out, errors.Join(errs...)
}

// CheckKey refuses a sysctl key that would leave /proc/sys.
func CheckKey(key string) error {
	if key == "" || path.Clean(key) != key || strings.HasPrefix(key, "/") || strings.HasPrefix(key, "..") {
		return fmt.Errorf("%q is not a key under /proc/sys", key)
	}
	return nil
}

// Rule is what identifies a policy rule to the kernel, which answers "File
// exists" to a second rule equal in all of these (its protocol aside).
// Apply compares a batch line with the kernel's rules by it.
type Rule struct {
	Priority   uint32
	From, To   netip.Prefix // invalid: any
	IIF, OIF   string
	Mark, Mask uint32 // Mask 0: no fwmark selector
	Table      uint32
}

// ParseRule reads the arguments of a batch file's "rule add" line, in the
// words render writes (plan.Rule.Args).
func ParseRule(f plan.Family, args string) (Rule, error) {
	var r Rule
	w := strings.Fields(args)
	var seen []string
	for i := 0; i < len(w); i += 2 {
		if i+1 >= len(w) {
			return r, fmt.Errorf("rule: %q has no value", w[i])
		}
		k, v := w[i], w[i+1]
		if slices.Contains(seen, k) {
			return r, fmt.Errorf("rule: %q twice", k)
		}
		seen = append(seen, k)
		var err error
		switch k {
		case "priority":
			r.Priority, err = parseUint32(v)
		case "from":
			r.From, err = parseSelector(f, v)
		case "to":
			r.To, err = parseSelector(f, v)
		case "iif":
			r.IIF = v
		case "oif":
			r.OIF = v
		case "fwmark":
			mark, mask, hasMask := strings.Cut(v, "/")
			if r.Mark, err = parseUint32(mark); err == nil {
				r.Mask = 0xffffffff
				if hasMask {
					r.Mask, err = parseUint32(mask)
				}
			}
		case "table":
			r.Table, err = parseTable(v)
		default:
			return r, fmt.Errorf("rule: unknown word %q", k)
		}
		if err != nil {
			return r, fmt.Errorf("rule: %s %q: %v", k, v, err)
		}
	}
	if !slices.Contains(seen, "priority") || !slices.Contains(seen, "table") {
		return r, fmt.Errorf("rule: %q lacks a priority or a table", args)
	}
	return r, nil
}

// RouteKey is what identifies a route to the kernel: its table, prefix and
// metric. A second route with the same key replaces the first.
type RouteKey struct {
	Table  uint32
	Dst    netip.Prefix
	Metric uint32
}

// ParseRoute reads the arguments of a batch file's "route replace" line for
// its key; ip itself checks the rest.
func ParseRoute(f plan.Family, args string) (RouteKey, error) {
	k := RouteKey{Table: plan.TableMain}
	if f == plan.V6 {
		k.Metric = 1024 // the kernel's default for IPv6
	}
	w := strings.Fields(args)
	if len(w) == 0 {
		return k, errors.New("route: no destination")
	}
	var err error
	if w[0] == "default" {
		k.Dst = f.Default()
	} else if k.Dst, err = parsePrefix(f, w[0]); err != nil {
		return k, fmt.Errorf("route: destination %q: %v", w[0], err)
	}
	for i := 1; i < len(w)-1; i++ {
		switch w[i] {
		case "table":
			k.Table, err = parseTable(w[i+1])
		case "metric":
			k.Metric, err = parseUint32(w[i+1])
		}
		if err != nil {
			return k, fmt.Errorf("route: %s %q: %v", w[i], w[i+1], err)
		}
	}
	return k, nil
}

func parseUint32(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		return 0, errors.New("not a number from 0 to 4294967295")
	}
	return uint32(n), nil
}

func parseTable(s string) (uint32, error) {
	if s == "main" {
		return plan.TableMain, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n == 0 {
		return 0, errors.New("not a table number")
	}
	return uint32(n), nil
}

// parseSelector reads a rule's from or to: a /0 prefix is "all", as the
// kernel keeps it (no FRA_SRC or FRA_DST).
func parseSelector(f plan.Family, s string) (netip.Prefix, error) {
	p, err := parsePrefix(f, s)
	if err == nil && p.IsValid() && p.Bits() == 0 {
		p = netip.Prefix{}
	}
	return p, err
}

// parsePrefix reads "all", an address (a host prefix) or a prefix of the
// family, masked as the kernel keeps it.
func parsePrefix(f plan.Family, s string) (netip.Prefix, error) {
	if s == "all" {
		return netip.Prefix{}, nil
	}
	var p netip.Prefix
	var err error
	if strings.Contains(s, "/") {
		p, err = netip.ParsePrefix(s)
	} else {
		var a netip.Addr
		if a, err = netip.ParseAddr(s); err == nil {
			p = netip.PrefixFrom(a, a.BitLen())
		}
	}
	if err != nil {
		return p, errors.New("not an address or prefix")
	}
	if p.Addr().Is4() != (f == plan.V4) || p.Addr().Zone() != "" {
		return p, fmt.Errorf("not an IPv%d prefix", f)
	}
	return p.Masked(), nil
}
