package distro

import (
	"fmt"
	"io"
	"net/netip"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// Target and stack names as the command line takes them.
const (
	RHEL           = "rhel"
	Systemd        = "systemd"
	Networkd       = "networkd"
	Netplan        = "netplan"
	Ifupdown       = "ifupdown"
	NetworkScripts = "network-scripts"
	NetworkManager = "networkmanager"
)

// Paths of the files every target renders.
const (
	Dir        = "etc/nicpersist"
	SysctlConf = "etc/sysctl.d/90-nicpersist.conf"
	UnitName   = "nicpersist.service"
	UnitPath   = "etc/systemd/system/" + UnitName
	WantsLink  = "etc/systemd/system/multi-user.target.wants/" + UnitName
	Manifest   = Dir + "/manifest"

	// The ifupdown target's second unit, which runs the if-up.d hook when
	// a link's carrier comes back.
	WatchUnitName  = "nicpersist-watch.service"
	WatchUnitPath  = "etc/systemd/system/" + WatchUnitName
	WatchWantsLink = "etc/systemd/system/multi-user.target.wants/" + WatchUnitName
)

// Choice is the target a render writes for, and why it was chosen.
type Choice struct {
	Target string
	Stack  string // for RHEL: NetworkScripts or NetworkManager
	Reason string
	// Backend is the netfilter backend (plan.BackendNFTables or
	// plan.BackendIPTables), from ChooseBackend.
	Backend string
	// Firewalld says firewalld is enabled in the root.
	Firewalld bool
	// Root is what Detect read; the stack targets render against it (which
	// .network file matches an interface, say).
	Root sysroot.Facts
}

func (c Choice) String() string {
	if c.Stack != "" {
		return c.Target + " (" + c.Stack + ")"
	}
	return c.Target
}

// Render returns every file of the target, sorted by path. The manifest is
// not among them: the writer adds it, as it alone knows what was there.
func Render(p *plan.Plan, c Choice, profile string) ([]File, error) {
	h := Header(profile)
	if c.Target == Ifupdown {
		p = keepAddrOnDown(p)
	}
	var out []File
	owned := func(path, body string) {
		out = append(out, File{Path: path, Kind: Owned, Data: []byte(h + body), Mode: 0o644})
	}
	if len(p.Tables) > 0 {
		var b strings.Builder
		for _, t := range p.Tables {
			fmt.Fprintf(&b, "%d\t%s\n", t.ID, t.Name)
		}
		owned(RTTables, b.String())
	}
	if len(p.Sysctls) > 0 {
		var conf strings.Builder
		for _, s := range p.Sysctls {
			fmt.Fprintf(&conf, "%s = %s\n", s.Key, s.Value)
		}
		owned(SysctlConf, conf.String())
	}
	// The stacks hold routes and rules themselves where they can; the unit
	// applies only the rest, as the unit applying them beside the stack
	// makes a second rule of the same priority, and its stop would delete
	// what the stack owns.
	nat, err := stackNative(p, c, h)
	if err != nil {
		return nil, err
	}
	out = append(out, nat.files...)
	uf, err := unitfiles.Render(nat.rest(p), c.Backend)
	if err != nil {
		return nil, err
	}
	for _, f := range uf {
		owned(Dir+"/"+f.Name, string(f.Body))
	}
	u, err := unitFile(h, c.Firewalld && c.Backend == plan.BackendIPTables && p.NeedsNetfilter())
	if err != nil {
		return nil, err
	}
	out = append(out,
		File{Path: UnitPath, Kind: Owned, Data: u, Mode: 0o644},
		File{Path: WantsLink, Kind: Symlink, Link: "/" + UnitPath})
	switch c.Target {
	case RHEL:
		files := ifcfgFiles(p, c)
		if err := ifcfgChecks(p, c, files); err != nil {
			return nil, err
		}
		out = append(out, files...)
		out = append(out, ifcfgRuleFiles(p, c)...)
	case NM:
		out = append(out, nmFiles(p, c)...)
	}
	sortFiles(out)
	return out, nil
}

// watchUnitFile is nicpersist-watch.service: `apply watch`, long-running.
// After networking.service: ifup has then run the hooks once, and the
// watcher repairs only what a later bounce takes away.
func watchUnitFile(header string) ([]byte, error) {
	return serializeUnit(header, []*unit.UnitOption{
		unit.NewUnitOption("Unit", "Description", "nicpersist: re-apply routes and rules when a link comes back, on ifupdown"),
		unit.NewUnitOption("Unit", "After", "networking.service"),
		unit.NewUnitOption("Service", "Type", "simple"),
		unit.NewUnitOption("Service", "ExecStart", Binary+" apply watch --dir /"+Dir),
		unit.NewUnitOption("Service", "Restart", "on-failure"),
		unit.NewUnitOption("Service", "RestartSec", "2"),
		unit.NewUnitOption("Install", "WantedBy", "multi-user.target"),
	})
}

// unitFile is the unit; afterFirewalld orders it after firewalld's start,
// for nicpersist's iptables chains, which firewalld flushes as it starts.
func unitFile(header string, afterFirewalld bool) ([]byte, error) {
	exec := func(verb string) string { return Binary + " apply " + verb + " --dir /" + Dir }
	after := "network-online.target NetworkManager.service network.service systemd-networkd.service"
	var pre []*unit.UnitOption
	if afterFirewalld {
		// firewalld is "started" for systemd once it owns its D-Bus name,
		// before it flushes every iptables table and loads its rules; it
		// answers D-Bus calls only after that, so firewall-cmd --state
		// waits for it. "-": a firewalld that failed or is stopped must
		// not keep the routes from being applied.
		after += " firewalld.service"
		pre = append(pre, unit.NewUnitOption("Service", "ExecStartPre", "-/usr/bin/firewall-cmd --state"))
	}
	opts := []*unit.UnitOption{
		unit.NewUnitOption("Unit", "Description", "nicpersist policy routing, NAT and sysctls"),
		// The links must be up with their addresses before a route can use
		// them; network-online.target is that point on every stack, and
		// apply waits for the addresses itself for stacks that reach it
		// early.
		unit.NewUnitOption("Unit", "Wants", "network-online.target"),
		unit.NewUnitOption("Unit", "After", after),
		unit.NewUnitOption("Service", "Type", "oneshot"),
		unit.NewUnitOption("Service", "RemainAfterExit", "yes"),
		unit.NewUnitOption("Service", "RuntimeDirectory", "nicpersist"),
		unit.NewUnitOption("Service", "RuntimeDirectoryPreserve", "yes"),
		unit.NewUnitOption("Service", "TimeoutStartSec", "120"),
	}
	opts = append(opts, pre...)
	opts = append(opts, []*unit.UnitOption{
		unit.NewUnitOption("Service", "ExecStart", exec("start")),
		unit.NewUnitOption("Service", "ExecReload", exec("start")),
		unit.NewUnitOption("Service", "ExecStop", exec("stop")),
		unit.NewUnitOption("Install", "WantedBy", "multi-user.target"),
	}...)
	return serializeUnit(header, opts)
}

func serializeUnit(header string, opts []*unit.UnitOption) ([]byte, error) {
	for _, o := range opts {
		// unit.Serialize writes values as they are.
		if strings.ContainsAny(o.Value, "\n\r") {
			return nil, fmt.Errorf("unit option %s=%q has a line break", o.Name, o.Value)
		}
	}
	body, err := io.ReadAll(unit.Serialize(opts))
	if err != nil {
		return nil, err
	}
	return append([]byte(header), body...), nil
}

// ifcfgFiles are the route-/rule- blocks for the RHEL stacks. Main-table
// default routes stay with the unit: ifup-routes runs `ip route add`, which
// fails on the metric-0 default the interface scripts already made.
// NetworkManager ignores route-<if> as soon as rule-<if> exists and applies
// rule files only through a dispatcher script, so under it rules are the
// unit's alone.
func ifcfgFiles(p *plan.Plan, c Choice) []File {
	legacy := c.Stack == NetworkScripts
	body := map[string][]string{}
	var order []string
	add := func(path, line string) {
		if _, ok := body[path]; !ok {
			order = append(order, path)
		}
		body[path] = append(body[path], line)
	}
	for _, r := range p.Routes {
		if r.IsMainDefault() {
			continue
		}
		add(fmt.Sprintf("%s/route%s-%s", ScriptsDir, r.Family.Suffix(), routeFileName(c, r.Dev)), r.Args())
	}
	if legacy {
		for _, r := range p.Rules {
			if home := ruleHome(p, r); home != "" {
				add(fmt.Sprintf("%s/rule%s-%s", ScriptsDir, r.Family.Suffix(), routeFileName(c, home)), r.Args())
			}
		}
	}
	var out []File
	for _, path := range order {
		out = append(out, File{Path: path, Kind: Block, Data: lines(body[path]), Mode: 0o644, Drop: rewritten(c, path, body[path])})
	}
	return out
}

// ruleHome picks the interface whose ifup applies a rule: the one it names,
// else the one whose subnet holds its source, else the first interface its
// table routes through.
func ruleHome(p *plan.Plan, r plan.Rule) string {
	if r.IIF != "" && r.IIF != "lo" {
		return r.IIF
	}
	if r.OIF != "" && r.OIF != "lo" {
		return r.OIF
	}
	for _, sel := range []netip.Prefix{r.From, r.To} {
		if !sel.IsValid() {
			continue
		}
		for _, l := range p.Interfaces {
			a := l.Addr4
			if r.Family == plan.V6 {
				a = l.Addr6
			}
			if a.IsValid() && a.Masked().Overlaps(sel) {
				return l.Name
			}
		}
	}
	for _, rt := range p.Routes {
		if rt.Table == r.Table {
			return rt.Dev
		}
	}
	if len(p.Interfaces) > 0 {
		return p.Interfaces[0].Name
	}
	return "" // only the unit applies it
}
