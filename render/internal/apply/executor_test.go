package apply

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/testenv"
)

// TestMultipathDefault: stop puts back a multipath (ECMP) default that our
// metric-0 default displaced, nexthops and all.
func TestMultipathDefault(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	eth1Up(t)
	vethUp(t, "eth2")
	ipc(t, "addr add 10.2.0.2/24 dev eth2")
	ipc(t, "route replace default proto static nexthop via 10.1.0.1 dev eth1 weight 1 nexthop via 10.2.0.1 dev eth2 weight 1")
	before := snapshot(t)
	c := Config{Dir: rendered(t, "ip4.batch", "#@ routes\n#@ rules\n#@ main\nroute replace default via 10.2.0.1 dev eth2 proto 241\n"), State: t.TempDir()}
	mustStart(t, c)
	wantLines(t, "-4 route show default", "default via 10.2.0.1 dev eth2 proto 241")
	mustStop(t, c)
	asBefore(t, before, "stop")
}

// TestUndoGoesOnPastABadLine: a put-back line that ip cannot parse ends
// even an `ip -force -batch`; stop must still remove the lines after it.
func TestUndoGoesOnPastABadLine(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	eth1Up(t)
	before := snapshot(t)
	a := "route replace 10.8.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241"
	b := "route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241"
	c := Config{Dir: rendered(t, "ip4.batch", "#@ routes\n"+a+"\n"+b+"\n"), State: t.TempDir()}
	mustStart(t, c)
	// As if a's route had been there before, saved in a form ip
	// refuses.
	st := readState(t, c.State)
	st.IP4.Pre = []PreRoute{{a, "10.8.0.0/16 bogus-word table 1000"}}
	if err := writeState(filepath.Join(c.State, stateFile), st); err != nil {
		t.Fatal(err)
	}
	mustStop(t, c)
	if got := ipc(t, "-4 route show table 1000"); strings.Contains(got, "10.9.0.0/16") {
		t.Errorf("stop left 10.9.0.0/16, after the line ip cannot parse:\n%s", got)
	}
	ipc(t, "-4 route flush table 1000")
	asBefore(t, before, "stop")
}

// TestNAT: the chain and one jump after each start, the chain gone on a
// reload without rules and after stop. (State the old script left without
// the mark: TestLegacyStateConverted.)
func TestNAT(t *testing.T) {
	t.Parallel()
	testenv.Need(t, "", "", "iptables", "iptables-save", "iptables-restore")
	if !inNetns(t) {
		return
	}
	nat := func() string {
		out, err := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
		if err != nil {
			t.Fatalf("iptables-save: %v\n%s", err, out)
		}
		var keep []string
		for _, l := range strings.Split(string(out), "\n") {
			if strings.Contains(l, "NICPERSIST") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	rules := "*nat\n:NICPERSIST-POSTROUTING - [0:0]\n-A NICPERSIST-POSTROUTING -s 10.5.0.0/16 -o eth2 -j MASQUERADE\nCOMMIT\n"
	want := ":NICPERSIST-POSTROUTING - [0:0]\n-A POSTROUTING -j NICPERSIST-POSTROUTING\n-A NICPERSIST-POSTROUTING -s 10.5.0.0/16 -o eth2 -j MASQUERADE"
	c := Config{Dir: rendered(t, "iptables.rules", rules), State: t.TempDir()}
	mustStart(t, c)
	mustStart(t, c)
	if got := nat(); got != want {
		t.Errorf("after two starts:\n%s\nwant:\n%s", got, want)
	}
	if err := os.Remove(filepath.Join(c.Dir, "iptables.rules")); err != nil {
		t.Fatal(err)
	}
	mustStart(t, c)
	if got := nat(); got != "" {
		t.Errorf("a start without rules left:\n%s", got)
	}
	mustStop(t, c)
	c = Config{Dir: rendered(t, "iptables.rules", rules), State: t.TempDir()}
	mustStart(t, c)
	mustStop(t, c)
	if got := nat(); got != "" {
		t.Errorf("stop left:\n%s", got)
	}
}

func TestRefusesWait(t *testing.T) {
	for _, c := range []struct {
		msg  string
		want bool
	}{
		{"iptables-restore: invalid option -- 'w'", true}, // getopt, 1.4.21's restore
		{"iptables v1.4.7: unknown option `-w'", true},    // 1.4.x
		{`iptables v1.4.14: unknown option "-w"`, true},   // 1.4.11-1.4.19
		{"iptables-restore: unrecognized option '--wait'", true},
		{"iptables: Bad rule (does a matching rule exist in that chain?).", false},
		{"Another app is currently holding the xtables lock.", false},
		{"", false},
	} {
		if got := refusesWait(c.msg); got != c.want {
			t.Errorf("refusesWait(%q) = %v, want %v", c.msg, got, c.want)
		}
	}
}
