package apply

import (
	"slices"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// FuzzParsers feeds arbitrary text to what apply reads: the rendered files
// (a hand-edited or truncated file must be refused, never crash the unit at
// boot), `ip route show` and ip's error log; and runs the reconcile step on
// what parses, against a kernel that has the text's routes.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{
		"#@ routes\nroute replace 172.22.5.64/27 dev eth1 table 1000 proto 241\n#@ rules\nrule add priority 1000 from 172.22.5.68/32 table 1000\n#@ main\nroute replace default via 172.22.5.97 dev eth2 proto 241\n",
		"default via 10.0.0.1 dev eth0 proto dhcp src 10.0.0.5 metric 100 linkdown\n\tnexthop via 1.1.1.1 dev x weight 1\n",
		"RTNETLINK answers: File exists\nCommand failed /run/nicpersist/ip4.tables.new:2\nError: bad\nCommand failed -:",
		"#@ \n#@\nroute replace\nroute replace unreachable\nroute replace ::1/128 table x metric\n",
		"route replace 10.0.0.0/33 table 4294967296\nexpires\n",
		"#@ format 2\n#@ routes\n",
		"#@ rules\nrule add priority 1 fwmark 0x10/0xff iif eth3 oif eth2 to 10.0.0.0/8 table 7\n",
		"*nat\n:NICPERSIST-POSTROUTING - [0:0]\n:NICPERSIST-PREROUTING - [0:0]\nCOMMIT\n*mangle\n:NICPERSIST-PREROUTING - [0:0]\n-A PREROUTING -j NICPERSIST-PREROUTING\nCOMMIT\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lines := strings.Split(s, "\n")
		for _, fam := range unitfiles.Families {
			b, err := unitfiles.ParseBatch("ip.batch", fam, []byte(s))
			for _, l := range concat(concat(b.Routes, b.Rules), b.Main) {
				if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
					t.Fatalf("ParseBatch kept %q", l)
				}
			}
			if err == nil {
				p, perr := planStart(&unitfiles.Set{Batches: map[plan.Family]unitfiles.Batch{fam: b}}, State{}, fakeKernel{routes: lines})
				if perr == nil {
					checkPlan(t, p, fam)
				}
			}
			for _, l := range lines {
				routeKey(fam, l)
				if _, _, dst, ok := candKey(fam, l); ok && !dst.IsValid() {
					t.Fatalf("candKey(%d, %q) says ok with no prefix", fam, l)
				}
				if r, err := unitfiles.ParseRule(fam, l); err == nil && r.Mark != 0 && r.Mask == 0 {
					t.Fatalf("ParseRule(%q) has a mark without a mask", l)
				}
			}
		}
		// The same text as netfilter input and as iptables-save output.
		parseSave(s)
		for _, st := range []State{{}, {XT4: unitfiles.DeclaredChains([]byte(s)), NFT: true}} {
			p, err := planStart(&unitfiles.Set{NAT: map[plan.Family][]byte{plan.V4: []byte(s), plan.V6: []byte(s)}, NFT: []byte(s)}, st, fakeKernel{})
			if err == nil {
				checkNetfilter(t, st, p)
			}
		}
		unitfiles.ParseLinks("links", []byte(s))
		unitfiles.ParseSysctls("sysctl.list", []byte(s))
		for _, l := range lines {
			c := cleanRoute(l)
			if cleanRoute(c) != c {
				t.Fatalf("cleanRoute(%q) = %q, and again %q", l, c, cleanRoute(c))
			}
		}
		joinNexthops(s)
		onlyExists(s)
		var pre []PreRoute
		for _, l := range lines {
			if line, rt, ok := strings.Cut(l, "|"); ok {
				pre = append(pre, PreRoute{line, rt})
			}
		}
		if got := undoRoutes(pre, lines); len(got) != len(lines) {
			t.Fatalf("undoRoutes gave %d lines for %d", len(got), len(lines))
		}
	})
}

// checkPlan holds for every start plan: each op is recorded before it
// runs (the state covers it, so a failed start's stop undoes it), and the
// stop of the final state removes each route and rule the start added.
func checkPlan(t *testing.T, p Plan, f plan.Family) {
	t.Helper()
	var rec *State
	for _, s := range p.Steps {
		if s.Record != nil {
			rec = s.Record
		}
		if s.Op == nil || (s.Op.Kind != opTables && s.Op.Kind != opMain) {
			continue
		}
		if rec == nil || rec.family(f) == nil {
			t.Fatalf("op %v runs before any state covers it", *s.Op)
		}
		fs := rec.family(f)
		have := concat(concat(fs.Routes, fs.Rules), fs.Main)
		if m := missing(have, s.Op.Lines); len(m) > 0 {
			t.Fatalf("op %s runs %q, which the state before it lacks", s.Op.Name, m)
		}
	}
}

// checkNetfilter holds for every start plan: each chain is recorded before
// it is restored or jumped to, the nftables table before it is loaded, and
// a chain is dropped from the state only after its removal.
func checkNetfilter(t *testing.T, before State, p Plan) {
	t.Helper()
	rec := &before
	for _, s := range p.Steps {
		if s.Record != nil {
			rec = s.Record
		}
		o := s.Op
		if o == nil {
			continue
		}
		switch o.Kind {
		case opNATRestore:
			for _, k := range unitfiles.DeclaredChains(o.Data) {
				if rec == nil || !slices.Contains(*rec.xt(o.Family), k) {
					t.Fatalf("restore of %s before a state records it", k)
				}
			}
		case opNATJump:
			if rec == nil || !slices.Contains(*rec.xt(o.Family), o.Chain.Key()) {
				t.Fatalf("jump to %s before a state records it", o.Chain.Key())
			}
		case opNFTLoad:
			if rec == nil || !rec.NFT {
				t.Fatal("nft load before a state records the table")
			}
		}
	}
}
