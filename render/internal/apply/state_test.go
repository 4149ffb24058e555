package apply

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

func TestStateFile(t *testing.T) {
	dir := t.TempDir()
	if st, legacy, err := loadState(dir); err != nil || legacy || !st.Empty() {
		t.Fatalf("loadState(empty directory) = %+v, legacy %v, %v; want an empty state", st, legacy, err)
	}
	st := seedState.clone()
	if err := saveState(dir, st, false); err != nil {
		t.Fatal(err)
	}
	if got := readState(t, dir); !stateEqual(got, st) {
		t.Errorf("saved\n%s\nread back\n%s", stateJSON(st), stateJSON(got))
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Errorf("saveState left %d files, want 1 (no temporary file)", len(ents))
	}
	// An empty state is no file.
	if err := saveState(dir, State{}, false); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("saving an empty state left %v", ents)
	}
	for _, tc := range []struct{ text, err string }{
		{`{"version": 3}`, "state version 3; this nicpersist reads version 2 and older"},
		{`{"version": 0}`, "state version 0"},
		{`{"version": 1, `, "unexpected end of JSON input"},
	} {
		if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, err := loadState(dir); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("loadState(%s) = %v, want an error saying %q", tc.text, err, tc.err)
		}
	}
	if err := saveState(filepath.Join(dir, "nosuch"), st, false); err == nil {
		t.Errorf("saveState into a missing directory succeeded")
	}
}

// legacyState is what apply.sh (and the binary that shared its files)
// recorded after starting seedWant on a kernel with a DHCP default.
var legacyState = map[string]string{
	"ip4.routes":     rt1000 + "\n" + rtDef + "\n",
	"ip4.rules":      rule1 + "\n" + rule2 + "\n",
	"ip4.rules.pre":  rule2 + "\n",
	"ip4.main":       mainDef + "\n",
	"ip4.pre":        rt1000 + "|10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000\n",
	"default4.saved": "default via 10.1.0.254 dev eth1 proto dhcp\n",
	"sysctl.saved":   "net/ipv4/ip_forward 0\nnet/ipv4/conf/all/rp_filter\t1\n",
	"ip6.routes":     "",
	"ip4.tables.new": "left by a start that died\n",
}

