package changeset

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/distro"
	"github.com/nicpersist/nicpersist/render/internal/fsroot"
)

func status(cs []Change) map[string]Status {
	out := map[string]Status{}
	for _, c := range cs {
		out[c.Path] = c.Status
	}
	return out
}

func uninstall(t *testing.T, r *fsroot.Root) []Change {
	t.Helper()
	cs, err := Uninstall(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := Write(r, cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

func TestUninstall(t *testing.T) {
	r, dir := open(t)
	user := "# mine\n10.0.0.0/8 via 1.2.3.4\n"
	writeTree(t, dir, 0o600, map[string]string{route1: user})
	writeTree(t, dir, 0o644, map[string]string{
		distro.ScriptsDir + "/route-eth3": "", // the user's, empty
		distro.Dir + "/profile.toml":      "version = 1\n",
	})
	apply(t, r, []distro.File{
		{Path: distro.Dir + "/ip4.batch", Kind: distro.Owned, Data: []byte(distro.Header("p.toml") + "x\n"), Mode: 0o644},
		{Path: route1, Kind: distro.Block, Data: []byte("r1\n"), Mode: 0o644},
		{Path: route2, Kind: distro.Block, Data: []byte("r2\n"), Mode: 0o644},
		{Path: distro.ScriptsDir + "/route-eth3", Kind: distro.Block, Data: []byte("r3\n"), Mode: 0o644},
		{Path: distro.WantsLink, Kind: distro.Symlink, Link: "/" + distro.UnitPath},
	})
	// The user adds a line to a file nicpersist created: it stays.
	f, err := os.OpenFile(filepath.Join(dir, route2), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("late user line\n")
	f.Close()
	cs := uninstall(t, r)
	if cs[0].Path != distro.WantsLink {
		t.Errorf("first change is %s; want the enable link first", cs[0].Path)
	}
	got := status(cs)
	for p, want := range map[string]Status{
		distro.Dir + "/ip4.batch": Removed, route1: Updated, route2: Updated,
		distro.ScriptsDir + "/route-eth3": Updated, distro.WantsLink: Removed, distro.Manifest: Removed,
	} {
		if got[p] != want {
			t.Errorf("%s: %q, want %s", p, got[p], want)
		}
	}
	if _, ok := got[distro.Dir]; ok {
		t.Errorf("%s removed, but the profile is in it", distro.Dir)
	}
	for p, want := range map[string]string{
		route1: user, route2: "late user line\n", distro.ScriptsDir + "/route-eth3": "",
		distro.Dir + "/profile.toml": "version = 1\n",
	} {
		if b, err := os.ReadFile(filepath.Join(dir, p)); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", p, b, err, want)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, route1)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("%s lost its mode: %v, %v", route1, fi, err)
	}
	for _, p := range []string{distro.Dir + "/ip4.batch", distro.WantsLink, distro.Manifest} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s still exists", p)
		}
	}
	if cs := uninstall(t, r); len(cs) != 0 {
		t.Errorf("second uninstall: %+v", cs)
	}
}

// A block file nicpersist created goes when nothing else is in it, and
// etc/nicpersist and the directories a render created go when they are
// empty; temporary files a killed render left go with them. A directory
// that was there before the render stays, empty or not.
func TestUninstallRemovesCreatedFilesAndEmptyDir(t *testing.T) {
	r, dir := open(t)
	if err := os.MkdirAll(filepath.Join(dir, "etc/sysconfig"), 0o755); err != nil {
		t.Fatal(err)
	}
	apply(t, r, []distro.File{
		{Path: distro.Dir + "/links", Kind: distro.Owned, Data: []byte(distro.Header("p.toml")), Mode: 0o644},
		{Path: route2, Kind: distro.Block, Data: []byte("r2\n"), Mode: 0o644},
	})
	writeTree(t, dir, 0o600, map[string]string{distro.Dir + "/.links.nicpersist-tmp-0123": "partial"})
	cs := uninstall(t, r)
	if s := status(cs); s[route2] != Removed || s[distro.Dir] != Removed {
		t.Errorf("changes %v", s)
	}
	for _, p := range []string{route2, distro.Dir, distro.ScriptsDir} {
		if _, err := os.Lstat(filepath.Join(dir, p)); !os.IsNotExist(err) {
			t.Errorf("%s still exists", p)
		}
	}
	if fi, err := os.Stat(filepath.Join(dir, "etc/sysconfig")); err != nil || !fi.IsDir() {
		t.Errorf("etc/sysconfig, there before the render, went: %v", err)
	}
}

// A manifest from before "created" lines: its block files count as the
// user's, and an emptied one stays (empty).
func TestUninstallOldManifest(t *testing.T) {
	r, dir := open(t)
	writeTree(t, dir, 0o644, map[string]string{
		distro.Manifest: distro.Header("p.toml") + "block " + route2 + "\n",
		route2:          Begin + "\nr2\n" + End + "\n",
	})
	cs := uninstall(t, r)
	if s := status(cs); s[route2] != Updated {
		t.Errorf("changes %v", s)
	}
	if b, err := os.ReadFile(filepath.Join(dir, route2)); err != nil || len(b) != 0 {
		t.Errorf("%s: %q, %v; want it kept, empty", route2, b, err)
	}
}

// Broken markers in one file: that file is refused, the others are undone,
// and the manifest stays for a second run.
func TestUninstallBrokenMarkers(t *testing.T) {
	r, dir := open(t)
	apply(t, r, []distro.File{
		{Path: distro.Dir + "/links", Kind: distro.Owned, Data: []byte(distro.Header("p.toml")), Mode: 0o644},
		{Path: route1, Kind: distro.Block, Data: []byte("r1\n"), Mode: 0o644},
	})
	broken := "user\n" + Begin + "\nr1\n"
	writeTree(t, dir, 0o644, map[string]string{route1: broken})
	cs, err := Uninstall(r)
	if err == nil || !strings.Contains(err.Error(), "route-eth1: the \"# BEGIN nicpersist\"") {
		t.Fatalf("err = %v", err)
	}
	if err := Write(r, cs); err != nil {
		t.Fatal(err)
	}
	if s := status(cs); len(s) != 1 || s[distro.Dir+"/links"] != Removed {
		t.Errorf("changes %v; want only links removed", s)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, route1)); string(b) != broken {
		t.Errorf("broken file changed: %q", b)
	}
	if _, err := os.Stat(filepath.Join(dir, distro.Manifest)); err != nil {
		t.Errorf("manifest: %v; want it kept", err)
	}
}

func TestUninstallNoManifest(t *testing.T) {
	r, _ := open(t)
	if cs, err := Uninstall(r); err != nil || len(cs) != 0 {
		t.Errorf("%v, %v; want nothing", cs, err)
	}
}
