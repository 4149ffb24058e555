package plan

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/profile"
)

func (b *builder) netfilter(pr *profile.Profile) {
	b.p.Netfilter.Backend = BackendAuto
	if s, ok := b.c.str("netfilter.backend", pr.Netfilter.Backend); ok {
		switch s {
		case BackendAuto, BackendNFTables, BackendIPTables:
			b.p.Netfilter.Backend = s
		default:
			b.c.p.Errorf("netfilter.backend", "%q is not one of \"auto\", \"nftables\", \"iptables\"", s)
		}
	}
	if v, ok := b.c.boolean("netfilter.forward_accept", pr.Netfilter.ForwardAccept); ok {
		b.p.Netfilter.ForwardAccept = v
	}
}

// protocol reads "tcp" or "udp": the protocols that have ports.
func (c checker) protocol(path string, o profile.Opt[string]) (string, bool) {
	s, ok := c.str(path, o)
	if !ok {
		return "", false
	}
	if s != "tcp" && s != "udp" {
		c.p.Errorf(path, "%q is not \"tcp\" or \"udp\"", s)
		return "", false
	}
	return s, true
}

// ports reads a port (80, "80") or a range ("8000-8010").
func (c checker) ports(path string, s profile.Scalar) (lo, hi uint16, ok bool) {
	if s.Bad != nil {
		c.p.Errorf(path, "must be a port number or a string like \"8000-8010\", not %s", profile.TypeName(s.Bad))
		return 0, 0, false
	}
	if !s.Set {
		return 0, 0, false
	}
	one := func(v int64) (uint16, bool) {
		if v < 1 || v > 65535 {
			c.p.Errorf(path, "%d is out of range; a port is 1-65535", v)
			return 0, false
		}
		return uint16(v), true
	}
	if s.IsInt {
		p, ok := one(s.Int)
		return p, p, ok
	}
	a, z, isRange := strings.Cut(s.Str, "-")
	x, err1 := strconv.ParseInt(a, 10, 32)
	y, err2 := x, error(nil)
	if isRange {
		y, err2 = strconv.ParseInt(z, 10, 32)
	}
	if err1 != nil || err2 != nil {
		c.p.Errorf(path, "%q is not a port or a range; write 8080 or \"8000-8010\"", s.Str)
		return 0, 0, false
	}
	if lo, ok = one(x); !ok {
		return 0, 0, false
	}
	if hi, ok = one(y); !ok {
		return 0, 0, false
	}
	if hi < lo {
		c.p.Errorf(path, "%q runs backwards; write \"%d-%d\"", s.Str, hi, lo)
		return 0, 0, false
	}
	return lo, hi, true
}

// forwards reads [[port_forward]]: DNAT of packets arriving on an interface.
func (b *builder) forwards(pr *profile.Profile) {
	for i, in := range pr.Forwards {
		p := fmt.Sprintf("port_forward[%d]", i)
		sound := b.object()
		x := Forward{Origin: p}
		if s, ok := b.c.str(p+".in_interface", in.InInterface); ok {
			if _, ok := b.ifRef(p+".in_interface", s, false); ok {
				x.In = s
			}
		} else if !in.InInterface.Set {
			b.c.p.Errorf(p+".in_interface", "is missing; name the interface the forwarded port is reached on")
		}
		if s, ok := b.c.protocol(p+".protocol", in.Protocol); ok {
			x.Proto = s
		} else if !in.Protocol.Set {
			b.c.p.Errorf(p+".protocol", "is missing; give \"tcp\" or \"udp\"")
		}
		if lo, hi, ok := b.c.ports(p+".port", in.Port); ok {
			x.PortLo, x.PortHi = lo, hi
		} else if !in.Port.Set {
			b.c.p.Errorf(p+".port", "is missing; give the port (8080) or range (\"8000-8010\") to forward")
		}
		if s, ok := b.c.str(p+".to", in.To); ok {
			if ap, err := netip.ParseAddrPort(s); err == nil {
				if ap.Port() == 0 {
					b.c.p.Errorf(p+".to", "%q has port 0; give a port from 1 to 65535 or leave it out", s)
				} else if a, ok := b.c.addr(p+".to", ap.Addr().String()); ok {
					x.To, x.ToPort = a, ap.Port()
				}
			} else if strings.Count(s, ":") == 1 && !strings.Contains(s, "[") {
				b.c.p.Errorf(p+".to", "%q is not ADDRESS:PORT; write \"172.22.5.130:22\" with a port from 1 to 65535", s)
			} else if a, ok := b.c.addr(p+".to", s); ok {
				x.To = a
			}
		} else if !in.To.Set {
			b.c.p.Errorf(p+".to", "is missing; give the address (and port) to forward to, e.g. \"172.22.5.130:22\" or \"[2001:db8:3::130]:22\"")
		}
		if x.To.IsValid() {
			x.Family = familyOf(x.To)
			if x.In != "" && !b.byName[x.In].has(x.Family) {
				b.c.p.Warnf(p+".to", "%s is %s but %s has no %s address in the profile", x.To, x.Family, x.In, x.Family)
			}
		}
		if sound() {
			b.p.Forwards = append(b.p.Forwards, x)
		}
	}
}

