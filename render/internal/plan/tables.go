package plan

import (
	"fmt"
	"math"
	"sort"
	"strconv"

	"github.com/nicpersist/nicpersist/render/internal/profile"
)

func (b *builder) tables(pr *profile.Profile) {
	for i, t := range pr.Tables {
		p := fmt.Sprintf("table[%d]", i)
		sound := b.object()
		id, idOK := b.c.tableIDIn(p+".id", t.ID)
		if !t.ID.Set {
			b.c.p.Errorf(p+".id", "is missing; every [[table]] needs id = <number>")
		}
		name, nameOK := b.c.str(p+".name", t.Name)
		if !t.Name.Set {
			b.c.p.Errorf(p+".name", "is missing; every [[table]] needs name = \"<name>\"")
		}
		if nameOK {
			b.tableName(p+".name", name)
		}
		if idOK {
			b.tableID(p+".id", id)
		}
		if sound() {
			b.names[name] = id
			b.p.Tables = append(b.p.Tables, Table{ID: id, Name: name, Origin: p})
		}
	}
}

func (b *builder) tableName(path, name string) bool {
	switch {
	case name == "":
		b.c.p.Errorf(path, "is empty")
	case len(name) > 63:
		b.c.p.Errorf(path, "%q is longer than 63 characters", name)
	case name == "main" || name == "local" || name == "default" || name == "unspec":
		b.c.p.Errorf(path, "%q is a kernel table name; pick another name", name)
	default:
		if _, err := strconv.ParseUint(name, 0, 32); err == nil {
			b.c.p.Errorf(path, "%q is a number; a table name must not read as an id", name)
			return false
		}
		if bad, ok := safeWord(name); !ok {
			b.c.p.Errorf(path, "%q contains %q; use letters, digits, '-', '_' and '.'", name, bad)
			return false
		}
		if _, dup := b.names[name]; dup {
			b.c.p.Errorf(path, "table name %q is already defined", name)
			return false
		}
		return true
	}
	return false
}

// resolveTable reads a table given by name or id.
func (b *builder) resolveTable(path string, s profile.Scalar) (uint32, bool) {
	switch {
	case s.Bad != nil:
		b.c.p.Errorf(path, "must be a table name or id, not %s", profile.TypeName(s.Bad))
	case !s.Set:
		return TableMain, true
	case s.IsInt:
		if s.Int == TableMain {
			return TableMain, true
		}
		if s.Int >= 0 && s.Int <= math.MaxUint32 {
			if _, ok := b.tableIDs[uint32(s.Int)]; ok {
				return uint32(s.Int), true
			}
		}
		b.c.p.Errorf(path, "table %d is not defined; add a [[table]] with id = %d, or use %s", s.Int, s.Int, b.knownTables())
	default:
		if id, ok := b.names[s.Str]; ok {
			return id, true
		}
		if n, err := strconv.ParseUint(s.Str, 10, 32); err == nil {
			return b.resolveTable(path, profile.Scalar{Int: int64(n), IsInt: true, Set: true})
		}
		b.c.p.Errorf(path, "table %q is not defined; add a [[table]] with name = %q, or use %s", s.Str, s.Str, b.knownTables())
	}
	return 0, false
}

func (b *builder) knownTables() string {
	var ns []string
	for n := range b.names {
		ns = append(ns, strconv.Quote(n))
	}
	sort.Strings(ns)
	if len(ns) == 1 {
		return ns[0]
	}
	return "one of " + joinOr(ns)
}
