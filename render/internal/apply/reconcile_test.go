package apply

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// fakeKernel answers the reconcile step from tables: the routes it has (as
// `ip route replace` takes them, with their table), the foreign IPv4
// default, the rules and the sysctls.
type fakeKernel struct {
	routes  []string
	def4    string
	rules   []unitfiles.Rule
	sysctls map[string]string
	err     error
}

func (k fakeKernel) Routes(f plan.Family, cand []string) ([]string, error) { return k.routes, k.err }
func (k fakeKernel) ForeignDefault4() (string, error)                      { return k.def4, k.err }
func (k fakeKernel) Rules(f plan.Family) ([]unitfiles.Rule, error)         { return k.rules, k.err }
func (k fakeKernel) Sysctl(key string) (string, bool) {
	v, ok := k.sysctls[key]
	return v, ok
}

// steps is a plan as text, one line a step: "record" (with what changed
// in the state's families, briefly) or the op and its lines.
func steps(p Plan) []string {
	var out []string
	for _, s := range p.Steps {
		if s.Record != nil {
			out = append(out, "record")
		}
		if o := s.Op; o != nil {
			name := [...]string{"sysctls", "nat-restore", "nat-jump", "nat-remove", "tables", "main", "undo", "restore-default", "nft-load", "nft-remove"}[o.Kind]
			l := fmt.Sprintf("%s %d", name, o.Family)
			if o.Chain.Name != "" {
				l += " " + o.Chain.Key()
			}
			for _, x := range o.Lines {
				l += " | " + x
			}
			for _, x := range o.Sysctls {
				l += " | " + x.Key + "=" + x.Value
			}
			out = append(out, l)
		}
	}
	return out
}

const (
	rt1000  = "route replace 10.9.0.0/16 via 10.1.0.1 dev eth1 table 1000 proto 241"
	rtDef   = "route replace default via 10.1.0.1 dev eth1 table 1000 proto 241"
	rule1   = "rule add priority 1000 from 10.1.0.2/32 table 1000"
	rule2   = "rule add priority 1001 from 10.1.0.5/32 table 1000"
	mainDef = "route replace default via 10.2.0.1 dev eth2 proto 241"
	main20  = "route replace 10.20.0.0/16 via 10.1.0.1 dev eth1 proto 241"
)

var seedWant = &unitfiles.Set{
	Batches: map[plan.Family]unitfiles.Batch{plan.V4: {Routes: []string{rt1000, rtDef}, Rules: []string{rule1}, Main: []string{mainDef}}},
	Sysctls: []unitfiles.Sysctl{{Key: "net/ipv4/ip_forward", Value: "1"}},
	NAT:     map[plan.Family][]byte{plan.V4: []byte("*nat\n:NICPERSIST-POSTROUTING - [0:0]\nCOMMIT\n")},
}

// seedState is the state after a start of seedWant on a kernel with a DHCP
// default of metric 0 and nothing else of ours.
var seedState = State{
	Version: StateVersion, SysctlsSaved: true, Sysctls: []unitfiles.Sysctl{{Key: "net/ipv4/ip_forward", Value: "0"}},
	DefaultSaved: true, Default: "default via 10.1.0.254 dev eth1 proto dhcp", XT4: []string{natPost},
	IP4: &FamilyState{Routes: []string{rt1000, rtDef}, Rules: []string{rule1}, Main: []string{mainDef}},
}

// xtAll declares every chain nicpersist may own.
const xtAll = "*nat\n:NICPERSIST-POSTROUTING - [0:0]\n:NICPERSIST-PREROUTING - [0:0]\nCOMMIT\n" +
	"*filter\n:NICPERSIST-FORWARD - [0:0]\nCOMMIT\n*mangle\n:NICPERSIST-PREROUTING - [0:0]\nCOMMIT\n"

// seedWant2 is seedWant, a copy.
func seedWant2() *unitfiles.Set {
	s := *seedWant
	return &s
}

var cleanKernel = fakeKernel{def4: "default via 10.1.0.254 dev eth1 proto dhcp", sysctls: map[string]string{"net/ipv4/ip_forward": "0"}}

