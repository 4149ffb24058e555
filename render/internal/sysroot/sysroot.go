// Package sysroot holds what the root already holds: which distribution and
// network stack it runs, whether nicpersist's program is installed, and the
// table ids, table names and rule priorities that something other than
// nicpersist uses there. It is the one place that reads the existing root, so
// that choosing a target and warning about the root are decisions over Facts
// that tests can state without building a tree.
package sysroot

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/firewalld"
	"github.com/nicpersist/nicpersist/render/internal/plan"
)

// Tree is the read-only view of the root that Read needs.
type Tree interface {
	ReadFile(name string) ([]byte, error)
	Exists(name string) bool
	ReadDir(name string) ([]string, error)
}

// Paths under the root that nicpersist reads as well as writes.
const (
	// ScriptsDir holds the ifcfg, route- and rule- files of the RHEL stacks.
	ScriptsDir = "etc/sysconfig/network-scripts"
	// RTTables is nicpersist's own rt_tables file: its ids are no collision.
	RTTables = "etc/iproute2/rt_tables.d/nicpersist.conf"
	// Binary is where the packages install nicpersist; the unit runs it.
	Binary = "/usr/bin/nicpersist"
)

// Markers around nicpersist's lines in a file it shares with the user. Read
// needs them to count only the user's lines as collisions.
const (
	Begin = "# BEGIN nicpersist"
	End   = "# END nicpersist"
)

// Facts is what Read found under the root.
type Facts struct {
	// OSRelease holds the os-release keys, unquoted; empty when the root has
	// no os-release.
	OSRelease map[string]string
	// ScriptsDir says ScriptsDir exists.
	ScriptsDir bool
	// IfcfgPlugin says NetworkManager's ifcfg-rh settings plugin is
	// installed, so NetworkManager reads ifcfg files.
	IfcfgPlugin bool
	// NetworkManager says NetworkManager.service is enabled.
	NetworkManager bool
	// IfupRoutes says legacy network-scripts' ifup-routes is installed.
	IfupRoutes bool
	// Binary says Binary is installed.
	Binary bool
	// RuleFiles holds the names of the rule-<if> and rule6-<if> files in
	// ScriptsDir, whoever wrote them.
	RuleFiles map[string]bool
	// System is the numbering that other files under the root already use.
	System plan.System
	// Firewalld is the root's firewalld: enabled or not, its zones.
	Firewalld firewalld.Facts
	// Netfilter is what the root has and uses for packet filtering.
	Netfilter Netfilter
	// NM is what NetworkManager's keyfiles say about the profile's
	// interfaces.
	NM NMFacts
	// Scripts holds the ifcfg-, route-, route6-, rule- and rule6- files of
	// ScriptsDir by name, with their text.
	Scripts map[string]string
	// Blocks are the paths where the manifest says nicpersist keeps a
	// managed block.
	Blocks map[string]bool

	// The Debian and Ubuntu stacks (networkd.go).
	Stacks
}

// Netfilter is what decides nicpersist's netfilter backend, and what may
// drop the traffic a profile forwards.
type Netfilter struct {
	NFT            bool   // the nft command is installed
	IPTables       bool   // the iptables command is installed
	IPTablesLegacy bool   // iptables is iptables-legacy (the alternative in use, or the only one)
	Firewalld      bool   // firewalld.service is enabled
	NFTablesUnit   bool   // nftables.service is enabled
	Docker         bool   // Docker is installed: it sets the FORWARD policy to DROP
	UFWDrop        bool   // ufw is enabled with DEFAULT_FORWARD_POLICY="DROP"
	ForwardDrop    string // a saved iptables ruleset with :FORWARD DROP; "" if none
}

// VersionMajor is the major number of os-release's VERSION_ID, 0 when there
// is none.
func (f Facts) VersionMajor() int {
	v := f.OSRelease["VERSION_ID"]
	if i := strings.IndexByte(v, '.'); i >= 0 {
		v = v[:i]
	}
	n, _ := strconv.Atoi(v)
	return n
}

