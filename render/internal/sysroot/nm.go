package sysroot

import (
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/keyfile"
)

// NetworkManager's keyfile directories, in the order in which a profile in
// one shadows a profile with the same UUID in the next: /run holds
// in-memory profiles that win over /etc, and /etc wins over the vendor's
// read-only /usr/lib (NetworkManager 1.30 and later).
const (
	NMRunDir = "run/NetworkManager/system-connections"
	NMEtcDir = "etc/NetworkManager/system-connections"
	NMLibDir = "usr/lib/NetworkManager/system-connections"
)

// NMConn is a NetworkManager keyfile connection under the root.
type NMConn struct {
	Path        string // relative to the root
	Dir         string // NMRunDir, NMEtcDir or NMLibDir
	ID, UUID    string
	Iface, MAC  string // connection.interface-name, ethernet.mac-address
	Autoconnect bool
	Data        []byte
}

// NMFacts is what the root says about NetworkManager's keyfiles.
type NMFacts struct {
	// Conns is every connection NetworkManager would load, shadowed ones
	// left out, by path.
	Conns []NMConn
	// ByIface holds, per profile interface, the connections that match it
	// by interface-name or MAC address.
	ByIface map[string][]NMConn
	// Owned holds, per keyfile path, the "group key=value" entries that the
	// manifest says nicpersist wrote there.
	Owned map[string][]string
	// Version is NetworkManager's version from its plugin directory
	// (usr/lib*/NetworkManager/<version>), "" when unknown.
	Version string
	// Unmanaged holds, per profile interface that the root's
	// NetworkManager configuration keeps unmanaged
	// (unmanaged-devices=interface-name:<if>), the file that says so.
	Unmanaged map[string]string
}

// ManifestKeyWord starts a manifest line recording a key nicpersist wrote
// into a key file it shares: "key <path> <group> <key>=<value>", the path
// quoted (Go syntax) when it holds a space or a quote, as NetworkManager's
// "Wired connection 1.nmconnection" does.
const ManifestKeyWord = "key"

// KeyLine is the manifest line for a key entry ("<group> <key>=<value>").
func KeyLine(path, entry string) string {
	if strings.ContainsAny(path, " \t\"\\") {
		path = strconv.Quote(path)
	}
	return ManifestKeyWord + " " + path + " " + entry
}

// ParseKeyLine reads a KeyLine.
func ParseKeyLine(l string) (path, entry string, ok bool) {
	rest, ok := strings.CutPrefix(l, ManifestKeyWord+" ")
	if !ok {
		return "", "", false
	}
	if strings.HasPrefix(rest, `"`) {
		q, err := strconv.QuotedPrefix(rest)
		if err != nil {
			return "", "", false
		}
		path, _ = strconv.Unquote(q)
		rest = rest[len(q):]
	} else {
		path, rest, _ = strings.Cut(rest, " ")
		rest = " " + rest
	}
	entry, ok = strings.CutPrefix(rest, " ")
	if !ok || entry == "" || path == "" {
		return "", "", false
	}
	return path, entry, true
}

// Manifest is where nicpersist records what it owns; see changeset.
const Manifest = "etc/nicpersist/manifest"

// nmIgnored are the names NetworkManager's keyfile plugin skips in its
// directories: hidden, editor and package manager leftovers.
func nmIgnored(dir, name string) bool {
	// A control character would break the manifest's lines; no
	// NetworkManager tool makes such a name.
	if strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return true
	}
	if strings.HasPrefix(name, ".") || strings.HasSuffix(name, "~") || strings.HasSuffix(name, ".nmmeta") {
		return true
	}
	for _, s := range []string{".swp", ".swpx", ".tmp", ".rpmnew", ".rpmsave", ".rpmorig", ".dpkg-old", ".dpkg-dist", ".dpkg-new", ".dpkg-tmp", ".bak", ".orig"} {
		if strings.HasSuffix(name, s) {
			return true
		}
	}
	// Outside /etc only the .nmconnection names are profiles.
	return dir != NMEtcDir && !strings.HasSuffix(name, ".nmconnection")
}

