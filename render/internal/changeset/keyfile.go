package changeset

import (
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/distro"
	"github.com/nicpersist/nicpersist/render/internal/fsroot"
	"github.com/nicpersist/nicpersist/render/internal/keyfile"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
)

// keyfileRemoval takes out of a key file the keys the manifest says
// nicpersist set, each only while it still has the value nicpersist gave
// it: the user (or NetworkManager's rewrite) may have taken the key over.
// A file a render created (a copy of a vendor connection) goes whole.
func keyfileRemoval(r *fsroot.Root, c *Change) (*Change, error) {
	if _, created, err := readManifest(r); err != nil || created[c.Path] {
		return c, err
	}
	kf, vars := keyfile.Parse(c.Old), keyfile.ParseVars(c.Old)
	shell := strings.HasPrefix(c.Path, distro.ScriptsDir+"/")
	for _, e := range ownedKeys(r)[c.Path] {
		g, kv, _ := strings.Cut(e, " ")
		k, v, _ := strings.Cut(kv, "=")
		switch {
		case shell:
			if cur, ok := vars.Get(k); ok && cur == v {
				vars.Delete(k)
			}
		default:
			if cur, ok := kf.Get(g, k); ok && cur == v {
				kf.Delete(g, k)
			}
		}
	}
	rest := kf.Bytes()
	if shell {
		rest = vars.Bytes()
	}
	if string(rest) == string(c.Old) {
		return nil, nil
	}
	c.remove, c.New, c.Status = false, rest, Updated
	if fi, err := r.Lstat(c.Path); err == nil {
		c.Mode = fi.Mode().Perm()
	}
	return c, nil
}

// ownedKeys reads the manifest's key lines: per path, "group key=value".
func ownedKeys(r *fsroot.Root) map[string][]string {
	out := map[string][]string{}
	data, exists, err := readFile(r, sysroot.Manifest)
	if err != nil || !exists {
		return out
	}
	for _, l := range strings.Split(string(data), "\n") {
		if p, e, ok := sysroot.ParseKeyLine(l); ok && validManifestPath(p) {
			out[p] = append(out[p], e)
		}
	}
	return out
}
