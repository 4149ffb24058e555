package cli

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode"

	"github.com/nicpersist/nicpersist/render/internal/diag"
	"github.com/nicpersist/nicpersist/render/internal/distro"
	"github.com/nicpersist/nicpersist/render/internal/firewalld"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/profile"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
	"github.com/nicpersist/nicpersist/render/testenv"
)

// Fuzzing.
//
//	go test ./render/cli -run '^$' -fuzz '^FuzzDecode$' -fuzztime 60s
//	go test ./render/cli -run '^$' -fuzz '^FuzzRender$' -fuzztime 60s
//
// FuzzDecode runs the decoder and validator in memory. FuzzRender runs the
// whole command into a temporary root and, for accepted profiles, feeds the
// rendered files to the tools that read them at boot (fzValidate). The
// validators take tens of milliseconds, so while fuzzing they run for one
// accepted input in fzSample, chosen by the input's hash; with
// NICPERSIST_FUZZ_VALIDATE=1 for every one, with =0 for none. Without -fuzz
// (plain go test, which runs the seeds and any saved failure) they run for
// every accepted input when the machine allows (root, tools), so that a
// failure saved under testdata/fuzz/FuzzRender reproduces.
//
// Seeds: every profile of the golden cases, testdata/fuzz/*.toml (valid and
// invalid profiles written for the fuzzers) and the bad-profile corpus.

const (
	fzEnv    = "NICPERSIST_FUZZ_VALIDATE"
	fzSample = 16
	fzPrefix = "np-fz-" // network namespaces: np-fz-<pid>-<random>
)

// fzSeeds returns every seed profile, by a name for messages.
func fzSeeds(t testing.TB) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	var globs []string
	for _, g := range []string{testdataDir + "/*/profile.toml", testdataDir + "/fuzz/*.toml", testdataDir + "/bad/*.toml", "../e2e/testdata/*.toml", "../../packaging/*.toml"} {
		m, err := filepath.Glob(g)
		if err != nil {
			t.Fatal(err)
		}
		globs = append(globs, m...)
	}
	for _, p := range globs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = b
	}
	// A golden case whose profile lives elsewhere (goldenProfiles) is still
	// a seed of its own, under its case's name: the seeds, and the mode each
	// gets in FuzzRender, stay those of one profile.toml per case, and
	// TestValidatorsOnSeeds renders it on the case's root.
	for _, name := range goldenCases(t) {
		if p := goldenProfilePath(name); p != filepath.Join(testdataDir, name, "profile.toml") {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Join(testdataDir, name, "profile.toml")] = b
		}
	}
	if len(out) < 50 {
		t.Fatalf("only %d seed profiles found", len(out))
	}
	return out
}

func sortedKeys(m map[string][]byte) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

// fuzzing reports whether this process runs under -fuzz (not a plain run of
// the seeds).
func fuzzing() bool {
	f := flag.Lookup("test.fuzz")
	return f != nil && f.Value.String() != ""
}

