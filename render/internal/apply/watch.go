package apply

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// WatchConfig is what `apply watch` needs: the rendered directory (its
// watch file), the hook to run and where ifupdown keeps its state.
type WatchConfig struct {
	Dir     string
	Hook    string // /etc/network/if-up.d/nicpersist
	IfState string // /run/network/ifstate: which interfaces ifupdown has up
	Stderr  io.Writer
	// Settle is how long a link must stay up before the hook runs, so a
	// flapping link does not run it at every flap; AddrWait how long the
	// hook waits for the link's addresses before it runs without them.
	// Zero: the defaults.
	Settle, AddrWait time.Duration
}

// Defaults of WatchConfig. Half a second is past a flap's bounce and well
// inside the 5 s the policy must be back in; ifup waits for duplicate
// address detection before its post-up hooks, and so does the watcher, but
// a link whose address never comes (a changed lease, DAD failed) still gets
// its routes.
const (
	defaultSettle   = 500 * time.Millisecond
	defaultAddrWait = 30 * time.Second
	hookTimeout     = 30 * time.Second
)

// Netlink multicast groups (linux/rtnetlink.h) the syscall package does not
// name, and the link flag that says the carrier is there.
const (
	rtmgrpLink       = 0x1
	rtmgrpIPv4Ifaddr = 0x10
	rtmgrpIPv6Ifaddr = 0x100
	iffLowerUp       = 0x10000
)

// Watch runs until ctx ends or the netlink socket fails: each time a
// watched interface comes back (from not running to IFF_UP and
// IFF_LOWER_UP), it waits for the link to settle and have its addresses,
// then runs the hook as ifup's post-up phase does. ifupdown itself runs its
// hooks only on ifup, and a link bounce has deleted every route through the
// link.
func Watch(ctx context.Context, c WatchConfig) error {
	if c.Settle == 0 {
		c.Settle = defaultSettle
	}
	if c.AddrWait == 0 {
		c.AddrWait = defaultAddrWait
	}
	logf := func(format string, a ...any) { fmt.Fprintf(c.Stderr, "nicpersist watch: "+format+"\n", a...) }
	name := filepath.Join(c.Dir, unitfiles.Watch)
	b, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s does not exist: only the ifupdown target has interfaces to watch; render again for it, or disable nicpersist-watch.service", name)
	}
	if err != nil {
		return err
	}
	ws, err := unitfiles.ParseWatch(name, b)
	if err != nil {
		return err
	}
	if len(ws) == 0 {
		return fmt.Errorf("%s lists no interface to watch", name)
	}
	// Subscribe before the first dump: a change between the two is then
	// in the socket's queue, not lost.
	fd, err := subscribe()
	if err != nil {
		return fmt.Errorf("netlink subscription: %w", err)
	}
	defer syscall.Close(fd)
	tr := newTracker(ws, c.Settle, c.AddrWait, logf)
	if err := tr.resync(time.Now(), false); err != nil {
		return err
	}
	var names []string
	for _, w := range ws {
		names = append(names, w.Dev)
	}
	logf("watching %s; %s runs when one comes back", strings.Join(names, ", "), c.Hook)
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		// Wake at the next deadline, and at least each second to see ctx.
		wait := time.Second
		if next := tr.next; !next.IsZero() {
			wait = min(wait, max(time.Until(next), time.Millisecond))
		}
		tv := syscall.NsecToTimeval(wait.Nanoseconds())
		if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("netlink socket: %w", err)
		}
		n, _, err := syscall.Recvfrom(fd, buf, 0)
		switch {
		case err == syscall.EAGAIN || err == syscall.EINTR:
		case err == syscall.ENOBUFS:
			// The kernel dropped notifications: a bounce may be among
			// them. Read the links again and repair every running one.
			logf("missed link notifications (socket overrun); re-applying for every link that is up")
			if err := tr.resync(time.Now(), true); err != nil {
				return err
			}
		case err != nil:
			return fmt.Errorf("netlink socket: %w", err)
		default:
			msgs, err := syscall.ParseNetlinkMessage(buf[:n])
			if err != nil {
				logf("unreadable netlink message: %v", err)
				continue
			}
			now := time.Now()
			for i := range msgs {
				if names, up, ok := linkMsg(&msgs[i]); ok {
					for _, n := range names {
						tr.link(now, n, up)
					}
				}
			}
		}
		for _, w := range tr.due(time.Now(), readAddrs) {
			c.runHook(ctx, w, logf)
		}
	}
	logf("stopping")
	return nil
}

