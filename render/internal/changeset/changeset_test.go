package changeset

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/distro"
	"github.com/nicpersist/nicpersist/render/internal/fsroot"
)

func TestMergeBlock(t *testing.T) {
	block := []byte("a\nb\n")
	for _, c := range []struct {
		name, cur, want, err string
	}{
		{"empty file", "", "# BEGIN nicpersist\na\nb\n# END nicpersist\n", ""},
		{"user lines kept", "x via 1.2.3.4\n", "x via 1.2.3.4\n# BEGIN nicpersist\na\nb\n# END nicpersist\n", ""},
		{"no final newline", "x", "x\n# BEGIN nicpersist\na\nb\n# END nicpersist\n", ""},
		{"replace in place", "top\n# BEGIN nicpersist\nold\n# END nicpersist\nbottom", "top\n# BEGIN nicpersist\na\nb\n# END nicpersist\nbottom", ""},
		{"two begins", "# BEGIN nicpersist\n# BEGIN nicpersist\n# END nicpersist\n", "", "line 2: a second"},
		{"end before begin", "# END nicpersist\n# BEGIN nicpersist\n", "", "do not enclose"},
		{"begin only", "# BEGIN nicpersist\nx\n", "", "do not enclose"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := mergeBlock([]byte(c.cur), block)
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil || string(got) != c.want {
				t.Fatalf("got %q, %v; want %q", got, err, c.want)
			}
			again, err := mergeBlock(got, block)
			if err != nil || string(again) != string(got) {
				t.Fatalf("not idempotent: %q, %v", again, err)
			}
		})
	}
}

func open(t *testing.T) (*fsroot.Root, string) {
	t.Helper()
	dir := t.TempDir()
	r, err := fsroot.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r, dir
}

