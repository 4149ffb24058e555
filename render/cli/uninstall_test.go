package cli

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/distro"
)

// caseRoot is a fresh copy of a golden case's root/ with its profile at
// DefaultProfile, as renderCase makes it, before any render.
func caseRoot(t *testing.T, name string) string {
	t.Helper()
	root := t.TempDir()
	copyTree(t, filepath.Join(testdataDir, name, "root"), root)
	if err := os.MkdirAll(filepath.Join(root, distro.Dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, DefaultProfile), []byte(mustRead(t, goldenProfilePath(name))), 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

// tree maps every path under dir to what it is: a file's mode and bytes, a
// link's target, a directory's mode.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			out[rel] = "dir " + fi.Mode().String()
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			out[rel] = "link -> " + l
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = "file " + fi.Mode().String() + "\n" + string(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameTree fails t unless after is before: every file, link and directory
// (the directories render made went with uninstall).
func sameTree(t *testing.T, what string, after, before map[string]string) {
	t.Helper()
	var paths []string
	for p := range after {
		paths = append(paths, p)
	}
	for p := range before {
		if _, ok := after[p]; !ok {
			paths = append(paths, p)
		}
	}
	sort.Strings(paths)
	for _, p := range paths {
		a, aok := after[p]
		b, bok := before[p]
		switch {
		case !aok:
			t.Errorf("%s: %s is gone", what, p)
		case !bok:
			t.Errorf("%s: %s is left: %.80q", what, p, a)
		case a != b:
			t.Errorf("%s: %s differs at %s", what, p, firstDiff(a, b))
		}
	}
}

// For every golden case, render then uninstall gives the root back as it
// was, profile included, and a second uninstall has nothing to do.
func TestUninstallGolden(t *testing.T) {
	for _, name := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			root := caseRoot(t, name)
			before := tree(t, root)
			if _, stderr, code := run("render", "--root", root); code != 0 {
				t.Fatalf("render exited %d: %s", code, stderr)
			}
			rendered := tree(t, root)
			out, stderr, code := run("uninstall", "--root", root, "--dry-run")
			if code != 0 || !strings.HasSuffix(out, " changed (dry run: nothing written)\n") {
				t.Fatalf("uninstall --dry-run: exit %d, stdout %q, stderr %q", code, out, stderr)
			}
			sameTree(t, "after uninstall --dry-run", tree(t, root), rendered)
			dryOut := out
			out, stderr, code = run("uninstall", "--root", root)
			if code != 0 || stderr != "" {
				t.Fatalf("uninstall: exit %d, stderr %q", code, stderr)
			}
			if want := strings.TrimSuffix(dryOut, " (dry run: nothing written)\n") + "\n"; out != want {
				t.Errorf("uninstall said\n%s\nbut --dry-run said\n%s", out, dryOut)
			}
			if !strings.Contains(out, "removed   "+distro.Manifest+"\n") {
				t.Errorf("uninstall did not say it removed the manifest:\n%s", out)
			}
			sameTree(t, "after uninstall", tree(t, root), before)
			out, stderr, code = run("uninstall", "--root", root)
			if code != 0 || out != "0 changed\n" {
				t.Errorf("second uninstall: exit %d, stdout %q, stderr %q; want 0 changed", code, out, stderr)
			}
		})
	}
}

