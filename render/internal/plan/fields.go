package plan

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/diag"
	"github.com/nicpersist/nicpersist/render/internal/profile"
)

// Field readers: each checks one leaf, reports what is wrong at its path,
// and returns whether the value is usable: given, of the right type and
// valid. That one flag is all a caller reads. Whether the user gave the key
// at all is the leaf's Set, for "is missing" messages; whether anything in an
// object was wrong is whether an error was reported while reading it (see
// builder.object), which keeps the object, and what would be built on it,
// out of the plan.

type checker struct {
	p *diag.List
}

func (c checker) str(path string, o profile.Opt[string]) (string, bool) {
	if o.Bad != nil {
		c.p.Errorf(path, "must be a string, not %s", profile.TypeName(o.Bad))
		return "", false
	}
	return o.V, o.Set
}

func (c checker) boolean(path string, o profile.Opt[bool]) (bool, bool) {
	if o.Bad != nil {
		c.p.Errorf(path, "must be true or false, not %s", profile.TypeName(o.Bad))
		return false, false
	}
	return o.V, o.Set
}

// uint32In reads an integer in [lo, hi].
func (c checker) uint32In(path string, o profile.Opt[int64], lo, hi int64) (uint32, bool) {
	if o.Bad != nil {
		c.p.Errorf(path, "must be an integer, not %s", profile.TypeName(o.Bad))
		return 0, false
	}
	if !o.Set {
		return 0, false
	}
	if o.V < lo || o.V > hi {
		c.p.Errorf(path, "%d is out of range; use %d-%d", o.V, lo, hi)
		return 0, false
	}
	return uint32(o.V), true
}

// safeWord is what nicpersist lets into rendered files for names: enough for
// every real interface and table name, nothing a shell, unit file or ip batch
// line would read as syntax.
func safeWord(s string) (bad rune, ok bool) {
	for _, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_', r == '.':
		default:
			return r, false
		}
	}
	return 0, true
}

// ifName checks an interface name the way Linux would, then nicpersist's own
// stricter character set.
func (c checker) ifName(path, s string) bool {
	switch {
	case s == "":
		c.p.Errorf(path, "is empty; give the interface name as `ip link` shows it (e.g. \"eth1\")")
	case len(s) > 15:
		c.p.Errorf(path, "%q is %d bytes; Linux interface names are at most 15", s, len(s))
	case s == "." || s == "..":
		c.p.Errorf(path, "%q is not a valid interface name", s)
	case s == "all" || s == "default":
		// Linux refuses them: they name /proc/sys/net/*/conf entries.
		c.p.Errorf(path, "%q is not a valid interface name; Linux reserves it for /proc/sys/net/ipv4/conf/%s", s, s)
	default:
		bad, ok := safeWord(s)
		if ok {
			return true
		}
		switch {
		case bad == '/' || bad == ':' || strings.ContainsRune(" \t\n\r\v\f", bad) || bad > 127 && strings.TrimSpace(string(bad)) == "":
			c.p.Errorf(path, "%q contains %q, which Linux refuses in interface names", s, bad)
		default:
			c.p.Errorf(path, "%q contains %q; nicpersist accepts letters, digits, '-', '_' and '.' in interface names", s, bad)
		}
	}
	return false
}

// unicast refuses addresses that are never a host's or a gateway's.
func unicast(a netip.Addr) string {
	switch {
	case a.Is4In6():
		return "is an IPv4-mapped IPv6 address; write the IPv4 address"
	case a.IsUnspecified():
		return "is the unspecified address"
	case a.IsLoopback():
		return "is a loopback address"
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "is the limited broadcast address"
	case a.IsMulticast():
		return "is a multicast address"
	case a.Zone() != "":
		return "has a zone; the interface is given by the profile, drop %" + a.Zone()
	}
	return ""
}

// example is an interface address to show in messages.
func (f Family) example() string {
	if f == V6 {
		return "2001:db8:1::5/64"
	}
	return "172.22.5.68/27"
}

// ifAddress reads an interface address in CIDR form of the wanted family.
func (c checker) ifAddress(path, s string, want Family) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		if a, aerr := netip.ParseAddr(s); aerr == nil {
			c.p.Errorf(path, "%q needs a prefix length, e.g. %q", s, a.String()+"/"+strconv.Itoa(familyOf(a).SubnetBits()))
		} else {
			c.p.Errorf(path, "%q is not an address in CIDR form (e.g. %s)", s, want.example())
		}
		return netip.Prefix{}, false
	}
	a := p.Addr()
	if msg := unicast(a); msg != "" {
		c.p.Errorf(path, "%s %s", s, msg)
		return netip.Prefix{}, false
	}
	if familyOf(a) != want {
		c.p.Errorf(path, "%s is %s; put it in address%s", s, familyOf(a), familyOf(a).Suffix())
		return netip.Prefix{}, false
	}
	if p.Bits() == 0 {
		// Every address would be on-link, and the subnet route would be
		// the default route itself (reply_via_self would make it twice).
		c.p.Errorf(path, "%s has prefix length 0, which puts every address on the link; give the subnet's prefix length, e.g. %s", s, netip.PrefixFrom(a, familyOf(a).SubnetBits()))
		return netip.Prefix{}, false
	}
	if what := notHostOf(a, p); what != "" {
		c.p.Errorf(path, "%s is the %s address of %s; give the interface's own address", s, what, p.Masked())
		return netip.Prefix{}, false
	}
	return p, true
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// addr reads a single unicast address (a gateway, a SNAT address).
func (c checker) addr(path, s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		if _, perr := netip.ParsePrefix(s); perr == nil {
			c.p.Errorf(path, "%q must be a single address, without a prefix length", s)
		} else {
			c.p.Errorf(path, "%q is not an IP address", s)
		}
		return netip.Addr{}, false
	}
	if msg := unicast(a); msg != "" {
		c.p.Errorf(path, "%s %s", s, msg)
		return netip.Addr{}, false
	}
	return a, true
}

