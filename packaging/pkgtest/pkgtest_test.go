// Package pkgtest checks the .deb and .rpm that packaging/build.sh makes,
// with the real package tools: dpkg --root and rpm --root install them into
// scratch roots, lintian and rpmlint judge them. build.sh runs once per test
// binary (it takes about 15 s with a warm Go cache) and every test shares
// its output.
//
// A test that cannot run here (not root, a tool missing) skips and says why,
// except under NICPERSIST_E2E=1, where the skip is a failure (testenv).
package pkgtest

import (
	"bytes"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nicpersist/nicpersist/render/testenv"
)

// need skips t unless it runs as root (when rootFor says what for) with the
// tools on PATH.
func need(t *testing.T, rootFor string, tools ...string) {
	t.Helper()
	testenv.Need(t, rootFor, "", tools...)
}

// repo is the repository's root.
func repo(t *testing.T) string {
	t.Helper()
	d, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d, "packaging", "build.sh")); err != nil {
		t.Fatalf("not the repository root: %v", err)
	}
	return d
}

// built is what build.sh made, once for every test.
type built struct {
	version string
	dist    string // DIST of the default build (amd64 and arm64)
	deb     string
	rpm     string
	bumped  string // version of the second build
	deb2    string
	rpm2    string
	err     error
	log     string
}

var (
	buildOnce sync.Once
	shared    built
	tmpDirs   []string
)

func TestMain(m *testing.M) {
	code := m.Run()
	for _, d := range tmpDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// packages runs build.sh twice (the default version for both
// architectures, then a higher version for amd64, to upgrade to) and
// returns where the packages are.
func packages(t *testing.T) *built {
	t.Helper()
	need(t, "", "bash", "go", "git", "gzip")
	root := repo(t)
	buildOnce.Do(func() {
		var log bytes.Buffer
		run := func(dist string, env ...string) error {
			cmd := exec.Command("bash", "packaging/build.sh")
			cmd.Dir = root
			cmd.Env = append(os.Environ(), append([]string{"DIST=" + dist}, env...)...)
			if _, err := os.Stat(filepath.Join(root, "packaging/man/nicpersist.8.md")); err != nil {
				// Until the man page lands (another branch), build with a stand-in.
				cmd.Env = append(cmd.Env, "MAN_SRC="+filepath.Join(root, "packaging/pkgtest/testdata/nicpersist.8.md"))
				fmt.Fprintln(&log, "packaging/man/nicpersist.8.md is missing: building with packaging/pkgtest/testdata/nicpersist.8.md")
			}
			start := time.Now()
			out, err := cmd.CombinedOutput()
			fmt.Fprintf(&log, "DIST=%s %s bash packaging/build.sh: %.1f s\n%s", dist, strings.Join(env, " "), time.Since(start).Seconds(), out)
			if err != nil {
				return fmt.Errorf("build.sh: %v", err)
			}
			return nil
		}
		b := &shared
		defer func() { b.log = log.String() }()
		for _, name := range []string{"dist", "dist2"} {
			d, err := os.MkdirTemp("", "nicpersist-pkgtest-"+name+"-")
			if err != nil {
				b.err = err
				return
			}
			tmpDirs = append(tmpDirs, d)
		}
		b.dist = tmpDirs[0]
		if b.err = run(b.dist, "VERSION="); b.err != nil {
			return
		}
		debs, _ := filepath.Glob(filepath.Join(b.dist, "nicpersist_*_amd64.deb"))
		if len(debs) != 1 {
			b.err = fmt.Errorf("want one nicpersist_*_amd64.deb in %s, have %v", b.dist, debs)
			return
		}
		b.deb = debs[0]
		b.version = strings.TrimSuffix(strings.TrimPrefix(filepath.Base(b.deb), "nicpersist_"), "_amd64.deb")
		b.rpm = filepath.Join(b.dist, "nicpersist-"+b.version+"-1.x86_64.rpm")
		b.bumped = b.version + "+1"
		if b.err = run(tmpDirs[1], "VERSION="+b.bumped, "ARCHES=amd64"); b.err != nil {
			return
		}
		b.deb2 = filepath.Join(tmpDirs[1], "nicpersist_"+b.bumped+"_amd64.deb")
		b.rpm2 = filepath.Join(tmpDirs[1], "nicpersist-"+b.bumped+"-1.x86_64.rpm")
	})
	if shared.err != nil {
		t.Fatalf("%v\n%s", shared.err, shared.log)
	}
	return &shared
}

func TestBuild(t *testing.T) {
	b := packages(t)
	t.Log(b.log)
	for _, f := range []string{
		b.deb, b.rpm, b.deb2, b.rpm2,
		filepath.Join(b.dist, "nicpersist_"+b.version+"_arm64.deb"),
		filepath.Join(b.dist, "nicpersist-"+b.version+"-1.aarch64.rpm"),
	} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Error(err)
			continue
		}
		t.Logf("%s: %d bytes (%.2f MiB)", filepath.Base(f), fi.Size(), float64(fi.Size())/(1<<20))
	}
	for arch, machine := range map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64} {
		bin := filepath.Join(b.dist, "build", arch, "nicpersist")
		f, err := elf.Open(bin)
		if err != nil {
			t.Error(err)
			continue
		}
		if f.Machine != machine {
			t.Errorf("%s: machine %v, want %v", bin, f.Machine, machine)
		}
		for _, p := range f.Progs {
			if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
				t.Errorf("%s is not static: it has %v", bin, p.Type)
			}
		}
		f.Close()
	}
	out, err := exec.Command(filepath.Join(b.dist, "build", "amd64", "nicpersist"), "version").Output()
	if err != nil || string(out) != "nicpersist "+b.version+"\n" {
		t.Errorf("nicpersist version = %q, %v; want the package version %s stamped", out, err, b.version)
	}
	// The tools must never become dependencies of the binary.
	gomod, err := os.ReadFile(filepath.Join(repo(t), "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"nfpm", "go-md2man"} {
		if bytes.Contains(gomod, []byte(m)) {
			t.Errorf("go.mod mentions %s; it belongs in packaging/tools/go.mod only", m)
		}
	}
}

