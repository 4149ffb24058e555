// Package firewalld expresses the profile's forwarded, NATed traffic in the
// terms of firewalld, when the root runs it: firewalld's nftables backend
// filters FORWARD in a table of its own, and a packet must be accepted by
// every base chain, so nicpersist's NAT table alone does not get it through.
// The package reads what it needs of the root's firewalld configuration and
// renders policies (firewalld 0.9 and later) that firewalld itself reads from
// /etc/firewalld/policies, or says, as a warning, what to change by hand.
package firewalld

import (
	"bytes"
	"encoding/xml"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
)

// Tree is the read-only view of the root that Read needs; sysroot's.
type Tree interface {
	ReadFile(name string) ([]byte, error)
	Exists(name string) bool
	ReadDir(name string) ([]string, error)
}

// Paths under the root.
const (
	Conf       = "etc/firewalld/firewalld.conf"
	EtcZones   = "etc/firewalld/zones"
	LibZones   = "usr/lib/firewalld/zones"
	LibDir     = "usr/lib/firewalld"
	PolicyDir  = "etc/firewalld/policies"
	libPolicy  = "usr/lib/firewalld/policies"
	unit       = "firewalld.service"
	unitDir    = "etc/systemd/system"
	scriptsDir = "etc/sysconfig/network-scripts"
	nmKeyfiles = "etc/NetworkManager/system-connections"
	// fallbackZone and fallbackBackend are firewalld's built-in defaults
	// (firewall/config FALLBACK_ZONE, FALLBACK_FIREWALL_BACKEND), used when
	// firewalld.conf does not say.
	fallbackZone    = "public"
	fallbackBackend = "nftables"
)

// zoneName is what nicpersist lets reach a rendered file as a zone name:
// firewalld's own alphabet (letters, digits, '_' and '-'; '/' too, which is
// left out as no zone file can hold it) and its 17-character limit.
// Compiled on first use: package init runs at every start of the binary
// (the unit at boot, verify), most of which never need it.
var zoneName = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9_-]{1,17}$`) })

// Binding is an interface's explicit zone and the file that says so.
type Binding struct {
	Zone string
	File string // path under the root
}

// Facts is what the root says about firewalld.
type Facts struct {
	// Enabled says firewalld starts at boot; Why names the link or preset.
	Enabled bool
	Why     string
	// Installed says usr/lib/firewalld exists; Policies that it holds
	// policies/, which firewalld ships from 0.9 on, the version that
	// introduced policies. A root without firewalld's files (an image
	// that gets the package later) counts as new enough.
	Installed bool
	Policies  bool
	// DefaultZone and its file ("" when firewalld.conf does not set it).
	DefaultZone     string
	DefaultZoneFile string
	// Backend is "nftables" or "iptables".
	Backend string
	// Zones are the zone names with a file, in usr/lib or etc.
	Zones map[string]bool
	// Bound holds the interfaces with an explicit zone.
	Bound map[string]Binding
	// Problems are the files that could not be read as firewalld reads
	// them; each names the file and what to do.
	Problems []string
}

// Read gathers the Facts. What cannot be read counts as absent, as in
// sysroot: an image root may hold part of a system.
func Read(t Tree) Facts {
	f := Facts{
		DefaultZone: fallbackZone,
		Backend:     fallbackBackend,
		Zones:       map[string]bool{},
		Bound:       map[string]Binding{},
		Installed:   t.Exists(LibDir),
	}
	f.Policies = !f.Installed || t.Exists(libPolicy)
	f.Enabled, f.Why = enabled(t)
	if b, err := t.ReadFile(Conf); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
			if !ok || strings.HasPrefix(k, "#") {
				continue
			}
			v = strings.Trim(strings.TrimSpace(v), `"'`)
			switch strings.TrimSpace(k) {
			case "DefaultZone":
				if v != "" {
					f.DefaultZone, f.DefaultZoneFile = v, Conf
				}
			case "FirewallBackend":
				if v != "" {
					f.Backend = v
				}
			}
		}
	}
	f.readZones(t)
	f.readIfcfg(t)
	f.readKeyfiles(t)
	return f
}

