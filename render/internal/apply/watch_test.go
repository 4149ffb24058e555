package apply

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// TestTracker drives the watcher's state without a kernel: which link
// notifications make the hook run, when, and how often.
func TestTracker(t *testing.T) {
	eth1 := unitfiles.Watched{Dev: "eth1", Family: "inet", Method: "dhcp", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2")}}
	eth2 := unitfiles.Watched{Dev: "eth2", Family: "inet", Method: "static"}
	t0 := time.Unix(1000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	type step struct {
		ms      int
		dev     string // a notification, when not empty
		running bool
		lacking bool   // eth1 lacks its address from here on
		want    string // the devices due at ms, joined by ","
	}
	for _, tc := range []struct {
		name  string
		start map[string]bool // running at start
		steps []step
	}{
		{"a bounce runs the hook once, after it settles", map[string]bool{"eth1": true, "eth2": true}, []step{
			{ms: 0, dev: "eth1", running: false},
			{ms: 1000, dev: "eth1", running: true},
			{ms: 1200},
			{ms: 1500, want: "eth1"},
			{ms: 1600},
			{ms: 5000},
		}},
		{"a link up at start is not repaired: ifup has just run", map[string]bool{"eth1": true}, []step{
			{ms: 0},
			{ms: 1000},
			{ms: 1000, dev: "eth1", running: true},
			{ms: 2000},
		}},
		{"a flapping link runs it once it stays up", map[string]bool{"eth1": true}, []step{
			{ms: 0, dev: "eth1", running: false},
			{ms: 100, dev: "eth1", running: true},
			{ms: 300, dev: "eth1", running: false},
			{ms: 400, dev: "eth1", running: true},
			{ms: 600, dev: "eth1", running: false},
			{ms: 700, dev: "eth1", running: true},
			{ms: 1100},
			{ms: 1200, want: "eth1"},
			{ms: 1300},
		}},
		{"down at the deadline: nothing runs", map[string]bool{"eth1": true}, []step{
			{ms: 0, dev: "eth1", running: false},
			{ms: 100, dev: "eth1", running: true},
			{ms: 500, dev: "eth1", running: false},
			{ms: 700},
		}},
		{"a link comes up late at boot: it runs", map[string]bool{}, []step{
			{ms: 0, dev: "eth2", running: true},
			{ms: 500, want: "eth2"},
		}},
		{"waits for the address, then runs", map[string]bool{"eth1": true}, []step{
			{ms: 0, dev: "eth1", running: false, lacking: true},
			{ms: 100, dev: "eth1", running: true, lacking: true},
			{ms: 700, lacking: true},
			{ms: 2000, lacking: true},
			{ms: 2100, want: "eth1"},
		}},
		{"runs without the address after the wait", map[string]bool{"eth1": true}, []step{
			{ms: 0, dev: "eth1", running: false, lacking: true},
			{ms: 100, dev: "eth1", running: true, lacking: true},
			{ms: 10099, lacking: true},
			{ms: 10100, lacking: true, want: "eth1"},
			{ms: 10200, lacking: true},
		}},
		{"two links, each its own", map[string]bool{"eth1": true, "eth2": true}, []step{
			{ms: 0, dev: "eth1", running: false},
			{ms: 0, dev: "eth2", running: false},
			{ms: 100, dev: "eth2", running: true},
			{ms: 300, dev: "eth1", running: true},
			{ms: 600, want: "eth2"},
			{ms: 800, want: "eth1"},
		}},
		{"another link's notification is ignored", map[string]bool{"eth1": true}, []step{
			{ms: 0, dev: "eth9", running: false},
			{ms: 100, dev: "eth9", running: true},
			{ms: 1000},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log []string
			tr := newTracker([]unitfiles.Watched{eth1, eth2}, 500*time.Millisecond, 10*time.Second,
				func(f string, a ...any) { log = append(log, fmt.Sprintf(f, a...)) })
			tr.dumpLinks = func() (map[string]bool, error) { return tc.start, nil }
			if err := tr.resync(t0, false); err != nil {
				t.Fatal(err)
			}
			lacking := false
			missing := func(w unitfiles.Watched) ([]netip.Addr, error) {
				if lacking && w.Dev == "eth1" {
					return w.Addrs, nil
				}
				return nil, nil
			}
			for _, s := range tc.steps {
				lacking = s.lacking
				if s.dev != "" {
					tr.link(at(s.ms), s.dev, s.running)
				}
				var got []string
				for _, w := range tr.due(at(s.ms), missing) {
					got = append(got, w.Dev)
				}
				if strings.Join(got, ",") != s.want {
					t.Fatalf("at %d ms: due %v, want %q\nlog:\n%s", s.ms, got, s.want, strings.Join(log, "\n"))
				}
				if !tr.next.IsZero() && !tr.next.After(at(s.ms)) {
					t.Fatalf("at %d ms: next %v is not after now", s.ms, tr.next.Sub(t0))
				}
			}
		})
	}
}

// TestTrackerOverrun: after lost notifications every running link is
// repaired, as any may have bounced unseen.
func TestTrackerOverrun(t *testing.T) {
	ws := []unitfiles.Watched{{Dev: "eth1"}, {Dev: "eth2"}}
	tr := newTracker(ws, time.Millisecond, time.Second, func(string, ...any) {})
	tr.dumpLinks = func() (map[string]bool, error) { return map[string]bool{"eth1": true}, nil }
	now := time.Unix(1000, 0)
	if err := tr.resync(now, true); err != nil {
		t.Fatal(err)
	}
	none := func(unitfiles.Watched) ([]netip.Addr, error) { return nil, nil }
	var got []string
	for _, w := range tr.due(now.Add(time.Second), none) {
		got = append(got, w.Dev)
	}
	if !slices.Equal(got, []string{"eth1"}) {
		t.Errorf("due after an overrun: %v, want [eth1]", got)
	}
}

func TestWatchFileRoundTrip(t *testing.T) {
	ws := []unitfiles.Watched{
		{Dev: "eth1", Family: "inet", Method: "dhcp", Addrs: []netip.Addr{netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("2001:db8::2")}},
		{Dev: "eth0.100"},
	}
	b, err := unitfiles.WatchFile(ws)
	if err != nil {
		t.Fatal(err)
	}
	back, err := unitfiles.ParseWatch("watch", b)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(back) != fmt.Sprint(ws) {
		t.Errorf("ParseWatch(WatchFile(x)) = %v, want %v\n%s", back, ws, b)
	}
	if _, err := unitfiles.WatchFile([]unitfiles.Watched{{Dev: "eth1", Method: "dhcp;reboot"}}); err == nil {
		t.Error("WatchFile took a method that is not a word")
	}
	for _, bad := range []string{"eth1 inet", "eth1 inet dhcp 10.0.0.300", "eth1 in$et dhcp -", "../x inet dhcp -", "#@ format 9\neth1 inet dhcp -"} {
		if _, err := unitfiles.ParseWatch("watch", []byte(bad+"\n")); err == nil {
			t.Errorf("ParseWatch(%q) took it", bad)
		}
	}
}

func TestLogicalName(t *testing.T) {
	st := []byte("lo=lo\neth1=eth1\neth2=uplink\n")
	for dev, want := range map[string]string{"eth1": "eth1", "eth2": "uplink", "eth3": ""} {
		got, up := logicalName(st, dev)
		if got != want || up != (want != "") {
			t.Errorf("logicalName(%s) = %q, %v; want %q", dev, got, up, want)
		}
	}
	env := strings.Join(hookEnv(unitfiles.Watched{Dev: "eth2", Family: "inet", Method: "dhcp"}, "uplink"), " ")
	for _, w := range []string{"IFACE=eth2", "LOGICAL=uplink", "ADDRFAM=inet", "METHOD=dhcp", "MODE=start", "PHASE=post-up"} {
		if !strings.Contains(env, w) {
			t.Errorf("hook environment %q lacks %s", env, w)
		}
	}
}

// syncBuffer is a log the watcher writes while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestWatchBounce runs the watcher against the kernel: a veth with a route
// in a table of its own and a static IPv6 address kept on down; a bounce
// deletes the route, and the watcher runs the hook, with ifup's
// environment, which puts it back. A link ifupdown has down is left alone.
func TestWatchBounce(t *testing.T) {
	if !inNetns(t) {
		return
	}
	ipc(t, "link add wa type veth peer name wb")
	ipc(t, "link set wb up")
	ipc(t, "link set wa up")
	run(t, "sysctl", "-q", "net.ipv6.conf.wa.keep_addr_on_down=1")
	ipc(t, "addr add 10.77.0.2/24 dev wa")
	ipc(t, "addr add 2001:db8:77::2/64 dev wa nodad")
	dir := t.TempDir()
	env := filepath.Join(dir, "env")
	hook := filepath.Join(dir, "hook")
	// The environment last: the test takes the file for the hook's end.
	script := "#!/bin/sh\n[ \"$IFACE\" = wa ] && ip route replace default via 10.77.0.1 dev wa table 777 proto static\n" +
		"env | sort > " + env + ".$$\nmv " + env + ".$$ " + env + "\nexit 0\n"
	if err := os.WriteFile(hook, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "ifstate")
	if err := os.WriteFile(state, []byte("lo=lo\nwa=wa\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wf, err := unitfiles.WatchFile([]unitfiles.Watched{{Dev: "wa", Family: "inet", Method: "static",
		Addrs: []netip.Addr{netip.MustParseAddr("10.77.0.2"), netip.MustParseAddr("2001:db8:77::2")}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, unitfiles.Watch), wf, 0o644); err != nil {
		t.Fatal(err)
	}
	ipc(t, "route replace default via 10.77.0.1 dev wa table 777 proto static")

	ctx, cancel := context.WithCancel(context.Background())
	var log syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- Watch(ctx, WatchConfig{Dir: dir, Hook: hook, IfState: state, Stderr: &log, Settle: 200 * time.Millisecond})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Watch: %v", err)
		}
		t.Logf("watcher's log:\n%s", log.String())
	}()
	waitFor := func(what string, d time.Duration, ok func() bool) {
		t.Helper()
		for end := time.Now().Add(d); !ok(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(end) {
				t.Fatalf("%s: not within %v\nwatcher's log:\n%s", what, d, log.String())
			}
		}
	}
	waitFor("the watcher started", 5*time.Second, func() bool { return strings.Contains(log.String(), "watching wa") })
	routed := func() bool { return strings.Contains(ipc(t, "route show table 777"), "default via 10.77.0.1") }

	// wa down deletes its routes; the peer down takes only the carrier
	// (wa keeps IFF_UP, not LOWER_UP), and the kernel keeps the routes,
	// marked linkdown: the hook runs after both, as it cannot tell.
	for _, bounce := range [][2]string{{"link set wa down", "link set wa up"}, {"link set wb down", "link set wb up"}} {
		os.Remove(env)
		ipc(t, bounce[0])
		if bounce[0] == "link set wa down" {
			waitFor("the route gone after "+bounce[0], 3*time.Second, func() bool { return !routed() })
		}
		time.Sleep(300 * time.Millisecond)
		if _, err := os.Stat(env); err == nil {
			t.Fatalf("the hook ran while %s", bounce[0])
		}
		ipc(t, bounce[1])
		waitFor("the hook run after "+bounce[1], 5*time.Second, func() bool { _, err := os.Stat(env); return err == nil })
		if !routed() {
			t.Fatalf("the route is not back after %s", bounce[1])
		}
		b, err := os.ReadFile(env)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range []string{"IFACE=wa\n", "LOGICAL=wa\n", "ADDRFAM=inet\n", "METHOD=static\n", "MODE=start\n", "PHASE=post-up\n"} {
			if !strings.Contains(string(b), w) {
				t.Errorf("the hook's environment lacks %q:\n%s", w, b)
			}
		}
		if a := ipc(t, "-6 addr show dev wa"); !strings.Contains(a, "2001:db8:77::2/64") {
			t.Errorf("keep_addr_on_down: the static IPv6 address is gone after %s:\n%s", bounce[0], a)
		}
	}

	// ifdown's: ifupdown no longer lists wa; the hook must not run.
	if err := os.WriteFile(state, []byte("lo=lo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(env)
	ipc(t, "link set wa down")
	ipc(t, "link set wa up")
	waitFor("the watcher left wa to ifup", 5*time.Second, func() bool { return strings.Contains(log.String(), "leaving it to ifup") })
	if routed() {
		t.Error("the route is back though ifupdown has wa down")
	}
}
