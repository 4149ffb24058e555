package keyfile

import (
	"strings"
)

// Vars is a shell-variable file (an ifcfg file) as its lines: KEY=VALUE,
// the value quoted as initscripts and NetworkManager's ifcfg-rh read it.
type Vars struct {
	lines []string
}

// ParseVars splits data into lines; like Parse it never fails.
func ParseVars(data []byte) *Vars {
	s := strings.TrimSuffix(string(data), "\n")
	if s == "" {
		return &Vars{}
	}
	return &Vars{lines: strings.Split(s, "\n")}
}

// Bytes is the file, each line ending in a line break.
func (v *Vars) Bytes() []byte {
	if len(v.lines) == 0 {
		return nil
	}
	return []byte(strings.Join(v.lines, "\n") + "\n")
}

func varLine(l string) (string, string, bool) {
	t := strings.TrimSpace(l)
	if t == "" || t[0] == '#' {
		return "", "", false
	}
	k, val, ok := strings.Cut(t, "=")
	if !ok || k == "" || strings.ContainsAny(k, " \t") {
		return "", "", false
	}
	return k, unquote(val), true
}

// unquote reads a value as a shell would for the simple forms ifcfg files
// use: 'single', "double" (with \ escapes) or bare.
func unquote(v string) string {
	if len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'' {
		return v[1 : len(v)-1]
	}
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		var b strings.Builder
		in := v[1 : len(v)-1]
		for i := 0; i < len(in); i++ {
			if in[i] == '\\' && i+1 < len(in) && strings.IndexByte("\"\\$`", in[i+1]) >= 0 {
				i++
			}
			b.WriteByte(in[i])
		}
		return b.String()
	}
	return v
}

// Get returns a variable's value (the last assignment, as the shell keeps).
func (v *Vars) Get(key string) (string, bool) {
	val, found := "", false
	for _, l := range v.lines {
		if k, x, ok := varLine(l); ok && k == key {
			val, found = x, true
		}
	}
	return val, found
}

// Keys lists the variables in file order.
func (v *Vars) Keys() []string {
	var out []string
	for _, l := range v.lines {
		if k, _, ok := varLine(l); ok {
			out = append(out, k)
		}
	}
	return out
}

// Delete removes every assignment of key.
func (v *Vars) Delete(key string) bool {
	kept := v.lines[:0:0]
	found := false
	for _, l := range v.lines {
		if k, _, ok := varLine(l); ok && k == key {
			found = true
			continue
		}
		kept = append(kept, l)
	}
	v.lines = kept
	return found
}

// Set gives key its value, double-quoted, in place of its assignment or
// at the end.
func (v *Vars) Set(key, val string) {
	var b strings.Builder
	b.WriteString(key + `="`)
	for _, r := range val {
		if strings.ContainsRune("\"\\$`", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteString(`"`)
	for i, l := range v.lines {
		if k, _, ok := varLine(l); ok && k == key {
			v.lines[i] = b.String()
			return
		}
	}
	v.lines = append(v.lines, b.String())
}
