package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nicpersist/nicpersist/render/testenv"
)

// The import tests run a set-up (an rc.local, or commands for --live) in
// one namespace, and import, render and apply it in an identical one; the
// kernel states must be equal. Namespaces: np-imp-<pid>-<case>-{a,b}.
const importPrefix = "np-imp-"

func needImport(t *testing.T) {
	t.Helper()
	testenv.Need(t, "make network namespaces and mount overlays", importPrefix, "sh", "unshare", "mount", "iptables", "iptables-save", "ip6tables", "ip6tables-save", "sysctl")
}

// importNS makes a namespace as a VM with three NICs is at boot: addresses
// on eth1-3 (veth, their peers left in the namespace) and the default
// route a DHCP client leaves on eth1.
func importNS(t *testing.T, suffix string) string {
	t.Helper()
	ns := testenv.Netns(t, importPrefix, suffix)
	// Link-local addresses (and their local routes) come when duplicate
	// address detection ends, at a moment no snapshot can pin: off, and
	// waited for below, they are there before anything is compared.
	run(t, "ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0", "net.ipv6.conf.all.accept_dad=0")
	var lines []string
	lines = append(lines, "link set lo up")
	addrs := map[int][2]string{1: {"172.22.5.68/27", "2001:db8:1::68/64"}, 2: {"172.22.5.100/27", "2001:db8:2::100/64"}, 3: {"172.22.5.132/26", "2001:db8:3::132/64"}}
	for i := 1; i <= 3; i++ {
		n := strconv.Itoa(i)
		lines = append(lines,
			// Fixed MACs: the link-local addresses, and their local
			// routes, are then the same in both namespaces.
			"link add eth"+n+" address 02:00:00:00:00:0"+n+" type veth peer name peer"+n+" address 02:00:00:00:01:0"+n,
			"link set peer"+n+" up",
			"link set eth"+n+" up",
			"address add "+addrs[i][0]+" dev eth"+n,
			"address add "+addrs[i][1]+" dev eth"+n+" nodad")
	}
	lines = append(lines, "route add default via 172.22.5.65 dev eth1 proto dhcp")
	ipBatch(t, ns, lines...)
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		out := run(t, "ip", "-n", ns, "-6", "-o", "address", "show", "scope", "link")
		if strings.Count(out, "fe80::") == 6 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%s: the six link-local addresses did not come:\n%s", ns, out)
		}
	}
	return ns
}

// inPrivateEtc runs a command in ns, in a mount namespace of its own where
// /etc is an overlay whose changes go to a temporary directory, with a
// sysctl.conf as the seed expects it: the rc.local cannot touch the host.
// Not bind mounts of rt_tables and sysctl.conf: sed -i renames a new file
// over the old one, which a bind-mounted file refuses ("Device or resource
// busy").
func inPrivateEtc(t *testing.T, ns string, cmd ...string) (string, string, int) {
	t.Helper()
	dir := t.TempDir()
	upper, work := filepath.Join(dir, "upper"), filepath.Join(dir, "work")
	for _, d := range []string{upper, work} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(upper, "sysctl.conf"), []byte("# as CentOS 7 ships it, with the line the seed's sed expects\nnet.ipv4.ip_forward = 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := `mount -t overlay overlay -o "lowerdir=/etc,upperdir=$1,workdir=$2" /etc && shift 2 && exec "$@"`
	args := append([]string{"netns", "exec", ns, "unshare", "-m", "--propagation", "private", "sh", "-c", script, "sh", upper, work}, cmd...)
	c := exec.Command("ip", args...)
	var stdout, stderr bytes.Buffer
	c.Stdout, c.Stderr = &stdout, &stderr
	err := c.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return stdout.String(), stderr.String(), code
}

var wantExitRE = regexp.MustCompile(`(?m)^# want-exit: (\d+)$`)

func TestImportRCLocal(t *testing.T) {
	needImport(t)
	files, err := filepath.Glob("../../testdata/import/*.sh")
	if err != nil || len(files) < 11 {
		t.Fatalf("want the rc.local cases in testdata/import: %v %v", files, err)
	}
	self := testenv.SelfAsNicpersist(t)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".sh")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want := 0
			if m := wantExitRE.FindSubmatch(src); m != nil {
				want, _ = strconv.Atoi(string(m[1]))
			}
			abs, _ := filepath.Abs(f)
			a := importNS(t, name+"-a")
			out, errOut, code := inPrivateEtc(t, a, "sh", abs)
			t.Logf("rc.local in %s: exit %d\n%s%s", a, code, out, errOut)
			wantState := importSnapshot(t, a)

			b := importNS(t, name+"-b")
			prof := filepath.Join(t.TempDir(), "profile.toml")
			_, errOut, code = inPrivateEtc(t, b, self, "import", "--rc-local", abs, "--out", prof)
			text, _ := os.ReadFile(prof)
			t.Logf("import: exit %d\n%s\n%s", code, errOut, text)
			if code != want {
				t.Fatalf("import exit %d, want %d", code, want)
			}
			gotState := applyProfile(t, self, b, prof)
			sameState(t, name, wantState, withoutAdditions(gotState, errOut))
		})
	}
}

