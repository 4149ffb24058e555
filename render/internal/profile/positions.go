package profile

import (
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
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
		if strings.HasPrefix(val, "{") {
			inlineKeys(pos, key, val[1:], line)
		}
	}
	return pos
}

// inlineKeys places the keys of a one-line inline table ({ a = 1, b = 2 },
// as an [interface] sysctl table is written) on its line; nested tables
// keep their parent's line.
func inlineKeys(pos positions, parent, s string, line int) {
	for s != "" {
		eq := keyEnd(s)
		if eq < 0 {
			return
		}
		k := strings.TrimSpace(s[:eq])
		if k == "" || strings.ContainsAny(k, "{}[],") {
			return
		}
		setFirst(pos, parent+"."+normalizeKey(k), line)
		next := indexOutsideQuotes(s[eq+1:], ',')
		if next < 0 || strings.ContainsAny(s[eq+1:eq+1+next], "{[") {
			return
		}
		s = s[eq+1+next+1:]
	}
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
	if i := indexOutsideQuotes(s, closer[0]); i >= 0 {
		s = s[:i]
	}
	return normalizeKey(s)
}

// normalizeKey turns ` a . "b c" . 'd' ` into a."b c".d: each part as
// toml.Key.String spells it, so that an indexed path matches the decoder's
// name for the key even when the profile quotes it.
func normalizeKey(s string) string {
	var parts []string
	for {
		i := indexOutsideQuotes(s, '.')
		if i < 0 {
			break
		}
		parts = append(parts, keyPart(s[:i]))
		s = s[i+1:]
	}
	return strings.Join(append(parts, keyPart(s)), ".")
}

func keyPart(p string) string {
	p = strings.TrimSpace(p)
	if len(p) < 2 || (p[0] != '"' && p[0] != '\'') || p[len(p)-1] != p[0] {
		return p
	}
	v := p[1 : len(p)-1]
	if p[0] == '"' && strings.Contains(v, `\`) {
		// Escapes are TOML's, not Go's (\e, no octal): let the decoder,
		// which has already accepted this key, read it.
		var m map[string]any
		if _, err := toml.Decode(p+" = 0", &m); err == nil && len(m) == 1 {
			for k := range m {
				v = k
			}
		}
	}
	return toml.Key{v}.String()
}

// keyEnd finds the '=' that ends a key.
func keyEnd(s string) int { return indexOutsideQuotes(s, '=') }

// indexOutsideQuotes finds c outside TOML's basic and literal strings.
func indexOutsideQuotes(s string, c byte) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		switch {
		case quote != 0:
			if s[i] == '\\' && quote == '"' {
				i++
			} else if s[i] == quote {
				quote = 0
			}
		case s[i] == '"' || s[i] == '\'':
			quote = s[i]
		case s[i] == c:
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
