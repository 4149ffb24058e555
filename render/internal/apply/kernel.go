package apply

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// dump sends one NETLINK_ROUTE dump request and returns its messages. It is
// not syscall.NetlinkRIB, which reads into a page-sized buffer: a larger
// message (a link with many alternative names) is cut, and the dump ends
// early without an error.
func dump(typ, family int) ([]syscall.NetlinkMessage, error) {
	var err error
	for try := 0; try < 3; try++ {
		var msgs []syscall.NetlinkMessage
		if msgs, err = dumpOnce(typ, family); !errors.Is(err, errDumpIntr) {
			return msgs, err
		}
	}
	return nil, err
}

// errDumpIntr: the table changed during the dump (NLM_F_DUMP_INTR), so the
// dump may be inconsistent; it is taken again.
var errDumpIntr = errors.New("netlink dump interrupted by a change")

func dumpOnce(typ, family int) ([]syscall.NetlinkMessage, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return nil, err
	}
	defer syscall.Close(fd)
	kernel := &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}
	if err := syscall.Bind(fd, &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK}); err != nil {
		return nil, err
	}
	// struct nlmsghdr (len, type, flags, seq, pid) + struct rtgenmsg,
	// padded to 4 bytes.
	const seq = 1
	req := make([]byte, syscall.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(req[0:4], uint32(syscall.NLMSG_HDRLEN+syscall.SizeofRtGenmsg))
	binary.NativeEndian.PutUint16(req[4:6], uint16(typ))
	binary.NativeEndian.PutUint16(req[6:8], syscall.NLM_F_REQUEST|syscall.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:12], seq)
	req[syscall.NLMSG_HDRLEN] = byte(family)
	if err := syscall.Sendto(fd, req, 0, kernel); err != nil {
		return nil, err
	}
	// The kernel fills a dump's datagrams up to 32 KiB at most.
	buf := make([]byte, 64<<10)
	var out []syscall.NetlinkMessage
	intr := false
	for {
		n, _, flags, _, err := syscall.Recvmsg(fd, buf, nil, 0)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if flags&syscall.MSG_TRUNC != 0 {
			return nil, errors.New("netlink message larger than 64 KiB")
		}
		// The messages point into their buffer, which the next read reuses.
		msgs, err := syscall.ParseNetlinkMessage(append([]byte(nil), buf[:n]...))
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue
			}
			if m.Header.Flags&0x10 != 0 { // NLM_F_DUMP_INTR
				intr = true
			}
			switch m.Header.Type {
			case syscall.NLMSG_DONE, syscall.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if code := int32(binary.NativeEndian.Uint32(m.Data[:4])); code < 0 {
						return nil, syscall.Errno(-code)
					}
				}
				if intr {
					return nil, errDumpIntr
				}
				return out, nil
			}
			out = append(out, m)
		}
	}
}

// kroute is what identifies a kernel route, read over netlink.
type kroute struct {
	table  uint32
	dst    netip.Prefix
	metric uint32
	proto  uint8
}

// dumpRoutes reads every route of a family, in every table, for what
// identifies each.
func dumpRoutes(f plan.Family) ([]kroute, error) {
	rs, err := DumpRoutes(f)
	if err != nil {
		return nil, err
	}
	out := make([]kroute, len(rs))
	for i, r := range rs {
		out[i] = kroute{r.Table, r.Dst, r.Metric, r.Proto}
	}
	return out, nil
}

// KernelRoute is a route as the kernel dumps it, in the kernel's order:
// of two routes with the same table, prefix and metric (ip route
// prepend/append), the first is the one used.
type KernelRoute struct {
	Table   uint32
	Dst     netip.Prefix
	Metric  uint32
	Proto   uint8
	Type    uint8 // RTN_UNICAST, RTN_BLACKHOLE, ...
	TOS     uint8
	Scope   uint8      // RT_SCOPE_*: 254 host, 253 link, 0 universe
	PrefSrc netip.Addr // `src`: what import cannot carry
	Flags   uint32     // RTNH_F_*: linkdown, dead
	// The nexthop of a single-path route; zero for a multipath one.
	Nexthop
	Multipath []Nexthop
}

// Nexthop is a route's gateway (invalid when on-link) and output link.
type Nexthop struct {
	Gateway netip.Addr
	OIF     int32
	Weight  int // multipath only: 1 and up
}