// The user's lines before and after the managed block survive byte for
// byte, with the file's mode; a block file render created goes.
func TestUninstallKeepsUserLines(t *testing.T) {
	root := caseRoot(t, "centos7-legacy")
	route := filepath.Join(root, distro.ScriptsDir, "route-eth1")
	top := "# mine, before\n10.9.0.0/16 via 172.22.5.65 dev eth1\n"
	if err := os.WriteFile(route, []byte(top), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := run("render", "--root", root); code != 0 {
		t.Fatalf("render exited %d: %s", code, stderr)
	}
	rendered := mustRead(t, route)
	if !strings.HasPrefix(rendered, top+"# BEGIN nicpersist\n") {
		t.Fatalf("render did not keep the user's lines above its block:\n%s", rendered)
	}
	bottom := "# mine, after\n10.8.0.0/16 via 172.22.5.65 dev eth1\n"
	if err := os.WriteFile(route, []byte(rendered+bottom), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run("uninstall", "--root", root)
	if code != 0 || !strings.Contains(out, "updated   "+distro.ScriptsDir+"/route-eth1\n") {
		t.Fatalf("uninstall: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	if got := mustRead(t, route); got != top+bottom {
		t.Errorf("route-eth1 after uninstall:\n%q\nwant\n%q", got, top+bottom)
	}
	if fi, err := os.Stat(route); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("route-eth1 mode: %v, %v; want 0600", fi, err)
	}
	// rule-eth1 was the user's (rendered into); route-eth1 here too: so
	// only a file render created goes, as in the golden case (below).
	root = caseRoot(t, "centos7-legacy")
	run("render", "--root", root)
	if !exists(filepath.Join(root, distro.ScriptsDir, "route-eth1")) {
		t.Fatal("render made no route-eth1; the test needs a block file that render creates")
	}
	out, _, _ = run("uninstall", "--root", root)
	if !strings.Contains(out, "removed   "+distro.ScriptsDir+"/route-eth1\n") || exists(filepath.Join(root, distro.ScriptsDir, "route-eth1")) {
		t.Errorf("a block file render created is left:\n%s", out)
	}
	if got, want := mustRead(t, filepath.Join(root, distro.ScriptsDir, "rule-eth1")), mustRead(t, filepath.Join(testdataDir, "centos7-legacy/root", distro.ScriptsDir, "rule-eth1")); got != want {
		t.Errorf("the user's rule-eth1 is not as it was: %s", firstDiff(got, want))
	}
}

func TestUninstallJSON(t *testing.T) {
	root := caseRoot(t, "seed")
	run("render", "--root", root)
	for _, dry := range []bool{true, false, false} {
		args := []string{"uninstall", "--root", root, "--json"}
		if dry {
			args = append(args, "--dry-run")
		}
		out, stderr, code := run(args...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		var got map[string]any
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("%v: %v:\n%s", args, err, out)
		}
		keys := []string{"changed", "files"}
		if dry {
			keys = append(keys, "dry_run")
		}
		var have []string
		for k := range got {
			have = append(have, k)
		}
		sort.Strings(have)
		sort.Strings(keys)
		if !slices.Equal(have, keys) {
			t.Errorf("%v: keys %v, want %v", args, have, keys)
		}
		files, _ := got["files"].([]any)
		changed, _ := got["changed"].(bool)
		if changed != (len(files) > 0) || files == nil {
			t.Errorf("%v: changed %v with files %v", args, got["changed"], got["files"])
		}
		for _, f := range files {
			m, _ := f.(map[string]any)
			if len(m) != 2 || m["path"] == "" || m["status"] != "removed" && m["status"] != "updated" {
				t.Errorf("%v: file entry %v", args, f)
			}
		}
	}
	// The third run (second real one) had nothing to do.
	out, _, _ := run("uninstall", "--root", root, "--json")
	if !strings.Contains(out, `"changed": false`) || !strings.Contains(out, `"files": []`) {
		t.Errorf("uninstall with nothing to do: %s", out)
	}
}

// Broken markers in one shared file: that file is refused with the reason,
// every other path is undone, the manifest stays, exit 1.
func TestUninstallBrokenMarkers(t *testing.T) {
	root := caseRoot(t, "centos7-legacy")
	run("render", "--root", root)
	rule := filepath.Join(root, distro.ScriptsDir, "rule-eth1")
	broken := strings.Replace(mustRead(t, rule), "# END nicpersist\n", "", 1)
	if err := os.WriteFile(rule, []byte(broken), 0o644); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := run("uninstall", "--root", root)
	if code != ExitRuntime {
		t.Errorf("exit %d, want %d", code, ExitRuntime)
	}
	if !strings.Contains(stderr, "rule-eth1: the \"# BEGIN nicpersist\" and \"# END nicpersist\" markers do not enclose a block") {
		t.Errorf("stderr does not name the file and the problem:\n%s", stderr)
	}
	if mustRead(t, rule) != broken {
		t.Error("the refused file changed")
	}
	if !strings.Contains(out, "removed   "+distro.UnitPath+"\n") || exists(filepath.Join(root, distro.UnitPath)) {
		t.Errorf("the other paths were not undone:\n%s", out)
	}
	if !exists(filepath.Join(root, distro.Manifest)) {
		t.Error("the manifest went; a second run could not finish")
	}
	// Once fixed, a second run finishes.
	if err := os.WriteFile(rule, []byte(broken+"# END nicpersist\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := run("uninstall", "--root", root); code != 0 {
		t.Errorf("second uninstall: exit %d: %s", code, stderr)
	}
	if exists(filepath.Join(root, distro.Manifest)) {
		t.Error("the manifest is left after the second run")
	}
}

func TestUninstallUsage(t *testing.T) {
	empty := t.TempDir()
	out, stderr, code := run("uninstall", "--root", empty)
	if code != 0 || out != "0 changed\n" || stderr != "" {
		t.Errorf("no manifest: exit %d, stdout %q, stderr %q; want 0 changed", code, out, stderr)
	}
	out, _, code = run("uninstall", "--help")
	if code != 0 || !strings.Contains(out, "systemctl stop nicpersist") || !strings.Contains(out, "--dry-run") {
		t.Errorf("--help: exit %d:\n%s", code, out)
	}
	for _, args := range [][]string{
		{"uninstall", "--root", empty, "extra"},
		{"uninstall", "--profile", "x"},
		{"uninstall", "--root", filepath.Join(empty, "missing")},
	} {
		if _, stderr, code := run(args...); code != ExitInvalid || stderr == "" {
			t.Errorf("%v: exit %d, stderr %q; want %d and a message", args, code, stderr, ExitInvalid)
		}
	}
	if out, _, _ := run("--help"); !strings.Contains(out, "nicpersist uninstall") {
		t.Errorf("top-level usage does not name uninstall:\n%s", out)
	}
}
