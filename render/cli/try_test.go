package cli

import (
	"bytes"
	"io"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/changeset"
)

// What a try refuses changes nothing: usage errors and invalid profiles
// exit 2 before the try directory exists, and --confirm without a pending
// try exits 1.
func TestTryUsage(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	t.Setenv("NICPERSIST_STATE", state)
	bad := writeProfile(t, "version = 1\n[[interface]]\nname = \"eth1\"\naddress = \"10.0.0.1/24\"\ngateway = \"10.9.9.9\"\n")
	root := t.TempDir()
	for _, c := range []struct {
		args       []string
		code       int
		stdout     string
		stderrPart string
	}{
		{[]string{"try", "--help"}, 0, "Usage of nicpersist try:", ""},
		{[]string{"try", "--timeout", "0"}, 2, "", "--timeout 0: want 1 or more seconds"},
		{[]string{"try", "--confirm", "--timeout", "5"}, 2, "", "--confirm takes no other flag"},
		{[]string{"try", "extra"}, 2, "", `unexpected argument "extra"`},
		{[]string{"try", "--root", root, "--profile", bad}, 2, "", "is not inside 10.0.0.0/24"},
		{[]string{"try", "--root", root}, 2, "", "does not exist"},
		{[]string{"try", "--root", root, "--profile", exampleProfile, "--target", "bsd"}, 2, "", "bsd"},
		{[]string{"try", "--confirm"}, 1, "", "no try is pending"},
	} {
		var out, errb bytes.Buffer
		code := Main(c.args, &out, &errb)
		if code != c.code || !strings.Contains(out.String(), c.stdout) || !strings.Contains(errb.String(), c.stderrPart) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit %d, stdout with %q, stderr with %q",
				c.args, code, out.String(), errb.String(), c.code, c.stdout, c.stderrPart)
		}
	}
	if entries := readDir(t, root); len(entries) != 0 {
		t.Errorf("the refused tries wrote into the root: %v", entries)
	}
	if _, err := os.Stat(state); err == nil {
		t.Errorf("the refused tries made the state directory %s", state)
	}
}

// A try's backup puts a root back byte for byte after the render it backed
// up: the user's lines around managed blocks, modes, links, the manifest,
// files the render created (removed again) and the directories it created.
// Each golden root, as shipped and after a render of its own profile,
// takes a render of another profile and the restore.
func TestTryBackupRestoresByteForByte(t *testing.T) {
	for _, name := range goldenCases(t) {
		other := exampleProfile
		if goldenProfilePath(name) == exampleProfile {
			other = filepath.Join(testdataDir, "dualstack", "profile.toml")
		}
		for _, rendered := range []bool{false, true} {
			root := caseRoot(t, name)
			if rendered {
				var out, errb bytes.Buffer
				if code := Main([]string{"render", "--root", root}, &out, &errb); code != 0 {
					t.Fatalf("%s: render: exit %d\n%s", name, code, errb.String())
				}
			}
			before := tree(t, root)
			l, code := load(common{profile: other, root: root}, &bytes.Buffer{})
			if l == nil {
				t.Fatalf("%s: load %s: exit %d", name, other, code)
			}
			_, files, _, code := renderFiles(l, "try", "auto", "auto", io.Discard)
			if files == nil {
				t.Fatalf("%s: render %s: exit %d", name, other, code)
			}
			changes, err := changeset.Compute(l.root, files, l.name)
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, ch := range changes {
				paths = append(paths, ch.Path)
			}
			saved, dirs, err := saveFiles(l.root, paths)
			if err != nil {
				t.Fatal(err)
			}
			if err := changeset.Write(l.root, changes); err != nil {
				t.Fatal(err)
			}
			if maps.Equal(tree(t, root), before) {
				t.Errorf("%s: the render of %s changed nothing to restore", name, other)
			}
			if err := restoreFiles(l.root, saved, dirs); err != nil {
				t.Errorf("%s: restore: %v", name, err)
			}
			l.root.Close()
			sameTree(t, name+map[bool]string{true: " (rendered)", false: ""}[rendered]+": restored", tree(t, root), before)
		}
	}
}
