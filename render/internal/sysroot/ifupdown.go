package sysroot

import (
	"path"
	"strings"
)

// Interfaces is ifupdown's configuration file.
const Interfaces = "etc/network/interfaces"

// readIfaces returns the interfaces that ifupdown's configuration has an
// iface stanza for, each with the file that holds it, following source and
// source-directory as ifup does (globs and relative paths included).
func readIfaces(t Tree) map[string]string {
	out := map[string]string{}
	seen := map[string]bool{}
	var read func(file string, depth int)
	read = func(file string, depth int) {
		if seen[file] || depth > 8 {
			return
		}
		seen[file] = true
		b, err := t.ReadFile(file)
		if err != nil {
			return
		}
		for _, l := range strings.Split(strings.ReplaceAll(string(b), "\\\n", " "), "\n") {
			w := strings.Fields(l)
			if len(w) < 2 || strings.HasPrefix(w[0], "#") {
				continue
			}
			switch w[0] {
			case "iface":
				if _, ok := out[w[1]]; !ok {
					out[w[1]] = file
				}
			case "source", "source-directory":
				for _, pat := range w[1:] {
					p := strings.TrimPrefix(pat, "/")
					if !strings.HasPrefix(pat, "/") {
						p = path.Join(path.Dir(file), pat)
					}
					for _, f := range expand(t, p, w[0] == "source-directory") {
						read(f, depth+1)
					}
				}
			}
		}
	}
	read(Interfaces, 0)
	if len(out) == 0 {
		return nil // as the other facts: absent is the zero value
	}
	return out
}

// expand lists the files a source line names: a glob's matches, or a
// directory's files whose names run-parts would take.
func expand(t Tree, p string, dir bool) []string {
	if dir {
		names, _ := t.ReadDir(p)
		var out []string
		for _, n := range names {
			if strings.Trim(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == "" {
				out = append(out, p+"/"+n)
			}
		}
		return out
	}
	d, pat := path.Split(p)
	d = strings.TrimSuffix(d, "/")
	names, _ := t.ReadDir(d)
	var out []string
	for _, n := range names {
		if ok, _ := path.Match(pat, n); ok {
			out = append(out, d+"/"+n)
		}
	}
	return out
}