func readNM(t Tree, ifaces []string) NMFacts {
	nf := NMFacts{ByIface: map[string][]NMConn{}, Owned: map[string][]string{}, Unmanaged: map[string]string{}}
	seen := map[string]bool{} // UUIDs already served by a higher directory
	for _, dir := range []string{NMRunDir, NMEtcDir, NMLibDir} {
		names, _ := t.ReadDir(dir)
		sort.Strings(names)
		var here []string
		for _, n := range names {
			if nmIgnored(dir, n) {
				continue
			}
			p := dir + "/" + n
			data, err := t.ReadFile(p)
			if err != nil {
				continue
			}
			kf := keyfile.Parse(data)
			c := NMConn{Path: p, Dir: dir, Data: data, Autoconnect: true}
			c.ID, _ = kf.Get("connection", "id")
			c.UUID, _ = kf.Get("connection", "uuid")
			c.Iface, _ = kf.Get("connection", "interface-name")
			for _, g := range []string{"ethernet", "802-3-ethernet"} {
				if m, ok := kf.Get(g, "mac-address"); ok {
					c.MAC = strings.ToLower(m)
				}
			}
			if a, ok := kf.Get("connection", "autoconnect"); ok && (a == "false" || a == "0" || a == "no") {
				c.Autoconnect = false
			}
			if c.UUID != "" && seen[c.UUID] {
				continue
			}
			here = append(here, c.UUID)
			nf.Conns = append(nf.Conns, c)
		}
		for _, u := range here {
			seen[u] = true
		}
	}
	for _, name := range ifaces {
		mac := ""
		if b, err := t.ReadFile("sys/class/net/" + name + "/address"); err == nil {
			mac = strings.ToLower(strings.TrimSpace(string(b)))
		}
		// udev's verdict for the device (rendering /: the root's /sys and
		// /run are the machine's), e.g. Debian's 85-nm-unmanaged.rules for
		// a veth not named eth*.
		if b, err := t.ReadFile("sys/class/net/" + name + "/ifindex"); err == nil {
			db := "run/udev/data/n" + strings.TrimSpace(string(b))
			if u, err := t.ReadFile(db); err == nil && strings.Contains("\n"+string(u)+"\n", "\nE:NM_UNMANAGED=1\n") {
				nf.Unmanaged[name] = "udev (/" + db + ": NM_UNMANAGED=1)"
			}
		}
		for _, c := range nf.Conns {
			if c.Iface == name || (c.Iface == "" && mac != "" && c.MAC == mac) {
				nf.ByIface[name] = append(nf.ByIface[name], c)
			}
		}
	}
	if b, err := t.ReadFile(Manifest); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			p, e, ok := ParseKeyLine(l)
			// Only keyfiles nicpersist writes: a tampered manifest must
			// not steer an edit elsewhere.
			if ok && path.Clean(p) == p && (strings.HasPrefix(p, NMEtcDir+"/") || strings.HasPrefix(p, ScriptsDir+"/ifcfg-")) && !strings.Contains(p, "..") {
				nf.Owned[p] = append(nf.Owned[p], e)
			}
		}
	}
	for _, lib := range []string{"usr/lib64/NetworkManager", "usr/lib/NetworkManager", "usr/lib/x86_64-linux-gnu/NetworkManager", "usr/lib/aarch64-linux-gnu/NetworkManager"} {
		dirs, _ := t.ReadDir(lib)
		for _, d := range dirs {
			if len(d) > 0 && d[0] >= '0' && d[0] <= '9' && strings.Count(d, ".") >= 1 {
				nf.Version = d
			}
		}
	}
	confs := []string{"etc/NetworkManager/NetworkManager.conf"}
	for _, d := range []string{"usr/lib/NetworkManager/conf.d", "run/NetworkManager/conf.d", "etc/NetworkManager/conf.d"} {
		names, _ := t.ReadDir(d)
		sort.Strings(names)
		for _, n := range names {
			if strings.HasSuffix(n, ".conf") {
				confs = append(confs, d+"/"+n)
			}
		}
	}
	for _, p := range confs {
		b, err := t.ReadFile(p)
		if err != nil {
			continue
		}
		v, ok := keyfile.Parse(b).Get("keyfile", "unmanaged-devices")
		if !ok {
			continue
		}
		for _, spec := range strings.Split(v, ";") {
			spec = strings.TrimSpace(spec)
			if n, ok := strings.CutPrefix(spec, "interface-name:"); ok {
				for _, name := range ifaces {
					if n == name || n == "*" || (strings.HasSuffix(n, "*") && strings.HasPrefix(name, strings.TrimSuffix(n, "*"))) {
						nf.Unmanaged[name] = "/" + p
					}
				}
			}
		}
	}
	return nf
}

// VersionAtLeast compares a dotted version with major.minor.
func VersionAtLeast(v string, major, minor int) bool {
	var a, b int
	parts := strings.SplitN(v, ".", 3)
	if len(parts) < 2 {
		return true // unknown: assume current
	}
	for _, c := range parts[0] {
		a = a*10 + int(c-'0')
	}
	for _, c := range parts[1] {
		if c < '0' || c > '9' {
			break
		}
		b = b*10 + int(c-'0')
	}
	return a > major || (a == major && b >= minor)
}
