package cli

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nicpersist/nicpersist/render/internal/diag"
	"github.com/nicpersist/nicpersist/render/internal/distro"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/profile"
)

// Render benchmarks (no timed assertions; packaging/bench/render-bench.sh
// prints the ratios):
//
//	go test ./render/cli -run '^$' -bench . -benchmem
//
// BenchmarkRender is the whole command, in process: read, decode, validate,
// expand, render and write every file (atomically, with fsync) into a fresh
// root. BenchmarkBuild is decode+validate+expand only, BenchmarkRenderMemory
// adds the target's text. Each reports cpu-ns/op, the process's user+system
// CPU time per render (wall time includes waiting for fsync).

var benchSizes = []int{10, 1000, 10000}

// benchProfile is a profile with n [[route]]s: four interfaces with IPv4
// and IPv6 addresses (two with reply_via_self, one with default_route),
// max(2, n/100) [[table]]s that the routes spread over, a quarter of the
// routes IPv6, and n/2 [[rule]]s (from, iif and fwmark selectors; every
// other one with an explicit priority).
func benchProfile(n int) string {
	var b strings.Builder
	b.WriteString("version = 1\n\n[sysctl]\nip_forward = true\nipv6_forwarding = true\nrp_filter = \"loose\"\n")
	for i := 1; i <= 4; i++ {
		fmt.Fprintf(&b, "\n[[interface]]\nname = \"eth%d\"\naddress = \"10.%d.0.2/16\"\ngateway = \"10.%d.0.1\"\naddress6 = \"2001:db8:%d::2/64\"\ngateway6 = \"2001:db8:%d::1\"\n", i, i, i, i, i)
		switch i {
		case 1, 3:
			b.WriteString("reply_via_self = true\n")
		case 2:
			b.WriteString("default_route = true\n")
		}
	}
	b.WriteString("\n[[nat]]\nout_interface = \"eth2\"\nsource = \"10.4.0.0/16\"\nmasquerade = true\n")
	tables := max(2, n/100)
	for j := 0; j < tables; j++ {
		fmt.Fprintf(&b, "\n[[table]]\nid = %d\nname = \"t%d\"\n", 2000+j, j)
	}
	dst := func(i int) (string, bool) {
		if i%4 == 3 {
			return fmt.Sprintf("fd00:%x:%x::/48", i/65536, i%65536), true
		}
		return fmt.Sprintf("100.%d.%d.0/24", i/256%256, i%256), false
	}
	for i := 0; i < n; i++ {
		to, v6 := dst(i)
		ifc := i%4 + 1
		via := fmt.Sprintf("10.%d.0.1", ifc)
		if v6 {
			via = fmt.Sprintf("2001:db8:%d::1", ifc)
		}
		fmt.Fprintf(&b, "\n[[route]]\nto = \"%s\"\nvia = \"%s\"\ntable = \"t%d\"\n", to, via, i%tables)
		if i%2 == 0 {
			fmt.Fprintf(&b, "dev = \"eth%d\"\n", ifc)
		}
		if i%5 == 0 {
			fmt.Fprintf(&b, "metric = %d\n", 10+i%7)
		}
	}
	for i := 0; i < n/2; i++ {
		to, _ := dst(i)
		fmt.Fprintf(&b, "\n[[rule]]\nfrom = \"%s\"\ntable = \"t%d\"\n", to, i%tables)
		if i%2 == 1 {
			fmt.Fprintf(&b, "priority = %d\n", 20000+i)
		}
		switch i % 10 {
		case 1:
			fmt.Fprintf(&b, "iif = \"eth%d\"\n", i%4+1)
		case 2:
			fmt.Fprintf(&b, "fwmark = \"0x%x/0xffff\"\n", i)
		}
	}
	return b.String()
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchRenderFiles renders prof into a fresh root per iteration.
func benchRenderFiles(b *testing.B, prof string, extra ...string) {
	b.Helper()
	parent := b.TempDir()
	var cpu time.Duration
	runtime.GC() // not the garbage of the benchmark before
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		root, err := os.MkdirTemp(parent, "root")
		if err != nil {
			b.Fatal(err)
		}
		args := append([]string{"render", "--root", root, "--profile", prof}, extra...)
		c0 := cpuTime()
		b.StartTimer()
		code := Main(args, io.Discard, io.Discard)
		b.StopTimer()
		cpu += cpuTime() - c0
		if code != 0 {
			_, errOut, _ := run(args...)
			b.Fatalf("render exited %d: %s", code, errOut)
		}
		if err := os.RemoveAll(root); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
}

func BenchmarkRender(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			benchRenderFiles(b, writeProfile(b, benchProfile(n)), "--target", "systemd")
		})
	}
}

// BenchmarkRenderRHEL adds the route-/rule- blocks of network-scripts.
func BenchmarkRenderRHEL(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			benchRenderFiles(b, writeProfile(b, benchProfile(n)), "--target", "rhel", "--rhel-stack", "network-scripts")
		})
	}
}

// BenchmarkRenderSeed is the shipped example, as the README's first command
// renders it.
func BenchmarkRenderSeed(b *testing.B) {
	benchRenderFiles(b, exampleProfile, "--target", "systemd")
}

// BenchmarkRerender is the second render of an unchanged profile: read and
// compare every file, write nothing ("0 changed"), as Ansible runs it.
func BenchmarkRerender(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			prof := writeProfile(b, benchProfile(n))
			root := b.TempDir()
			args := []string{"render", "--root", root, "--profile", prof, "--target", "systemd"}
			if _, errOut, code := run(args...); code != 0 {
				b.Fatalf("render: %s", errOut)
			}
			runtime.GC()
			b.ReportAllocs()
			c0 := cpuTime()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if code := Main(args, io.Discard, io.Discard); code != 0 {
					b.Fatal(code)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-c0).Nanoseconds())/float64(b.N), "cpu-ns/op")
		})
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			src := []byte(benchProfile(n))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l := &diag.List{File: "p"}
				if p := plan.Build(profile.Decode(src, l), l); p == nil {
					b.Fatal(l.Items)
				}
			}
		})
	}
}

func BenchmarkRenderMemory(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			src := []byte(benchProfile(n))
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				l := &diag.List{File: "p"}
				p := plan.Build(profile.Decode(src, l), l)
				if p == nil {
					b.Fatal(l.Items)
				}
				if _, err := distro.Render(p, distro.Choice{Target: distro.Systemd}, "p"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestBenchProfileIsValid keeps the generated profiles the benchmarks use
// valid, with the numbers of objects they claim.
func TestBenchProfileIsValid(t *testing.T) {
	for _, n := range []int{10, 1000} {
		l := &diag.List{File: "p"}
		p := plan.Build(profile.Decode([]byte(benchProfile(n)), l), l)
		if p == nil {
			t.Fatalf("benchProfile(%d): %v", n, l.Items)
		}
		// 4 reply_via_self routes per family for two interfaces, 1 default per family.
		if got, want := len(p.Routes), n+2*2*2+2; got != want {
			t.Errorf("benchProfile(%d): %d routes, want %d", n, got, want)
		}
		if got, want := len(p.Rules), n/2+2*2; got != want {
			t.Errorf("benchProfile(%d): %d rules, want %d", n, got, want)
		}
	}
}
