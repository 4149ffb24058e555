package plan

import (
	"fmt"
	"strconv"
	"strings"
)

// lint warns about profiles that are valid but reproduce the seed's traps.
func (b *builder) lint() {
	b.lintSSH()
	b.lintRPFilter()
	b.lintForwarding()
	b.lintIfSysctls()
	b.lintMarks()
}

// lintIfSysctls: the kernel uses the larger of conf.all.rp_filter and the
// interface's, so 0 on one interface is off only when all is 0 too.
func (b *builder) lintIfSysctls() {
	for _, it := range b.ifaces {
		if c, ok := it.ctl["rp_filter"]; ok && c.value == "0" && b.rpf != "off" {
			b.c.p.Warnf(c.origin, "0 turns reverse-path filtering off on %s only when net.ipv4.conf.all.rp_filter is 0 as well (the kernel uses the larger value); set sysctl.rp_filter = \"off\", or 2 (loose) here", it.name)
		}
	}
}

// lintMarks: a mark that no rule selects routes nothing.
func (b *builder) lintMarks() {
	for _, m := range b.p.Marks {
		used := false
		for _, r := range b.p.Rules {
			if r.FWMark == "" || r.Family != m.Family {
				continue
			}
			v, mask, _ := strings.Cut(r.FWMark, "/")
			rv, _ := strconv.ParseUint(v, 0, 32)
			rm := uint64(0xffffffff)
			if mask != "" {
				rm, _ = strconv.ParseUint(mask, 0, 32)
			}
			// The packet's mark after ours, under the rule's mask.
			used = used || uint32(rm)&m.Mask == uint32(rm) && m.Mark&uint32(rm) == uint32(rv)
		}
		if !used {
			b.c.p.Warnf(m.Origin+".fwmark", "no %s [[rule]] selects fwmark 0x%x/0x%x, so the mark changes no route; add a [[rule]] with fwmark = \"0x%x/0x%x\" and a table", m.Family, m.Mark, m.Mask, m.Mark, m.Mask)
		}
	}
}

// lintSSH: once the main default route leaves through one interface, replies
// to connections that arrived on another interface with a gateway follow it
// out of the wrong NIC, and the cloud drops them (SSH to the primary NIC dies).
func (b *builder) lintSSH() {
	for _, f := range []Family{V4, V6} {
		var def *iface
		for _, it := range b.ifaces {
			if it.def && it.gw[f].IsValid() && def == nil {
				def = it
			}
		}
		if def == nil {
			continue
		}
		for _, it := range b.ifaces {
			if it == def || it.reply || !it.gw[f].IsValid() || it.name == "" {
				continue
			}
			b.c.p.Warnf(it.path, "the main %s default route leaves via %s, so replies to connections made to %s (SSH to this interface, say) leave via %s and are dropped; set reply_via_self = true on %s",
				f, def.name, it.addr[f].Addr(), def.name, it.name)
		}
	}
}

// asymmetric says traffic may arrive on one interface and leave by another:
// policy rules, or a moved default route with a second routed interface.
func (b *builder) asymmetric() bool {
	if len(b.p.Rules) > 0 {
		return true
	}
	gws := 0
	def := false
	for _, it := range b.ifaces {
		if it.gw[V4].IsValid() {
			gws++
		}
		def = def || it.def
	}
	return def && gws > 1 || len(b.p.NAT) > 0 && len(b.ifaces) > 1
}

func (b *builder) lintRPFilter() {
	if !b.asymmetric() {
		return
	}
	switch b.rpf {
	case "strict":
		b.c.p.Warnf("sysctl.rp_filter", "\"strict\" drops packets that arrive on an interface other than the one the reply would leave by, which this profile's routing does; use \"loose\"")
	case "":
		b.c.p.Warnf("sysctl", "rp_filter is not set and many images default to strict (1), which drops this profile's asymmetric traffic; set rp_filter = \"loose\"")
	}
}

