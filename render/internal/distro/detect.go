package distro

import (
	"bufio"
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Tree is what detection reads from the root.
type Tree interface {
	ReadFile(name string) ([]byte, error)
	Exists(name string) bool
	ReadDir(name string) ([]string, error)
}

var rhelIDs = map[string]bool{"rhel": true, "centos": true, "rocky": true, "almalinux": true, "fedora": true, "ol": true, "scientific": true, "cloudlinux": true, "eurolinux": true, "navix": true}

// Detect resolves --target and --rhel-stack against the root. target is
// "auto", RHEL or Systemd; stack is "auto", NetworkScripts or NetworkManager.
func Detect(t Tree, target, stack string) (Choice, error) {
	switch target {
	case "auto", RHEL, Systemd:
	default:
		return Choice{}, fmt.Errorf("unknown target %q; use auto, %s or %s", target, RHEL, Systemd)
	}
	switch stack {
	case "auto", NetworkScripts, NetworkManager:
	default:
		return Choice{}, fmt.Errorf("unknown RHEL stack %q; use auto, %s or %s", stack, NetworkScripts, NetworkManager)
	}
	if target == Systemd {
		return Choice{Target: Systemd, Reason: "--target systemd"}, nil
	}
	osr := osRelease(t)
	plugin := hasIfcfgPlugin(t)
	if target == "auto" {
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
			return Choice{Target: Systemd, Reason: fmt.Sprintf("%s is not in the RHEL family", name)}, nil
		case !t.Exists(ScriptsDir) && !plugin:
			return Choice{Target: Systemd, Reason: fmt.Sprintf("%s has neither %s nor NetworkManager's ifcfg-rh plugin", name, ScriptsDir)}, nil
		case major(osr["VERSION_ID"]) >= 10 && !plugin:
			return Choice{Target: Systemd, Reason: fmt.Sprintf("%s no longer reads ifcfg files", name)}, nil
		}
	}
	return rhelStack(t, stack, osr, plugin)
}

func rhelStack(t Tree, stack string, osr map[string]string, plugin bool) (Choice, error) {
	c := Choice{Target: RHEL, Stack: stack}
	if stack != "auto" {
		c.Reason = "--rhel-stack " + stack
		return c, nil
	}
	nmOn := t.Exists("etc/systemd/system/multi-user.target.wants/NetworkManager.service")
	legacy := t.Exists(ScriptsDir + "/ifup-routes")
	switch {
	case nmOn:
		c.Stack, c.Reason = NetworkManager, "NetworkManager.service is enabled"
	case legacy:
		c.Stack, c.Reason = NetworkScripts, ScriptsDir+"/ifup-routes is present and NetworkManager is not enabled"
	case major(osr["VERSION_ID"]) >= 8 || plugin:
		c.Stack, c.Reason = NetworkManager, "no legacy ifup-routes; RHEL 8 and later configure interfaces with NetworkManager"
	default:
		c.Stack, c.Reason = NetworkScripts, "RHEL 7 and earlier use network-scripts"
	}
	return c, nil
}

func hasIfcfgPlugin(t Tree) bool {
	for _, lib := range []string{"usr/lib64/NetworkManager", "usr/lib/NetworkManager", "usr/lib/x86_64-linux-gnu/NetworkManager"} {
		dirs, _ := t.ReadDir(lib)
		for _, d := range dirs {
			if strings.HasPrefix(d, "libnm-settings-plugin-ifcfg-rh") {
				return true
			}
			files, _ := t.ReadDir(lib + "/" + d)
			for _, f := range files {
				if strings.HasPrefix(f, "libnm-settings-plugin-ifcfg-rh") {
					return true
				}
			}
		}
	}
	return false
}

func major(v string) int {
	if i := strings.IndexByte(v, '.'); i >= 0 {
		v = v[:i]
	}
	n, _ := strconv.Atoi(v)
	return n
}

// osRelease reads etc/os-release, falling back to usr/lib/os-release as
// os-release(5) says.
func osRelease(t Tree) map[string]string {
	out := map[string]string{}
	data, err := t.ReadFile("etc/os-release")
	if err != nil {
		if data, err = t.ReadFile("usr/lib/os-release"); err != nil {
			return out
		}
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		} else {
			v = strings.Trim(v, `"'`)
		}
		out[k] = v
	}
	return out
}
