package plan

import (
	"strconv"

	"github.com/nicpersist/nicpersist/render/internal/profile"
)

func (b *builder) sysctl(pr *profile.Profile) {
	s := pr.Sysctl
	if v, ok := b.c.boolean("sysctl.ip_forward", s.IPForward); ok {
		b.fwd4 = &v
	}
	if v, ok := b.c.boolean("sysctl.ipv6_forwarding", s.IPv6Forwarding); ok {
		b.fwd6 = &v
	}
	if v, ok := b.c.str("sysctl.rp_filter", s.RPFilter); ok {
		switch v {
		case "strict", "loose", "off":
			b.rpf = v
		default:
			b.c.p.Errorf("sysctl.rp_filter", "%q is not one of \"strict\", \"loose\", \"off\"", v)
		}
	}
}

// sysctls lists the keys in the order sysctl.d applies them: "all" before the
// interfaces, so an interface value is the one that counts.
func (b *builder) sysctls() {
	add := func(k, v, origin string) {
		b.p.Sysctls = append(b.p.Sysctls, Sysctl{Key: k, Value: v, Origin: origin})
	}
	if b.fwd4 != nil {
		add("net.ipv4.ip_forward", boolDigit(*b.fwd4), "sysctl.ip_forward")
	}
	if b.fwd6 != nil {
		add("net.ipv6.conf.all.forwarding", boolDigit(*b.fwd6), "sysctl.ipv6_forwarding")
	}
	v := map[string]string{"off": "0", "strict": "1", "loose": "2"}[b.rpf]
	if b.rpf == "off" {
		// The effective value is max(all, interface): off needs both.
		add("net.ipv4.conf.all.rp_filter", "0", "sysctl.rp_filter")
	}
	for _, it := range b.ifaces {
		if it.name == "" {
			continue
		}
		// An interface's own rp_filter is the one its key gets.
		if _, own := it.ctl["rp_filter"]; b.rpf != "" && !own {
			add(confKey(it.name, "rp_filter"), v, "sysctl.rp_filter")
		}
		for _, k := range ifSysctls {
			if c, ok := it.ctl[k.key]; ok {
				add(familyConfKey(k.family, it.name, k.key), c.value, c.origin)
			}
		}
	}
}

// confKey builds net.ipv4.conf.<if>.<key>; a name with '.' (a VLAN such as
// eth0.100) needs the '/' form, as sysctl.d(5) says.
func confKey(name, key string) string { return familyConfKey(V4, name, key) }

// familyConfKey builds net.ipv4.conf.<if>.<key> or net.ipv6.conf.<if>.<key>.
func familyConfKey(f Family, name, key string) string {
	ip := "ipv" + strconv.Itoa(int(f))
	for _, r := range name {
		if r == '.' {
			return "net/" + ip + "/conf/" + name + "/" + key
		}
	}
	return "net." + ip + ".conf." + name + "." + key
}

func boolDigit(v bool) string {
	if v {
		return "1"
	}
	return "0"
}