// subscribe opens a NETLINK_ROUTE socket bound to the link and address
// groups. Address changes only wake the loop: a link waiting for its
// address is checked again.
func subscribe() (int, error) {
	fd, err := syscall.Socket(syscall.AF_NETLINK, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.NETLINK_ROUTE)
	if err != nil {
		return -1, err
	}
	// A larger queue makes an overrun (and a repair of every link) rarer
	// on a machine whose addresses churn.
	_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1<<20)
	sa := &syscall.SockaddrNetlink{Family: syscall.AF_NETLINK, Groups: rtmgrpLink | rtmgrpIPv4Ifaddr | rtmgrpIPv6Ifaddr}
	if err := syscall.Bind(fd, sa); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

// linkMsg reads a link message: the link's names (its name and alternative
// names, any of which a profile may use) and whether it runs (up, with
// carrier). A deleted link does not run.
func linkMsg(m *syscall.NetlinkMessage) (names []string, running bool, ok bool) {
	if (m.Header.Type != syscall.RTM_NEWLINK && m.Header.Type != syscall.RTM_DELLINK) || len(m.Data) < syscall.SizeofIfInfomsg {
		return nil, false, false
	}
	flags := binary.NativeEndian.Uint32(m.Data[8:12])
	running = m.Header.Type == syscall.RTM_NEWLINK && flags&syscall.IFF_UP != 0 && flags&iffLowerUp != 0
	attrs, err := syscall.ParseNetlinkRouteAttr(m)
	if err != nil {
		return nil, false, false
	}
	for _, a := range attrs {
		switch a.Attr.Type & nlaTypeMask {
		case syscall.IFLA_IFNAME:
			names = append(names, strings.TrimRight(string(a.Value), "\x00"))
		case iflaPropList:
			for _, alt := range nested(a.Value) {
				if alt.typ == iflaAltIfname {
					names = append(names, strings.TrimRight(string(alt.value), "\x00"))
				}
			}
		}
	}
	return names, running, len(names) > 0
}

// readAddrs says, for a watched interface, which of its addresses it lacks
// now (tentative ones count as lacking, as ifup waits for them).
func readAddrs(w unitfiles.Watched) ([]netip.Addr, error) {
	ls, err := readLinks()
	if err != nil {
		return nil, err
	}
	var miss []netip.Addr
	for _, a := range w.Addrs {
		if !slices.Contains(ls.addrs[ls.index[w.Dev]], a) {
			miss = append(miss, a)
		}
	}
	return miss, nil
}

// tracker is the watcher's state, apart from the socket: which watched
// links run, and which came back and wait for their hook.
type tracker struct {
	settle, addrWait time.Duration
	logf             func(string, ...any)
	links            []*tracked
	// next is when due must look again (zero: only on a notification).
	next time.Time
	// dumpLinks reads which links run; a test gives its own.
	dumpLinks func() (map[string]bool, error)
}

type tracked struct {
	w       unitfiles.Watched
	running bool
	pending bool      // came back, hook not run yet
	since   time.Time // when it came back
	waiting bool      // "waiting for addresses" was logged
}

func newTracker(ws []unitfiles.Watched, settle, addrWait time.Duration, logf func(string, ...any)) *tracker {
	t := &tracker{settle: settle, addrWait: addrWait, logf: logf, dumpLinks: runningLinks}
	for _, w := range ws {
		t.links = append(t.links, &tracked{w: w})
	}
	return t
}

// resync reads which links run. At start (all false) it only learns the
// state: ifup has just run the hooks. After missed notifications (all
// true) every running link is repaired, as any may have bounced.
func (t *tracker) resync(now time.Time, all bool) error {
	run, err := t.dumpLinks()
	if err != nil {
		return err
	}
	for _, l := range t.links {
		l.running = run[l.w.Dev]
		if all && l.running && !l.pending {
			l.pending, l.since, l.waiting = true, now, false
		}
		if !l.running {
			l.pending = false
		}
	}
	return nil
}

// link takes a link notification.
func (t *tracker) link(now time.Time, dev string, running bool) {
	for _, l := range t.links {
		if l.w.Dev != dev || l.running == running {
			continue
		}
		l.running = running
		if !running {
			if l.pending {
				t.logf("%s went down again before it settled", dev)
			} else {
				t.logf("%s is no longer up with carrier", dev)
			}
			l.pending = false
			continue
		}
		// A flap restarts the settle time: the hook runs once the link
		// stays up.
		if !l.pending {
			t.logf("%s is up with carrier again", dev)
		}
		l.pending, l.since, l.waiting = true, now, false
	}
}

