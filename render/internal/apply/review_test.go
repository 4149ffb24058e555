package apply

import (
	"slices"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// A reload whose files drop a rule that was there before nicpersist (in
// rules_pre) must never record a state whose stop deletes that rule: the
// main step may fail after the record, and Start then runs planStop on it.
func TestReviewFailedReloadKeepsForeignRule(t *testing.T) {
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
func TestReviewReloadDroppingDefaultKeepsADefault(t *testing.T) {
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
func TestReviewForeignRuleWithMoreSelectorsIsPre(t *testing.T) {
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