func FuzzDecode(f *testing.F) {
	seeds := fzSeeds(f)
	for _, k := range sortedKeys(seeds) {
		f.Add(seeds[k])
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		l := &diag.List{File: "p.toml"}
		d := profile.Decode(src, l)
		var p *plan.Plan
		if d != nil {
			p = plan.Build(d, l)
			if p != nil {
				p.Warnings(plan.System{}, l.Warnf)
			}
		}
		for _, pr := range l.Items {
			if strings.TrimSpace(pr.Msg) == "" {
				t.Errorf("problem without a message: %+v", pr)
			}
			if pr.Line < 0 {
				t.Errorf("problem with line %d: %+v", pr.Line, pr)
			}
			if pr.File != "p.toml" {
				t.Errorf("problem names file %q: %+v", pr.File, pr)
			}
			if n := strings.Count(string(src), "\n") + 1; pr.Line > n {
				t.Errorf("problem on line %d of a %d-line profile: %s", pr.Line, n, pr)
			}
			// A message is printed to a terminal: one line, no control
			// characters (a raw escape from the profile would reach it).
			if s := pr.String(); strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
				t.Errorf("problem message has a non-printable character: %q", s)
			}
		}
		switch {
		case d == nil && !l.HasErrors():
			t.Fatal("Decode gave up without an error")
		case p != nil && l.HasErrors():
			t.Fatal("Build returned a plan and errors")
		case d != nil && p == nil && !l.HasErrors():
			t.Fatal("Build returned no plan and no error")
		}
		if p == nil {
			return
		}
		fzPlanInvariants(t, p)
		// The same profile gets the same numbers.
		l2 := &diag.List{File: "p.toml"}
		p2 := plan.Build(profile.Decode(src, l2), l2)
		if p2 == nil || fmt.Sprint(*p2) != fmt.Sprint(*p) {
			t.Fatal("a second Build of the same profile differs")
		}
		// The stack targets against roots whose stack configures every
		// interface, so that all of the plan reaches their files.
		ifaces := map[string]string{}
		for _, l := range p.Interfaces {
			ifaces[l.Name] = sysroot.Interfaces
		}
		stacks := sysroot.Stacks{
			NetworkFiles: []sysroot.NetworkFile{{Path: "etc/systemd/network/10-all.network"}},
			NetplanDefs:  []sysroot.NetplanDef{{File: "etc/netplan/50-cloud-init.yaml", Type: "ethernets", ID: "all", MatchName: "*", Match: true}},
			Ifaces:       ifaces,
		}
		for _, c := range []distro.Choice{{Target: distro.Systemd}, {Target: distro.RHEL, Stack: distro.NetworkScripts}, {Target: distro.RHEL, Stack: distro.NetworkManager},
			{Target: distro.Networkd, Root: sysroot.Facts{Stacks: stacks}}, {Target: distro.Netplan, Root: sysroot.Facts{Stacks: stacks}}, {Target: distro.Ifupdown, Root: sysroot.Facts{Stacks: stacks}}} {
			files, err := distro.Render(p, c, "/etc/nicpersist/profile.toml")
			if err != nil {
				t.Fatalf("Render %s: %v", c, err)
			}
			fzFileInvariants(t, files)
		}
	})
}

// fzPlanInvariants: what every accepted plan promises the targets.
func fzPlanInvariants(t *testing.T, p *plan.Plan) {
	t.Helper()
	prios := map[[2]uint32]bool{}
	for _, r := range p.Rules {
		if r.Priority == 0 || r.Priority > 32765 {
			t.Errorf("rule %s has priority %d", r.Origin, r.Priority)
		}
		k := [2]uint32{uint32(r.Family), r.Priority}
		if prios[k] {
			t.Errorf("rule %s: priority %d used twice in IPv%d", r.Origin, r.Priority, r.Family)
		}
		prios[k] = true
		for _, s := range []netip.Prefix{r.From, r.To} {
			if s.IsValid() && fzFamily(s.Addr()) != r.Family {
				t.Errorf("rule %s: selector %s is not IPv%d", r.Origin, s, r.Family)
			}
		}
	}
	ids := map[uint32]bool{}
	for _, tb := range p.Tables {
		if tb.ID == 0 || tb.ID == 253 || tb.ID == 254 || tb.ID == 255 || ids[tb.ID] {
			t.Errorf("table %d %q (%s): reserved or duplicate id", tb.ID, tb.Name, tb.Origin)
		}
		ids[tb.ID] = true
	}
	// The kernel knows a route by table, destination and metric (IPv6's
	// unset metric is 1024): a second one fails `ip route add` in a RHEL
	// route file, or silently replaces the first through `route replace`.
	type routeID struct {
		table  uint32
		to     netip.Prefix
		metric uint32
	}
	routes := map[routeID]string{}
	for _, r := range p.Routes {
		id := routeID{r.Table, r.To, r.Metric}
		if r.Family == plan.V6 && !r.MetricSet {
			id.metric = 1024
		}
		if prev, dup := routes[id]; dup {
			t.Errorf("route %s (%s) is also made by %s", r.Origin, r.Args(), prev)
		}
		routes[id] = r.Origin
		if fzFamily(r.To.Addr()) != r.Family || r.Via.IsValid() && fzFamily(r.Via) != r.Family {
			t.Errorf("route %s: mixed families: %s", r.Origin, r.Args())
		}
		if r.Dev == "" {
			t.Errorf("route %s has no dev", r.Origin)
		}
		if r.Table != plan.TableMain && !ids[r.Table] {
			t.Errorf("route %s: table %d is not in the plan's tables", r.Origin, r.Table)
		}
	}
}