func TestPlanStart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		want  *unitfiles.Set
		st    State
		k     fakeKernel
		steps []string
		final State
	}{
		{
			name: "nothing to do",
			want: &unitfiles.Set{},
			k:    cleanKernel,
		},
		{
			name: "first start: sysctls and NAT first, then tables and rules, the main table last",
			want: seedWant, k: cleanKernel,
			steps: []string{
				"record", "sysctls 0 | net/ipv4/ip_forward=1",
				"record", "nat-restore 4", "nat-jump 4 nat/NICPERSIST-POSTROUTING",
				"record", // the displaced default
				"record", "tables 4 | " + rt1000 + " | " + rtDef + " | " + rule1,
				"record", "main 4 | " + mainDef,
			},
			final: seedState,
		},
		{
			name: "a reload with the same files changes no state and undoes nothing",
			want: seedWant, st: seedState, k: cleanKernel,
			steps: []string{
				"sysctls 0 | net/ipv4/ip_forward=1",
				"nat-restore 4", "nat-jump 4 nat/NICPERSIST-POSTROUTING",
				"record", "tables 4 | " + rt1000 + " | " + rtDef + " | " + rule1,
				"record", "main 4 | " + mainDef,
			},
			final: seedState,
		},
		{
			name: "a route and a rule that were there before are recorded as such",
			want: &unitfiles.Set{Batches: map[plan.Family]unitfiles.Batch{plan.V4: {Routes: []string{rt1000}, Rules: []string{rule1, rule2}}}},
			k: fakeKernel{
				routes: []string{"10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000", "10.8.0.0/16 dev eth1 table 1000"},
				rules:  []unitfiles.Rule{{Priority: 1001, From: netipPrefix("10.1.0.5/32"), Table: 1000}},
			},
			steps: []string{"record", "tables 4 | " + rt1000 + " | " + rule1 + " | " + rule2},
			final: State{IP4: &FamilyState{Routes: []string{rt1000}, Rules: []string{rule1, rule2},
				Pre:      []PreRoute{{rt1000, "10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000"}},
				RulesPre: []string{rule2}}},
		},
		{
			name: "a rule of another priority, table or selector is not the same rule",
			want: &unitfiles.Set{Batches: map[plan.Family]unitfiles.Batch{plan.V4: {Rules: []string{rule1}}}},
			k: fakeKernel{rules: []unitfiles.Rule{
				{Priority: 1001, From: netipPrefix("10.1.0.2/32"), Table: 1000},
				{Priority: 1000, From: netipPrefix("10.1.0.2/32"), Table: 1001},
				{Priority: 1000, From: netipPrefix("10.1.0.2/32"), IIF: "eth3", Table: 1000},
				{Priority: 1000, Table: 1000},
			}},
			steps: []string{"record", "tables 4 | " + rule1},
			final: State{IP4: &FamilyState{Rules: []string{rule1}}},
		},
		{
			name: "a reload with fewer lines puts back what was there and deletes what it added",
			want: &unitfiles.Set{Batches: map[plan.Family]unitfiles.Batch{plan.V4: {Routes: []string{rtDef}, Rules: []string{rule1}}}},
			st: State{IP4: &FamilyState{Routes: []string{rt1000, rtDef}, Rules: []string{rule1, rule2}, Main: []string{main20},
				Pre:      []PreRoute{{rt1000, "10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000"}},
				RulesPre: []string{}}},
			steps: []string{
				"record", "tables 4 | " + rtDef + " | " + rule1,
				"undo 4 | rule del priority 1001 from 10.1.0.5/32 table 1000 | route del 10.20.0.0/16 via 10.1.0.1 dev eth1 proto 241 | route replace 10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000",
			},
			final: State{IP4: &FamilyState{Routes: []string{rtDef}, Rules: []string{rule1}}},
		},
		{
			name:  "a rule that was there before stays when the files drop it",
			want:  &unitfiles.Set{Batches: map[plan.Family]unitfiles.Batch{plan.V4: {Rules: []string{rule1}}}},
			st:    State{IP4: &FamilyState{Rules: []string{rule1, rule2}, RulesPre: []string{rule2}}},
			k:     fakeKernel{rules: []unitfiles.Rule{{Priority: 1001, From: netipPrefix("10.1.0.5/32"), Table: 1000}}},
			steps: []string{"record", "tables 4 | " + rule1},
			final: State{IP4: &FamilyState{Rules: []string{rule1}}},
		},
		{
			name:  "a main default with a metric displaces nothing and saves nothing",
			want:  &unitfiles.Set{Batches: map[plan.Family]unitfiles.Batch{plan.V6: {Main: []string{"route replace default via 2001:db8:2::1 dev eth2 metric 1 proto 241"}}}},
			k:     fakeKernel{def4: "default via 10.1.0.254 dev eth1"},
			steps: []string{"record", "record", "main 6 | route replace default via 2001:db8:2::1 dev eth2 metric 1 proto 241"},
			final: State{IP6: &FamilyState{Main: []string{"route replace default via 2001:db8:2::1 dev eth2 metric 1 proto 241"}}},
		},
		{
			name:  "without NAT rules, a chain an earlier start made goes",
			want:  &unitfiles.Set{},
			st:    State{XT4: []string{natPost}, XT6: []string{natPost}},
			steps: []string{"nat-remove 4 nat/NICPERSIST-POSTROUTING", "record", "nat-remove 6 nat/NICPERSIST-POSTROUTING", "record"},
			final: State{},
		},
		{
			name: "every chain the rules declare gets its jump",
			want: &unitfiles.Set{NAT: map[plan.Family][]byte{plan.V4: []byte(xtAll)}},
			steps: []string{"record", "nat-restore 4",
				"nat-jump 4 nat/NICPERSIST-POSTROUTING", "nat-jump 4 nat/NICPERSIST-PREROUTING",
				"nat-jump 4 filter/NICPERSIST-FORWARD", "nat-jump 4 mangle/NICPERSIST-PREROUTING"},
			final: State{XT4: []string{"nat/NICPERSIST-POSTROUTING", "nat/NICPERSIST-PREROUTING", "filter/NICPERSIST-FORWARD", "mangle/NICPERSIST-PREROUTING"}},
		},
		{
			name: "a reload whose rules lost the marks removes their chain after the restore",
			want: seedWant2(),
			st:   State{XT4: []string{"nat/NICPERSIST-POSTROUTING", "mangle/NICPERSIST-PREROUTING"}},
			k:    cleanKernel,
			steps: []string{"record", "sysctls 0 | net/ipv4/ip_forward=1",
				"nat-restore 4", "nat-jump 4 nat/NICPERSIST-POSTROUTING",
				"nat-remove 4 mangle/NICPERSIST-PREROUTING", "record",
				"record", "record", "tables 4 | " + rt1000 + " | " + rtDef + " | " + rule1, "record", "main 4 | " + mainDef},
			final: seedState,
		},
		{
			name:  "nftables: the table is recorded before it is loaded",
			want:  &unitfiles.Set{NFT: []byte("table inet nicpersist\n")},
			steps: []string{"record", "nft-load 0"},
			final: State{NFT: true},
		},
		{
			name:  "a switch from iptables to nftables loads the table, then removes the chain",
			want:  &unitfiles.Set{NFT: []byte("table inet nicpersist\n")},
			st:    State{XT4: []string{natPost}},
			steps: []string{"nat-remove 4 nat/NICPERSIST-POSTROUTING", "record", "record", "nft-load 0"},
			final: State{NFT: true},
		},
		{
			name:  "without an nftables file, a table an earlier start loaded goes",
			want:  &unitfiles.Set{},
			st:    State{NFT: true},
			steps: []string{"nft-remove 0", "record"},
			final: State{},
		},
		{
			name:  "a sysctl is saved the first time it is set; a key not there is neither saved nor an error",
			want:  &unitfiles.Set{Sysctls: []unitfiles.Sysctl{{Key: "net/ipv4/ip_forward", Value: "1"}, {Key: "net/ipv4/conf/eth9/rp_filter", Value: "2"}, {Key: "net/ipv4/conf/all/rp_filter", Value: "2"}}},
			st:    State{SysctlsSaved: true, Sysctls: []unitfiles.Sysctl{{Key: "net/ipv4/ip_forward", Value: "0"}}},
			k:     fakeKernel{sysctls: map[string]string{"net/ipv4/ip_forward": "1", "net/ipv4/conf/all/rp_filter": "1"}},
			steps: []string{"record", "sysctls 0 | net/ipv4/ip_forward=1 | net/ipv4/conf/eth9/rp_filter=2 | net/ipv4/conf/all/rp_filter=2"},
			final: State{SysctlsSaved: true, Sysctls: []unitfiles.Sysctl{{Key: "net/ipv4/ip_forward", Value: "0"}, {Key: "net/ipv4/conf/all/rp_filter", Value: "1"}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := planStart(tc.want, tc.st, tc.k)
			if err != nil {
				t.Fatal(err)
			}
			if got := steps(p); !slices.Equal(got, tc.steps) {
				t.Errorf("steps:\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.steps, "\n\t"))
			}
			if !stateEqual(p.Final, tc.final) {
				t.Errorf("final state:\n%s\nwant\n%s", stateJSON(p.Final), stateJSON(tc.final))
			}
			for f := range tc.want.Batches {
				checkPlan(t, p, f)
			}
		})
	}
}

func TestPlanStartKernelError(t *testing.T) {
	k := fakeKernel{err: errors.New("netlink: no")}
	if _, err := planStart(seedWant, State{}, k); err == nil || !strings.Contains(err.Error(), "netlink: no") {
		t.Errorf("planStart with a failing kernel: %v, want its error", err)
	}
}

func TestPlanStop(t *testing.T) {
	for _, tc := range []struct {
		name  string
		st    State
		steps []string
	}{
		{"nothing started", State{}, nil},
		{
			name: "the displaced default first, then ours out, NAT, the sysctls' old values",
			st: func() State {
				s := seedState.clone()
				s.IP4.Pre = []PreRoute{{rt1000, "10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000"}}
				s.IP4.Rules = append(s.IP4.Rules, rule2)
				s.IP4.RulesPre = []string{rule2}
				s.IP6 = &FamilyState{Rules: []string{"rule add priority 1000 from 2001:db8:1::2/128 table 1000"}}
				s.XT6 = []string{natPost}
				return s
			}(),
			steps: []string{
				"undo 6 | rule del priority 1000 from 2001:db8:1::2/128 table 1000",
				"restore-default 4 | default via 10.1.0.254 dev eth1 proto dhcp",
				"undo 4 | rule del priority 1000 from 10.1.0.2/32 table 1000 | route del default via 10.2.0.1 dev eth2 proto 241 | " +
					"route replace 10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000 | route del default via 10.1.0.1 dev eth1 table 1000 proto 241",
				"nat-remove 6 nat/NICPERSIST-POSTROUTING", "nat-remove 4 nat/NICPERSIST-POSTROUTING",
				"sysctls 0 | net/ipv4/ip_forward=0",
			},
		},
		{
			name:  "a default saved as none is not put back",
			st:    State{DefaultSaved: true, IP4: &FamilyState{Main: []string{mainDef}}},
			steps: []string{"undo 4 | route del default via 10.2.0.1 dev eth2 proto 241"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := planStop(tc.st)
			if got := steps(p); !slices.Equal(got, tc.steps) {
				t.Errorf("steps:\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.steps, "\n\t"))
			}
			if !p.Final.Empty() {
				t.Errorf("stop's final state is not empty: %s", stateJSON(p.Final))
			}
		})
	}
}

// TestStartThenStopUndoes: stopping what a start recorded removes every
// line the start applied that was not there before, whatever the kernel
// had, and puts back what it replaced.
func TestStartThenStopUndoes(t *testing.T) {
	k := fakeKernel{routes: []string{"10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000"}, def4: "default via 10.1.0.254 dev eth1",
		rules: []unitfiles.Rule{{Priority: 1000, From: netipPrefix("10.1.0.2/32"), Table: 1000}}}
	p, err := planStart(seedWant, State{}, k)
	if err != nil {
		t.Fatal(err)
	}
	got := steps(planStop(p.Final))
	want := []string{
		"restore-default 4 | default via 10.1.0.254 dev eth1",
		"undo 4 | route del default via 10.2.0.1 dev eth2 proto 241 | route replace 10.9.0.0/16 via 10.1.0.3 dev eth1 table 1000 | route del default via 10.1.0.1 dev eth1 table 1000 proto 241",
		"nat-remove 4 nat/NICPERSIST-POSTROUTING",
	}
	if !slices.Equal(got, want) {
		t.Errorf("stop after start:\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func netipPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// A reload whose files drop a rule that was there before nicpersist (in
// rules_pre) must never record a state whose stop deletes that rule: the
// main step may fail after the record, and Start then runs planStop on it.
func TestFailedReloadKeepsForeignRule(t *testing.T) {
	st := State{IP4: &FamilyState{Rules: []string{rule1, rule2}, RulesPre: []string{rule2}, Main: []string{main20}}}
	want := &unitfiles.Set{Batches: map[plan.Family]unitfiles.Batch{plan.V4: {Rules: []string{rule1}, Main: []string{main20}}}}
	k := fakeKernel{rules: []unitfiles.Rule{{Priority: 1001, From: netipPrefix("10.1.0.5/32"), Table: 1000}}}
	p, err := planStart(want, st, k)
	if err != nil {
		t.Fatal(err)
	}
	foreignDel := ruleDel(rule2)
	for i, s := range p.Steps {
		if s.Record == nil {
			continue
		}
		for _, stp := range steps(planStop(*s.Record)) {
			if strings.Contains(stp, foreignDel) {
				t.Errorf("step %d records a state whose stop deletes the foreign rule %q:\n%s", i, rule2, stateJSON(*s.Record))
			}
		}
	}
}

// A reload whose files no longer put our metric-0 default in place of the
// system's deletes ours and leaves the machine without a default route
// until stop; the saved default should come back instead.
func TestReloadDroppingDefaultPutsTheSavedOneBack(t *testing.T) {
	want := &unitfiles.Set{Batches: map[plan.Family]unitfiles.Batch{plan.V4: {Routes: []string{rt1000, rtDef}, Rules: []string{rule1}}}}
	p, err := planStart(want, seedState, cleanKernel)
	if err != nil {
		t.Fatal(err)
	}
	got := steps(p)
	delOurs := "route del " + strings.TrimPrefix(mainDef, "route replace ")
	restored := "route replace " + seedState.Default
	for _, s := range got {
		if strings.Contains(s, delOurs) && !strings.Contains(s, restored) {
			t.Errorf("reload deletes our default without putting back %q:\n\t%s", seedState.Default, strings.Join(got, "\n\t"))
		}
	}
}

// A rule in the kernel with the priority, table, iif, oif and fwmark of ours
// and a from/to/tos/not of its own makes the kernel answer "File exists" to
// ours (fib4_rule_compare only compares what the new rule says), and
// `ip rule del` of our line deletes it. It was there before: it must be
// recorded in rules_pre, or stop deletes it.
func TestForeignRuleWithMoreSelectorsIsPre(t *testing.T) {
	ours := "rule add priority 1000 fwmark 0x10 table 1000"
	want := &unitfiles.Set{Batches: map[plan.Family]unitfiles.Batch{plan.V4: {Rules: []string{ours}}}}
	k := fakeKernel{rules: []unitfiles.Rule{{Priority: 1000, From: netipPrefix("10.1.0.2/32"), Mark: 0x10, Mask: 0xffffffff, Table: 1000}}}
	p, err := planStart(want, State{}, k)
	if err != nil {
		t.Fatal(err)
	}
	if fs := p.Final.IP4; fs == nil || !slices.Contains(fs.RulesPre, ours) {
		t.Errorf("final state %s: %q not in rules_pre, so stop deletes the foreign rule", stateJSON(p.Final), ours)
	}
}
