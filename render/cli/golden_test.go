package cli

import (
	"bytes"
	"flag"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

const testdataDir = "../../testdata"

// goldenProfile is where renderCase puts the profile, so headers name it.
const goldenProfile = "/" + DefaultProfile

// exampleProfile is the profile the README's first command renders. It is
// the only copy of the seed profile in the repository (TestSeedProfileOnce):
// the golden cases that render it name it in goldenProfiles instead of
// keeping a profile.toml of their own.
const exampleProfile = "../../packaging/profile.example.toml"

// goldenProfiles maps a golden case to a profile kept outside its directory.
// A case not listed here renders testdata/<case>/profile.toml.
var goldenProfiles = map[string]string{
	"seed":                        exampleProfile,
	"centos7-legacy":              exampleProfile,
	"rhel9-nm":                    exampleProfile,
	"nm-keyfile":                  exampleProfile,
	"rhel8-ifcfg":                 "../e2e/testdata/dualstack.toml",
	"nm-dualstack":                "../e2e/testdata/dualstack.toml",
	"debian12-networkd-static-gw": exampleProfile,
	// The same recipes for the iptables backend (iptables-legacy, Docker).
	"iptables-recipes": "../../testdata/nft-recipes/profile.toml",
}

// goldenProfilePath is the profile a golden case renders.
func goldenProfilePath(name string) string {
	if p, ok := goldenProfiles[name]; ok {
		return p
	}
	return filepath.Join(testdataDir, name, "profile.toml")
}

// goldenCases are the directories of testdata with a root/ tree and a
// profile (goldenProfilePath), and a want/ tree (or a want/ to be made with
// -update).
func goldenCases(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(testdataDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() && exists(goldenProfilePath(e.Name())) && exists(filepath.Join(testdataDir, e.Name(), "root")) {
			out = append(out, e.Name())
		}
	}
	for name := range goldenProfiles {
		if !slices.Contains(out, name) {
			t.Fatalf("goldenProfiles names %s, but testdata/%s has no root/ or %s does not exist", name, name, goldenProfiles[name])
		}
	}
	if len(out) == 0 {
		t.Fatal("no golden cases under testdata")
	}
	return out
}

func exists(p string) bool { _, err := os.Lstat(p); return err == nil }

// copyTree copies a directory with its symlinks as links.
func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		dst := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			return os.MkdirAll(dst, 0o755)
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, dst)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		perm := fi.Mode().Perm()
		if strings.HasSuffix(p, ".nmconnection") {
			// Git keeps only the executable bit, and NetworkManager reads
			// a keyfile only when it is 0600: a checkout's 0644 is no
			// real machine's.
			perm = 0o600
		}
		return os.WriteFile(dst, b, perm)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// snapshot maps every path under dir to its content, "-> target" for links
// (modes are not compared here).
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if d.Type()&fs.ModeSymlink != 0 {
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "-> " + l
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		out[rel] = string(b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// renderCase renders one case into a fresh copy of its root.
func renderCase(t *testing.T, name string) (root, stdout, stderr string) {
	t.Helper()
	root = t.TempDir()
	copyTree(t, filepath.Join(testdataDir, name, "root"), root)
	prof, err := os.ReadFile(goldenProfilePath(name))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(root, "etc/nicpersist"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, DefaultProfile), prof, 0o644); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code := run("render", "--root", root)
	if code != 0 {
		t.Fatalf("render exited %d:\n%s", code, stderr)
	}
	return root, stdout, stderr
}

func run(args ...string) (string, string, int) {
	var o, e bytes.Buffer
	code := Main(args, &o, &e)
	return o.String(), e.String(), code
}

// firstDiff points at the first differing line of two texts.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return "line " + strconv.Itoa(i+1) + ":\n  got:  " + gl + "\n  want: " + wl
		}
	}
	return "(equal)"
}

func TestGolden(t *testing.T) {
	for _, name := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			root, _, stderr := renderCase(t, name)
			got := snapshot(t, root)
			// The profile is the test's input, not the render's output:
			// want/ leaves it out (so the seed profile is not copied
			// there), and the render must leave it as it was.
			prof := mustRead(t, goldenProfilePath(name))
			if got[DefaultProfile] != prof {
				t.Errorf("%s: the render changed the profile at %s", DefaultProfile, firstDiff(got[DefaultProfile], prof))
			}
			rendered := maps.Clone(got)
			delete(rendered, DefaultProfile)
			wantDir := filepath.Join(testdataDir, name, "want")
			checkOut, checkErr, code := run("check", "--root", root)
			if code != 0 {
				t.Fatalf("check exited %d: %s", code, checkErr)
			}
			report := "$ nicpersist render\n" + stderr + "$ nicpersist check\n" + checkErr + checkOut
			report = strings.ReplaceAll(report, root, "<root>")
			if *update {
				if err := os.RemoveAll(wantDir); err != nil {
					t.Fatal(err)
				}
				copyTree(t, root, wantDir)
				if err := os.Remove(filepath.Join(wantDir, DefaultProfile)); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join(testdataDir, name, "report.golden"), []byte(report), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want := snapshot(t, wantDir)
			var paths []string
			for p := range rendered {
				paths = append(paths, p)
			}
			for p := range want {
				if _, ok := rendered[p]; !ok {
					paths = append(paths, p)
				}
			}
			sort.Strings(paths)
			for _, p := range paths {
				g, gok := rendered[p]
				w, wok := want[p]
				switch {
				case !gok:
					t.Errorf("%s: not rendered, but in want/", p)
				case !wok:
					t.Errorf("%s: rendered, but not in want/ (run go test ./render/cli -update and review the diff)", p)
				case g != w:
					t.Errorf("%s differs from want/ at %s", p, firstDiff(g, w))
				}
			}
			wantReport, err := os.ReadFile(filepath.Join(testdataDir, name, "report.golden"))
			if err != nil {
				t.Fatalf("%v (run go test ./render/cli -update and review the diff)", err)
			}
			if report != string(wantReport) {
				t.Errorf("report.golden differs at %s", firstDiff(report, string(wantReport)))
			}
			// Idempotence: a second render changes no byte and says so.
			out, errOut, code := run("render", "--root", root)
			if code != 0 || !strings.HasSuffix(out, "0 changed\n") {
				t.Errorf("second render: exit %d, stdout %q, stderr %q; want 0 changed", code, out, errOut)
			}
			faultSame(t, "second render changed the tree", snapshot(t, root), got)
			out, _, _ = run("render", "--root", root, "--json")
			if !strings.Contains(out, `"changed": false`) {
				t.Errorf("second render --json: %s", out)
			}
		})
	}
}

// TestSeedProfileOnce keeps the seed profile one file: the README's example
// (exampleProfile), which the golden cases, the fault, e2e and benchmark
// tests read. A byte-identical copy anywhere else in the repository (a
// testdata/<case>/profile.toml, a want/ tree) would drift from it unseen.
func TestSeedProfileOnce(t *testing.T) {
	seed := []byte(mustRead(t, exampleProfile))
	if len(seed) == 0 {
		t.Fatalf("%s is empty", exampleProfile)
	}
	repo, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	self, err := filepath.Abs(exampleProfile)
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(repo, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		if !d.Type().IsRegular() || p == self {
			return nil
		}
		if fi, err := d.Info(); err != nil || fi.Size() != int64(len(seed)) {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if bytes.Equal(b, seed) {
			rel, _ := filepath.Rel(repo, p)
			t.Errorf("%s is a copy of packaging/profile.example.toml; name the example in goldenProfiles (golden_test.go) instead", rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
