package plan

import (
	"sort"

	"github.com/nicpersist/nicpersist/render/internal/diag"
	"github.com/nicpersist/nicpersist/render/internal/profile"
)

// builder carries what Build has read so far. Each kind of profile object
// has its own file: interfaces, tables, routes, rules, nat, sysctl, and
// numbering for the ids and priorities they share.
type builder struct {
	c        checker
	p        *Plan
	ifaces   []*iface
	byName   map[string]*iface
	tableIDs map[uint32]string // id -> path that claimed it
	names    map[string]uint32 // table name -> id
	prios    map[[2]uint32]string
	explicit map[uint32]bool // priorities [[rule]]s and interfaces ask for, kept from auto-assignment
	tBase    uint32
	pBase    uint32
	nextTab  uint32
	nextPrio uint32
	fwd4     *bool
	fwd6     *bool
	rpf      string
}

// Build checks a decoded profile and expands it into a Plan. Every problem
// goes to l; the Plan is nil when any of them is an error.
func Build(d *profile.Decoded, l *diag.List) *Plan {
	b := &builder{
		c:        checker{p: l},
		p:        &Plan{},
		byName:   map[string]*iface{},
		tableIDs: map[uint32]string{},
		names:    map[string]uint32{"main": TableMain},
		prios:    map[[2]uint32]string{},
		explicit: map[uint32]bool{},
	}
	pr := d.Profile
	b.version(pr)
	b.numbering(pr)
	b.sysctl(pr)
	b.interfaces(pr)
	b.tables(pr)
	b.autoTables()
	for _, r := range pr.Rules {
		if r.Priority.Set && r.Priority.Bad == nil && r.Priority.V > 0 && r.Priority.V <= maxPriority {
			b.explicit[uint32(r.Priority.V)] = true
		}
	}
	for _, it := range b.ifaces {
		if it.prio != 0 {
			b.explicit[it.prio] = true
		}
	}
	b.expandInterfaces()
	b.routes(pr)
	b.rules(pr)
	b.nat(pr)
	b.netfilter(pr)
	b.forwards(pr)
	b.marks(pr)
	b.sysctls()
	b.links()
	b.lint()
	if l.HasErrors() {
		return nil
	}
	sort.Slice(b.p.Tables, func(i, j int) bool { return b.p.Tables[i].ID < b.p.Tables[j].ID })
	return b.p
}

func (b *builder) version(pr *profile.Profile) {
	v := pr.Version
	switch {
	case v.Bad != nil:
		b.c.p.Errorf("version", "must be the integer 1, not %s", profile.TypeName(v.Bad))
	case !v.Set:
		b.c.p.Errorf("version", "is missing; put `version = 1` at the top of the profile")
	case v.V != 1:
		b.c.p.Errorf("version", "%d is not supported; this nicpersist reads version = 1", v.V)
	}
}

// object starts reading one profile object; sound says whether no error was
// reported since. An object with an error stays out of the plan, so that
// nothing built on it (a duplicate check, a rule's family) reports a second,
// confusing problem.
func (b *builder) object() (sound func() bool) {
	mark := len(b.c.p.Items)
	return func() bool { return b.c.p.ErrorsSince(mark) == 0 }
}

func joinOr(s []string) string {
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0]
	}
	out := ""
	for i, x := range s {
		switch {
		case i == 0:
		case i == len(s)-1:
			out += " or "
		default:
			out += ", "
		}
		out += x
	}
	return out
}
