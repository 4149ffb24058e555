package importer

import (
	"fmt"
	"strings"
)

// The shell that import understands: the lines of an rc.local as people
// write them, not sh. A line is one command, or several joined by ";" and
// "&&"; words are plain, '…' or "…" quoted, with $NAME and ${NAME} of
// variables assigned earlier in the file. Whatever else (pipes, command
// substitution, control flow) leaves the line uncarried, with the reason.

// logical is one command line after continuations are joined.
type logical struct {
	line int    // first physical line, from 1
	text string // as written, continuations joined by a space
}

// SyntaxError is a file that no shell would read either: a quote or a
// continuation that the file does not close.
type SyntaxError struct {
	Line int
	Msg  string
}

func (e *SyntaxError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Msg) }

// logicalLines joins backslash continuations and lines inside open quotes.
func logicalLines(src string) ([]logical, error) {
	src = strings.ReplaceAll(src, "\r\n", "\n")
	phys := strings.Split(src, "\n")
	var out []logical
	var cur strings.Builder
	start := 0
	for i, l := range phys {
		if cur.Len() == 0 {
			start = i + 1
		}
		if cont, ok := continued(cur.String() + l); ok && cont {
			cur.WriteString(strings.TrimSuffix(l, "\\"))
			cur.WriteString(" ")
			continue
		} else if !ok {
			// A quote is open: the newline is part of the word.
			cur.WriteString(l)
			cur.WriteString("\n")
			continue
		}
		cur.WriteString(l)
		out = append(out, logical{line: start, text: cur.String()})
		cur.Reset()
	}
	if cur.Len() > 0 {
		if _, ok := continued(cur.String()); !ok {
			return out, &SyntaxError{start, "a quote opened here is never closed"}
		}
		out = append(out, logical{line: start, text: strings.TrimSpace(cur.String())})
	}
	return out, nil
}

// continued says whether s ends in a backslash continuation, and ok false
// when a quote is still open at its end.
func continued(s string) (cont, ok bool) {
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q == '\'':
			if c == '\'' {
				q = 0
			}
		case c == '\\':
			if i == len(s)-1 {
				return true, true
			}
			i++
		case q == '"':
			if c == '"' {
				q = 0
			}
		case c == '\'' || c == '"':
			q = c
		case c == '#' && (i == 0 || s[i-1] == ' ' || s[i-1] == '\t'):
			return false, true
		}
	}
	return false, q == 0
}

// word is one word of a command, or an operator (";", "&&", "||", "|",
// "&", a redirection) with op set.
type word struct {
	s  string
	op bool
}

// unsupported is a line import reads but cannot carry: the reason says why.
type unsupported string

func (u unsupported) Error() string { return string(u) }

// split cuts a logical line into words, expanding variables from vars.
func split(text string, vars map[string]string) ([]word, error) {
	var out []word
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			out = append(out, word{s: cur.String()})
			cur.Reset()
			inWord = false
		}
	}
	expand := func(s string, i int) (int, error) {
		// s[i] == '$'
		if i+1 >= len(s) {
			cur.WriteByte('$')
			return i + 1, nil
		}
		switch c := s[i+1]; {
		case c == '(':
			return 0, unsupported("uses command substitution $(…), whose value import cannot know")
		case c == '{':
			end := strings.IndexByte(s[i:], '}')
			if end < 0 {
				return 0, unsupported("has an unclosed ${")
			}
			name := s[i+2 : i+end]
			if !isName(name) {
				return 0, unsupported(fmt.Sprintf("uses ${%s}, a parameter expansion import does not evaluate", name))
			}
			v, ok := vars[name]
			if !ok {
				return 0, unsupported(fmt.Sprintf("uses $%s, which the file does not set", name))
			}
			cur.WriteString(v)
			return i + end + 1, nil
		case isNameStart(c):
			j := i + 1
			for j < len(s) && isNameChar(s[j]) {
				j++
			}
			name := s[i+1 : j]
			v, ok := vars[name]
			if !ok {
				return 0, unsupported(fmt.Sprintf("uses $%s, which the file does not set", name))
			}
			cur.WriteString(v)
			return j, nil
		case c >= '0' && c <= '9' || strings.IndexByte("@*#?$!-", c) >= 0:
			return 0, unsupported(fmt.Sprintf("uses $%c, whose value import cannot know", c))
		}
		cur.WriteByte('$')
		return i + 1, nil
	}
	for i := 0; i < len(text); {
		c := text[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			flush()
			i++
		case c == '#' && !inWord:
			i = len(text)
		case c == '\'':
			inWord = true
			end := strings.IndexByte(text[i+1:], '\'')
			if end < 0 {
				return nil, &SyntaxError{0, "unclosed '"}
			}
			cur.WriteString(text[i+1 : i+1+end])
			i += end + 2
		case c == '"':
			inWord = true
			i++
			for {
				if i >= len(text) {
					return nil, &SyntaxError{0, "unclosed \""}
				}
				d := text[i]
				if d == '"' {
					i++
					break
				}
				if d == '\\' && i+1 < len(text) && strings.IndexByte("$`\"\\\n", text[i+1]) >= 0 {
					cur.WriteByte(text[i+1])
					i += 2
					continue
				}
				if d == '`' {
					return nil, unsupported("uses command substitution `…`, whose value import cannot know")
				}
				if d == '$' {
					n, err := expand(text, i)
					if err != nil {
						return nil, err
					}
					i = n
					continue
				}
				cur.WriteByte(d)
				i++
			}
		case c == '\\':
			inWord = true
			if i+1 < len(text) {
				cur.WriteByte(text[i+1])
			}
			i += 2
		case c == '`':
			return nil, unsupported("uses command substitution `…`, whose value import cannot know")
		case c == '$':
			inWord = true
			n, err := expand(text, i)
			if err != nil {
				return nil, err
			}
			i = n
		case c == ';' || c == '&' || c == '|' || c == '>' || c == '<' || c == '(' || c == ')':
			// A redirection's file descriptor is the digits before it.
			fd := ""
			if (c == '>' || c == '<') && inWord && allDigits(cur.String()) {
				fd = cur.String()
				cur.Reset()
				inWord = false
			}
			flush()
			op := string(c)
			if i+1 < len(text) && (text[i+1] == c || c == '>' && text[i+1] == '&' || c == '&' && text[i+1] == '>') {
				op += string(text[i+1])
			}
			i += len(op)
			// A descriptor duplication (2>&1, >&-) is one operator.
			if strings.HasSuffix(op, "&") && c == '>' {
				for i < len(text) && (text[i] >= '0' && text[i] <= '9' || text[i] == '-') {
					op += string(text[i])
					i++
				}
			}
			out = append(out, word{s: fd + op, op: true})
		default:
			inWord = true
			cur.WriteByte(c)
			i++
		}
	}
	flush()
	return out, nil
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
func isNameChar(c byte) bool  { return isNameStart(c) || c >= '0' && c <= '9' }

func isName(s string) bool {
	if s == "" || !isNameStart(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		if !isNameChar(s[i]) {
			return false
		}
	}
	return true
}