// Enabled says firewalld starts at boot in the root, as Read does.
func Enabled(t Tree) bool {
	on, _ := enabled(t)
	return on
}

// enabled follows systemd: a masked unit never starts; a wants link
// enables it; without one, a preset enables it only on a first boot (no
// machine-id yet), when systemd applies presets.
func enabled(t Tree) (bool, string) {
	if rl, ok := t.(interface {
		Readlink(string) (string, error)
	}); ok {
		if target, err := rl.Readlink(unitDir + "/" + unit); err == nil && target == "/dev/null" {
			return false, unitDir + "/" + unit + " is masked"
		}
	}
	dirs, _ := t.ReadDir(unitDir)
	for _, d := range dirs {
		if strings.HasSuffix(d, ".wants") && t.Exists(unitDir+"/"+d+"/"+unit) {
			return true, "/" + unitDir + "/" + d + "/" + unit + " enables it"
		}
	}
	if id, err := t.ReadFile("etc/machine-id"); err == nil && len(bytes.TrimSpace(id)) > 0 && string(bytes.TrimSpace(id)) != "uninitialized" {
		return false, ""
	}
	if !t.Exists("usr/lib/systemd/system/"+unit) && !t.Exists("lib/systemd/system/"+unit) {
		return false, ""
	}
	// systemd.preset(5): files by name across the directories, the first
	// directory's file winning a name; the first matching line decides.
	byName := map[string]string{}
	for _, d := range []string{"usr/lib/systemd/system-preset", "lib/systemd/system-preset", "etc/systemd/system-preset"} {
		names, _ := t.ReadDir(d)
		for _, n := range names {
			if strings.HasSuffix(n, ".preset") {
				byName[n] = d + "/" + n
			}
		}
	}
	names := make([]string, 0, len(byName))
	for n := range byName {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := t.ReadFile(byName[n])
		if err != nil {
			continue
		}
		for _, l := range strings.Split(string(b), "\n") {
			fs := strings.Fields(l)
			if len(fs) < 2 || (fs[0] != "enable" && fs[0] != "disable") {
				continue
			}
			if ok, _ := path.Match(fs[1], unit); ok {
				if fs[0] == "enable" {
					return true, "/" + byName[n] + " enables it on the first boot"
				}
				return false, ""
			}
		}
	}
	return false, ""
}

type zoneXML struct {
	XMLName    xml.Name `xml:"zone"`
	Interfaces []struct {
		Name string `xml:"name,attr"`
	} `xml:"interface"`
}

// readZones reads the zone files: a file in etc replaces the one of the
// same name in usr/lib, as firewalld loads them.
func (f *Facts) readZones(t Tree) {
	files := map[string]string{}
	for _, d := range []string{LibZones, EtcZones} {
		names, _ := t.ReadDir(d)
		for _, n := range names {
			if z, ok := strings.CutSuffix(n, ".xml"); ok {
				files[z] = d + "/" + n
			}
		}
	}
	zones := make([]string, 0, len(files))
	for z := range files {
		zones = append(zones, z)
	}
	sort.Strings(zones)
	for _, z := range zones {
		f.Zones[z] = true
		b, err := t.ReadFile(files[z])
		if err != nil {
			continue
		}
		var x zoneXML
		if err := xml.Unmarshal(b, &x); err != nil {
			f.Problems = append(f.Problems, "/"+files[z]+": not a zone file firewalld can read ("+err.Error()+"); firewalld will not start with it, fix it")
			continue
		}
		for _, i := range x.Interfaces {
			f.bind(i.Name, z, files[z])
		}
	}
}