func fzFamily(a netip.Addr) plan.Family {
	if a.Is4() {
		return plan.V4
	}
	return plan.V6
}

// fzFileInvariants: rendered text that no profile may break out of.
func fzFileInvariants(t *testing.T, files []distro.File) {
	t.Helper()
	for _, f := range files {
		if f.Kind == distro.Symlink {
			continue
		}
		// The ifupdown hooks are shell: their own syntax is the template's;
		// what comes from the plan is on their ip -batch lines.
		hook := f.Path == distro.IfupHook || f.Path == distro.DhclientHook
		for i, line := range strings.Split(strings.TrimSuffix(string(f.Data), "\n"), "\n") {
			if hook && !strings.HasPrefix(line, "route replace ") && !strings.HasPrefix(line, "rule add ") {
				continue
			}
			if strings.ContainsAny(line, "\r\x00\"'`$;\\|&<>(){}") && !strings.HasPrefix(line, "#") {
				t.Errorf("%s:%d: a character a reader may take as syntax: %q", f.Path, i+1, line)
			}
		}
		if strings.HasSuffix(f.Path, ".batch") {
			for _, line := range strings.Split(string(f.Data), "\n") {
				if line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, "route replace ") || strings.HasPrefix(line, "rule add priority ") {
					continue
				}
				t.Errorf("%s: unexpected line %q", f.Path, line)
			}
		}
	}
}

// fzModes are the renders FuzzRender's mode byte picks from.
var fzModes = [][]string{
	{"--target", "systemd"},
	{"--target", "rhel", "--rhel-stack", "network-scripts"},
	{"--target", "rhel", "--rhel-stack", "networkmanager"},
}

var fzAccepted atomic.Int64

func FuzzRender(f *testing.F) {
	seeds := fzSeeds(f)
	for i, k := range sortedKeys(seeds) {
		f.Add(seeds[k], uint8(i%len(fzModes)))
	}
	validate := os.Getenv(fzEnv)
	f.Fuzz(func(t *testing.T, src []byte, mode uint8) {
		dir := t.TempDir()
		prof := filepath.Join(dir, "profile.toml")
		if err := os.WriteFile(prof, src, 0o644); err != nil {
			t.Fatal(err)
		}
		root := filepath.Join(dir, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		if int(mode)/len(fzModes)%2 == 1 {
			fzNFTRoot(t, root) // the nftables backend
		}
		pre := len(readDir(t, root))
		flags := fzModes[int(mode)%len(fzModes)]
		args := append([]string{"render", "--root", root, "--profile", prof}, flags...)
		out, errOut, code := run(args...)
		if strings.Contains(errOut, "internal error") {
			t.Fatalf("panic (recovered by Main), exit %d:\n%s", code, errOut)
		}
		_, checkErr, checkCode := run("check", "--root", t.TempDir(), "--profile", prof)
		switch code {
		case ExitInvalid:
			if entries := readDir(t, root); len(entries) != pre {
				t.Fatalf("exit 2 wrote %d entries under the root", len(entries)-pre)
			}
			if !strings.HasSuffix(errOut, "; nothing written\n") {
				t.Fatalf("exit 2 without the summary line:\n%s", errOut)
			}
			for _, l := range strings.Split(strings.TrimSuffix(errOut, "\n"), "\n") {
				if !strings.HasPrefix(l, prof+":") && !strings.HasPrefix(l, "nicpersist: ") {
					t.Errorf("stderr line names no file: %q", l)
				}
			}
			if checkCode != ExitInvalid {
				t.Fatalf("render says invalid, check exits %d", checkCode)
			}
			return
		case ExitOK:
		default:
			t.Fatalf("exit %d for a profile (1 is for I/O, and the temporary root is writable):\n%s", code, errOut)
		}
		if checkCode != ExitOK {
			t.Fatalf("render accepts the profile, check exits %d:\n%s", checkCode, checkErr)
		}
		if !strings.HasSuffix(out, " changed\n") {
			t.Fatalf("stdout %q", out)
		}
		before := snapshot(t, root)
		for p := range before {
			if strings.Contains(p, ".nicpersist-tmp-") {
				t.Fatalf("temporary file left: %s", p)
			}
		}
		if out2, errOut2, code2 := run(args...); code2 != 0 || out2 != "0 changed\n" {
			t.Fatalf("second render: exit %d, stdout %q, stderr %s", code2, out2, errOut2)
		}
		n := fzAccepted.Add(1)
		switch {
		case validate == "0":
			return
		case validate == "1", !fuzzing():
		default:
			if sum := sha256.Sum256(src); sum[0]%fzSample != 0 {
				return
			}
		}
		if why := testenv.Why("make network namespaces", fzPrefix, fzTools...); why != "" {
			if os.Getenv(testenv.Require) == "1" {
				t.Fatalf("cannot run the validators: %s, and %s=1 forbids skipping them", why, testenv.Require)
			}
			if n == 1 {
				t.Logf("not running the validators: %s", why)
			}
			return
		}
		if err := fzValidate(t, root, src); err != nil {
			t.Fatalf("rendered files (%s) fail a validator: %v\nprofile:\n%s", strings.Join(flags, " "), err, src)
		}
	})
}

// fzTools are the validators' programs (testenv adds ip for the namespaces).
var fzTools = []string{"systemd-analyze", "iptables-restore", "ip6tables-restore", "nft", "sysctl", "sh"}

// fzNFTRoot makes a root whose auto backend is nftables: nft without
// iptables.
func fzNFTRoot(t testing.TB, root string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(root, "usr/sbin"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "usr/sbin/nft"), nil, 0o755); err != nil {
		t.Fatal(err)
	}
}

