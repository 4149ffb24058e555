package firewalld

import (
	"errors"
	"io/fs"
	"net/netip"
	"sort"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/plan"
)

// tree is a root in memory: path to content; a value "-> target" is a
// symbolic link, and a directory exists when a path lies under it.
type tree map[string]string

func (t tree) ReadFile(n string) ([]byte, error) {
	v, ok := t[n]
	if !ok || strings.HasPrefix(v, "-> ") {
		return nil, fs.ErrNotExist
	}
	return []byte(v), nil
}

func (t tree) Exists(n string) bool {
	for k := range t {
		if k == n || strings.HasPrefix(k, n+"/") {
			return true
		}
	}
	return false
}

func (t tree) ReadDir(n string) ([]string, error) {
	seen := map[string]bool{}
	for k := range t {
		if rest, ok := strings.CutPrefix(k, n+"/"); ok {
			seen[strings.Split(rest, "/")[0]] = true
		}
	}
	var out []string
	for k := range seen {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

func (t tree) Readlink(n string) (string, error) {
	if v, ok := strings.CutPrefix(t[n], "-> "); ok {
		return v, nil
	}
	return "", errors.New("not a link")
}

const wants = "etc/systemd/system/multi-user.target.wants/firewalld.service"

func zoneFile(ifaces ...string) string {
	s := `<?xml version="1.0" encoding="utf-8"?>` + "\n<zone>\n  <short>Z</short>\n"
	for _, i := range ifaces {
		s += `  <interface name="` + i + `"/>` + "\n"
	}
	return s + "</zone>\n"
}

func TestEnabled(t *testing.T) {
	unitFile := "usr/lib/systemd/system/firewalld.service"
	for _, c := range []struct {
		name string
		t    tree
		want bool
	}{
		{"wants link", tree{wants: "-> /usr/lib/systemd/system/firewalld.service"}, true},
		{"other wants dir", tree{"etc/systemd/system/graphical.target.wants/firewalld.service": "-> /x"}, true},
		{"masked", tree{wants: "-> /x", "etc/systemd/system/firewalld.service": "-> /dev/null"}, false},
		{"not installed, no link", tree{"etc/machine-id": ""}, false},
		{"preset, first boot", tree{unitFile: "[Unit]", "usr/lib/systemd/system-preset/90-default.preset": "enable firewalld.service\n"}, true},
		{"preset glob, first boot", tree{unitFile: "[Unit]", "usr/lib/systemd/system-preset/90-default.preset": "enable firewall*\n", "etc/machine-id": "uninitialized\n"}, true},
		{"preset, booted before", tree{unitFile: "[Unit]", "usr/lib/systemd/system-preset/90-default.preset": "enable firewalld.service\n", "etc/machine-id": "0123456789abcdef0123456789abcdef\n"}, false},
		{"etc preset disables first", tree{unitFile: "[Unit]", "usr/lib/systemd/system-preset/90-default.preset": "enable firewalld.service\n", "etc/systemd/system-preset/10-local.preset": "disable firewalld.service\n"}, false},
		{"etc preset of the same name wins", tree{unitFile: "[Unit]", "usr/lib/systemd/system-preset/90-default.preset": "enable firewalld.service\n", "etc/systemd/system-preset/90-default.preset": "disable *\n"}, false},
		{"preset, no unit file", tree{"usr/lib/systemd/system-preset/90-default.preset": "enable firewalld.service\n"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := Read(c.t)
			if f.Enabled != c.want {
				t.Errorf("Enabled = %v (%s), want %v", f.Enabled, f.Why, c.want)
			}
			if f.Enabled && f.Why == "" {
				t.Error("enabled without a reason")
			}
		})
	}
}

func TestZones(t *testing.T) {
	root := tree{
		wants:                             "-> /x",
		Conf:                              "# comment\nDefaultZone=home\nFirewallBackend=iptables\n",
		LibZones + "/public.xml":          zoneFile(),
		LibZones + "/internal.xml":        zoneFile("eth9"),
		LibZones + "/home.xml":            zoneFile(),
		EtcZones + "/internal.xml":        zoneFile("eth3"), // replaces usr/lib's: eth9 is in no zone
		EtcZones + "/external.xml":        zoneFile("eth2"),
		EtcZones + "/dmz.xml":             zoneFile("eth5"),
		EtcZones + "/trusted.xml":         zoneFile("eth5"), // eth5 twice: a problem, dmz kept
		EtcZones + "/broken.xml":          "<zone><interface name=",
		scriptsDir + "/ifcfg-eth7":        "DEVICE=eth7\nZONE=dmz\n",
		scriptsDir + "/ifcfg-eth2":        "DEVICE=eth2\nZONE=\"public\"\n", // over external.xml
		scriptsDir + "/ifcfg-eth8.bak":    "DEVICE=eth8\nZONE=dmz\n",
		nmKeyfiles + "/eth4.nmconnection": "[connection]\nid=eth4\ninterface-name=eth4\nzone=internal\n[ipv4]\nmethod=auto\n",
		nmKeyfiles + "/eth6.nmconnection": "[connection]\ninterface-name=eth6\n[ethernet]\nzone=internal\n", // not [connection]'s
		nmKeyfiles + "/eth7.nmconnection": "[connection]\ninterface-name=eth7\nzone=trusted\n",              // ifcfg-eth7 says dmz
	}
	f := Read(root)
	if f.DefaultZone != "home" || f.DefaultZoneFile != Conf || f.Backend != "iptables" {
		t.Errorf("default zone %q from %q, backend %q", f.DefaultZone, f.DefaultZoneFile, f.Backend)
	}
	for dev, want := range map[string]string{"eth3": "internal", "eth2": "public", "eth5": "dmz", "eth7": "dmz", "eth9": "ANY", "eth8": "ANY", "eth1": "ANY", "eth4": "internal", "eth6": "ANY"} {
		if z, why := f.ZoneOf(dev); z != want {
			t.Errorf("ZoneOf(%s) = %s (%s), want %s", dev, z, why, want)
		}
	}
	if _, why := f.ZoneOf("eth1"); !strings.Contains(why, "default zone home of /"+Conf) {
		t.Errorf("ZoneOf(eth1) says %q", why)
	}
	probs := strings.Join(f.Problems, "\n")
	for _, want := range []string{"/" + EtcZones + "/broken.xml: not a zone file", "/" + EtcZones + "/trusted.xml puts eth5 in zone trusted, and /" + EtcZones + "/dmz.xml in zone dmz",
		"/" + nmKeyfiles + "/eth7.nmconnection puts eth7 in zone trusted, and /" + scriptsDir + "/ifcfg-eth7 in zone dmz"} {
		if !strings.Contains(probs, want) {
			t.Errorf("no %q in problems:\n%s", want, probs)
		}
	}
	for _, z := range []string{"public", "internal", "home", "external", "dmz", "trusted"} {
		if !f.Zones[z] {
			t.Errorf("zone %s not found", z)
		}
	}
	if !Read(tree{}).Policies {
		t.Error("a root without firewalld's files counts as too old for policies")
	}
	if Read(tree{LibZones + "/public.xml": zoneFile()}).Policies {
		t.Error("firewalld without usr/lib/firewalld/policies counts as new enough")
	}
}

// seedPlan is the seed profile's plan, as far as Render reads it.
func seedPlan(nat ...plan.NAT) *plan.Plan {
	return &plan.Plan{
		Interfaces: []plan.Link{
			{Name: "eth1", Addr4: netip.MustParsePrefix("172.22.5.68/27"), Addr6: netip.MustParsePrefix("2001:db8:1::68/64")},
			{Name: "eth2", Addr4: netip.MustParsePrefix("172.22.5.100/27"), Addr6: netip.MustParsePrefix("2001:db8:2::100/64")},
			{Name: "eth3", Addr4: netip.MustParsePrefix("172.22.5.132/26"), Addr6: netip.MustParsePrefix("2001:db8:3::132/64")},
		},
		NAT:     nat,
		Sysctls: []plan.Sysctl{{Key: "net.ipv4.ip_forward", Value: "1"}, {Key: "net.ipv6.conf.all.forwarding", Value: "1"}},
	}
}

var (
	masq4 = plan.NAT{Family: plan.V4, Out: "eth2", Source: netip.MustParsePrefix("172.22.5.128/26"), Masquerade: true, Origin: "nat[0]"}
	snat6 = plan.NAT{Family: plan.V6, Out: "eth2", Source: netip.MustParsePrefix("2001:db8:3::/64"), ToSource: netip.MustParseAddr("2001:db8:2::100"), Origin: "nat[1]"}
	any4  = plan.NAT{Family: plan.V4, Out: "eth1", Masquerade: true, Origin: "nat[2]"}
)

// seedPlanFwd is seedPlan with two port forwards on eth2.
func seedPlanFwd(nat ...plan.NAT) *plan.Plan {
	p := seedPlan(nat...)
	p.Forwards = []plan.Forward{
		{Family: plan.V4, In: "eth2", Proto: "tcp", PortLo: 2222, PortHi: 2222, To: netip.MustParseAddr("172.22.5.130"), ToPort: 22, Origin: "port_forward[0]"},
		{Family: plan.V6, In: "eth2", Proto: "udp", PortLo: 5000, PortHi: 5010, To: netip.MustParseAddr("2001:db8:3::130"), Origin: "port_forward[1]"},
	}
	return p
}

func debianRoot() tree {
	return tree{
		wants:                    "-> /lib/systemd/system/firewalld.service",
		Conf:                     "DefaultZone=public\nFirewallBackend=nftables\n",
		LibZones + "/public.xml": zoneFile(), LibZones + "/internal.xml": zoneFile(), LibZones + "/external.xml": zoneFile(),
		libPolicy + "/allow-host-ipv6.xml": "<policy/>",
	}
}

func TestRender(t *testing.T) {
	for _, c := range []struct {
		name     string
		root     tree
		backend  string // nicpersist's netfilter backend; "" for nftables
		plan     *plan.Plan
		files    map[string][]string // path: substrings in order
		warnings []string
	}{
		{
			name:    "default zone only: ANY to ANY, by source; SNAT on iptables, which firewalld flushes",
			root:    debianRoot(),
			backend: plan.BackendIPTables,
			plan:    seedPlan(masq4, snat6),
			files: map[string][]string{PolicyDir + "/nicpersist.xml": {
				HeaderPrefix + " from /p.toml; do not edit -->",
				`<ingress-zone name="ANY"/>`, `<egress-zone name="ANY"/>`,
				`<!-- nat[0]: 172.22.5.128/26 on eth3 (zone ANY: no zone names it: it is in the default zone public of /etc/firewalld/firewalld.conf by a catch-all that policies do not see), out of eth2 (zone ANY:`,
				`<rule family="ipv4">`, `<source address="172.22.5.128/26"/>`, `<accept/>`, `<masquerade/>`,
				`<rule family="ipv6">`, `<source address="2001:db8:3::/64"/>`, `<accept/>`,
				"</policy>",
			}},
			warnings: []string{"nat[1]: firewalld flushes every iptables table"},
		},
		{
			name:  "SNAT on nftables: no warning, firewalld leaves inet nicpersist alone",
			root:  debianRoot(),
			plan:  seedPlan(snat6),
			files: map[string][]string{PolicyDir + "/nicpersist.xml": {`<source address="2001:db8:3::/64"/>`, `<accept/>`, "</rule>\n</policy>"}},
		},
		{
			name: "port forwards: forward-port to the in_interface's address, egress ANY",
			root: func() tree { r := debianRoot(); r[EtcZones+"/external.xml"] = zoneFile("eth2"); return r }(),
			plan: seedPlanFwd(masq4),
			files: map[string][]string{
				PolicyDir + "/nicpersist.xml": {`<ingress-zone name="ANY"/>`, `<egress-zone name="external"/>`, "<accept/>\n  </rule>\n</policy>"},
				PolicyDir + "/nicpersist-2.xml": {`<ingress-zone name="external"/>`, `<egress-zone name="ANY"/>`,
					`<!-- port_forward[0]: tcp 2222 to 172.22.5.100 on eth2 (zone external: /etc/firewalld/zones/external.xml puts it there) -->`,
					"<rule family=\"ipv4\">\n    <destination address=\"172.22.5.100\"/>\n    <forward-port port=\"2222\" protocol=\"tcp\" to-port=\"22\" to-addr=\"172.22.5.130\"/>",
					"<rule family=\"ipv6\">\n    <destination address=\"2001:db8:2::100\"/>\n    <forward-port port=\"5000-5010\" protocol=\"udp\" to-addr=\"2001:db8:3::130\"/>"},
			},
		},
		{
			name:     "no source, out of an interface in no explicit zone: no accept-all",
			root:     debianRoot(),
			plan:     seedPlan(masq4, any4),
			files:    map[string][]string{PolicyDir + "/nicpersist.xml": {`<source address="172.22.5.128/26"/>`}},
			warnings: []string{"nat[2]: firewalld: with no source, and eth1 in no explicit zone (no zone names it: it is in the default zone public of /etc/firewalld/firewalld.conf by a catch-all that policies do not see), a policy could only accept all forwarding in every direction"},
		},
		{
			name:    "marks on iptables",
			root:    debianRoot(),
			backend: plan.BackendIPTables,
			plan: func() *plan.Plan {
				p := seedPlan()
				p.Marks = []plan.Mark{{Family: plan.V4, Origin: "mark[0]"}}
				return p
			}(),
			warnings: []string{"mark[0]: firewalld flushes every iptables table"},
		},
		{
			name: "explicit zones, two egress zones: two policies",
			root: func() tree {
				r := debianRoot()
				r[EtcZones+"/internal.xml"] = zoneFile("eth3")
				r[EtcZones+"/external.xml"] = zoneFile("eth2")
				r[EtcZones+"/dmz.xml"] = zoneFile("eth1")
				return r
			}(),
			plan: seedPlan(masq4, any4),
			files: map[string][]string{
				PolicyDir + "/nicpersist.xml":   {`<ingress-zone name="internal"/>`, `<egress-zone name="external"/>`, `(zone internal: /etc/firewalld/zones/internal.xml puts it there)`, `<source address="172.22.5.128/26"/>`, "<accept/>\n  </rule>\n</policy>"},
				PolicyDir + "/nicpersist-2.xml": {`<ingress-zone name="ANY"/>`, `<egress-zone name="dmz"/>`, `nat[2]: any source, out of eth1`, "<rule family=\"ipv4\">\n    <accept/>\n  </rule>\n</policy>"},
			},
		},
		{
			name: "firewalld's iptables backend: ingress ANY, as it refuses masquerade from a zone with interfaces; nicpersist's: the policy masquerades",
			root: func() tree {
				r := debianRoot()
				r[Conf] = "FirewallBackend=iptables\n"
				r[EtcZones+"/internal.xml"] = zoneFile("eth3")
				r[EtcZones+"/external.xml"] = zoneFile("eth2")
				return r
			}(),
			backend: plan.BackendIPTables,
			plan:    seedPlan(masq4),
			files:   map[string][]string{PolicyDir + "/nicpersist.xml": {`<ingress-zone name="ANY"/>`, `<egress-zone name="external"/>`, `<masquerade/>`}},
		},
		{
			name: "not enabled",
			root: func() tree { r := debianRoot(); delete(r, wants); return r }(),
			plan: seedPlan(masq4),
		},
		{
			name: "forwarding off",
			root: debianRoot(),
			plan: func() *plan.Plan { p := seedPlan(masq4); p.Sysctls = nil; return p }(),
		},
		{
			name:     "firewalld before 0.9",
			root:     func() tree { r := debianRoot(); delete(r, libPolicy+"/allow-host-ipv6.xml"); return r }(),
			plan:     seedPlan(masq4),
			warnings: []string{`nat[0]: firewalld in the root predates policies (0.9; /usr/lib/firewalld/policies is missing), and its FORWARD chain rejects what the profile forwards from 172.22.5.128/26 out of eth2; upgrade firewalld, or add to /etc/firewalld/direct.xml <rule ipv="ipv4" table="filter" chain="FORWARD" priority="0">-s 172.22.5.128/26 -o eth2 -j ACCEPT</rule>`},
		},
		{
			name:     "firewalld before 0.9, iptables backend (CentOS 7)",
			root:     func() tree { r := debianRoot(); delete(r, libPolicy+"/allow-host-ipv6.xml"); return r }(),
			backend:  plan.BackendIPTables,
			plan:     seedPlan(masq4),
			warnings: []string{`-j ACCEPT</rule>; and as firewalld flushes every iptables table when it starts and reloads, nicpersist's NAT chain included, run systemctl reload nicpersist after each firewall-cmd --reload`},
		},
		{
			name:     "zone without a file",
			root:     func() tree { r := debianRoot(); r[scriptsDir+"/ifcfg-eth2"] = "ZONE=nosuch\n"; return r }(),
			plan:     seedPlan(masq4),
			warnings: []string{`nat[0]: firewalld: eth2 is in zone "nosuch" (/etc/sysconfig/network-scripts/ifcfg-eth2 puts it there), but no /etc/firewalld/zones/nosuch.xml or /usr/lib/firewalld/zones/nosuch.xml defines that zone`},
		},
		{
			name:     "zone name nicpersist does not write",
			root:     func() tree { r := debianRoot(); r[scriptsDir+"/ifcfg-eth2"] = "ZONE=a\"b\n"; return r }(),
			plan:     seedPlan(masq4),
			warnings: []string{`nicpersist writes only zone names of letters, digits, '_' and '-', at most 17; rename the zone`},
		},
		{
			name:     "a zone named like the policy",
			root:     func() tree { r := debianRoot(); r[EtcZones+"/nicpersist.xml"] = zoneFile(); return r }(),
			plan:     seedPlan(masq4),
			warnings: []string{"firewalld: a zone is named nicpersist, which firewalld does not allow beside nicpersist's policy of that name"},
		},
		{
			name:     "a broken zone file is a warning",
			root:     func() tree { r := debianRoot(); r[EtcZones+"/x.xml"] = "<zone"; return r }(),
			plan:     seedPlan(masq4),
			files:    map[string][]string{PolicyDir + "/nicpersist.xml": {"<policy"}},
			warnings: []string{"firewalld: /etc/firewalld/zones/x.xml: not a zone file firewalld can read"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			backend := c.backend
			if backend == "" {
				backend = plan.BackendNFTables
			}
			res, err := Render(c.plan, Read(c.root), backend, "/p.toml")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]string{}
			for _, f := range res.Files {
				got[f.Path] = string(f.Data)
			}
			if len(got) != len(c.files) {
				t.Errorf("files %v, want %d", keys(got), len(c.files))
			}
			for path, parts := range c.files {
				body, ok := got[path]
				if !ok {
					t.Errorf("no %s", path)
					continue
				}
				rest := body
				for _, p := range parts {
					i := strings.Index(rest, p)
					if i < 0 {
						t.Errorf("%s: no %q (in order) in\n%s", path, p, body)
						break
					}
					rest = rest[i+len(p):]
				}
			}
			all := strings.Join(res.Warnings, "\n")
			if len(res.Warnings) != len(c.warnings) {
				t.Errorf("warnings:\n%s\nwant %d", all, len(c.warnings))
			}
			for _, w := range c.warnings {
				if !strings.Contains(all, w) {
					t.Errorf("no warning %q in\n%s", w, all)
				}
			}
		})
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func TestComment(t *testing.T) {
	for in, want := range map[string]string{
		"/etc/nicpersist/profile.toml": "/etc/nicpersist/profile.toml",
		"/a--b.toml":                   `/a-\x2db.toml`,
		"/a---b":                       `/a-\x2d-b`,
		"/x\n-->":                      `"/x\n-\x2d>"`,
	} {
		got := comment(in)
		if got != want {
			t.Errorf("comment(%q) = %q, want %q", in, got, want)
		}
		if strings.Contains(got, "--") {
			t.Errorf("comment(%q) = %q holds --", in, got)
		}
	}
}