// Route types and nexthop flags (linux/rtnetlink.h) the syscall package
// does not name.
const (
	RTNUnicast      = 1
	NexthopDead     = 0x1
	NexthopLinkdown = 0x10
	rtaMultipath    = 9
	rtaVia          = 18
	sizeofRtNexthop = 8
)

// DumpRoutes reads every route of a family, in every table, over netlink:
// no process and no text to parse.
func DumpRoutes(f plan.Family) ([]KernelRoute, error) {
	fam := syscall.AF_INET
	if f == plan.V6 {
		fam = syscall.AF_INET6
	}
	msgs, err := dump(syscall.RTM_GETROUTE, fam)
	if err != nil {
		return nil, fmt.Errorf("netlink route dump: %w", err)
	}
	var out []KernelRoute
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != syscall.RTM_NEWROUTE || len(m.Data) < syscall.SizeofRtMsg {
			continue
		}
		// struct rtmsg: family, dst_len, src_len, tos, table, protocol,
		// scope, type, flags (4)
		if int(m.Data[0]) != fam {
			continue
		}
		r := KernelRoute{Table: uint32(m.Data[4]), Proto: m.Data[5], TOS: m.Data[3], Scope: m.Data[6], Type: m.Data[7],
			Flags: binary.NativeEndian.Uint32(m.Data[8:12])}
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			return nil, fmt.Errorf("netlink route dump: %w", err)
		}
		var dst netip.Addr
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.RTA_DST:
				dst, _ = netip.AddrFromSlice(a.Value)
			case syscall.RTA_TABLE:
				if len(a.Value) == 4 {
					r.Table = binary.NativeEndian.Uint32(a.Value)
				}
			case syscall.RTA_PRIORITY:
				if len(a.Value) == 4 {
					r.Metric = binary.NativeEndian.Uint32(a.Value)
				}
			case syscall.RTA_PREFSRC:
				r.PrefSrc, _ = netip.AddrFromSlice(a.Value)
			case syscall.RTA_GATEWAY, rtaVia, syscall.RTA_OIF:
				r.Nexthop.attr(a.Attr.Type, a.Value)
			case rtaMultipath:
				r.Multipath = multipath(a.Value)
			}
		}
		if !dst.IsValid() {
			dst = f.Default().Addr()
		}
		r.Dst = netip.PrefixFrom(dst, int(m.Data[1])).Masked()
		out = append(out, r)
	}
	return out, nil
}

// attr reads a nexthop attribute: RTA_GATEWAY, RTA_VIA (struct rtvia: a
// family of 2 bytes, then the address: an IPv6 gateway of an IPv4 route)
// or RTA_OIF.
func (h *Nexthop) attr(typ uint16, v []byte) {
	switch typ {
	case syscall.RTA_GATEWAY:
		h.Gateway, _ = netip.AddrFromSlice(v)
	case rtaVia:
		if len(v) > 2 {
			h.Gateway, _ = netip.AddrFromSlice(v[2:])
		}
	case syscall.RTA_OIF:
		if len(v) == 4 {
			h.OIF = int32(binary.NativeEndian.Uint32(v))
		}
	}
}