// readIfcfg reads ZONE= of the ifcfg files: network-scripts and
// NetworkManager put the interface in that zone when it comes up, over
// firewalld's own files.
func (f *Facts) readIfcfg(t Tree) {
	names, _ := t.ReadDir(scriptsDir)
	for _, n := range names {
		if !strings.HasPrefix(n, "ifcfg-") || backup(n) {
			continue
		}
		b, err := t.ReadFile(scriptsDir + "/" + n)
		if err != nil {
			continue
		}
		dev, zone := strings.TrimPrefix(n, "ifcfg-"), ""
		for _, l := range strings.Split(string(b), "\n") {
			k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
			if !ok {
				continue
			}
			v = strings.Trim(v, `"'`)
			switch k {
			case "DEVICE":
				dev = v
			case "ZONE":
				zone = v
			}
		}
		if zone != "" {
			f.bindOver(dev, zone, scriptsDir+"/"+n)
		}
	}
}

// readKeyfiles reads zone= of NetworkManager's keyfile connections, which
// NetworkManager applies when the connection comes up, as it does ZONE= of
// ifcfg files.
func (f *Facts) readKeyfiles(t Tree) {
	for _, d := range []string{"usr/lib/NetworkManager/system-connections", nmKeyfiles} {
		names, _ := t.ReadDir(d)
		for _, n := range names {
			if !strings.HasSuffix(n, ".nmconnection") {
				continue
			}
			b, err := t.ReadFile(d + "/" + n)
			if err != nil {
				continue
			}
			section, dev, zone := "", "", ""
			for _, l := range strings.Split(string(b), "\n") {
				l = strings.TrimSpace(l)
				if strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]") {
					section = l
					continue
				}
				k, v, ok := strings.Cut(l, "=")
				if !ok || section != "[connection]" {
					continue
				}
				switch strings.TrimSpace(k) {
				case "interface-name":
					dev = strings.TrimSpace(v)
				case "zone":
					zone = strings.TrimSpace(v)
				}
			}
			if dev != "" && zone != "" {
				f.bindOver(dev, zone, d+"/"+n)
			}
		}
	}
}

// backup says initscripts skip the file: the suffixes of editors and rpm.
func backup(n string) bool {
	for _, s := range []string{"~", ".bak", ".old", ".orig", ".rpmnew", ".rpmorig", ".rpmsave"} {
		if strings.HasSuffix(n, s) {
			return true
		}
	}
	return false
}

// bindOver binds as the network stack does when the interface comes up:
// over what firewalld's zone files say, but not over another connection's
// file, as nicpersist cannot tell which connection is active.
func (f *Facts) bindOver(dev, zone, file string) {
	if prev, ok := f.Bound[dev]; ok && strings.HasPrefix(prev.File, "etc/firewalld/") {
		delete(f.Bound, dev)
	}
	f.bind(dev, zone, file)
}

func (f *Facts) bind(dev, zone, file string) {
	if prev, ok := f.Bound[dev]; ok && prev.Zone != zone {
		f.Problems = append(f.Problems, "/"+file+" puts "+dev+" in zone "+zone+", and /"+prev.File+" in zone "+prev.Zone+"; firewalld refuses an interface in two zones: remove one")
		return
	}
	f.Bound[dev] = Binding{Zone: zone, File: file}
}

// ZoneOf returns the zone a policy can name for an interface, and why.
// Only an explicit zone will do: firewalld puts an interface that no zone
// names in the default zone through a catch-all ("+") in the zone chains,
// but a policy's dispatch matches only the interfaces and sources its zones
// list (fw_policy._ingress_egress_zones in firewalld 1.3), so a policy
// naming the default zone never sees such an interface. For it ZoneOf
// returns "ANY", which a policy dispatches without an interface match.
func (f Facts) ZoneOf(dev string) (zone, why string) {
	if b, ok := f.Bound[dev]; ok {
		return b.Zone, "/" + b.File + " puts it there"
	}
	def := "firewalld's built-in default zone " + f.DefaultZone
	if f.DefaultZoneFile != "" {
		def = "the default zone " + f.DefaultZone + " of /" + f.DefaultZoneFile
	}
	return "ANY", "no zone names it: it is in " + def + " by a catch-all that policies do not see"
}
