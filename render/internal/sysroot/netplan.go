package sysroot

import (
	"path"
	"strings"
)

// NetplanDef is one device definition of a netplan file: what netplan merges
// a later file's definition of the same type and id into.
type NetplanDef struct {
	File string // under the root
	Type string // ethernets, bonds, vlans, ...
	ID   string
	// SetName and MatchName are its set-name and match: name; Match says it
	// has a match: block at all (by MAC address or driver, say).
	SetName, MatchName string
	Match              bool
	// Gateway4 is its gateway4 (deprecated, but what many images carry): a
	// static metric-0 default.
	Gateway4 string
}

// readNetplan reads the device definitions of the netplan files, in the
// order netplan reads them. It understands the block YAML that cloud-init
// and people write, and flow mappings on one line ({name: eth1}); what it
// cannot read it passes over, as an absent definition.
func readNetplan(t Tree, files []string) []NetplanDef {
	var out []NetplanDef
	for _, f := range files {
		b, err := t.ReadFile(f)
		if err != nil {
			continue
		}
		defs := map[[2]string]*NetplanDef{}
		var order [][2]string
		for _, kv := range yamlPaths(string(b)) {
			p := kv.path
			if len(p) < 3 || p[0] != "network" || p[1] == "version" || p[1] == "renderer" {
				continue
			}
			key := [2]string{p[1], p[2]}
			d, ok := defs[key]
			if !ok {
				d = &NetplanDef{File: f, Type: p[1], ID: p[2]}
				defs[key] = d
				order = append(order, key)
			}
			switch {
			case len(p) == 4 && p[3] == "set-name":
				d.SetName = kv.value
			case len(p) == 4 && p[3] == "gateway4":
				d.Gateway4 = kv.value
			case len(p) >= 4 && p[3] == "match":
				d.Match = true
				if len(p) == 5 && p[4] == "name" {
					d.MatchName = kv.value
				}
			}
		}
		for _, k := range order {
			out = append(out, *defs[k])
		}
	}
	return out
}

// NetplanFor returns the definition netplan applies to the interface: the
// one whose set-name is the name, else whose match: name: takes it, else
// one whose id is the name and that has no match: block.
func (f Facts) NetplanFor(name string) *NetplanDef {
	var byMatch, byID *NetplanDef
	for i := range f.NetplanDefs {
		d := &f.NetplanDefs[i]
		switch {
		case d.SetName == name:
			return d
		case d.MatchName != "" && byMatch == nil:
			if ok, _ := path.Match(d.MatchName, name); ok {
				byMatch = d
			}
		case !d.Match && d.ID == name && byID == nil:
			byID = d
		}
	}
	if byMatch != nil {
		return byMatch
	}
	return byID
}

type yamlKV struct {
	path  []string
	value string
}

// yamlPaths flattens block YAML mappings into key paths and scalar values.
// A list item is a "-" path element, so nothing under a list is taken for
// a device key.
func yamlPaths(s string) []yamlKV {
	type level struct {
		indent int
		key    string
	}
	var stack []level
	var out []yamlKV
	for _, raw := range strings.Split(s, "\n") {
		line := strings.TrimRight(raw, " \t\r")
		trimmed := strings.TrimLeft(line, " ")
		if trimmed == "" || trimmed[0] == '#' || trimmed == "---" {
			continue
		}
		indent := len(line) - len(trimmed)
		for len(stack) > 0 && stack[len(stack)-1].indent >= indent {
			stack = stack[:len(stack)-1]
		}
		for strings.HasPrefix(trimmed, "- ") || trimmed == "-" {
			stack = append(stack, level{indent, "-"})
			trimmed = strings.TrimLeft(strings.TrimPrefix(trimmed, "-"), " ")
			indent = len(line) - len(trimmed)
		}
		k, v, ok := strings.Cut(trimmed, ":")
		if !ok || trimmed == "" {
			continue
		}
		k = unquote(strings.TrimSpace(k))
		v = strings.TrimSpace(v)
		if i := strings.Index(v, " #"); i >= 0 {
			v = strings.TrimSpace(v[:i])
		}
		var p []string
		for _, l := range stack {
			p = append(p, l.key)
		}
		p = append(p, k)
		switch {
		case v == "":
			stack = append(stack, level{indent, k})
			out = append(out, yamlKV{path: p})
		case strings.HasPrefix(v, "{") && strings.HasSuffix(v, "}"):
			out = append(out, yamlKV{path: p})
			for _, item := range strings.Split(v[1:len(v)-1], ",") {
				if fk, fv, ok := strings.Cut(item, ":"); ok {
					out = append(out, yamlKV{path: append(append([]string{}, p...), unquote(strings.TrimSpace(fk))), value: unquote(strings.TrimSpace(fv))})
				}
			}
		default:
			out = append(out, yamlKV{path: p, value: unquote(v)})
		}
	}
	return out
}

func unquote(s string) string {
	if len(s) >= 2 && (s[0] == '\'' || s[0] == '"') && s[len(s)-1] == s[0] {
		return s[1 : len(s)-1]
	}
	return s
}