// multipath reads RTA_MULTIPATH: struct rtnexthop (length 2 bytes, flags,
// hops, ifindex 4 bytes) and its attributes, one after the other.
func multipath(b []byte) []Nexthop {
	var out []Nexthop
	for len(b) >= sizeofRtNexthop {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < sizeofRtNexthop || l > len(b) {
			break
		}
		h := Nexthop{OIF: int32(binary.NativeEndian.Uint32(b[4:8])), Weight: int(b[3]) + 1}
		for _, a := range nested(b[sizeofRtNexthop:l]) {
			h.attr(a.typ, a.value)
		}
		out = append(out, h)
		l = (l + 3) &^ 3
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return out
}

// candKey is a batch line's table, as the line names it ("main" when it
// names none) and as a number, and its prefix; ok is false when the line
// does not say them in a form this reads (then its table is read with `ip`).
func candKey(f plan.Family, line string) (name string, table uint32, dst netip.Prefix, ok bool) {
	w := strings.Fields(line)
	name = "main"
	i := 2 // "route replace"
	if i < len(w) && routeTypes[w[i]] {
		i++
	}
	if i >= len(w) {
		return name, 0, dst, false
	}
	ok = true
	switch s := w[i]; {
	case s == "default" && f == plan.V4:
		dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case s == "default":
		dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		ok = err == nil
		dst = p.Masked()
	default:
		a, err := netip.ParseAddr(s)
		ok = err == nil
		dst = netip.PrefixFrom(a, a.BitLen())
	}
	table = plan.TableMain
	for ; i < len(w)-1; i++ {
		if w[i] != "table" {
			continue
		}
		name = w[i+1]
		if name == "main" {
			table = plan.TableMain
			continue
		}
		n, err := strconv.ParseUint(name, 10, 32)
		if err != nil {
			ok = false
		}
		table = uint32(n)
	}
	return name, table, dst, ok
}

// present returns, sorted, the tables (as the lines name them) in which the
// kernel has a route of a candidate line's table and prefix. The metric is
// left out, so it never misses one; routeKey then decides on the text. When
// netlink fails, every candidate table is read.
func present(f plan.Family, cand []string) []string {
	type key struct {
		table uint32
		dst   netip.Prefix
	}
	krs, err := dumpRoutes(f)
	in := make(map[key]bool, len(krs))
	for _, k := range krs {
		in[key{k.table, k.dst}] = true
	}
	want := map[string]bool{}
	for _, l := range cand {
		name, t, dst, ok := candKey(f, l)
		if err != nil || !ok || in[key{t, dst}] {
			want[name] = true
		}
	}
	return slices.Sorted(maps.Keys(want))
}

// hasForeignDefault4 says whether the main table has an IPv4 default of
// metric 0 that nicpersist did not add.
func hasForeignDefault4() (bool, error) {
	krs, err := dumpRoutes(4)
	if err != nil {
		return false, err
	}
	for _, k := range krs {
		if k.table == plan.TableMain && k.dst.Bits() == 0 && k.metric == 0 && k.proto != plan.Proto {
			return true, nil
		}
	}
	return false, nil
}

// waitLinks waits until each link a route goes through is up with its
// address: a route through a link that is down or has no address yet fails
// with "Device for nexthop is not up".
func (x *executor) waitLinks(wants []unitfiles.Link) error {
	deadline := time.Now().Add(x.Wait)
	for len(wants) > 0 {
		ls, err := readLinks()
		for err == nil && len(wants) > 0 && ls.ready(wants[0]) {
			wants = wants[1:]
		}
		if len(wants) == 0 {
			break
		}
		if !time.Now().Before(deadline) {
			if err != nil {
				x.logf("cannot read the links: %v", err)
			}
			x.logf("%s is not up with address %s after %v", wants[0].Dev, addrText(wants[0]), x.Wait)
			return fmt.Errorf("%s is not up with address %s", wants[0].Dev, addrText(wants[0]))
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil
}

func addrText(l unitfiles.Link) string {
	if !l.Addr.IsValid() {
		return "-"
	}
	return l.Addr.String()
}

// links is the kernel's links and addresses at one moment, from two
// netlink dumps.
type links struct {
	up    map[string]bool        // name: IFF_UP
	index map[string]int32       // name: ifindex
	names map[int32]string       // ifindex: name (not an alternative one)
	addrs map[int32][]netip.Addr // ifindex: addresses, without the tentative ones
	// ifindex: global-scope addresses with their prefix length, tentative
	// or not: what import writes as an interface's address
	global map[int32][]netip.Prefix
}

// LinkNames reads the kernel's links: the name of each index, and the index
// of each name, alternative names too.
func LinkNames() (names map[int32]string, index map[string]int32, err error) {
	ls, err := dumpLinks()
	if err != nil {
		return nil, nil, err
	}
	return ls.names, ls.index, nil
}

func readLinks() (*links, error) {
	ls, err := dumpLinks()
	if err != nil {
		return nil, err
	}
	if err := ls.readAddrs(); err != nil {
		return nil, err
	}
	return ls, nil
}

func dumpLinks() (*links, error) {
	ls := &links{up: map[string]bool{}, index: map[string]int32{}, names: map[int32]string{}, addrs: map[int32][]netip.Addr{}, global: map[int32][]netip.Prefix{}}
	msgs, err := dump(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("netlink link dump: %w", err)
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != syscall.RTM_NEWLINK || len(m.Data) < syscall.SizeofIfInfomsg {
			continue
		}
		// struct ifinfomsg: family, pad, type (2), index (4), flags (4), change (4)
		idx := int32(binary.NativeEndian.Uint32(m.Data[4:8]))
		flags := binary.NativeEndian.Uint32(m.Data[8:12])
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			return nil, err
		}
		name := func(v []byte) {
			n := strings.TrimRight(string(v), "\x00")
			ls.up[n] = flags&syscall.IFF_UP != 0
			ls.index[n] = idx
		}
		for _, a := range attrs {
			switch a.Attr.Type & nlaTypeMask {
			case syscall.IFLA_IFNAME:
				name(a.Value)
				ls.names[idx] = strings.TrimRight(string(a.Value), "\x00")
			case iflaPropList:
				// A profile may name a link by an alternative name
				// (udev gives them), which ip and the kernel take.
				for _, alt := range nested(a.Value) {
					if alt.typ == iflaAltIfname {
						name(alt.value)
					}
				}
			}
		}
	}
	return ls, nil
}

// readAddrs adds the addresses of the links.
func (ls *links) readAddrs() error {
	msgs, err := dump(syscall.RTM_GETADDR, syscall.AF_UNSPEC)
	if err != nil {
		return fmt.Errorf("netlink address dump: %w", err)
	}
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type != syscall.RTM_NEWADDR || len(m.Data) < syscall.SizeofIfAddrmsg {
			continue
		}
		// struct ifaddrmsg: family, prefixlen, flags, scope, index (4)
		flags := uint32(m.Data[2])
		idx := int32(binary.NativeEndian.Uint32(m.Data[4:8]))
		attrs, err := syscall.ParseNetlinkRouteAttr(m)
		if err != nil {
			return err
		}
		var addr, local netip.Addr
		for _, a := range attrs {
			switch a.Attr.Type {
			case syscall.IFA_ADDRESS:
				addr, _ = netip.AddrFromSlice(a.Value)
			case syscall.IFA_LOCAL:
				local, _ = netip.AddrFromSlice(a.Value)
			case ifaFlags:
				if len(a.Value) == 4 {
					flags = binary.NativeEndian.Uint32(a.Value)
				}
			}
		}
		// IFA_LOCAL is the address itself on point-to-point links, where
		// IFA_ADDRESS is the peer's.
		if local.IsValid() {
			addr = local
		}
		if addr.IsValid() && flags&syscall.IFA_F_TENTATIVE == 0 {
			ls.addrs[idx] = append(ls.addrs[idx], addr)
		}
		if addr.IsValid() && m.Data[3] == syscall.RT_SCOPE_UNIVERSE {
			ls.global[idx] = append(ls.global[idx], netip.PrefixFrom(addr, int(m.Data[1])))
		}
	}
	return nil
}

// Link is a kernel link with its global-scope addresses, as import reads
// it.
type Link struct {
	Name  string
	Index int32
	Addrs []netip.Prefix
}

// ReadLinks returns the links of the current network namespace.
func ReadLinks() ([]Link, error) {
	ls, err := readLinks()
	if err != nil {
		return nil, err
	}
	var out []Link
	for idx, name := range ls.names {
		out = append(out, Link{Name: name, Index: idx, Addrs: ls.global[idx]})
	}
	slices.SortFunc(out, func(a, b Link) int { return int(a.Index - b.Index) })
	return out, nil
}

// Netlink attribute numbers the syscall package does not name.
const (
	ifaFlags      = 8  // IFA_FLAGS: the 32-bit flags (the header's are 8 bits)
	iflaPropList  = 52 // IFLA_PROP_LIST: nested, holds IFLA_ALT_IFNAME
	iflaAltIfname = 53 // IFLA_ALT_IFNAME
	nlaTypeMask   = 0x3fff
)

type attr struct {
	typ   uint16
	value []byte
}

// nested parses the attributes inside a nested one (struct nlattr: length
// and type, 2 bytes each, then the value, padded to 4 bytes).
func nested(b []byte) []attr {
	var out []attr
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		if l < 4 || l > len(b) {
			break
		}
		out = append(out, attr{binary.NativeEndian.Uint16(b[2:4]) & nlaTypeMask, b[4:l]})
		l = (l + 3) &^ 3
		if l > len(b) {
			break
		}
		b = b[l:]
	}
	return out
}

