package apply

import (
	"fmt"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// benchBatch is an ip4.batch of n routes over n/100 tables and n/2 rules,
// as packaging/bench/apply-bench.sh renders it.
func benchBatch(n int) []byte {
	var b strings.Builder
	b.WriteString("#@ format 1\n#@ routes\n")
	nt := max(n/100, 2)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&b, "route replace 100.%d.%d.0/24 via 10.%d.0.1 dev eth%d table %d proto 241\n", i/256%256, i%256, i%4+1, i%4+1, 2000+i%nt)
	}
	b.WriteString("#@ rules\n")
	for i := 0; i < n/2; i++ {
		fmt.Fprintf(&b, "rule add priority %d from 100.%d.%d.0/24 table %d\n", 1000+i, i/256%256, i%256, 2000+i%nt)
	}
	b.WriteString("#@ main\n")
	return []byte(b.String())
}

// BenchmarkReadAndPlan is the Go side of a start: parsing ip4.batch and
// the reconcile step, at boot (no state) and on a reload (the state of
// that boot), against a kernel that has none of the routes or rules.
func BenchmarkReadAndPlan(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		data := benchBatch(n)
		for _, reload := range []bool{false, true} {
			var st State
			if reload {
				batch, err := unitfiles.ParseBatch("ip4.batch", plan.V4, data)
				if err != nil {
					b.Fatal(err)
				}
				p, err := planStart(&unitfiles.Set{Batches: map[plan.Family]unitfiles.Batch{plan.V4: batch}}, State{}, fakeKernel{})
				if err != nil {
					b.Fatal(err)
				}
				st = p.Final
			}
			b.Run(fmt.Sprintf("routes=%d/reload=%v", n, reload), func(b *testing.B) {
				for b.Loop() {
					batch, err := unitfiles.ParseBatch("ip4.batch", plan.V4, data)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := planStart(&unitfiles.Set{Batches: map[plan.Family]unitfiles.Batch{plan.V4: batch}}, st, fakeKernel{}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}