// marks reads [[mark]]: a firewall mark set in mangle PREROUTING, which a
// [[rule]] with fwmark then routes.
func (b *builder) marks(pr *profile.Profile) {
	for i, in := range pr.Marks {
		p := fmt.Sprintf("mark[%d]", i)
		sound := b.object()
		x := Mark{Origin: p, Family: V4}
		if s, ok := b.c.str(p+".in_interface", in.InInterface); ok {
			if _, ok := b.ifRef(p+".in_interface", s, false); ok {
				x.In = s
			}
		}
		if s, ok := b.c.protocol(p+".protocol", in.Protocol); ok {
			x.Proto = s
		}
		if lo, hi, ok := b.c.ports(p+".port", in.Port); ok {
			x.PortLo, x.PortHi = lo, hi
			if !in.Protocol.Set {
				b.c.p.Errorf(p+".port", "needs protocol = \"tcp\" or \"udp\"; a port means nothing without one")
			}
		}
		if s, ok := b.c.str(p+".source", in.Source); ok {
			if n, ok := b.c.network(p+".source", s); ok && n.Bits() == 0 {
				b.c.p.Errorf(p+".source", "%s matches every address; leave source out, or give a narrower network", s)
			} else if ok {
				x.Source, x.Family = n, familyOf(n.Addr())
			}
		}
		if !in.InInterface.Set && !in.Protocol.Set && !in.Source.Set {
			b.c.p.Errorf(p, "has no selector; give at least one of in_interface, source, protocol (a mark on every packet would send all traffic to the marked table)")
		}
		if m, ok := b.c.fwmark(p+".fwmark", in.FWMark); ok {
			v, mask, _ := strings.Cut(m, "/")
			mk, _ := strconv.ParseUint(v, 0, 32)
			x.Mark, x.Mask = uint32(mk), 0xffffffff
			if mask != "" {
				mm, _ := strconv.ParseUint(mask, 0, 32)
				x.Mask = uint32(mm)
			}
			switch {
			case x.Mask == 0:
				b.c.p.Errorf(p+".fwmark", "%s has mask 0, which sets nothing; give a non-zero mask", m)
			case x.Mark == 0:
				b.c.p.Errorf(p+".fwmark", "%s sets a zero mark, which no [[rule]] can select; give a non-zero mark", m)
			case x.Mark&^x.Mask != 0:
				b.c.p.Errorf(p+".fwmark", "%s has bits outside its mask; did you mean 0x%x/0x%x?", m, x.Mark&x.Mask, x.Mask)
			}
		} else if !in.FWMark.Set {
			b.c.p.Errorf(p+".fwmark", "is missing; give the mark to set, e.g. \"0x10\" or \"0x10/0xff\", and a [[rule]] with the same fwmark")
		}
		if sound() {
			b.p.Marks = append(b.p.Marks, x)
		}
	}
}

// ifSysctls are the per-interface net.ipv4.conf.<if>.* keys (and IPv6's
// accept_ra) a profile may set, with the values the kernel accepts.
var ifSysctls = []struct {
	key    string
	get    func(*profile.IfSysctl) profile.Opt[int64]
	lo, hi int64
	extra  int64 // another accepted value, -1 for none
	family Family
}{
	{"accept_local", func(s *profile.IfSysctl) profile.Opt[int64] { return s.AcceptLocal }, 0, 1, -1, V4},
	{"accept_redirects", func(s *profile.IfSysctl) profile.Opt[int64] { return s.AcceptRedirects }, 0, 1, -1, V4},
	{"arp_announce", func(s *profile.IfSysctl) profile.Opt[int64] { return s.ArpAnnounce }, 0, 2, -1, V4},
	{"arp_filter", func(s *profile.IfSysctl) profile.Opt[int64] { return s.ArpFilter }, 0, 1, -1, V4},
	{"arp_ignore", func(s *profile.IfSysctl) profile.Opt[int64] { return s.ArpIgnore }, 0, 3, 8, V4},
	{"proxy_arp", func(s *profile.IfSysctl) profile.Opt[int64] { return s.ProxyARP }, 0, 1, -1, V4},
	{"route_localnet", func(s *profile.IfSysctl) profile.Opt[int64] { return s.RouteLocalnet }, 0, 1, -1, V4},
	{"rp_filter", func(s *profile.IfSysctl) profile.Opt[int64] { return s.RPFilter }, 0, 2, -1, V4},
	{"send_redirects", func(s *profile.IfSysctl) profile.Opt[int64] { return s.SendRedirects }, 0, 1, -1, V4},
	// Forwarding makes the kernel ignore router advertisements where
	// accept_ra is 1; 2 keeps them.
	{"accept_ra", func(s *profile.IfSysctl) profile.Opt[int64] { return s.AcceptRA }, 0, 2, -1, V6},
}

// ifSysctl reads an interface's sysctl table into it.ctl, key -> value.
func (b *builder) ifSysctl(p string, it *iface, s profile.IfSysctl) {
	for _, k := range ifSysctls {
		o := k.get(&s)
		path := p + ".sysctl." + k.key
		if o.Bad != nil {
			b.c.p.Errorf(path, "must be an integer, not %s", profile.TypeName(o.Bad))
			continue
		}
		if !o.Set {
			continue
		}
		if (o.V < k.lo || o.V > k.hi) && o.V != k.extra {
			more := ""
			if k.extra >= 0 {
				more = fmt.Sprintf(" or %d", k.extra)
			}
			b.c.p.Errorf(path, "%d is out of range; net.ipv%d.conf.<if>.%s takes %d-%d%s", o.V, k.family, k.key, k.lo, k.hi, more)
			continue
		}
		if it.ctl == nil {
			it.ctl = map[string]ifCtl{}
		}
		it.ctl[k.key] = ifCtl{strconv.FormatInt(o.V, 10), path}
	}
}

type ifCtl struct{ value, origin string }