// ready says a link is administratively up and has the address (any or
// none, when invalid), and for IPv6 that the address passed duplicate
// address detection.
func (ls *links) ready(l unitfiles.Link) bool {
	if !ls.up[l.Dev] {
		return false
	}
	if !l.Addr.IsValid() {
		return true
	}
	return slices.Contains(ls.addrs[ls.index[l.Dev]], l.Addr)
}

// dumpRules reads a family's policy rules over netlink, as unitfiles.Rule
// values, for rulesPre to find those that make the kernel refuse one of
// ours ("File exists"). The kernel compares a new rule's action, table,
// priority, iif, oif, fwmark, suppress_*, uidrange, ipproto, ports, l3mdev
// and tun_id with each rule's, both ways: a rule with any of these that
// Rule cannot say never refuses ours, and is left out. But from, to, tos
// and realms it compares only when the new rule gives them
// (fib4_rule_compare, fib6_rule_compare), and the invert flag not at all:
// a rule "not from X tos 0x10" refuses our "from X", and our `rule del`
// would delete it. Those are kept, with what Rule cannot say dropped.
func dumpRules(f plan.Family) ([]unitfiles.Rule, error) {
	krs, err := DumpRules(f)
	if err != nil {
		return nil, err
	}
	var out []unitfiles.Rule
	for _, k := range krs {
		if k.Action == "lookup" && len(k.Other) == 0 {
			out = append(out, k.Rule)
		}
	}
	return out, nil
}

