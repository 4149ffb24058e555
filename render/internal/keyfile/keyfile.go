// Package keyfile reads and edits GLib key files (NetworkManager's
// keyfile connections) line by line, so that an edit changes only the keys
// it names and every other line, comment and blank stays byte for byte.
package keyfile

import (
	"strings"
)

// File is a key file as its lines, without their line breaks.
type File struct {
	lines []string
}

// Parse splits data into lines. It never fails: a line that is neither a
// group header nor key=value is kept as it is, as GLib would refuse the
// file anyway and nicpersist must not lose it.
func Parse(data []byte) *File {
	s := strings.TrimSuffix(string(data), "\n")
	if s == "" {
		return &File{}
	}
	return &File{lines: strings.Split(s, "\n")}
}

// Bytes is the file, each line ending in a line break.
func (f *File) Bytes() []byte {
	if len(f.lines) == 0 {
		return nil
	}
	return []byte(strings.Join(f.lines, "\n") + "\n")
}

// group returns the group a header line opens, or false.
func group(line string) (string, bool) {
	t := strings.TrimSpace(line)
	if len(t) >= 2 && t[0] == '[' && t[len(t)-1] == ']' {
		return t[1 : len(t)-1], true
	}
	return "", false
}

// keyValue splits a key=value line as GLib does: spaces around the key and
// before the value are not part of them.
func keyValue(line string) (string, string, bool) {
	t := strings.TrimLeft(line, " \t")
	if t == "" || t[0] == '#' {
		return "", "", false
	}
	k, v, ok := strings.Cut(t, "=")
	if !ok {
		return "", "", false
	}
	return strings.TrimRight(k, " \t"), unescape(strings.TrimLeft(v, " \t")), true
}

// each calls fn with the index, key and value of every key line of group.
func (f *File) each(g string, fn func(i int, k, v string)) {
	cur, in := "", false
	for i, l := range f.lines {
		if name, ok := group(l); ok {
			cur, in = name, true
			continue
		}
		if !in || cur != g {
			continue
		}
		if k, v, ok := keyValue(l); ok {
			fn(i, k, v)
		}
	}
}

// Groups lists the groups in file order.
func (f *File) Groups() []string {
	var out []string
	for _, l := range f.lines {
		if g, ok := group(l); ok {
			out = append(out, g)
		}
	}
	return out
}

// Get returns a key's value (the last one, as GLib keeps), unescaped.
func (f *File) Get(g, key string) (string, bool) {
	var val string
	found := false
	f.each(g, func(_ int, k, v string) {
		if k == key {
			val, found = v, true
		}
	})
	return val, found
}

// Keys lists a group's keys in file order.
func (f *File) Keys(g string) []string {
	var out []string
	f.each(g, func(_ int, k, _ string) { out = append(out, k) })
	return out
}

// Delete removes every line of the key in the group and says whether there
// was one.
func (f *File) Delete(g, key string) bool {
	drop := map[int]bool{}
	f.each(g, func(i int, k, _ string) {
		if k == key {
			drop[i] = true
		}
	})
	if len(drop) == 0 {
		return false
	}
	kept := f.lines[:0:0]
	for i, l := range f.lines {
		if !drop[i] {
			kept = append(kept, l)
		}
	}
	f.lines = kept
	return true
}

// Set gives the key its value: in place of its line when it has one, else
// after the group's last key line, else in a new group at the end.
func (f *File) Set(g, key, value string) {
	line := key + "=" + escape(value)
	at, last := -1, -1
	f.each(g, func(i int, k, _ string) {
		last = i
		if k == key {
			at = i
		}
	})
	if at >= 0 {
		f.lines[at] = line
		return
	}
	if last < 0 {
		for i, l := range f.lines {
			if name, ok := group(l); ok && name == g {
				last = i
				break
			}
		}
	}
	if last < 0 {
		if n := len(f.lines); n > 0 && strings.TrimSpace(f.lines[n-1]) != "" {
			f.lines = append(f.lines, "")
		}
		f.lines = append(f.lines, "["+g+"]", line)
		return
	}
	f.lines = append(f.lines[:last+1], append([]string{line}, f.lines[last+1:]...)...)
}

// GroupEmpty says a group has no key left (comments and blanks aside).
func (f *File) GroupEmpty(g string) bool { return len(f.Keys(g)) == 0 }

// DeleteGroup removes a group's header and the lines up to the next group.
func (f *File) DeleteGroup(g string) {
	var kept []string
	in := false
	for _, l := range f.lines {
		if name, ok := group(l); ok {
			in = name == g
		}
		if !in {
			kept = append(kept, l)
		}
	}
	for len(kept) > 0 && strings.TrimSpace(kept[len(kept)-1]) == "" {
		kept = kept[:len(kept)-1]
	}
	f.lines = kept
}

// escape writes a value as GLib's g_key_file_set_value stores it.
func escape(v string) string {
	var b strings.Builder
	// Byte by byte: a value that is not UTF-8 passes as it is.
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\':
			b.WriteString(`\\`)
		case c == '\n':
			b.WriteString(`\n`)
		case c == '\t':
			b.WriteString(`\t`)
		case c == '\r':
			b.WriteString(`\r`)
		case c == ' ' && i == 0:
			b.WriteString(`\s`)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

func unescape(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] != '\\' || i+1 == len(v) {
			b.WriteByte(v[i])
			continue
		}
		i++
		switch v[i] {
		case 's':
			b.WriteByte(' ')
		case 'n':
			b.WriteByte('\n')
		case 't':
			b.WriteByte('\t')
		case 'r':
			b.WriteByte('\r')
		default:
			b.WriteByte(v[i])
		}
	}
	return b.String()
}