// run runs a command and returns its combined output; failing is t's
// failure unless ok says otherwise.
func run(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func mustRun(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, err := run(t, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// tree describes every entry under dir (not the ones skip says), by
// relative path: a directory, a link and its target, or a file's mode and
// content hash.
func tree(t *testing.T, dir string, skip func(rel string) bool) map[string]string {
	t.Helper()
	m := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if skip != nil && skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			m[rel] = "link " + target
		case fi.IsDir():
			m[rel] = "dir"
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			m[rel] = fmt.Sprintf("file %v %s mtime %d", fi.Mode(), hex.EncodeToString(sum[:8]), fi.ModTime().UnixNano())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// diffTrees says how after differs from before, one line per path.
func diffTrees(before, after map[string]string) string {
	var d []string
	for p, b := range before {
		if a, ok := after[p]; !ok {
			d = append(d, "- "+p+" ("+b+")")
		} else if a != b {
			d = append(d, "~ "+p+": "+b+" -> "+a)
		}
	}
	for p, a := range after {
		if _, ok := before[p]; !ok {
			d = append(d, "+ "+p+" ("+a+")")
		}
	}
	sort.Strings(d)
	return strings.Join(d, "\n")
}

// hostPaths are where nicpersist, its package or a render aimed at / would
// write on this machine; the scratch installations must leave them as they
// were.
var hostPaths = []string{
	"/etc/nicpersist",
	"/etc/systemd/system/nicpersist.service",
	"/etc/systemd/system/multi-user.target.wants/nicpersist.service",
	"/etc/sysctl.d/90-nicpersist.conf",
	"/etc/iproute2/rt_tables.d/nicpersist.conf",
	"/etc/sysconfig",
	"/usr/bin/nicpersist",
	"/usr/share/doc/nicpersist",
	"/usr/share/licenses",
	"/usr/share/man/man8/nicpersist.8.gz",
	"/usr/share/bash-completion/completions/nicpersist",
	"/usr/share/lintian/overrides/nicpersist",
	"/var/lib/dpkg/info/nicpersist.list",
}

func hostState(t *testing.T) string {
	t.Helper()
	var s []string
	for _, p := range hostPaths {
		fi, err := os.Lstat(p)
		if err != nil {
			s = append(s, p+": absent")
			continue
		}
		if fi.IsDir() {
			s = append(s, fmt.Sprintf("%s: %s", p, diffTrees(nil, tree(t, p, nil))))
			continue
		}
		b, _ := os.ReadFile(p)
		sum := sha256.Sum256(b)
		s = append(s, fmt.Sprintf("%s: %v %x %d", p, fi.Mode(), sum[:8], fi.ModTime().UnixNano()))
	}
	return strings.Join(s, "\n")
}

func checkHost(t *testing.T, before string) {
	t.Helper()
	if after := hostState(t); after != before {
		t.Errorf("the host changed where nicpersist writes:\nbefore:\n%s\nafter:\n%s", before, after)
	}
}

// rendered are the files the example profile renders for the systemd
// target on a Debian root.
var rendered = []string{
	"etc/iproute2/rt_tables.d/nicpersist.conf",
	"etc/nicpersist/manifest",
	"etc/nicpersist/ip4.batch",
	"etc/nicpersist/iptables.rules",
	"etc/sysctl.d/90-nicpersist.conf",
	"etc/systemd/system/nicpersist.service",
	"etc/systemd/system/multi-user.target.wants/nicpersist.service",
}

// etcOnly keeps what render and the user own: everything but the package
// manager's database and the package's files.
func etcOnly(rel string) bool { return !strings.HasPrefix(rel+"/", "etc/") }

// notPkgDB keeps everything but the package managers' own state.
func notPkgDB(rel string) bool {
	return rel == "var" || strings.HasPrefix(rel, "var/") || rel == "root" || strings.HasPrefix(rel, "root/")
}

// hasUninstall says whether the packaged binary has `nicpersist uninstall`
// (it comes from another branch); until then removal is checked except for
// the files uninstall removes.
func hasUninstall(t *testing.T, b *built) bool {
	t.Helper()
	err := exec.Command(filepath.Join(b.dist, "build", "amd64", "nicpersist"), "uninstall", "--help").Run()
	if err != nil {
		t.Logf("the packaged nicpersist has no working `uninstall --help` (%v): removal is checked without the rendered files going", err)
	}
	return err == nil
}

// scratch makes a root with the profile and what the package manager
// needs; for dpkg, a database in which the package's dependency is
// installed.
func scratch(t *testing.T, forDpkg bool) string {
	t.Helper()
	s := t.TempDir()
	mk := func(p, content string) {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(s, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s, p), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	profile, err := os.ReadFile(filepath.Join(repo(t), "packaging", "profile.example.toml"))
	if err != nil {
		t.Fatal(err)
	}
	mk("etc/nicpersist/profile.toml", string(profile))
	osRelease, err := os.ReadFile("/etc/os-release")
	if err != nil {
		t.Fatal(err)
	}
	mk("etc/os-release", string(osRelease))
	if forDpkg {
		// What dpkg --root needs: status (with the dependency), available,
		// info/ (with the dependency's file list), updates/.
		mk("var/lib/dpkg/status", `Package: iproute2
Status: install ok installed
Priority: important
Section: net
Maintainer: nicpersist pkgtest <pkgtest@invalid>
Architecture: amd64
Version: 6.1.0-3
Description: stand-in, so that nicpersist's Depends holds

`)
		mk("var/lib/dpkg/available", "")
		mk("var/lib/dpkg/info/iproute2.list", "")
		if err := os.MkdirAll(filepath.Join(s, "var/lib/dpkg/updates"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func TestDeb(t *testing.T) {
	need(t, "install packages with dpkg --root", "dpkg", "dpkg-deb", "lintian")
	b := packages(t)
	host := hostState(t)
	defer checkHost(t, host)

	t.Run("contents", func(t *testing.T) {
		list := mustRun(t, nil, "dpkg-deb", "-c", b.deb)
		for _, p := range []string{
			"./usr/bin/nicpersist",
			"./usr/share/doc/nicpersist/examples/profile.toml",
			"./usr/share/man/man8/nicpersist.8.gz",
			"./usr/share/doc/nicpersist/copyright",
			"./usr/share/doc/nicpersist/changelog.gz",
			"./usr/share/bash-completion/completions/nicpersist",
		} {
			if !strings.Contains(list, " "+p+"\n") {
				t.Errorf("the .deb lacks %s:\n%s", p, list)
			}
		}
		for _, bad := range []string{"nicpersist.service", "./etc/"} {
			if strings.Contains(list, bad) {
				t.Errorf("the .deb ships %s (rendered per machine / the user's):\n%s", bad, list)
			}
		}
		ctl := mustRun(t, nil, "dpkg-deb", "-I", b.deb)
		for _, want := range []string{"Version: " + b.version + "\n", "Architecture: amd64\n", "Depends: iproute2\n", " postinst ", " prerm ", " postrm "} {
			if !strings.Contains(ctl, want) {
				t.Errorf("control lacks %q:\n%s", want, ctl)
			}
		}
		if strings.Contains(ctl, "conffiles") {
			t.Errorf("the .deb has conffiles; it must ship none:\n%s", ctl)
		}
		x := t.TempDir()
		mustRun(t, nil, "dpkg-deb", "-x", b.deb, x)
		cp, _ := os.ReadFile(filepath.Join(x, "usr/share/doc/nicpersist/copyright"))
		if !bytes.HasPrefix(cp, []byte("Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n")) {
			t.Errorf("copyright is not DEP-5:\n%.200s", cp)
		}
		cl := mustRun(t, nil, "gzip", "-dc", filepath.Join(x, "usr/share/doc/nicpersist/changelog.gz"))
		if !regexp.MustCompile(`^nicpersist \([0-9][^)]*\) \S+; urgency=\w+\n`).MatchString(cl) {
			t.Errorf("changelog.gz is not a Debian changelog:\n%s", cl)
		}
		arm := mustRun(t, nil, "dpkg-deb", "-f", filepath.Join(b.dist, "nicpersist_"+b.version+"_arm64.deb"), "Architecture")
		if arm != "arm64\n" {
			t.Errorf("arm64 .deb: Architecture %q", arm)
		}
	})

	t.Run("lintian", func(t *testing.T) {
		out, err := run(t, nil, "lintian", "--fail-on", "error", "--display-info", "--pedantic", b.deb)
		t.Logf("lintian %s:\n%s", filepath.Base(b.deb), out)
		if err != nil || regexp.MustCompile(`(?m)^E: `).MatchString(out) {
			t.Errorf("lintian reports errors (%v)", err)
		}
	})

	s := scratch(t, true)
	dpkg := func(args ...string) (string, error) {
		return run(t, nil, "dpkg", append([]string{"--root=" + s, "--force-script-chrootless"}, args...)...)
	}
	before := tree(t, s, notPkgDB)
	var afterInstall map[string]string

	ok := t.Run("install", func(t *testing.T) {
		start := time.Now()
		out, err := dpkg("-i", b.deb)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("dpkg -i: %v\n%s", err, out)
		}
		t.Logf("dpkg -i to a rendered root: %v\n%s", took.Round(time.Millisecond), out)
		for _, f := range rendered {
			if _, err := os.Lstat(filepath.Join(s, f)); err != nil {
				t.Errorf("postinst did not render %s: %v", f, err)
			}
		}
		if !strings.Contains(out, "9 changed") {
			t.Errorf("postinst output lacks render's summary:\n%s", out)
		}
		// What the postinst rendered is exactly what render renders.
		out = mustRun(t, nil, filepath.Join(s, "usr/bin/nicpersist"), "render", "--root", s, "--dry-run")
		if !strings.Contains(out, "0 changed") {
			t.Errorf("a render after the postinst's would change files:\n%s", out)
		}
		afterInstall = tree(t, s, etcOnly)
	})
	if !ok {
		return
	}

	t.Run("reinstall", func(t *testing.T) {
		out, err := dpkg("-i", b.deb)
		if err != nil {
			t.Fatalf("dpkg -i again: %v\n%s", err, out)
		}
		if !strings.Contains(out, "0 changed") {
			t.Errorf("reinstalling re-rendered changes:\n%s", out)
		}
		if d := diffTrees(afterInstall, tree(t, s, etcOnly)); d != "" {
			t.Errorf("reinstalling changed /etc:\n%s", d)
		}
	})

	t.Run("upgrade", func(t *testing.T) {
		out, err := dpkg("-i", b.deb2)
		if err != nil {
			t.Fatalf("dpkg -i %s: %v\n%s", filepath.Base(b.deb2), err, out)
		}
		if !strings.Contains(out, "0 changed") {
			t.Errorf("upgrading re-rendered changes:\n%s", out)
		}
		if d := diffTrees(afterInstall, tree(t, s, etcOnly)); d != "" {
			t.Errorf("upgrading changed /etc:\n%s", d)
		}
		v := mustRun(t, nil, "dpkg-query", "--admindir="+filepath.Join(s, "var/lib/dpkg"), "-W", "-f=${Version} ${Status}", "nicpersist")
		if v != b.bumped+" install ok installed" {
			t.Errorf("after the upgrade: %q", v)
		}
	})

	t.Run("invalid-profile", func(t *testing.T) {
		p := filepath.Join(s, "etc/nicpersist/profile.toml")
		good, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		defer os.WriteFile(p, good, 0o644)
		bad := append(append([]byte{}, good...), "\n[[interface]]\nname = \"eth9\"\naddress = \"10.9.0.1/24\"\ngateway = \"10.8.0.1\"\n"...)
		if err := os.WriteFile(p, bad, 0o644); err != nil {
			t.Fatal(err)
		}
		beforeBad := tree(t, s, func(rel string) bool { return etcOnly(rel) || rel == "etc/nicpersist/profile.toml" })
		out, err := dpkg("-i", b.deb) // a downgrade, which runs postinst configure all the same
		if err != nil {
			t.Fatalf("an invalid profile failed dpkg -i: %v\n%s", err, out)
		}
		if !regexp.MustCompile(`profile\.toml:\d+: interface\[\d\]\.gateway: `).MatchString(out) || !strings.Contains(out, "render failed (exit 2)") {
			t.Errorf("dpkg -i does not show nicpersist's errors:\n%s", out)
		}
		t.Logf("dpkg -i with an invalid profile:\n%s", out)
		if d := diffTrees(beforeBad, tree(t, s, func(rel string) bool { return etcOnly(rel) || rel == "etc/nicpersist/profile.toml" })); d != "" {
			t.Errorf("an invalid profile changed the rendered files:\n%s", d)
		}
		// The good profile back: the next upgrade renders again.
		if err := os.WriteFile(p, good, 0o644); err != nil {
			t.Fatal(err)
		}
		if out, err := dpkg("-i", b.deb2); err != nil || !strings.Contains(out, "0 changed") {
			t.Errorf("dpkg -i with the profile fixed: %v\n%s", err, out)
		}
	})

	t.Run("remove-purge", func(t *testing.T) {
		withUninstall := hasUninstall(t, b)
		profile, _ := os.ReadFile(filepath.Join(s, "etc/nicpersist/profile.toml"))
		// invalid-profile rewrote the profile (same text, a new mtime).
		before["etc/nicpersist/profile.toml"] = tree(t, s, notPkgDB)["etc/nicpersist/profile.toml"]
		out, err := dpkg("-r", "nicpersist")
		if err != nil {
			t.Fatalf("dpkg -r: %v\n%s", err, out)
		}
		t.Logf("dpkg -r:\n%s", out)
		if _, err := os.Stat(filepath.Join(s, "usr/bin/nicpersist")); err == nil {
			t.Errorf("dpkg -r left usr/bin/nicpersist")
		}
		out, err = dpkg("-P", "nicpersist")
		if err != nil {
			t.Fatalf("dpkg -P: %v\n%s", err, out)
		}
		t.Logf("dpkg -P:\n%s", out)
		if got, _ := os.ReadFile(filepath.Join(s, "etc/nicpersist/profile.toml")); !bytes.Equal(got, profile) {
			t.Errorf("removal changed the profile")
		}
		after := tree(t, s, notPkgDB)
		if withUninstall {
			if d := diffTrees(before, after); d != "" {
				t.Errorf("after dpkg -r and -P the root differs from before the installation:\n%s", d)
			}
			return
		}
		// Without uninstall: the package's files are gone, the rendered
		// ones stay, and the scripts said so.
		for p := range after {
			if _, ok := before[p]; !ok && !strings.HasPrefix(p, "etc/") {
				t.Errorf("dpkg -P left %s", p)
			}
		}
	})
}

func TestRPM(t *testing.T) {
	need(t, "install packages with rpm --root", "rpm", "rpmlint", "rpm2cpio", "cpio", "busybox")
	b := packages(t)
	host := hostState(t)
	defer checkHost(t, host)

	t.Run("query", func(t *testing.T) {
		out := mustRun(t, nil, "rpm", "-qp", "--list", b.rpm)
		for _, p := range []string{
			"/usr/bin/nicpersist",
			"/usr/share/doc/nicpersist/examples/profile.toml",
			"/usr/share/man/man8/nicpersist.8.gz",
			"/usr/share/licenses/nicpersist/LICENSE",
			"/usr/share/bash-completion/completions/nicpersist",
		} {
			if !strings.Contains(out, p+"\n") {
				t.Errorf("the rpm lacks %s:\n%s", p, out)
			}
		}
		if strings.Contains(out, "nicpersist.service") || strings.Contains(out, "/etc/") {
			t.Errorf("the rpm ships the unit or a file in /etc:\n%s", out)
		}
		if lic := mustRun(t, nil, "rpm", "-qp", "--licensefiles", b.rpm); lic != "/usr/share/licenses/nicpersist/LICENSE\n" {
			t.Errorf("%%license: %q", lic)
		}
		if doc := mustRun(t, nil, "rpm", "-qp", "--docfiles", b.rpm); !strings.Contains(doc, "/usr/share/doc/nicpersist/examples/profile.toml\n") {
			t.Errorf("%%doc: %q", doc)
		}
		if req := mustRun(t, nil, "rpm", "-qp", "--requires", b.rpm); !strings.Contains(req, "iproute\n") {
			t.Errorf("requires: %q", req)
		}
		scripts := mustRun(t, nil, "rpm", "-qp", "--scripts", b.rpm)
		for _, re := range []string{
			`(?s)postinstall scriptlet.*"\$nicpersist" render --root .*preuninstall scriptlet`,
			`(?s)preuninstall scriptlet.*"\$nicpersist" uninstall --root .*postuninstall scriptlet`,
		} {
			if !regexp.MustCompile(re).MatchString(scripts) {
				t.Errorf("scriptlets do not match %s:\n%s", re, scripts)
			}
		}
		if cl := mustRun(t, nil, "rpm", "-qp", "--changelog", b.rpm); !strings.HasPrefix(cl, "* ") {
			t.Errorf("no %%changelog: %q", cl)
		}
		if arch := mustRun(t, nil, "rpm", "-qp", "--qf", "%{ARCH}", filepath.Join(b.dist, "nicpersist-"+b.version+"-1.aarch64.rpm")); arch != "aarch64" {
			t.Errorf("aarch64 rpm: ARCH %q", arch)
		}
	})

	t.Run("rpmlint", func(t *testing.T) {
		// nfpm's payload names files /usr/..., not ./usr/... as rpmbuild
		// does (goreleaser/nfpm#1122), and rpmlint extracts it with a bare
		// `cpio -id`, which would write them to the host's /usr. A cpio
		// that strips the leading / keeps them in rpmlint's directory.
		wrap := t.TempDir()
		cpio, _ := exec.LookPath("cpio")
		if err := os.WriteFile(filepath.Join(wrap, "cpio"), []byte("#!/bin/sh\nexec "+cpio+" --no-absolute-filenames \"$@\"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		out, err := run(t, []string{"PATH=" + wrap + ":" + os.Getenv("PATH")}, "rpmlint", "-r", filepath.Join(repo(t), "packaging", "rpmlintrc"), b.rpm)
		t.Logf("rpmlint %s:\n%s", filepath.Base(b.rpm), out)
		if err != nil || !strings.Contains(out, " 0 errors,") {
			t.Errorf("rpmlint reports errors (%v)", err)
		}
		checkHost(t, host)
	})

	// rpm runs scriptlets chrooted into --root, so the scratch root needs a
	// /bin/sh: busybox's, alone (the scripts use only shell builtins and
	// nicpersist, which is static). systemd does not run there, so the
	// systemctl branches are not exercised.
	// The directories a RHEL system's filesystem and bash-completion
	// packages own are there, as on a real system.
	s := scratch(t, false)
	bb, _ := exec.LookPath("busybox")
	for _, d := range []string{"bin", "usr/bin", "usr/share/man/man8", "usr/share/doc", "usr/share/licenses", "usr/share/bash-completion/completions"} {
		if err := os.MkdirAll(filepath.Join(s, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mustRun(t, nil, "cp", bb, filepath.Join(s, "bin/busybox"))
	if err := os.Symlink("busybox", filepath.Join(s, "bin/sh")); err != nil {
		t.Fatal(err)
	}
	before := tree(t, s, notPkgDB)
	rpm := func(args ...string) (string, error) {
		return run(t, nil, "rpm", append([]string{"--root", s, "--dbpath", "/var/lib/rpm"}, args...)...)
	}
	var afterInstall map[string]string
	ok := t.Run("install", func(t *testing.T) {
		start := time.Now()
		out, err := rpm("-i", "--nodeps", b.rpm)
		took := time.Since(start)
		if err != nil {
			t.Fatalf("rpm -i: %v\n%s", err, out)
		}
		t.Logf("rpm -i to a rendered root: %v\n%s", took.Round(time.Millisecond), out)
		for _, f := range rendered {
			if _, err := os.Lstat(filepath.Join(s, f)); err != nil {
				t.Errorf("%%post did not render %s: %v", f, err)
			}
		}
		afterInstall = tree(t, s, etcOnly)
	})
	if !ok {
		return
	}
	t.Run("upgrade", func(t *testing.T) {
		out, err := rpm("-U", "--nodeps", b.rpm2)
		if err != nil {
			t.Fatalf("rpm -U: %v\n%s", err, out)
		}
		if !strings.Contains(out, "0 changed") || strings.Contains(out, "uninstall") {
			t.Errorf("rpm -U: want a render that changes nothing and no uninstall (old %%preun, $1 = 1):\n%s", out)
		}
		if d := diffTrees(afterInstall, tree(t, s, etcOnly)); d != "" {
			t.Errorf("upgrading changed /etc:\n%s", d)
		}
	})
	t.Run("erase", func(t *testing.T) {
		withUninstall := hasUninstall(t, b)
		out, err := rpm("-e", "nicpersist")
		if err != nil {
			t.Fatalf("rpm -e: %v\n%s", err, out)
		}
		t.Logf("rpm -e:\n%s", out)
		after := tree(t, s, notPkgDB)
		if withUninstall {
			if d := diffTrees(before, after); d != "" {
				t.Errorf("after rpm -e the root differs from before the installation:\n%s", d)
			}
			return
		}
		for p := range after {
			if _, ok := before[p]; !ok && !strings.HasPrefix(p, "etc/") {
				t.Errorf("rpm -e left %s", p)
			}
		}
		if _, err := os.Stat(filepath.Join(s, "etc/nicpersist/profile.toml")); err != nil {
			t.Errorf("rpm -e removed the profile: %v", err)
		}
	})
}
