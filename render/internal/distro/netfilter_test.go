package distro

import (
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
)

func TestChooseBackend(t *testing.T) {
	nat := plan.Plan{Netfilter: plan.Netfilter{Backend: plan.BackendAuto},
		NAT: []plan.NAT{{Family: plan.V4, Out: "eth2", Masquerade: true, Origin: "nat[0]"}}}
	with := func(b string, accept bool) *plan.Plan {
		p := nat
		p.Netfilter = plan.Netfilter{Backend: b, ForwardAccept: accept}
		return &p
	}
	debian := map[string]string{"ID": "debian", "VERSION_ID": "12"}
	centos7 := map[string]string{"ID": "centos", "VERSION_ID": "7"}
	nf := func(n sysroot.Netfilter) sysroot.Facts { return sysroot.Facts{OSRelease: debian, Netfilter: n} }
	for _, c := range []struct {
		name  string
		facts sysroot.Facts
		p     *plan.Plan
		want  string
		warns []string // each a part of one warning, in order
	}{
		{"nft only (Debian 12, RHEL 9 minimal)", nf(sysroot.Netfilter{NFT: true}), &nat, "nftables", nil},
		{"iptables-nft installed", nf(sysroot.Netfilter{NFT: true, IPTables: true}), &nat, "iptables", nil},
		// firewalld gets a policy of nicpersist's, no warning here
		// (render/internal/firewalld).
		{"iptables-legacy in use", nf(sysroot.Netfilter{NFT: true, IPTables: true, IPTablesLegacy: true, Firewalld: true}), &nat, "iptables", nil},
		{"firewalld", nf(sysroot.Netfilter{NFT: true, IPTables: true, Firewalld: true}), &nat, "nftables", nil},
		{"nftables.service", nf(sysroot.Netfilter{NFT: true, IPTables: true, NFTablesUnit: true}), &nat, "nftables", nil},
		{"centos 7", sysroot.Facts{OSRelease: centos7, Netfilter: sysroot.Netfilter{IPTables: true, NFT: true, NFTablesUnit: true}}, &nat, "iptables", nil},
		{"neither", nf(sysroot.Netfilter{}), &nat, "iptables", []string{"install the nftables package"}},
		{"profile's nftables without nft", nf(sysroot.Netfilter{IPTables: true}), with("nftables", false), "nftables", []string{"install the nftables package"}},
		{"profile's iptables without iptables", nf(sysroot.Netfilter{NFT: true}), with("iptables", false), "iptables", []string{"install the iptables package"}},
		{"Docker without forward_accept", nf(sysroot.Netfilter{IPTables: true, Docker: true}), &nat, "iptables", []string{"Docker is installed and sets the FORWARD policy to DROP, which drops the traffic this profile forwards; set forward_accept = true"}},
		{"Docker with forward_accept", nf(sysroot.Netfilter{IPTables: true, Docker: true}), with("auto", true), "iptables", nil},
		{"ufw drop with forward_accept on nftables", nf(sysroot.Netfilter{NFT: true, IPTables: true, UFWDrop: true}), with("nftables", true), "nftables", []string{"cannot override a drop in another table"}},
		{"a saved FORWARD DROP", nf(sysroot.Netfilter{IPTables: true, ForwardDrop: "/etc/iptables/rules.v4"}), &nat, "iptables", []string{"/etc/iptables/rules.v4 sets the FORWARD policy to DROP"}},
		{"no netfilter in the profile: no warning", nf(sysroot.Netfilter{Docker: true}), &plan.Plan{Netfilter: plan.Netfilter{Backend: plan.BackendAuto}}, "iptables", nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			b := ChooseBackend(c.facts, c.p)
			if b.Name != c.want || b.Reason == "" {
				t.Errorf("backend %q (%s), want %q", b.Name, b.Reason, c.want)
			}
			if len(b.Warnings) != len(c.warns) {
				t.Fatalf("warnings %q, want %d", b.Warnings, len(c.warns))
			}
			for i, w := range c.warns {
				if !strings.Contains(b.Warnings[i].Msg, w) {
					t.Errorf("warning %d: %q, want it to say %q", i, b.Warnings[i].Msg, w)
				}
			}
		})
	}
}
