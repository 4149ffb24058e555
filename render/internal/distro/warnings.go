package distro

import (
	"fmt"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/sysroot"
)

// Paths that a target renders to and that sysroot also reads, because the
// root may hold them already.
const (
	RTTables   = sysroot.RTTables
	ScriptsDir = sysroot.ScriptsDir
	Binary     = sysroot.Binary
)

// BinaryWarning says when the root lacks the program the unit runs: the
// files still render (an image may get the package later), but the unit
// fails at boot until it is there.
func BinaryWarning(f sysroot.Facts) string {
	if f.Binary {
		return ""
	}
	return Binary + " is not in the root: " + UnitName + " runs it and will fail at boot until nicpersist is installed there (install the nicpersist package)"
}

// Warnings are what the root says about the rendered files: the
// NetworkManager trap of a user's rule-<if> beside the route-<if> nicpersist
// renders.
func Warnings(root sysroot.Facts, c Choice, files []File) []string {
	if c.Target == NM {
		return nmWarnings(c, files)
	}
	if c.Target != RHEL {
		return nil
	}
	out := ifcfgWarnings(c, files)
	if c.Stack != NetworkManager {
		return out
	}
	for _, f := range files {
		dir, base, _ := strings.Cut(f.Path, ScriptsDir+"/")
		if dir != "" || !strings.HasPrefix(base, "route") {
			continue
		}
		_, dev, _ := strings.Cut(base, "-")
		for _, r := range []string{"rule-" + dev, "rule6-" + dev} {
			if root.RuleFiles[r] {
				out = append(out, fmt.Sprintf("/%s/%s exists: NetworkManager ignores /%s while a rule file for %s exists, so its routes are applied only by nicpersist.service; move the rules into the profile's [[rule]]", ScriptsDir, r, f.Path, dev))
			}
		}
	}
	return out
}