// due returns the links whose hook must run now, and sets next.
func (t *tracker) due(now time.Time, missing func(unitfiles.Watched) ([]netip.Addr, error)) []unitfiles.Watched {
	var out []unitfiles.Watched
	t.next = time.Time{}
	later := func(at time.Time) {
		if t.next.IsZero() || at.Before(t.next) {
			t.next = at
		}
	}
	for _, l := range t.links {
		if !l.pending {
			continue
		}
		if at := l.since.Add(t.settle); now.Before(at) {
			later(at)
			continue
		}
		miss, err := missing(l.w)
		if err != nil {
			t.logf("cannot read the addresses of %s: %v", l.w.Dev, err)
		}
		if err == nil && len(miss) > 0 {
			if at := l.since.Add(t.addrWait); now.Before(at) {
				if !l.waiting {
					t.logf("%s waits for %s before its routes go back (up to %v)", l.w.Dev, addrList(miss), t.addrWait)
					l.waiting = true
				}
				// An address notification wakes the loop; this is
				// the limit.
				later(at)
				continue
			}
			t.logf("%s still lacks %s after %v; re-applying without it", l.w.Dev, addrList(miss), t.addrWait)
		}
		l.pending = false
		out = append(out, l.w)
	}
	return out
}

func addrList(as []netip.Addr) string {
	var s []string
	for _, a := range as {
		s = append(s, a.String())
	}
	return strings.Join(s, ", ")
}

// runningLinks reads which links run (up, with carrier), by every name.
func runningLinks() (map[string]bool, error) {
	msgs, err := dump(syscall.RTM_GETLINK, syscall.AF_UNSPEC)
	if err != nil {
		return nil, fmt.Errorf("netlink link dump: %w", err)
	}
	out := map[string]bool{}
	for i := range msgs {
		if names, up, ok := linkMsg(&msgs[i]); ok {
			for _, n := range names {
				out[n] = up
			}
		}
	}
	return out, nil
}

// hookPath is the PATH ifupdown gives its hooks.
const hookPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// hookEnv is the environment ifup gives an if-up.d hook in its post-up
// phase, for the interface's first stanza.
func hookEnv(w unitfiles.Watched, logical string) []string {
	return []string{"PATH=" + hookPath, "IFACE=" + w.Dev, "LOGICAL=" + logical, "ADDRFAM=" + w.Family,
		"METHOD=" + w.Method, "MODE=start", "PHASE=post-up", "VERBOSITY=0"}
}

// logicalName reads ifupdown's state file ("iface=logical" lines): the
// logical interface ifup configured, and whether ifupdown has the
// interface up at all. Without the file (ifupdown not running this
// machine's boot yet), the interface counts as up under its own name.
func logicalName(state []byte, dev string) (string, bool) {
	for _, l := range strings.Split(string(state), "\n") {
		if name, logical, ok := strings.Cut(strings.TrimSpace(l), "="); ok && name == dev {
			return logical, true
		}
	}
	return "", false
}

// runHook runs the if-up.d hook for one interface, as ifup would, unless
// ifupdown has the interface down (an `ifdown` is the administrator's:
// the hook would undo it).
func (c WatchConfig) runHook(ctx context.Context, w unitfiles.Watched, logf func(string, ...any)) {
	logical := w.Dev
	if st, err := os.ReadFile(c.IfState); err == nil {
		var up bool
		if logical, up = logicalName(st, w.Dev); !up {
			logf("%s is not up for ifupdown (%s does not list it): leaving it to ifup", w.Dev, c.IfState)
			return
		}
	}
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, c.Hook)
	cmd.Env = hookEnv(w, logical)
	cmd.Dir = "/"
	out, err := cmd.CombinedOutput()
	took := time.Since(start).Round(time.Millisecond)
	if err != nil {
		logf("%s: %s (IFACE=%s ADDRFAM=%s METHOD=%s) failed after %v: %v %s", w.Dev, c.Hook, w.Dev, w.Family, w.Method, took, err, strings.TrimSpace(string(out)))
		return
	}
	logf("%s: ran %s (IFACE=%s LOGICAL=%s ADDRFAM=%s METHOD=%s PHASE=post-up) in %v: routes and rules re-applied", w.Dev, c.Hook, w.Dev, logical, w.Family, w.Method, took)
}