// Read gathers the Facts about the root and the profile interfaces ifaces.
// What cannot be read counts as absent: the root of an image being built may
// hold only part of a system.
func Read(t Tree, ifaces ...string) Facts {
	f := Facts{
		OSRelease:      osRelease(t),
		ScriptsDir:     t.Exists(ScriptsDir),
		IfcfgPlugin:    hasIfcfgPlugin(t),
		NetworkManager: t.Exists("etc/systemd/system/multi-user.target.wants/NetworkManager.service"),
		IfupRoutes:     t.Exists(ScriptsDir + "/ifup-routes"),
		Binary:         t.Exists(strings.TrimPrefix(Binary, "/")),
		RuleFiles:      map[string]bool{},
		Firewalld:      firewalld.Read(t),
		Netfilter:      readNetfilter(t),
		NM:             readNM(t, ifaces),
		Stacks:         readStacks(t),
	}
	for _, p := range []string{"etc/iproute2/rt_tables", "usr/share/iproute2/rt_tables", "usr/lib/iproute2/rt_tables"} {
		if b, err := t.ReadFile(p); err == nil {
			f.System.ParseRTTables(string(b), "/"+p)
		}
	}
	for _, d := range []string{"etc/iproute2/rt_tables.d", "usr/share/iproute2/rt_tables.d", "usr/lib/iproute2/rt_tables.d"} {
		names, _ := t.ReadDir(d)
		for _, n := range names {
			p := d + "/" + n
			if p == RTTables || !strings.HasSuffix(n, ".conf") {
				continue
			}
			if b, err := t.ReadFile(p); err == nil {
				f.System.ParseRTTables(string(b), "/"+p)
			}
		}
	}
	f.Scripts, f.Blocks = map[string]string{}, map[string]bool{}
	names, _ := t.ReadDir(ScriptsDir)
	for _, n := range names {
		for _, pre := range []string{"ifcfg-", "route-", "route6-", "rule-", "rule6-"} {
			if strings.HasPrefix(n, pre) && !ifcfgIgnored(n) {
				if b, err := t.ReadFile(ScriptsDir + "/" + n); err == nil {
					f.Scripts[n] = string(b)
				}
			}
		}
	}
	if b, err := t.ReadFile(Manifest); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if p, ok := strings.CutPrefix(l, "block "); ok {
				f.Blocks[p] = true
			}
		}
	}
	for _, n := range names {
		if !strings.HasPrefix(n, "rule-") && !strings.HasPrefix(n, "rule6-") {
			continue
		}
		f.RuleFiles[n] = true
		p := ScriptsDir + "/" + n
		if b, err := t.ReadFile(p); err == nil {
			f.System.ParseRules(userLines(string(b)), "/"+p)
		}
	}
	return f
}

// userLines blanks the lines of nicpersist's own managed block, keeping line
// numbers, so only the user's lines count as collisions.
func userLines(s string) string {
	ls := strings.Split(s, "\n")
	in := false
	for i, l := range ls {
		switch {
		case strings.HasPrefix(l, Begin):
			in = true
			ls[i] = ""
		case strings.HasPrefix(l, End):
			in = false
			ls[i] = ""
		case in:
			ls[i] = ""
		}
	}
	return strings.Join(ls, "\n")
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

// ReadNetfilter gathers only the Facts that choose the netfilter backend:
// os-release and Netfilter. It is for verify, which reads nothing else of
// the root.
func ReadNetfilter(t Tree) Facts {
	return Facts{OSRelease: osRelease(t), Netfilter: readNetfilter(t)}
}

// sbin returns whether a command is installed in sbin or bin, merged /usr
// or not.
func sbin(t Tree, cmd string) bool {
	for _, d := range []string{"usr/sbin/", "sbin/", "usr/bin/", "bin/"} {
		if t.Exists(d + cmd) {
			return true
		}
	}
	return false
}

// ifcfgIgnored are the names that initscripts and NetworkManager's ifcfg-rh
// reader skip in ScriptsDir: backups and package manager leftovers.
func ifcfgIgnored(n string) bool {
	for _, s := range []string{"~", ".bak", ".orig", ".rej", ".rpmnew", ".rpmsave", ".rpmorig", ".swp"} {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// enabled says a unit is enabled in one of the targets units are
// usually wanted by.
func enabled(t Tree, unit string) bool {
	for _, tgt := range []string{"multi-user", "sysinit", "network-pre", "basic"} {
		if t.Exists("etc/systemd/system/" + tgt + ".target.wants/" + unit) {
			return true
		}
	}
	return false
}

func readNetfilter(t Tree) Netfilter {
	n := Netfilter{
		NFT:      sbin(t, "nft"),
		IPTables: sbin(t, "iptables"),
		// firewalld's own answer, which knows masking and first-boot
		// presets, so that render's policy and the backend agree.
		Firewalld:    firewalld.Enabled(t),
		NFTablesUnit: enabled(t, "nftables.service"),
		Docker:       sbin(t, "dockerd") || enabled(t, "docker.service"),
	}
	// Debian picks iptables' backend by alternative; RHEL 7 has only legacy.
	if rl, ok := t.(interface{ Readlink(string) (string, error) }); ok {
		if l, err := rl.Readlink("etc/alternatives/iptables"); err == nil {
			n.IPTablesLegacy = strings.Contains(l, "legacy")
		}
	}
	if n.IPTables && !n.IPTablesLegacy && sbin(t, "iptables-legacy") && !sbin(t, "iptables-nft") && !sbin(t, "xtables-nft-multi") {
		n.IPTablesLegacy = true
	}
	if b, err := t.ReadFile("etc/ufw/ufw.conf"); err == nil && strings.Contains(string(b), "ENABLED=yes") {
		if d, err := t.ReadFile("etc/default/ufw"); err == nil {
			for _, l := range strings.Split(string(d), "\n") {
				if strings.TrimSpace(l) == `DEFAULT_FORWARD_POLICY="DROP"` {
					n.UFWDrop = true
				}
			}
		}
	}
	for _, p := range []string{"etc/iptables/rules.v4", "etc/sysconfig/iptables"} {
		if b, err := t.ReadFile(p); err == nil {
			for _, l := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(strings.TrimSpace(l), ":FORWARD DROP") {
					n.ForwardDrop = "/" + p
				}
			}
		}
	}
	return n
}
