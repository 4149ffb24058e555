package apply

import (
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// TestReviewDumpRulesAgreesWithEEXIST: for a rule already in the kernel
// (added by someone else) and a line of ours, dumpRules says "there" exactly
// when the kernel answers "File exists" to our `rule add`, which is what the
// old engine went by.
func TestReviewDumpRulesAgreesWithEEXIST(t *testing.T) {
	if !inNetns(t) {
		return
	}
	eth1Up(t)
	cases := []struct {
		f             plan.Family
		foreign, ours string
	}{
		{4, "priority 2001 not from 10.1.0.2/32 table 1000", "priority 2001 from 10.1.0.2/32 table 1000"},
		{4, "priority 2002 from 10.1.0.2/32 table 1000 tos 0x10", "priority 2002 from 10.1.0.2/32 table 1000"},
		{4, "priority 2003 fwmark 0x10/0xffffffff table 1000", "priority 2003 fwmark 0x10 table 1000"},
		{4, "priority 2004 fwmark 0x110/0xff0 iif eth1 table 1000", "priority 2004 fwmark 0x110/0xff0 iif eth1 table 1000"},
		{4, "priority 2005 to 10.20.0.0/16 oif eth9 table 70000", "priority 2005 to 10.20.0.0/16 oif eth9 table 70000"},
		{4, "priority 2006 from 10.1.0.2/32 table 1000 realms 3", "priority 2006 from 10.1.0.2/32 table 1000"},
		{4, "priority 2007 from 10.1.0.2/32 table 1000 suppress_prefixlength 0", "priority 2007 from 10.1.0.2/32 table 1000"},
		{4, "priority 2008 from 0.0.0.0/0 table 1000", "priority 2008 from 0.0.0.0/0 table 1000"},
		{4, "priority 2009 iif eth1 table 1000 uidrange 1-2", "priority 2009 iif eth1 table 1000"},
		{6, "priority 2000 not to 2001:db8:9::/48 iif eth3 table 1000", "priority 2000 to 2001:db8:9::/48 iif eth3 table 1000"},
	}
	for _, c := range cases {
		ipc(t, fmt.Sprintf("-%d rule add %s", c.f, c.foreign))
		krs, err := dumpRules(c.f)
		if err != nil {
			t.Fatal(err)
		}
		r, err := unitfiles.ParseRule(c.f, c.ours)
		if err != nil {
			t.Fatal(err)
		}
		inDump := slices.ContainsFunc(krs, func(k unitfiles.Rule) bool { return refuses(k, r) })
		out, err := exec.Command("ip", append([]string{fmt.Sprintf("-%d", c.f), "rule", "add"}, strings.Fields(c.ours)...)...).CombinedOutput()
		exists := err != nil && strings.Contains(string(out), "File exists")
		if err != nil && !exists {
			t.Fatalf("ip rule add %s: %v %s", c.ours, err, out)
		}
		if inDump != exists {
			t.Errorf("foreign %q, ours %q: dumpRules finds it %v, kernel answers File exists %v; ip rule:\n%s", c.foreign, c.ours, inDump, exists, ipc(t, fmt.Sprintf("-%d rule", c.f)))
		}
	}
}
