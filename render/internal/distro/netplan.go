package distro

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
	"github.com/nicpersist/nicpersist/templates"
)

// NetplanFile is the file the netplan target renders.
const NetplanFile = sysroot.NetplanOwn

// netplanID is what nicpersist writes back of an id read from the root's
// netplan files: an id that could break the YAML stays out.
// Compiled on first use: package init runs at every start of the binary
// (the unit at boot, verify), most of which never need it.
var netplanID = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`) })

type netplanDevice struct {
	ID            string
	Routes, Rules [][]iniKey
}

type netplanType struct {
	Name    string
	Devices []*netplanDevice
}

// netplanNative puts each interface's routes and rules under the id and
// device type of the definition netplan already has for it (cloud-init's,
// the installer's), in a file that sorts after theirs: netplan merges the
// two, and the networkd or NetworkManager configuration it generates at
// every boot and `netplan apply` carries them. An interface netplan does
// not define is left to the unit: a definition of nicpersist's own would
// be one without its addresses.
func netplanNative(p *plan.Plan, f sysroot.Facts, header string) (native, error) {
	n := native{routes: make([]bool, len(p.Routes)), rules: make([]bool, len(p.Rules))}
	var types []*netplanType
	devs := map[string]*netplanDevice{}
	defs := map[string]*sysroot.NetplanDef{}
	device := func(dev string) *netplanDevice {
		d, ok := defs[dev]
		if !ok {
			d = f.NetplanFor(dev)
			if d != nil && (!netplanID().MatchString(d.ID) || !netplanID().MatchString(d.Type)) {
				n.warnings = append(n.warnings, fmt.Sprintf("/%s defines %s as %q under %q, which nicpersist does not write back; its routes and rules are left to %s, which applies them once per start", d.File, dev, d.ID, d.Type, UnitName))
				d = nil
			} else if d == nil {
				n.warnings = append(n.warnings, fmt.Sprintf("no netplan file under /etc/netplan, /run/netplan or /lib/netplan defines %s; its routes and rules are left to %s, which applies them once per start", dev, UnitName))
			}
			defs[dev] = d
		}
		if d == nil {
			return nil
		}
		if nd, ok := devs[dev]; ok {
			return nd
		}
		var t *netplanType
		for _, x := range types {
			if x.Name == d.Type {
				t = x
			}
		}
		if t == nil {
			t = &netplanType{Name: d.Type}
			types = append(types, t)
		}
		for _, x := range t.Devices {
			if x.ID == d.ID {
				devs[dev] = x
				return x
			}
		}
		nd := &netplanDevice{ID: d.ID}
		t.Devices = append(t.Devices, nd)
		devs[dev] = nd
		return nd
	}
	for i, r := range p.Routes {
		if r.IsMainDefault() && r.Family == plan.V4 {
			if w := netplanBeatenBy(p, f, r); w != "" {
				n.warnings = append(n.warnings, w)
				continue
			}
		}
		d := device(r.Dev)
		if d == nil {
			continue
		}
		d.Routes = append(d.Routes, netplanRoute(r))
		n.routes[i] = true
	}
	for i, r := range p.Rules {
		if r.IIF != "" || r.OIF != "" || strings.Contains(r.FWMark, "/") {
			// netplan's routing-policy has no iif, oif or mark mask.
			continue
		}
		home := ruleHome(p, r)
		if home == "" {
			continue
		}
		d := device(home)
		if d == nil {
			continue
		}
		d.Rules = append(d.Rules, netplanRule(r))
		n.rules[i] = true
	}
	if len(types) == 0 {
		return n, nil
	}
	t, err := templates.Parse()
	if err != nil {
		return n, err
	}
	var b bytes.Buffer
	if err := t.ExecuteTemplate(&b, "netplan.yaml.tmpl", map[string]any{"Types": types}); err != nil {
		return n, err
	}
	// netplan warns about, and newer netplan refuses, files others can read.
	n.files = append(n.files, File{Path: NetplanFile, Kind: Owned, Data: append(append([]byte(header), b.Bytes()...), '\n'), Mode: 0o600})
	return n, nil
}

// netplanBeatenBy is beatenBy for netplan: another interface's gateway4 is
// a metric-0 default that no later file can take away.
func netplanBeatenBy(p *plan.Plan, f sysroot.Facts, r plan.Route) string {
	for _, l := range p.Interfaces {
		d := f.NetplanFor(l.Name)
		if d == nil || d.Gateway4 == "" || (l.Name == r.Dev && d.Gateway4 == r.Via.String()) {
			continue
		}
		return fmt.Sprintf("/%s gives %s gateway4: %s, a metric-0 default that a later netplan file cannot outrank, so the default via %s stays with %s; to make it netplan's, replace gateway4 there with routes: [{to: 0.0.0.0/0, via: %s, metric: 1024}]",
			d.File, l.Name, d.Gateway4, r.Dev, UnitName, d.Gateway4)
	}
	return ""
}

// netplanRoute is one routes: item. Values are the plan's addresses and
// numbers, plain YAML scalars as cloud-init writes them (::/0 included).
func netplanRoute(r plan.Route) []iniKey {
	var k []iniKey
	add := func(key, v string) { k = append(k, iniKey{key, v}) }
	add("to", r.To.String())
	if r.Via.IsValid() {
		add("via", r.Via.String())
		// As in the networkd drop-in: DHCP may not have given the link its
		// address yet when the route is added.
		add("on-link", "true")
	} else if r.Family == plan.V4 {
		add("scope", "link")
	}
	if r.Table != plan.TableMain {
		add("table", strconv.FormatUint(uint64(r.Table), 10))
	}
	if r.MetricSet || r.Family == plan.V4 {
		add("metric", strconv.FormatUint(uint64(r.Metric), 10))
	}
	return k
}

func netplanRule(r plan.Rule) []iniKey {
	var k []iniKey
	add := func(key, v string) { k = append(k, iniKey{key, v}) }
	if r.From.IsValid() {
		add("from", r.From.String())
	}
	if r.To.IsValid() {
		add("to", r.To.String())
	}
	if r.FWMark != "" {
		add("mark", decimalMark(r.FWMark))
	}
	add("table", strconv.FormatUint(uint64(r.Table), 10))
	add("priority", strconv.FormatUint(uint64(r.Priority), 10))
	return k
}