// applyProfile renders prof and runs apply start in ns, and returns the
// snapshot after it.
func applyProfile(t *testing.T, self, ns, prof string) string {
	t.Helper()
	root := t.TempDir()
	if out, err := exec.Command(self, "render", "--profile", prof, "--root", root, "--target", "systemd").CombinedOutput(); err != nil {
		t.Fatalf("render: %v\n%s", err, out)
	}
	state := t.TempDir()
	if out, err := exec.Command("ip", "netns", "exec", ns, self, "apply", "start", "--dir", filepath.Join(root, "etc/nicpersist"), "--state", state, "--wait", "5").CombinedOutput(); err != nil {
		t.Fatalf("apply start: %v\n%s", err, out)
	}
	return importSnapshot(t, ns)
}

var additionRE = regexp.MustCompile(`note: adds route "([^"]+)"`)

// withoutAdditions drops the routes import announced it adds.
func withoutAdditions(state, stderr string) string {
	var adds []string
	for _, m := range additionRE.FindAllStringSubmatch(stderr, -1) {
		adds = append(adds, m[1])
	}
	var out []string
	for _, l := range strings.Split(state, "\n") {
		drop := false
		for _, a := range adds {
			drop = drop || l == a || strings.HasPrefix(l, a+" ")
		}
		if !drop {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// importSnapshot is the state import must reproduce: rules, every table
// (without the route protocol, which says who added a route), the NAT
// rules POSTROUTING applies in order (nicpersist's chain expanded in place
// of its jump), forwarding, and rp_filter as it acts on each NIC (the
// larger of all and the NIC's own).
func importSnapshot(t *testing.T, ns string) string {
	t.Helper()
	in := func(args ...string) string {
		return run(t, "ip", append([]string{"netns", "exec", ns}, args...)...)
	}
	var b strings.Builder
	for _, f := range []string{"-4", "-6"} {
		b.WriteString("## ip " + f + " rule\n" + in("ip", f, "rule", "show"))
		routes := strings.Split(strings.TrimSpace(in("ip", f, "route", "show", "table", "all")), "\n")
		for i, r := range routes {
			routes[i] = strings.Join(strings.Fields(regexp.MustCompile(` proto \S+`).ReplaceAllString(r, "")), " ")
		}
		slices.Sort(routes)
		b.WriteString("## ip " + f + " route\n" + strings.Join(routes, "\n") + "\n")
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		b.WriteString("## " + cmd + " nat POSTROUTING\n")
		b.WriteString(strings.Join(effectiveNAT(in(cmd+"-save", "-t", "nat")), "\n") + "\n")
	}
	sys := func(k string) string {
		return strings.TrimSpace(in("cat", "/proc/sys/"+k))
	}
	b.WriteString("## sysctl\nip_forward " + sys("net/ipv4/ip_forward") + "\nipv6 forwarding " + sys("net/ipv6/conf/all/forwarding") + "\n")
	all := sys("net/ipv4/conf/all/rp_filter")
	for _, dev := range []string{"eth1", "eth2", "eth3"} {
		b.WriteString("rp_filter " + dev + " " + max(all, sys("net/ipv4/conf/"+dev+"/rp_filter")) + "\n")
	}
	return b.String()
}

// effectiveNAT is POSTROUTING's rules in order, with a jump to
// NICPERSIST-POSTROUTING replaced by that chain's rules.
func effectiveNAT(save string) []string {
	chains := map[string][]string{}
	for _, l := range strings.Split(save, "\n") {
		if w := strings.Fields(l); len(w) > 2 && w[0] == "-A" {
			chains[w[1]] = append(chains[w[1]], strings.Join(w[2:], " "))
		}
	}
	var out []string
	for _, r := range chains["POSTROUTING"] {
		if r == "-j NICPERSIST-POSTROUTING" {
			out = append(out, chains["NICPERSIST-POSTROUTING"]...)
			continue
		}
		out = append(out, r)
	}
	return out
}

// TestImportLive sets a namespace up by hand, or with nicpersist itself,
// imports it with --live from inside, and applies the profile in a fresh
// namespace.
func TestImportLive(t *testing.T) {
	needImport(t)
	self := testenv.SelfAsNicpersist(t)
	cases := []struct {
		name  string
		setup func(t *testing.T, ns string)
	}{
		{"commands", func(t *testing.T, ns string) {
			ipBatch(t, ns,
				"route replace default via 172.22.5.97 dev eth2",
				"route add default via 172.22.5.65 dev eth1 table 101",
				"route add 172.22.5.64/27 dev eth1 table 101",
				"rule add from 172.22.5.68 table 101 pref 1200",
				"route add 10.20.0.0/16 via 172.22.5.97 dev eth2 metric 50",
				"route add default via 172.22.5.97 dev eth2 table 200",
				"rule add fwmark 0x10/0xff table 200 pref 300",
				"rule add iif eth3 table 200 pref 301")
			run(t, "ip", "-n", ns, "-6", "route", "add", "default", "via", "2001:db8:1::1", "dev", "eth1", "table", "101")
			run(t, "ip", "-n", ns, "-6", "rule", "add", "from", "2001:db8:1::68", "table", "101", "pref", "1200")
			for _, c := range [][]string{
				{"iptables", "-t", "nat", "-A", "POSTROUTING", "-s", "172.22.5.128/26", "-o", "eth2", "-j", "MASQUERADE"},
				{"iptables", "-t", "nat", "-A", "POSTROUTING", "-o", "eth1", "-j", "SNAT", "--to-source", "172.22.5.68"},
				{"ip6tables", "-t", "nat", "-A", "POSTROUTING", "-s", "2001:db8:3::/64", "-o", "eth2", "-j", "MASQUERADE"},
				{"sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=2"},
			} {
				run(t, "ip", append([]string{"netns", "exec", ns}, c...)...)
			}
		}},
		{"nicpersist", func(t *testing.T, ns string) {
			applyProfile(t, self, ns, "../../testdata/dualstack/profile.toml")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := importNS(t, "live-"+c.name+"-a")
			c.setup(t, a)
			wantState := importSnapshot(t, a)
			prof := filepath.Join(t.TempDir(), "profile.toml")
			out, err := exec.Command("ip", "netns", "exec", a, self, "import", "--live", "--out", prof).CombinedOutput()
			text, _ := os.ReadFile(prof)
			t.Logf("import --live: %v\n%s\n%s", err, out, text)
			if err != nil {
				t.Fatalf("import --live: %v", err)
			}
			b := importNS(t, "live-"+c.name+"-b")
			sameState(t, c.name, wantState, withoutAdditions(applyProfile(t, self, b, prof), string(out)))
		})
	}
}
