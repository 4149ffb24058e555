package distro

import (
	"fmt"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/sysroot"
)

var rhelIDs = map[string]bool{"rhel": true, "centos": true, "rocky": true, "almalinux": true, "fedora": true, "ol": true, "scientific": true, "cloudlinux": true, "eurolinux": true, "navix": true}

// Detect resolves --target and --rhel-stack against what the root holds.
// target is "auto", RHEL, NM, Systemd, Networkd, Netplan or Ifupdown; stack is
// "auto", NetworkScripts or NetworkManager.
func Detect(f sysroot.Facts, target, stack string) (Choice, error) {
	c, err := detect(f, target, stack)
	c.Root = f
	return c, err
}

func detect(f sysroot.Facts, target, stack string) (Choice, error) {
	switch target {
	case "auto", RHEL, Systemd:
	case NM, Networkd, Netplan, Ifupdown:
		return Choice{Target: target, Reason: "--target " + target}, nil
	default:
		return Choice{}, fmt.Errorf("unknown target %q; use auto, %s, %s, %s, %s, %s or %s", target, RHEL, NM, Networkd, Netplan, Ifupdown, Systemd)
	}
	switch stack {
	case "auto", NetworkScripts, NetworkManager:
	default:
		return Choice{}, fmt.Errorf("unknown RHEL stack %q; use auto, %s or %s", stack, NetworkScripts, NetworkManager)
	}
	if target == Systemd {
		return Choice{Target: Systemd, Reason: "--target systemd"}, nil
	}
	if target == "auto" {
		// NetworkManager first: where it holds keyfile connections for the
		// profile's interfaces it is the stack, on RHEL as on Debian.
		if c, ok := detectNM(f); ok {
			return c, nil
		}
		osr := f.OSRelease
		id, like := osr["ID"], " "+osr["ID_LIKE"]+" "
		isRHEL := rhelIDs[id] || strings.Contains(like, " rhel ") || strings.Contains(like, " fedora ") || strings.Contains(like, " centos ")
		name := osr["PRETTY_NAME"]
		if name == "" {
			name = id
		}
		switch {
		case len(osr) == 0:
			return Choice{Target: Systemd, Reason: "no etc/os-release under the root; the systemd target works on any systemd distribution"}, nil
		case !isRHEL:
			if c, ok := detectStack(f, name); ok {
				return c, nil
			}
			return Choice{Target: Systemd, Reason: fmt.Sprintf("%s is not in the RHEL family and %s", name, noStack)}, nil
		case !f.ScriptsDir && !f.IfcfgPlugin:
			return Choice{Target: Systemd, Reason: fmt.Sprintf("%s has neither %s nor NetworkManager's ifcfg-rh plugin", name, ScriptsDir)}, nil
		case f.VersionMajor() >= 10 && !f.IfcfgPlugin:
			return Choice{Target: Systemd, Reason: fmt.Sprintf("%s no longer reads ifcfg files", name)}, nil
		}
	}
	return rhelStack(f, stack), nil
}

func rhelStack(f sysroot.Facts, stack string) Choice {
	c := Choice{Target: RHEL, Stack: stack}
	switch {
	case stack != "auto":
		c.Reason = "--rhel-stack " + stack
	case f.NetworkManager:
		c.Stack, c.Reason = NetworkManager, "NetworkManager.service is enabled"
	case f.IfupRoutes:
		c.Stack, c.Reason = NetworkScripts, ScriptsDir+"/ifup-routes is present and NetworkManager is not enabled"
	case f.VersionMajor() >= 8 || f.IfcfgPlugin:
		c.Stack, c.Reason = NetworkManager, "no legacy ifup-routes; RHEL 8 and later configure interfaces with NetworkManager"
	default:
		c.Stack, c.Reason = NetworkScripts, "RHEL 7 and earlier use network-scripts"
	}
	return c
}
