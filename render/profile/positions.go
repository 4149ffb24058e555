package profile

import (
	"strconv"
	"strings"
)

// BurntSushi/toml keeps key positions private, so lines are indexed here by a
// light scan of the text the decoder already accepted. It understands table
// headers, arrays of tables and "key =" lines, which is all a profile needs;
// anything it cannot place (a key inside an inline table, say) falls back to
// the nearest enclosing key it could place.

type positions map[string]int

func indexPositions(src string) positions {
	pos := positions{}
	counts := map[string]int{} // array-of-tables header -> tables seen so far
	prefix := ""
	inMulti := "" // the delimiter of a multi-line string being skipped
	depth := 0    // open brackets of a multi-line array being skipped
	for i, raw := range strings.Split(src, "\n") {
		line := i + 1
		s := strings.TrimSpace(raw)
		if inMulti != "" {
			if strings.Count(s, inMulti)%2 == 1 {
				inMulti = ""
			}
			continue
		}
		if depth > 0 {
			depth += bracketBalance(s)
			continue
		}
		if s == "" || s[0] == '#' {
			continue
		}
		if strings.HasPrefix(s, "[[") {
			name := headerName(strings.TrimPrefix(s, "[["), "]]")
			idx := counts[name]
			counts[name] = idx + 1
			prefix = name + "[" + strconv.Itoa(idx) + "]"
			setFirst(pos, prefix, line)
			setFirst(pos, name, line)
			continue
		}
		if s[0] == '[' {
			prefix = headerName(s[1:], "]")
			setFirst(pos, prefix, line)
			continue
		}
		eq := keyEnd(s)
		if eq < 0 {
			continue
		}
		key := joinKey(prefix, normalizeKey(s[:eq]))
		setFirst(pos, key, line)
		val := strings.TrimSpace(s[eq+1:])
		for _, d := range []string{`"""`, `'''`} {
			if strings.HasPrefix(val, d) && strings.Count(val, d) == 1 {
				inMulti = d
			}
		}
		if strings.HasPrefix(val, "[") {
			if b := bracketBalance(val); b > 0 {
				depth = b
			}
		}
	}
	return pos
}

func setFirst(p positions, key string, line int) {
	if _, ok := p[key]; !ok {
		p[key] = line
	}
}

func joinKey(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func headerName(s, closer string) string {
	if i := strings.Index(s, closer); i >= 0 {
		s = s[:i]
	}
	return normalizeKey(s)
}

// normalizeKey turns ` a . "b" ` into a.b.
func normalizeKey(s string) string {
	parts := strings.Split(s, ".")
	for i, p := range parts {
		p = strings.TrimSpace(p)
		if len(p) >= 2 && (p[0] == '"' || p[0] == '\'') && p[len(p)-1] == p[0] {
			p = p[1 : len(p)-1]
		}
		parts[i] = p
	}
	return strings.Join(parts, ".")
}

// keyEnd finds the '=' that ends a key, skipping quoted key parts.
func keyEnd(s string) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '=':
			return i
		}
	}
	return -1
}

// bracketBalance counts [ minus ] outside strings and comments.
func bracketBalance(s string) int {
	n := 0
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' {
				i++
			} else if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#':
			return n
		case c == '[':
			n++
		case c == ']':
			n--
		}
	}
	return n
}

// lineOf returns the line of path or of its nearest ancestor that has one.
func (p positions) lineOf(path string) int {
	for path != "" {
		if l, ok := p[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}
