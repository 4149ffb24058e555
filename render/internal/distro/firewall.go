package distro

import (
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/firewalld"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
)

// Firewall returns the files the root's firewall reads so that it lets
// through what the plan forwards, and warnings for what it would still drop.
// Every target gets them: firewalld is not part of the network stack.
// backend is the netfilter backend nicpersist's own rules go to.
func Firewall(p *plan.Plan, root sysroot.Facts, backend, profile string) ([]File, []string, error) {
	res, err := firewalld.Render(p, root.Firewalld, backend, profile)
	if err != nil {
		return nil, nil, err
	}
	var out []File
	for _, f := range res.Files {
		out = append(out, File{Path: f.Path, Kind: Owned, Data: f.Data, Mode: 0o644})
	}
	return out, res.Warnings, nil
}

// FirewallReload says what to run once the firewall's files changed on a
// running system, "" when none did. nicpersist does not reload firewalld
// itself: a reload drops every runtime-only change made with firewall-cmd
// without --permanent, which a render must not do behind the user's back.
func FirewallReload(changed []string) string {
	for _, p := range changed {
		if strings.HasPrefix(p, firewalld.PolicyDir+"/") {
			return "firewalld reads /" + firewalld.PolicyDir + " when it starts; if it runs now, run `firewall-cmd --reload` (nicpersist does not, as a reload drops firewalld's runtime-only changes)"
		}
	}
	return ""
}