func TestLegacyStateConverted(t *testing.T) {
	dir := t.TempDir()
	for name, text := range legacyState {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	st, legacy, err := loadState(dir)
	if err != nil || !legacy {
		t.Fatalf("loadState(old text state) = legacy %v, %v; want it read as legacy", legacy, err)
	}
	want := State{
		Version: StateVersion, SysctlsSaved: true,
		Sysctls:      []unitfiles.Sysctl{{Key: "net/ipv4/ip_forward", Value: "0"}, {Key: "net/ipv4/conf/all/rp_filter", Value: "1"}},
		DefaultSaved: true, Default: "default via 10.1.0.254 dev eth1 proto dhcp",
		// Old state did not always mark NAT: whatever was started may
		// have a chain.
		XT4: []string{natPost}, XT6: []string{natPost},
		IP4: &FamilyState{Routes: []string{rt1000, rtDef}, Rules: []string{rule1, rule2}, Main: []string{mainDef},
			Pre: []PreRoute{{rt1000, "10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000"}}, RulesPre: []string{rule2}},
	}
	if !stateEqual(st, want) {
		t.Errorf("converted state:\n%s\nwant\n%s", stateJSON(st), stateJSON(want))
	}
	if err := saveState(dir, st, true); err != nil {
		t.Fatal(err)
	}
	if files := stateFiles(t, dir); len(files) != 1 || files[stateFile] == "" {
		t.Errorf("after the conversion the state directory holds %v, want only %s", files, stateFile)
	}
	// One way: read again, it is the new state.
	if got := readState(t, dir); !stateEqual(got, want) {
		t.Errorf("read again:\n%s", stateJSON(got))
	}
}

// TestLegacyStateStops: a machine whose unit was started by the old
// script is stopped by this binary, and ends as it was before that start.
func TestLegacyStateStops(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	setupStartStop(t)
	before := snapshot(t)
	// What the old script did to the kernel: our routes and rules in, the
	// DHCP-like default replaced by ours.
	for _, l := range []string{
		"-4 route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241",
		"-4 route replace default via 10.1.0.1 dev eth1 table 1000 proto 241",
		"-4 rule add priority 1000 from 10.1.0.2/32 table 1000",
		"-4 route replace default via 10.1.0.1 dev eth1 proto 241",
	} {
		ipc(t, l)
	}
	state := t.TempDir()
	for name, text := range map[string]string{
		"ip4.routes":     rt1000 + "\n" + rtDef + "\n",
		"ip4.rules":      rule1 + "\n" + rule2 + "\n",
		"ip4.rules.pre":  rule2 + "\n",
		"ip4.main":       "route replace default via 10.1.0.1 dev eth1 proto 241\n",
		"ip4.pre":        rt1000 + "|10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000\n",
		"default4.saved": "default via 10.1.0.254 dev eth1\n",
		"sysctl.saved":   "net/ipv4/ip_forward 0\n",
	} {
		if err := os.WriteFile(filepath.Join(state, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	mustStop(t, Config{Dir: t.TempDir(), State: state, Wait: time.Second})
	asBefore(t, before, "a Stop of the old script's state")
	if files := stateFiles(t, state); len(files) != 0 {
		t.Errorf("after Stop the state directory holds %v", files)
	}
}

// TestStateVersion1 reads a state file of the nicpersist before version 2
// (NAT as nat4/nat6 marks) as its one chain, so stop removes it.
func TestStateVersion1(t *testing.T) {
	dir := t.TempDir()
	v1 := `{"version": 1, "nat4": true, "nat6": true, "ip4": {"rules": ["` + rule1 + `"]}}`
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte(v1), 0o644); err != nil {
		t.Fatal(err)
	}
	st, _, err := loadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := State{Version: 1, XT4: []string{natPost}, XT6: []string{natPost}, IP4: &FamilyState{Rules: []string{rule1}}}
	if !stateEqual(st, want) {
		t.Fatalf("version 1 state read as\n%s\nwant\n%s", stateJSON(st), stateJSON(want))
	}
	got := steps(planStop(State{Version: 1, NAT4: true}))
	if !slices.Equal(got, []string{"nat-remove 4 nat/NICPERSIST-POSTROUTING"}) {
		t.Errorf("stop of a version 1 state with nat4: %q", got)
	}
}

func TestParseSave(t *testing.T) {
	v := parseSave("# Generated\n*nat\n:POSTROUTING ACCEPT [0:0]\n:NICPERSIST-POSTROUTING - [0:0]\n:NICPERSIST-FORWARD - [0:0]\n" +
		"-A POSTROUTING -j NICPERSIST-POSTROUTING\n-A POSTROUTING -j NICPERSIST-POSTROUTING\n-A POSTROUTING -s 10.0.0.0/8 -j NICPERSIST-POSTROUTING\n" +
		"COMMIT\n*mangle\n:NICPERSIST-PREROUTING - [0:0]\n-A PREROUTING -j NICPERSIST-PREROUTING\nCOMMIT\n")
	if !v.chains["nat/NICPERSIST-POSTROUTING"] || v.chains["nat/NICPERSIST-FORWARD"] || !v.chains["mangle/NICPERSIST-PREROUTING"] || v.chains["nat/NICPERSIST-PREROUTING"] {
		t.Errorf("chains %v", v.chains)
	}
	// A jump with a match of its own is the user's, not nicpersist's.
	if v.jumps["nat/NICPERSIST-POSTROUTING"] != 2 || v.jumps["mangle/NICPERSIST-PREROUTING"] != 1 {
		t.Errorf("jumps %v", v.jumps)
	}
}

// TestVersion1StateStops stops, with this binary, a namespace that the
// nicpersist of state version 1 started: its SNAT chain and jump (as its
// natRestore and natJump made them), a rule, and a state file with nat4.
func TestVersion1StateStops(t *testing.T) {
	t.Parallel()
	if !inNetns(t) {
		return
	}
	setupStartStop(t)
	save := func() string {
		out, err := exec.Command("iptables-save", "-t", "nat").Output()
		if err != nil {
			t.Fatal(err)
		}
		var keep []string
		for _, l := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(l, "#") {
				keep = append(keep, l)
			}
		}
		return strings.Join(keep, "\n")
	}
	before, nat := snapshot(t), save()
	restore := exec.Command("iptables-restore", "--noflush")
	restore.Stdin = strings.NewReader("*nat\n:NICPERSIST-POSTROUTING - [0:0]\n-A NICPERSIST-POSTROUTING -s 10.1.0.0/24 -o eth1 -j MASQUERADE\n-I POSTROUTING 1 -j NICPERSIST-POSTROUTING\nCOMMIT\n")
	if out, err := restore.CombinedOutput(); err != nil {
		t.Fatalf("iptables-restore: %v\n%s", err, out)
	}
	ipc(t, "-4 rule add priority 1000 from 10.1.0.2/32 table 1000")
	state := t.TempDir()
	v1 := `{"version": 1, "nat4": true, "ip4": {"rules": ["` + rule1 + `"]}}`
	if err := os.WriteFile(filepath.Join(state, stateFile), []byte(v1), 0o644); err != nil {
		t.Fatal(err)
	}
	mustStop(t, Config{Dir: t.TempDir(), State: state, Wait: time.Second})
	asBefore(t, before, "a Stop of a version 1 state")
	if got := save(); strings.Contains(got, "NICPERSIST") {
		t.Errorf("after Stop of a version 1 state the nat table still has nicpersist's chain:\n%s\nbefore:\n%s", got, nat)
	}
}
