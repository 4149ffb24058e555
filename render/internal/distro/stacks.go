package distro

import (
	"fmt"
	"path"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
)

// stackNative is what the target's network stack holds: the Debian stacks'
// files with what they carry, and what nm's keyfiles and rhel's ifcfg files
// carry (Render writes those files); the systemd target leaves all to the
// unit.
func stackNative(p *plan.Plan, c Choice, header string) (native, error) {
	switch c.Target {
	case Networkd:
		return networkdNative(p, c.Root, header)
	case Netplan:
		return netplanNative(p, c.Root, header)
	case Ifupdown:
		return ifupdownNative(p, c.Root, header)
	}
	n := native{routes: make([]bool, len(p.Routes)), rules: make([]bool, len(p.Rules))}
	var routes, rules map[int]bool
	switch c.Target {
	case NM:
		routes, rules = nmHeld(p, c)
	case RHEL:
		routes, rules = rhelHeld(p, c)
	}
	for i := range routes {
		n.routes[i] = true
	}
	for i := range rules {
		n.rules[i] = true
	}
	return n, nil
}

// StackWarnings are what a stack target could not hold natively, and why:
// each names the file and the change that would let it.
func StackWarnings(p *plan.Plan, c Choice) []string {
	n, err := stackNative(p, c, "")
	if err != nil {
		return nil // Render reports it
	}
	return n.warnings
}

// detectStack picks among the Debian and Ubuntu stacks for --target auto,
// or reports that none of them runs the root.
func detectStack(f sysroot.Facts, name string) (Choice, bool) {
	s := f.Stacks
	switch {
	case s.Netplan && len(s.NetplanDefs) > 0:
		return Choice{Target: Netplan, Reason: fmt.Sprintf("netplan is installed on %s and /%s defines its interfaces", name, s.NetplanDefs[0].File)}, true
	case s.Networkd:
		return Choice{Target: Networkd, Reason: fmt.Sprintf("systemd-networkd.service is enabled on %s", name)}, true
	case s.Ifupdown && len(s.Ifaces) > 0:
		return Choice{Target: Ifupdown, Reason: fmt.Sprintf("ifupdown's networking.service is enabled on %s and /%s has iface stanzas", name, sysroot.Interfaces)}, true
	}
	return Choice{}, false
}

// noStack says why none of the Debian and Ubuntu stacks was chosen.
const noStack = "runs none of netplan, systemd-networkd and ifupdown"

// NetworkdDir is where the networkd drop-ins go, whichever directory holds
// the .network file they are for: /etc outlasts /run and package updates.
const NetworkdDir = "etc/systemd/network"

// IsStackPath says a path is one the stack targets render, so that a
// manifest naming anything else (tampered with, say) steers no removal
// there.
func IsStackPath(p string) bool {
	if strings.Contains(p, "..") {
		return false
	}
	d, name := path.Split(p)
	if p == NetplanFile || p == IfupHook || p == DhclientHook {
		return true
	}
	return name == DropinName && IsStackDir(strings.TrimSuffix(d, "/")) && strings.HasSuffix(d, ".network.d/")
}

// IsStackDir says a directory is one a stack target's files may lie in, so
// a render may record that it created it.
func IsStackDir(d string) bool {
	if strings.Contains(d, "..") {
		return false
	}
	switch d {
	case NetworkdDir, path.Dir(NetplanFile), path.Dir(IfupHook), path.Dir(DhclientHook), "etc/network", "etc/dhcp":
		return true
	}
	dir, name := path.Split(d)
	return dir == NetworkdDir+"/" && strings.HasSuffix(name, ".network.d") && len(name) > len(".network.d")
}
