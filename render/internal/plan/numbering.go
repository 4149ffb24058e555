package plan

import (
	"github.com/nicpersist/nicpersist/render/internal/profile"
)

// Numbering defaults. Tables 10-255 and 10000-13199 and priorities
// 10000-13199 and 32765 down belong to other multi-NIC tools and the kernel;
// 1000 is clear of all of them and leaves room for 9000 objects.
const (
	DefaultTableBase    = 1000
	DefaultPriorityBase = 1000
	maxPriority         = 32765 // 32766 and 32767 are the kernel's main and default rules
)

func (b *builder) numbering(pr *profile.Profile) {
	b.tBase, b.pBase = DefaultTableBase, DefaultPriorityBase
	if v, ok := b.c.uint32In("numbering.table_base", pr.Numbering.TableBase, 1, 0xfffff000); ok {
		b.tBase = v
		if inReservedTables(v) {
			b.c.p.Warnf("numbering.table_base", "%d is inside a range other multi-NIC tools use (10-255, 10000-13199); the default is %d", v, DefaultTableBase)
		}
	}
	if v, ok := b.c.uint32In("numbering.priority_base", pr.Numbering.PriorityBase, 1, maxPriority); ok {
		b.pBase = v
		if inReservedPrios(v) {
			b.c.p.Warnf("numbering.priority_base", "%d is inside a range other multi-NIC tools use (10000-13199); the default is %d", v, DefaultPriorityBase)
		}
	}
	b.nextTab, b.nextPrio = b.tBase, b.pBase
}

func inReservedTables(id uint32) bool {
	return id >= 10 && id <= 255 || id >= 10000 && id <= 13199
}

func inReservedPrios(p uint32) bool { return p >= 10000 && p <= 13199 }

// tableID claims a table id for path, reporting reserved and duplicate ids.
func (b *builder) tableID(path string, id uint32) bool {
	switch id {
	case 0, TableDefault, TableMain, TableLocal:
		b.c.p.Errorf(path, "%d is reserved by the kernel (0 unspec, 253 default, 254 main, 255 local); pick another id", id)
		return false
	}
	if prev, dup := b.tableIDs[id]; dup {
		b.c.p.Errorf(path, "table %d is already used by %s", id, prev)
		return false
	}
	b.tableIDs[id] = path
	if inReservedTables(id) {
		b.c.p.Warnf(path, "table %d is in a range other multi-NIC tools use (10-255, 10000-13199); omit it to get one from %d", id, b.tBase)
	}
	return true
}

// autoTables gives reply_via_self interfaces without an id the next free ids
// from the base, in profile order, so the same profile gets the same numbers.
func (b *builder) autoTables() {
	for _, it := range b.ifaces {
		if !it.reply || it.name == "" {
			continue
		}
		if !it.tableSet {
			for b.tableIDs[b.nextTab] != "" || isKernelTable(b.nextTab) || inReservedTables(b.nextTab) && !inReservedTables(b.tBase) {
				b.nextTab++
			}
			it.table = b.nextTab
			b.tableIDs[it.table] = it.path + ".reply_via_self"
		}
		name := "nicpersist-" + it.name
		if _, dup := b.names[name]; dup {
			b.c.p.Errorf(it.path+".reply_via_self", "the table name %q it creates is already defined by a [[table]]; rename that table", name)
			continue
		}
		b.names[name] = it.table
		b.p.Tables = append(b.p.Tables, Table{ID: it.table, Name: name, Origin: it.path + ".reply_via_self"})
	}
}

func isKernelTable(id uint32) bool {
	return id == 0 || id == TableDefault || id == TableMain || id == TableLocal
}

// priority claims an explicit priority or hands out the next free one. IPv4
// and IPv6 rules live in separate lists, so a priority is claimed per family.
func (b *builder) priority(path string, f Family, explicit uint32) uint32 {
	if explicit != 0 {
		k := [2]uint32{uint32(f), explicit}
		if prev, dup := b.prios[k]; dup {
			b.c.p.Errorf(path, "priority %d is already used by %s", explicit, prev)
		}
		b.prios[k] = path
		return explicit
	}
	for {
		p := b.nextPrio
		_, used4 := b.prios[[2]uint32{uint32(V4), p}]
		_, used6 := b.prios[[2]uint32{uint32(V6), p}]
		if !used4 && !used6 && !b.explicit[p] && !(inReservedPrios(p) && !inReservedPrios(b.pBase)) {
			break
		}
		b.nextPrio++
	}
	if b.nextPrio > maxPriority {
		b.c.p.Errorf(path, "no rule priority left between numbering.priority_base (%d) and %d; lower the base", b.pBase, maxPriority)
		return 0
	}
	b.prios[[2]uint32{uint32(f), b.nextPrio}] = path
	return b.nextPrio
}

// tableIDIn reads a table id; 0 passes through so that tableID can say it is
// reserved rather than out of range.
func (c checker) tableIDIn(path string, o profile.Opt[int64]) (uint32, bool) {
	if o.Set && o.Bad == nil && o.V == 0 {
		return 0, true
	}
	return c.uint32In(path, o, 1, 0xffffffff)
}