// network reads a destination or selector: a CIDR with no host bits, or a
// bare address taken as a host route.
func (c checker) network(path, s string) (netip.Prefix, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" || a.Is4In6() {
			c.p.Errorf(path, "%s %s", s, unicast(a))
			return netip.Prefix{}, false
		}
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		c.p.Errorf(path, "%q is not an address or a network in CIDR form (e.g. \"10.10.0.0/16\")", s)
		return netip.Prefix{}, false
	}
	if p.Addr().Is4In6() {
		c.p.Errorf(path, "%s is IPv4-mapped; write the IPv4 network", s)
		return netip.Prefix{}, false
	}
	if p != p.Masked() {
		c.p.Errorf(path, "%s has host bits set; did you mean %s?", s, p.Masked())
		return netip.Prefix{}, false
	}
	return p, true
}

// fwmark accepts 16, "16", "0x10" or "0x10/0xff" and returns "0x10[/0xff]".
func (c checker) fwmark(path string, s profile.Scalar) (string, bool) {
	if s.Bad != nil {
		c.p.Errorf(path, "must be an integer or a string like \"0x10/0xff\", not %s", profile.TypeName(s.Bad))
		return "", false
	}
	if !s.Set {
		return "", false
	}
	if s.IsInt {
		if s.Int < 0 || s.Int > 0xffffffff {
			c.p.Errorf(path, "%d is out of range; a mark is 32 bits", s.Int)
			return "", false
		}
		return fmt.Sprintf("0x%x", s.Int), true
	}
	parts := strings.Split(s.Str, "/")
	if len(parts) > 2 {
		c.p.Errorf(path, "%q is not a mark; write \"0x10\" or \"0x10/0xff\"", s.Str)
		return "", false
	}
	var out []string
	for _, p := range parts {
		v, err := strconv.ParseUint(strings.TrimSpace(p), 0, 32)
		if err != nil {
			c.p.Errorf(path, "%q is not a mark; write \"0x10\" or \"0x10/0xff\" (32-bit numbers)", s.Str)
			return "", false
		}
		out = append(out, fmt.Sprintf("0x%x", v))
	}
	return strings.Join(out, "/"), true
}

// nextHop checks gw as the router on a link whose address is link: inside
// its subnet, and neither the link's own address nor the subnet's network or
// broadcast address. An IPv6 link-local router needs no subnet: fe80::/64 is
// on every link. shown is gw as the profile wrote it. dev names the link when
// gw is a route's via; it is "" for an interface's own gateway, which is
// checked only once the interface's address is known good.
func (c checker) nextHop(path, shown string, gw netip.Addr, link netip.Prefix, dev string) bool {
	subnet, in, self := link.Masked(), "", "the interface's own address"
	if dev != "" {
		in, self = " (the subnet of "+dev+")", "the address of "+dev+" itself"
	}
	switch {
	case gw.Is6() && gw.IsLinkLocalUnicast():
		return true
	case !link.IsValid():
		c.p.Errorf(path, "%s is %s but interface %s has no %s address in the profile; add it so the gateway can be checked", gw, familyOf(gw), dev, familyOf(gw))
	case !subnet.Contains(gw):
		c.p.Errorf(path, "%s is not inside %s%s", shown, subnet, in)
	case gw == link.Addr():
		c.p.Errorf(path, "%s is %s; give the router's address", shown, self)
	case notHostOf(gw, link) != "":
		c.p.Errorf(path, "%s is the %s address of %s; give the router's address", gw, notHostOf(gw, link), subnet)
	default:
		return true
	}
	return false
}

// notHostOf says why a is no host's address in subnet p: it is the
// "network" or "broadcast" address of an IPv4 subnet with room for hosts
// (else "").
func notHostOf(a netip.Addr, p netip.Prefix) string {
	if !a.Is4() || p.Bits() > 30 {
		return ""
	}
	switch a {
	case p.Masked().Addr():
		return "network"
	case broadcast(p):
		return "broadcast"
	}
	return ""
}
