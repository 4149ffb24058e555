package apply

import (
	"slices"
	"strings"
	"testing"
)

// FuzzParsers feeds arbitrary text to what apply reads from the rendered
// files, from `ip route show` and from ip's error log: a hand-edited or
// truncated file must not crash the unit at boot.
func FuzzParsers(f *testing.F) {
	for _, s := range []string{
		"#@ routes\nroute replace 172.22.5.64/27 dev eth1 table 1000 proto 241\n#@ rules\nrule add priority 1000 from 172.22.5.68/32 table 1000\n#@ main\nroute replace default via 172.22.5.97 dev eth2 proto 241\n",
		"default via 10.0.0.1 dev eth0 proto dhcp src 10.0.0.5 metric 100 linkdown\n\tnexthop via 1.1.1.1 dev x weight 1\n",
		"RTNETLINK answers: File exists\nCommand failed /run/nicpersist/ip4.tables.new:2\nError: bad\nCommand failed -:",
		"#@ \n#@\nroute replace\nroute replace unreachable\nroute replace ::1/128 table x metric\n",
		"route replace 10.0.0.0/33 table 4294967296\nexpires\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		lines := strings.Split(s, "\n")
		for _, name := range []string{"routes", "rules", "main"} {
			for _, l := range section(lines, name) {
				if strings.HasPrefix(l, "#") || strings.TrimSpace(l) == "" {
					t.Fatalf("section %s kept %q", name, l)
				}
			}
		}
		for _, fam := range []int{4, 6} {
			for _, l := range lines {
				routeKey(fam, l)
				if _, _, dst, ok := candKey(fam, l); ok && !dst.IsValid() {
					t.Fatalf("candKey(%d, %q) says ok with no prefix", fam, l)
				}
			}
			present(fam, lines)
		}
		for _, l := range lines {
			c := cleanRoute(l)
			if cleanRoute(c) != c {
				t.Fatalf("cleanRoute(%q) = %q, and again %q", l, c, cleanRoute(c))
			}
		}
		joinNexthops(s)
		for _, l := range existsLines(s, lines) {
			if !slices.Contains(lines, l) {
				t.Fatalf("existsLines returned %q, not a line of the batch", l)
			}
		}
		onlyExists(s)
		pre := []string{}
		for _, l := range lines {
			if strings.Contains(l, "|") {
				pre = append(pre, l)
			}
		}
		if got := undoRoutes(pre, lines); len(got) != len(lines) {
			t.Fatalf("undoRoutes gave %d lines for %d", len(got), len(lines))
		}
	})
}