// KernelRule is a policy rule as the kernel dumps it: what unitfiles.Rule
// says, and what else the rule has.
type KernelRule struct {
	unitfiles.Rule
	Action string // "lookup" (Table is then set), "goto", "nop", "blackhole", "unreachable", "prohibit"
	TOS    uint8
	Invert bool // ip rule's "not"
	Realms uint32
	Proto  uint8 // who added it
	// Other is what else selects or acts, as `ip rule` words
	// ("ipproto 6", "suppress_prefixlength 0").
	Other []string
}

// Plain says the rule is all that a Rule says: a lookup with no other
// selector, tos, realms or "not".
func (k KernelRule) Plain() bool {
	return k.Action == "lookup" && len(k.Other) == 0 && k.TOS == 0 && !k.Invert && k.Realms == 0
}

// ruleActions names the FR_ACT_* values.
var ruleActions = map[uint8]string{frActToTbl: "lookup", 2: "goto", 3: "nop", 6: "blackhole", 7: "unreachable", 8: "prohibit"}

// ruleAttrs names the FRA_* attributes a Rule cannot say, as `ip rule`
// does.
var ruleAttrs = map[uint16]string{4: "goto", 12: "tun_id", 13: "suppress_ifgroup", 14: "suppress_prefixlength",
	19: "l3mdev", 20: "uidrange", 22: "ipproto", 23: "sport", 24: "dport", 25: "dscp", 26: "flowlabel"}

// DumpRules reads a family's policy rules over netlink, in the kernel's
// order.
func DumpRules(f plan.Family) ([]KernelRule, error) {
	fam := syscall.AF_INET
	if f == plan.V6 {
		fam = syscall.AF_INET6
	}
	msgs, err := dump(rtmGetRule, fam)
	if err != nil {
		return nil, fmt.Errorf("netlink rule dump: %w", err)
	}
	var out []KernelRule
	for i := range msgs {
		m := &msgs[i]
		// struct fib_rule_hdr: family, dst_len, src_len, tos, table,
		// res1, res2, action, flags (4)
		if m.Header.Type != rtmNewRule || len(m.Data) < 12 || int(m.Data[0]) != fam {
			continue
		}
		dstLen, srcLen := int(m.Data[1]), int(m.Data[2])
		r := KernelRule{Rule: unitfiles.Rule{Table: uint32(m.Data[4])}, TOS: m.Data[3],
			Invert: binary.NativeEndian.Uint32(m.Data[8:12])&frInvert != 0}
		r.Action = ruleActions[m.Data[7]]
		if r.Action == "" {
			r.Action = "action " + strconv.Itoa(int(m.Data[7]))
		}
		for _, a := range nested(m.Data[12:]) {
			u32 := func() uint32 {
				if len(a.value) == 4 {
					return binary.NativeEndian.Uint32(a.value)
				}
				return 0
			}
			switch a.typ {
			case fraSrc, fraDst:
				ip, ok := netip.AddrFromSlice(a.value)
				if !ok {
					r.Other = append(r.Other, "from/to ?")
					continue
				}
				if a.typ == fraSrc {
					r.From = netip.PrefixFrom(ip, srcLen).Masked()
				} else {
					r.To = netip.PrefixFrom(ip, dstLen).Masked()
				}
			case fraIifname:
				r.IIF = strings.TrimRight(string(a.value), "\x00")
			case fraOifname:
				r.OIF = strings.TrimRight(string(a.value), "\x00")
			case fraPriority:
				r.Priority = u32()
			case fraFwmark:
				r.Mark = u32()
			case fraFwmask:
				r.Mask = u32()
			case fraTable:
				r.Table = u32()
			case fraFlow:
				r.Realms = u32()
			case fraProtocol:
				if len(a.value) == 1 {
					r.Proto = a.value[0]
				}
			case fraPad:
			case fraSuppressPrefixlen, fraSuppressIfgroup:
				// Dumped as -1 when not set.
				if v := u32(); v != 0xffffffff {
					r.Other = append(r.Other, ruleAttrs[a.typ]+" "+strconv.FormatUint(uint64(v), 10))
				}
			default:
				w := ruleAttrs[a.typ]
				if w == "" {
					w = "attribute " + strconv.Itoa(int(a.typ))
				}
				switch len(a.value) {
				case 1:
					w += " " + strconv.Itoa(int(a.value[0]))
				case 4:
					w += " " + strconv.FormatUint(uint64(u32()), 10)
				}
				r.Other = append(r.Other, w)
			}
		}
		out = append(out, r)
	}
	return out, nil
}

