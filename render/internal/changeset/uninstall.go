package changeset

import (
	"errors"
	"fmt"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/distro"
	"github.com/nicpersist/nicpersist/render/internal/fsroot"
)

// userProfile is the profile's default place: the user's, never removed.
const userProfile = distro.Dir + "/profile.toml"

// Uninstall works out, without writing, how to remove what the manifest says
// render made: the enable link first (so the unit is off before its file
// goes), every owned file, the managed block of each shared file (a file
// left with nothing else in it is removed only when the manifest says
// nicpersist created it), then the manifest, and etc/nicpersist when nothing
// else is in it. Write carries the changes out.
//
// A file it cannot undo (broken markers, a path it cannot read) is an error
// joined into err; the changes for every other path are still returned, but
// then the manifest stays, so that uninstall can finish once that is fixed.
// A root without a manifest gives no change and no error.
func Uninstall(r *fsroot.Root) ([]Change, error) {
	old, created, err := readManifest(r)
	if err != nil {
		return nil, err
	}
	if !r.Exists(distro.Manifest) {
		return nil, nil
	}
	paths := make([]string, 0, len(old))
	for p := range old {
		if p != distro.Manifest && p != userProfile {
			paths = append(paths, p)
		}
	}
	sort.Slice(paths, func(i, j int) bool {
		li, lj := old[paths[i]] == distro.Symlink, old[paths[j]] == distro.Symlink
		if li != lj {
			return li
		}
		return paths[i] < paths[j]
	})
	var changes []Change
	var errs []error
	gone := map[string]bool{}
	for _, p := range paths {
		c, err := removal(r, p, old[p], !created[p])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if c != nil {
			changes = append(changes, *c)
			gone[p] = c.remove
		}
	}
	if len(errs) > 0 {
		return changes, errors.Join(errs...)
	}
	mc, err := removal(r, distro.Manifest, distro.Owned, false)
	if err != nil {
		return changes, err
	}
	if mc == nil {
		return changes, fmt.Errorf("%s: was not written by nicpersist (no generated header); left as is", r.Path(distro.Manifest))
	}
	// A killed render may have left temporary files beside any path.
	mc.sweep = append(append([]string(nil), paths...), distro.Manifest)
	changes = append(changes, *mc)
	gone[distro.Manifest] = true
	// etc/nicpersist when empty, and then, deepest first, each directory a
	// render created that nothing else has come to live in.
	dirs, err := readDirs(r)
	if err != nil {
		return changes, err
	}
	dirs[distro.Dir] = true
	order := slices.SortedFunc(maps.Keys(dirs), func(a, b string) int {
		if c := strings.Count(b, "/") - strings.Count(a, "/"); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	for _, d := range order {
		if dc := removeDirIfEmpty(r, d, gone, mc.sweep); dc != nil {
			changes = append(changes, *dc)
			gone[d] = true
		}
	}
	return changes, nil
}

// removeDirIfEmpty is the removal of dir when, once the paths in gone are
// removed and the temporary files beside the paths in sweep are cleared,
// nothing is left in it.
func removeDirIfEmpty(r *fsroot.Root, dir string, gone map[string]bool, sweep []string) *Change {
	fi, err := r.Lstat(dir)
	if err != nil || !fi.IsDir() {
		return nil
	}
	names, err := r.ReadDir(dir)
	if err != nil {
		return nil
	}
	swept := map[string]bool{}
	for _, p := range sweep {
		swept[p] = true
	}
	for _, n := range names {
		p := path.Join(dir, n)
		if gone[p] {
			continue
		}
		if base, ok := fsroot.TempOf(n); ok && swept[path.Join(dir, base)] {
			continue
		}
		return nil
	}
	return &Change{Path: dir, Status: Removed, remove: true, dir: true}
}
