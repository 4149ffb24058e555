package apply

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// kroute is what identifies a kernel route, read over netlink.
type kroute struct {
	table  uint32
	dst    netip.Prefix
	metric uint32
	proto  uint8
}

// dumpRoutes reads every route of a family, in every table, over netlink:
// the stdlib's NETLINK_ROUTE dump, no process and no text to parse.
func dumpRoutes(f int) ([]kroute, error) {
	fam := syscall.AF_INET
	if f == 6 {
		fam = syscall.AF_INET6
	}
	b, err := syscall.NetlinkRIB(syscall.RTM_GETROUTE, fam)
	if err != nil {
		return nil, fmt.Errorf("netlink route dump: %w", err)
	}
	msgs, err := syscall.ParseNetlinkMessage(b)
	if err != nil {
		return nil, fmt.Errorf("netlink route dump: %w", err)
	}
	var out []kroute
	for i := range msgs {
		m := &msgs[i]
		if m.Header.Type == syscall.NLMSG_ERROR {
			return nil, errors.New("netlink route dump: the kernel answered with an error")
		}
		if m.Header.Type != syscall.RTM_NEWROUTE || len(m.Data) < syscall.SizeofRtMsg {
			continue
		}
		// struct rtmsg: family, dst_len, src_len, tos, table, protocol, ...
		if int(m.Data[0]) != fam {
			continue
		}
		r := kroute{table: uint32(m.Data[4]), proto: m.Data[5]}
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
					r.table = binary.NativeEndian.Uint32(a.Value)
				}
			case syscall.RTA_PRIORITY:
				if len(a.Value) == 4 {
					r.metric = binary.NativeEndian.Uint32(a.Value)
				}
			}
		}
		if !dst.IsValid() {
			dst = netip.IPv4Unspecified()
			if f == 6 {
				dst = netip.IPv6Unspecified()
			}
		}
		r.dst = netip.PrefixFrom(dst, int(m.Data[1])).Masked()
		out = append(out, r)
	}
	return out, nil
}

// candKey is a batch line's table and prefix; ok is false when the line does
// not say them in a form this reads (then its table is read with `ip`).
func candKey(f int, line string) (table uint32, dst netip.Prefix, ok bool) {
	w := strings.Fields(line)
	i := 2 // "route replace"
	if i < len(w) && routeTypes[w[i]] {
		i++
	}
	if i >= len(w) {
		return 0, netip.Prefix{}, false
	}
	switch s := w[i]; {
	case s == "default" && f == 4:
		dst = netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	case s == "default":
		dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	case strings.Contains(s, "/"):
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return 0, dst, false
		}
		dst = p.Masked()
	default:
		a, err := netip.ParseAddr(s)
		if err != nil {
			return 0, dst, false
		}
		dst = netip.PrefixFrom(a, a.BitLen())
	}
	table = 254
	for ; i < len(w)-1; i++ {
		if w[i] == "table" {
			if w[i+1] == "main" {
				table = 254
				continue
			}
			n, err := strconv.ParseUint(w[i+1], 10, 32)
			if err != nil {
				return 0, dst, false
			}
			table = uint32(n)
		}
	}
	return table, dst, true
}

// present returns the tables (as the lines name them) in which the kernel
// has a route of a candidate line's table and prefix. The metric is left
// out, so it never misses one; routeKey then decides on the text. When
// netlink fails, every candidate table is read.
func present(f int, cand []string) []string {
	all := tablesOf(cand)
	krs, err := dumpRoutes(f)
	if err != nil {
		return all
	}
	type key struct {
		table uint32
		dst   netip.Prefix
	}
	in := make(map[key]bool, len(krs))
	for _, k := range krs {
		in[key{k.table, k.dst}] = true
	}
	want := map[string]bool{}
	for _, l := range cand {
		t, dst, ok := candKey(f, l)
		if !ok || in[key{t, dst}] {
			want[tablesOf([]string{l})[0]] = true
		}
	}
	var out []string
	for _, t := range all {
		if want[t] {
			out = append(out, t)
		}
	}
	return out
}

// hasForeignDefault4 says whether the main table has an IPv4 default of
// metric 0 that nicpersist did not add.
func hasForeignDefault4() (bool, error) {
	krs, err := dumpRoutes(4)
	if err != nil {
		return false, err
	}
	for _, k := range krs {
		if k.table == 254 && k.dst.Bits() == 0 && k.metric == 0 && k.proto != proto {
			return true, nil
		}
	}
	return false, nil
}

// waitLinks waits until each link a route goes through is up with its
// address: a route through a link that is down or has no address yet fails
// with "Device for nexthop is not up".
func (r *runner) waitLinks() error {
	lines, err := readLines(r.path("links"))
	if err != nil {
		return err
	}
	deadline := time.Now().Add(r.Wait)
	for _, l := range lines {
		w := strings.Fields(l)
		if len(w) < 2 || strings.HasPrefix(w[0], "#") {
			continue
		}
		dev, addr := w[0], w[1]
		for !linkReady(dev, addr) {
			if !time.Now().Before(deadline) {
				r.logf("%s is not up with address %s after %v", dev, addr, r.Wait)
				return fmt.Errorf("%s is not up with address %s", dev, addr)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// linkReady says a link is administratively up and has the address, and,
// for IPv6, that the address has passed duplicate address detection.
func linkReady(dev, addr string) bool {
	ifi, err := net.InterfaceByName(dev)
	if err != nil || ifi.Flags&net.FlagUp == 0 {
		return false
	}
	if addr == "-" {
		return true
	}
	want, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	if want.Is6() {
		return v6Ready(dev, want)
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if got, ok := netip.AddrFromSlice(n.IP); ok && got.Unmap() == want {
				return true
			}
		}
	}
	return false
}

// v6Ready reads /proc/net/if_inet6 (address, index, prefix length, scope,
// flags, name) for the address without IFA_F_TENTATIVE.
func v6Ready(dev string, want netip.Addr) bool {
	b, err := os.ReadFile("/proc/net/if_inet6")
	if err != nil {
		return false
	}
	hex := fmt.Sprintf("%x", want.AsSlice())
	for _, l := range strings.Split(string(b), "\n") {
		w := strings.Fields(l)
		if len(w) < 6 || w[5] != dev || w[0] != hex {
			continue
		}
		flags, err := strconv.ParseUint(w[4], 16, 32)
		return err == nil && flags&0x40 == 0 // IFA_F_TENTATIVE
	}
	return false
}