func fzRun(stdin []byte, name string, args ...string) error {
	cmd := exec.Command(name, args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

// Unit files hardly vary between profiles: each distinct text
// is verified once per process.
var fzVerified sync.Map

func fzOnce(key string, data []byte, check func() error) error {
	sum := sha256.Sum256(append([]byte(key+"\x00"), data...))
	k := hex.EncodeToString(sum[:])
	if v, ok := fzVerified.Load(k); ok {
		if v == nil {
			return nil
		}
		return v.(error)
	}
	err := check()
	if err == nil {
		fzVerified.Store(k, nil)
	} else {
		fzVerified.Store(k, err)
	}
	return err
}

// fzValidate feeds a rendered root to the programs that read it at boot:
// systemd-analyze verify (the unit), iptables-restore
// --test and ip6tables-restore --test, sysctl -p (the sysctl.d drop-in) and
// `ip -batch` of ip4.batch/ip6.batch, all in a fresh network namespace
// that has the profile's interfaces (veth links, up, with their
// addresses). For rhel roots the route-/rule- files go through `ip route
// add`/`ip rule add` first, one line each, as ifup-routes runs them.
func fzValidate(t testing.TB, root string, src []byte) error {
	t.Helper()
	l := &diag.List{File: "p"}
	p := plan.Build(profile.Decode(src, l), l)
	if p == nil {
		return fmt.Errorf("the profile was rendered but does not build:\n%v", l.Items)
	}
	var errs []error
	unitPath := filepath.Join(root, distro.UnitPath)
	unitText, err := os.ReadFile(unitPath)
	if err != nil {
		return err
	}
	errs = append(errs, fzOnce("unit", unitText, func() error {
		// verify checks that the unit's programs exist here; this machine
		// has no /usr/bin/nicpersist, so the unit is verified with the path
		// of this test binary in its place.
		self, err := os.Executable()
		if err != nil {
			return err
		}
		path := filepath.Join(t.TempDir(), distro.UnitName)
		if err := os.WriteFile(path, bytes.ReplaceAll(unitText, []byte(distro.Binary+" "), []byte(self+" ")), 0o644); err != nil {
			return err
		}
		out, err := exec.Command("systemd-analyze", "verify", path).CombinedOutput()
		if err != nil || len(bytes.TrimSpace(out)) > 0 {
			return fmt.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
		return nil
	}))

	var b [4]byte
	rand.Read(b[:])
	ns := testenv.Netns(t, fzPrefix, hex.EncodeToString(b[:]))
	if err := fzLinks(ns, p); err != nil {
		return err
	}
	xt := []struct{ file, tool string }{{"iptables.rules", "iptables-restore"}, {"ip6tables.rules", "ip6tables-restore"}}
	// Where Debian has both, the legacy backend checks the rules as well:
	// its matches and targets are separate modules.
	if _, err := exec.LookPath("iptables-legacy-restore"); err == nil {
		xt = append(xt, struct{ file, tool string }{"iptables.rules", "iptables-legacy-restore"}, struct{ file, tool string }{"ip6tables.rules", "ip6tables-legacy-restore"})
	}
	if rules, err := os.ReadFile(filepath.Join(root, distro.Dir, unitfiles.NFTName)); err == nil {
		errs = append(errs, fzRun(rules, "ip", "netns", "exec", ns, "nft", "-c", "-f", "-"))
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, x := range xt {
		rules, err := os.ReadFile(filepath.Join(root, distro.Dir, x.file))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		errs = append(errs, fzRun(rules, "ip", "netns", "exec", ns, x.tool, "--test", "--noflush"))
	}
	if _, err := os.Stat(filepath.Join(root, distro.SysctlConf)); err == nil {
		errs = append(errs, fzRun(nil, "ip", "netns", "exec", ns, "sysctl", "-q", "-p", filepath.Join(root, distro.SysctlConf)))
	}
	if pols, _ := filepath.Glob(filepath.Join(root, firewalld.PolicyDir, "*.xml")); len(pols) > 0 {
		errs = append(errs, checkFirewalld(t, root))
	}
	// rhel: route-/rule- lines as ifup-routes applies them.
	scripts, _ := filepath.Glob(filepath.Join(root, distro.ScriptsDir, "r*"))
	sort.Strings(scripts)
	for _, fam := range []string{"4", "6"} {
		var batch, undo []string
		for _, s := range scripts {
			base := filepath.Base(s)
			verb := ""
			switch {
			case fam == "4" && strings.HasPrefix(base, "route-"), fam == "6" && strings.HasPrefix(base, "route6-"):
				verb = "route add "
			case fam == "4" && strings.HasPrefix(base, "rule-"), fam == "6" && strings.HasPrefix(base, "rule6-"):
				verb = "rule add "
			default:
				continue
			}
			for _, line := range fzBlock(t, s) {
				batch = append(batch, verb+line)
				if verb == "rule add " {
					undo = append(undo, "rule del "+line)
				}
			}
		}
		if len(batch) > 0 {
			errs = append(errs, fzRun([]byte(strings.Join(batch, "\n")+"\n"), "ip", "-n", ns, "-"+fam, "-batch", "-"))
		}
		// The unit adds the same rules next (and would answer "File
		// exists", which apply accepts); start from none.
		if len(undo) > 0 {
			errs = append(errs, fzRun([]byte(strings.Join(undo, "\n")+"\n"), "ip", "-n", ns, "-"+fam, "-batch", "-"))
		}
	}
	for _, fam := range []string{"4", "6"} {
		path := filepath.Join(root, distro.Dir, "ip"+fam+".batch")
		if _, err := os.Stat(path); err != nil {
			continue
		}
		lines := fzLines(t, path)
		if len(lines) > 0 {
			errs = append(errs, fzRun([]byte(strings.Join(lines, "\n")+"\n"), "ip", "-n", ns, "-"+fam, "-batch", "-"))
		}
	}
	return errors.Join(errs...)
}

// fzBlock returns the lines of nicpersist's managed block in a file it
// shares with the user (the user's own lines are not nicpersist's to check).
func fzBlock(t testing.TB, path string) []string {
	t.Helper()
	var out []string
	in := false
	for _, l := range fzLines(t, path) {
		switch {
		case strings.HasPrefix(l, "# BEGIN nicpersist"):
			in = true
		case strings.HasPrefix(l, "# END nicpersist"):
			in = false
		case in:
			out = append(out, l)
		}
	}
	return out
}

// fzLines returns a file's lines that are neither empty nor comments.
func fzLines(t testing.TB, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l != "" && (!strings.HasPrefix(l, "#") || strings.HasPrefix(l, "# BEGIN nicpersist") || strings.HasPrefix(l, "# END nicpersist")) {
			out = append(out, l)
		}
	}
	return out
}

// fzLinks gives the namespace the profile's interfaces: a veth per
// interface (its peer is named p~N, which no profile name can be), both ends
// up, with the profile's addresses (IPv6 without duplicate address
// detection, so that nothing is tentative).
func fzLinks(ns string, p *plan.Plan) error {
	var b strings.Builder
	b.WriteString("link set lo up\n")
	for i, l := range p.Interfaces {
		if l.Name == "lo" {
			continue
		}
		fmt.Fprintf(&b, "link add name %s type veth peer name p~%d\nlink set dev %s up\nlink set dev p~%d up\n", l.Name, i, l.Name, i)
		if l.Addr4.IsValid() {
			fmt.Fprintf(&b, "addr add %s dev %s\n", l.Addr4, l.Name)
		}
		if l.Addr6.IsValid() {
			fmt.Fprintf(&b, "addr add %s dev %s nodad\n", l.Addr6, l.Name)
		}
	}
	if err := fzRun([]byte(b.String()), "ip", "-n", ns, "-batch", "-"); err != nil {
		return fmt.Errorf("Linux does not take the profile's interfaces as links: %w", err)
	}
	return nil
}

// fzCase is one profile the validators must accept, rendered per mode.
func fzValidateCase(t *testing.T, name string, src []byte, rootFrom string) {
	for _, flags := range fzModes {
		t.Run(strings.Join(flags[1:], "-"), func(t *testing.T) {
			root := t.TempDir()
			if rootFrom != "" {
				copyTree(t, rootFrom, root)
			}
			prof := filepath.Join(t.TempDir(), "profile.toml")
			if err := os.WriteFile(prof, src, 0o644); err != nil {
				t.Fatal(err)
			}
			_, errOut, code := run(append([]string{"render", "--root", root, "--profile", prof}, flags...)...)
			if code != 0 {
				t.Fatalf("%s: render exited %d:\n%s", name, code, errOut)
			}
			if err := fzValidate(t, root, src); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		})
	}
	if rootFrom != "" {
		return // the golden case's root chose its backend
	}
	t.Run("systemd-nftables", func(t *testing.T) {
		root := t.TempDir()
		fzNFTRoot(t, root)
		prof := filepath.Join(t.TempDir(), "profile.toml")
		if err := os.WriteFile(prof, src, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, errOut, code := run("render", "--root", root, "--profile", prof, "--target", "systemd"); code != 0 {
			t.Fatalf("%s: render exited %d:\n%s", name, code, errOut)
		}
		if err := fzValidate(t, root, src); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	})
}

// TestValidatorsOnSeeds renders every accepted seed profile and the golden
// cases (with their roots) for each target and stack, and runs every
// validator on the result.
func TestValidatorsOnSeeds(t *testing.T) {
	testenv.Need(t, "make network namespaces", fzPrefix, fzTools...)
	seeds := fzSeeds(t)
	accepted := 0
	for _, k := range sortedKeys(seeds) {
		prof := filepath.Join(t.TempDir(), "p.toml")
		if err := os.WriteFile(prof, seeds[k], 0o644); err != nil {
			t.Fatal(err)
		}
		if _, _, code := run("check", "--root", t.TempDir(), "--profile", prof); code != 0 {
			continue
		}
		accepted++
		rootFrom := ""
		if dir := filepath.Dir(k); filepath.Base(k) == "profile.toml" && exists(filepath.Join(dir, "root")) {
			rootFrom = filepath.Join(dir, "root")
		}
		name := strings.TrimPrefix(strings.TrimPrefix(k, testdataDir+"/"), "../")
		t.Run(strings.ReplaceAll(name, "/", "_"), func(t *testing.T) {
			t.Parallel()
			fzValidateCase(t, k, seeds[k], rootFrom)
		})
	}
	if accepted < 10 {
		t.Errorf("only %d seed profiles are valid; the validators need more to chew on", accepted)
	}
	t.Run("generated-1000-routes", func(t *testing.T) {
		t.Parallel()
		fzValidateCase(t, "benchProfile(1000)", []byte(benchProfile(1000)), "")
	})
}