func (b *builder) lintForwarding() {
	for _, n := range b.p.NAT {
		fwd, key := b.fwd4, "ip_forward"
		if n.Family == V6 {
			fwd, key = b.fwd6, "ipv6_forwarding"
		}
		switch {
		case fwd == nil:
			b.c.p.Warnf(n.Origin, "NAT is configured but sysctl.%s is not set: traffic from other hosts is not forwarded unless the system enables it; set %s = true", key, key)
		case !*fwd:
			b.c.p.Warnf(n.Origin, "NAT is configured but sysctl.%s = false: traffic from other hosts is not forwarded", key)
		}
	}
	for _, x := range b.p.Forwards {
		fwd, key := b.fwd4, "ip_forward"
		if x.Family == V6 {
			fwd, key = b.fwd6, "ipv6_forwarding"
		}
		if fwd == nil || !*fwd {
			b.c.p.Warnf(x.Origin, "a port forward to another host is forwarded traffic, but sysctl.%s is not true; set %s = true", key, key)
		}
	}
	raSet := false // the profile took care of router advertisements
	for _, it := range b.ifaces {
		_, ok := it.ctl["accept_ra"]
		raSet = raSet || ok
	}
	if b.fwd6 != nil && *b.fwd6 && !raSet {
		b.c.p.Warnf("sysctl.ipv6_forwarding", "forwarding makes the kernel ignore router advertisements on interfaces whose accept_ra is 1; set sysctl = { accept_ra = 2 } on the [[interface]]s whose addresses or routes come from SLAAC")
	}
}

// System is what is already on the target machine that numbers can collide with.
type System struct {
	// Tables maps table ids and names found in <root>'s rt_tables files to
	// where they were found.
	TableIDs   map[uint32]string
	TableNames map[string]string
	// Priorities maps rule priorities in rule files nicpersist did not write
	// to where they were found.
	Priorities map[uint32]string
}

// ParseRTTables reads an rt_tables file into sys, tagging entries with where.
func (sys *System) ParseRTTables(text, where string) {
	if sys.TableIDs == nil {
		sys.TableIDs, sys.TableNames = map[uint32]string{}, map[string]string{}
	}
	for i, line := range strings.Split(text, "\n") {
		if j := strings.IndexByte(line, '#'); j >= 0 {
			line = line[:j]
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		id, err := strconv.ParseUint(f[0], 0, 32)
		if err != nil || isKernelTable(uint32(id)) {
			continue
		}
		at := fmt.Sprintf("%s:%d", where, i+1)
		sys.TableIDs[uint32(id)] = at
		sys.TableNames[f[1]] = at
	}
}

// ParseRules reads `ip rule` argument lines (a rule-<if> file) for priorities.
func (sys *System) ParseRules(text, where string) {
	if sys.Priorities == nil {
		sys.Priorities = map[uint32]string{}
	}
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		for j := 0; j+1 < len(f); j++ {
			switch f[j] {
			case "priority", "pref", "preference", "prio":
				if p, err := strconv.ParseUint(f[j+1], 10, 32); err == nil {
					sys.Priorities[uint32(p)] = fmt.Sprintf("%s:%d", where, i+1)
				}
			}
		}
	}
}

// Warnings reports the plan's numbers that something on the system already
// uses. They are warnings: the system file may be stale, and only the user
// knows.
func (p *Plan) Warnings(sys System, warn func(path, format string, args ...any)) {
	for _, t := range p.Tables {
		if at, ok := sys.TableIDs[t.ID]; ok {
			warn(t.Origin, "table id %d is already named in %s; pick another id or numbering.table_base", t.ID, at)
		}
		if at, ok := sys.TableNames[t.Name]; ok {
			warn(t.Origin, "table name %q is already used in %s", t.Name, at)
		}
	}
	seen := map[uint32]bool{}
	for _, r := range p.Rules {
		if at, ok := sys.Priorities[r.Priority]; ok && !seen[r.Priority] {
			seen[r.Priority] = true
			warn(r.Origin, "rule priority %d is already used in %s; pick another priority or numbering.priority_base", r.Priority, at)
		}
	}
}
