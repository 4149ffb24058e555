package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/testenv"
)

// BenchmarkApplyNetfilter times the unit's apply at the seed's size with
// the rc.local recipes (2 SNAT rules, a port forward, a mark, forward
// accepts, 4 routes, 2 rules, 9 sysctls) on each backend, as the unit runs
// it (a process of its own in the VM's namespace, with only the backend's
// tools on PATH): a first start followed by a stop, and a reload of a
// started unit.
// "none" is the same profile without its netfilter sections, the
// baseline: what the routes, rules and sysctls cost alone.
func BenchmarkApplyNetfilter(b *testing.B) {
	need(b, "nft", "iptables-legacy", "iptables-nft")
	none := backendCase{name: "none", tools: map[string]string{"ip": "/usr/sbin/ip"}}
	for _, bc := range append([]backendCase{none}, backends...) {
		profile := recipesProfile
		if bc.name == "none" {
			profile = withoutNetfilter(b, recipesProfile)
		}
		root, _ := renderRoot(b, profile, bc.root)
		u := readUnit(b, root)
		path := toolPath(b, bc.tools)
		vm := benchVM(b)
		state := filepath.Join(b.TempDir(), "state")
		unit := func(cmds [][]string) {
			if out, err := execUnit(vm, state, cmds, path); err != nil {
				b.Fatalf("%v\n%s", err, out)
			}
		}
		b.Run(bc.name+"/start+stop", func(b *testing.B) {
			for b.Loop() {
				unit(u.start)
				unit(u.stop)
			}
		})
		unit(u.start)
		b.Run(bc.name+"/reload", func(b *testing.B) {
			for b.Loop() {
				unit(u.reload)
			}
		})
		unit(u.stop)
	}
}

// withoutNetfilter writes a copy of a profile without its [[nat]],
// [[port_forward]], [[mark]] and [netfilter] tables.
func withoutNetfilter(b *testing.B, profile string) string {
	src, err := os.ReadFile(profile)
	if err != nil {
		b.Fatal(err)
	}
	var out []string
	skip := false
	for _, l := range strings.Split(string(src), "\n") {
		if strings.HasPrefix(l, "[") {
			skip = l == "[[nat]]" || l == "[[port_forward]]" || l == "[[mark]]" || l == "[netfilter]"
		}
		if !skip {
			out = append(out, l)
		}
	}
	p := filepath.Join(b.TempDir(), "profile.toml")
	if err := os.WriteFile(p, []byte(strings.Join(out, "\n")), 0o644); err != nil {
		b.Fatal(err)
	}
	return p
}

// benchVM is a namespace with the VM's three links up with their addresses
// (veth peers in the same namespace: nothing needs to answer).
func benchVM(b *testing.B) string {
	vm := testenv.Netns(b, nsPrefix, randHex(3)+"-bench")
	ipBatch(b, vm,
		"link set dev lo up",
		"link add eth1 type veth peer name p1", "link add eth2 type veth peer name p2", "link add eth3 type veth peer name p3",
		"link set dev eth1 up", "link set dev eth2 up", "link set dev eth3 up",
		"link set dev p1 up", "link set dev p2 up", "link set dev p3 up",
		"addr add 172.22.5.68/27 dev eth1", "addr add 172.22.5.100/27 dev eth2", "addr add 172.22.5.132/26 dev eth3",
		"route add default via 172.22.5.65 dev eth1",
	)
	return vm
}