func apply(t *testing.T, r *fsroot.Root, files []distro.File) []Change {
	t.Helper()
	cs, err := Compute(r, files, "p.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(r, cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// writeTree writes files (path relative to dir: content) with their parent
// directories: the machine's own files before nicpersist runs.
func writeTree(t *testing.T, dir string, mode os.FileMode, files map[string]string) {
	t.Helper()
	for rel, text := range files {
		p := filepath.Join(dir, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
	}
}

func TestRemovesWhatItNoLongerRenders(t *testing.T) {
	r, dir := open(t)
	route := "etc/sysconfig/network-scripts/route-eth1"
	writeTree(t, dir, 0o644, map[string]string{route: "user line\n"})
	first := []distro.File{
		{Path: "etc/nicpersist/ip4.batch", Kind: distro.Owned, Data: []byte(distro.Header("p.toml") + "x\n"), Mode: 0o644},
		{Path: route, Kind: distro.Block, Data: []byte("r1\n"), Mode: 0o644},
		{Path: "etc/sysconfig/network-scripts/route-eth2", Kind: distro.Block, Data: []byte("r2\n"), Mode: 0o644},
		{Path: distro.WantsLink, Kind: distro.Symlink, Link: "/" + distro.UnitPath},
	}
	apply(t, r, first)
	cs := apply(t, r, nil)
	status := map[string]Status{}
	for _, c := range cs {
		status[c.Path] = c.Status
	}
	for p, want := range map[string]Status{
		"etc/nicpersist/ip4.batch": Removed, route: Updated,
		"etc/sysconfig/network-scripts/route-eth2": Removed, distro.WantsLink: Removed,
	} {
		if status[p] != want {
			t.Errorf("%s: %s, want %s", p, status[p], want)
		}
	}
	if b, err := os.ReadFile(filepath.Join(dir, route)); err != nil || string(b) != "user line\n" {
		t.Errorf("user file after removal: %q, %v", b, err)
	}
	for _, p := range []string{"etc/nicpersist/ip4.batch", "etc/sysconfig/network-scripts/route-eth2", distro.WantsLink} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s still exists", p)
		}
	}
	if cs := apply(t, r, nil); cs[len(cs)-1].Changed() || len(cs) != 1 {
		t.Errorf("third render changed something: %+v", cs)
	}
}

func TestRefusesForeignFileAndMalformedBlocks(t *testing.T) {
	r, dir := open(t)
	writeTree(t, dir, 0o644, map[string]string{
		distro.SysctlConf:                "vm.swappiness = 1\n",
		distro.ScriptsDir + "/rule-eth1": "# END nicpersist\n",
	})
	_, err := Compute(r, []distro.File{
		{Path: distro.SysctlConf, Kind: distro.Owned, Data: []byte("x"), Mode: 0o644},
		{Path: distro.ScriptsDir + "/rule-eth1", Kind: distro.Block, Data: []byte("y\n"), Mode: 0o644},
		{Path: distro.RTTables, Kind: distro.Owned, Data: []byte("z"), Mode: 0o644},
	}, "p.toml")
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"90-nicpersist.conf: exists and was not written by nicpersist", "rule-eth1: the \"# BEGIN nicpersist\""} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

func TestDiff(t *testing.T) {
	c := Change{Path: "f", Status: Updated, Old: []byte("a\nb\nc\n"), New: []byte("a\nB\nc\n")}
	want := "--- a/f\n+++ b/f\n@@ -1,3 +1,3 @@\n a\n-b\n+B\n c\n"
	if got := c.Diff(); got != want {
		t.Errorf("diff:\n%s\nwant:\n%s", got, want)
	}
	c = Change{Path: "g", Status: Created, New: []byte("x\n")}
	if got := c.Diff(); got != "--- /dev/null\n+++ b/g\n@@ -0,0 +1 @@\n+x\n" {
		t.Errorf("created diff: %q", got)
	}
}

// A render killed while writing a file only the other profile has leaves a
// temporary file beside a path that may never exist; the next render, of
// either profile, removes it.
func TestClearsTemporaryFilesOfOwnedPaths(t *testing.T) {
	r, dir := open(t)
	old := distro.File{Path: "etc/sysconfig/network-scripts/route6-eth2", Kind: distro.Block, Data: []byte("x\n"), Mode: 0o644}
	apply(t, r, []distro.File{old})
	if err := os.Remove(filepath.Join(dir, old.Path)); err != nil {
		t.Fatal(err)
	}
	temp := filepath.Join(dir, "etc/sysconfig/network-scripts/.route6-eth2.nicpersist-tmp-0123")
	user := filepath.Join(dir, "etc/sysconfig/network-scripts/.other.nicpersist-tmp-0123")
	writeTree(t, dir, 0o600, map[string]string{
		"etc/sysconfig/network-scripts/.route6-eth2.nicpersist-tmp-0123": "partial",
		"etc/sysconfig/network-scripts/.other.nicpersist-tmp-0123":       "not ours",
	})
	apply(t, r, nil)
	if _, err := os.Lstat(temp); !os.IsNotExist(err) {
		t.Errorf("temporary file of an owned path survived: %v", err)
	}
	if _, err := os.Lstat(user); err != nil {
		t.Errorf("a file beside no owned path was removed: %v", err)
	}
}

const (
	route1 = distro.ScriptsDir + "/route-eth1"
	route2 = distro.ScriptsDir + "/route-eth2"
)

func readManifestText(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, distro.Manifest))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// The manifest says which block files render created, and keeps saying it
// on later renders (when the file exists by then); a file that was there
// before is not marked.
func TestManifestRecordsCreatedBlockFiles(t *testing.T) {
	r, dir := open(t)
	writeTree(t, dir, 0o644, map[string]string{route1: "user line\n"})
	files := []distro.File{
		{Path: route1, Kind: distro.Block, Data: []byte("r1\n"), Mode: 0o644},
		{Path: route2, Kind: distro.Block, Data: []byte("r2\n"), Mode: 0o644},
	}
	apply(t, r, files)
	want := "block " + route1 + "\nblock " + route2 + "\ncreated " + route2 + "\n"
	if m := readManifestText(t, dir); !strings.HasSuffix(m, want) {
		t.Fatalf("manifest:\n%s\nwant it to end with:\n%s", m, want)
	}
	files[1].Data = []byte("r2 changed\n")
	apply(t, r, files)
	if m := readManifestText(t, dir); !strings.HasSuffix(m, want) {
		t.Errorf("second render lost the mark:\n%s", m)
	}
	_, created, err := readManifest(r)
	if err != nil || len(created) != 1 || !created[route2] {
		t.Errorf("readManifest: created %v, %v", created, err)
	}
}

// A "created" line without its block entry, or naming a file or link, is
// ignored: only block files can be left empty by nicpersist.
func TestManifestCreatedNeedsBlockEntry(t *testing.T) {
	r, dir := open(t)
	writeTree(t, dir, 0o644, map[string]string{distro.Manifest: distro.Header("p") +
		"file " + distro.SysctlConf + "\ncreated " + distro.SysctlConf + "\ncreated " + route1 + "\nblock " + route2 + "\ncreated " + route2 + "\n"})
	_, created, err := readManifest(r)
	if err != nil || len(created) != 1 || !created[route2] {
		t.Errorf("created %v, %v; want only %s", created, err, route2)
	}
}
