package distro

import (
	"fmt"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
)

// Backend is the netfilter backend a render writes for, and why.
type Backend struct {
	Name   string // plan.BackendNFTables or plan.BackendIPTables
	Reason string
	// Warnings are addressed to profile keys: what the root lacks or holds
	// that will keep the netfilter part from working.
	Warnings []KeyWarning
}

// KeyWarning is a warning about the root, placed at a profile key.
type KeyWarning struct {
	Key, Msg string
}

// ChooseBackend resolves [netfilter] backend against what the root has and
// uses: iptables where it is the machine's way (iptables-legacy in use,
// RHEL/CentOS 7, or iptables installed and nothing nft-native enabled),
// nftables where the machine runs nftables (firewalld, nftables.service) or
// has nft without iptables (Debian 12 and RHEL 9 minimal images).
func ChooseBackend(f sysroot.Facts, p *plan.Plan) Backend {
	n := f.Netfilter
	b := Backend{Name: p.Netfilter.Backend}
	osr := f.OSRelease
	rhel7 := rhelIDs[osr["ID"]] && f.VersionMajor() > 0 && f.VersionMajor() <= 7
	switch {
	case b.Name != plan.BackendAuto:
		b.Reason = "netfilter.backend = \"" + b.Name + "\""
	case rhel7:
		b.Name, b.Reason = plan.BackendIPTables, "RHEL/CentOS 7 has no nft-native firewall"
	case n.IPTables && n.IPTablesLegacy:
		b.Name, b.Reason = plan.BackendIPTables, "the root's iptables is iptables-legacy"
	case n.Firewalld:
		b.Name, b.Reason = plan.BackendNFTables, "firewalld.service is enabled"
	case n.NFTablesUnit:
		b.Name, b.Reason = plan.BackendNFTables, "nftables.service is enabled"
	case n.NFT && !n.IPTables:
		b.Name, b.Reason = plan.BackendNFTables, "the root has nft and no iptables"
	case n.IPTables:
		b.Name, b.Reason = plan.BackendIPTables, "the root has iptables"
	default:
		b.Name, b.Reason = plan.BackendIPTables, "the root has neither nft nor iptables; iptables is what every distribution can install"
	}
	if !p.NeedsNetfilter() {
		return b
	}
	key := "netfilter"
	switch {
	case b.Name == plan.BackendNFTables && !n.NFT:
		b.Warnings = append(b.Warnings, KeyWarning{key, "the nftables backend needs the nft command, which is not in the root; install the nftables package, or the unit applies routes and rules but not NAT, port forwards or marks"})
	case b.Name == plan.BackendIPTables && !n.IPTables && n.NFT:
		b.Warnings = append(b.Warnings, KeyWarning{key, "the iptables backend needs iptables, which is not in the root (it has nft); install the iptables package or set backend = \"nftables\""})
	case b.Name == plan.BackendIPTables && !n.IPTables:
		b.Warnings = append(b.Warnings, KeyWarning{key, "neither nft nor iptables is in the root; install the nftables package (or iptables), or the unit applies routes and rules but not NAT, port forwards or marks"})
	}
	forwarded := len(p.NAT)+len(p.Forwards) > 0
	if !forwarded {
		return b
	}
	var drop string
	switch {
	case n.Docker:
		drop = "Docker is installed and sets the FORWARD policy to DROP"
	case n.UFWDrop:
		drop = "ufw is enabled with DEFAULT_FORWARD_POLICY=\"DROP\""
	case n.ForwardDrop != "":
		drop = n.ForwardDrop + " sets the FORWARD policy to DROP"
	}
	fa := p.Netfilter.ForwardAccept
	switch {
	case drop != "" && !fa:
		b.Warnings = append(b.Warnings, KeyWarning{key, drop + ", which drops the traffic this profile forwards; set forward_accept = true"})
	case drop != "" && fa && b.Name == plan.BackendNFTables:
		b.Warnings = append(b.Warnings, KeyWarning{"netfilter.forward_accept", drop + " in iptables, and an accept in nftables table " + "inet nicpersist cannot override a drop in another table; set backend = \"iptables\" so the accept goes into the FORWARD chain that drops"})
	}
	// firewalld, which rejects forwarded traffic no zone or policy allows,
	// gets a policy of nicpersist's: see Firewall.
	return b
}

// String names the backend for the report line.
func (b Backend) String() string { return fmt.Sprintf("netfilter %s: %s", b.Name, b.Reason) }