// Netlink numbers for policy rules (linux/fib_rules.h, linux/rtnetlink.h).
const (
	rtmNewRule           = 32
	rtmGetRule           = 34
	frActToTbl           = 1
	frInvert             = 0x2
	fraDst               = 1
	fraSrc               = 2
	fraIifname           = 3
	fraPriority          = 6
	fraFwmark            = 10
	fraFlow              = 11
	fraSuppressIfgroup   = 13
	fraSuppressPrefixlen = 14
	fraTable             = 15
	fraFwmask            = 16
	fraOifname           = 17
	fraPad               = 18
	fraProtocol          = 21
)

// liveKernel is the running kernel as the reconcile step reads it: over
// netlink, and with `ip` where the text of a route is needed to put it
// back.
type liveKernel struct{ x *executor }

func (k liveKernel) Routes(f plan.Family, cand []string) ([]string, error) {
	var out []string
	// Only tables where netlink finds a route of a candidate's prefix are
	// read with `ip`: at boot that is none or one, not one process each.
	for _, t := range present(f, cand) {
		text, err := k.x.ipOut(f, "route", "show", "table", t)
		if err != nil {
			continue // a table that does not exist yet
		}
		for _, rt := range joinNexthops(text) {
			// `ip route replace` takes the table before a multipath
			// route's nexthops, not after.
			rt = cleanRoute(rt)
			if head, hops, ok := strings.Cut(rt, " nexthop "); ok {
				rt = head + " table " + t + " nexthop " + hops
			} else {
				rt += " table " + t
			}
			out = append(out, rt)
		}
	}
	return out, nil
}

func (k liveKernel) ForeignDefault4() (string, error) {
	// Netlink says whether there is such a default at all, without a
	// process; `ip` prints it in the form `ip route replace` takes back.
	if has, err := hasForeignDefault4(); err == nil && !has {
		return "", nil
	}
	text, err := k.x.ipOut(plan.V4, "route", "show", "table", "main", "default")
	if err != nil {
		return "", err
	}
	// A multipath default's nexthops are on lines of their own.
	for _, l := range joinNexthops(text) {
		if strings.Contains(l, " metric ") || strings.Contains(l, " proto "+strconv.Itoa(plan.Proto)) {
			continue
		}
		return cleanRoute(l), nil
	}
	return "", nil
}

func (k liveKernel) Rules(f plan.Family) ([]unitfiles.Rule, error) { return dumpRules(f) }

func (k liveKernel) Sysctl(key string) (string, bool) {
	b, err := os.ReadFile("/proc/sys/" + key)
	if err != nil {
		return "", false
	}
	return strings.TrimRight(string(b), "\n"), true
}

// ipOut runs `ip -F ARGS...` and returns what it prints.
func (x *executor) ipOut(f plan.Family, args ...string) (string, error) {
	var out bytes.Buffer
	cmd := ipCmd(f, args...)
	cmd.Stdout, cmd.Stderr = &out, x.Stderr
	err := cmd.Run()
	return out.String(), err
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
