// Package diag carries the problems found in a profile: where they are (file,
// line, key path) and what a user should do about them.
package diag

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Severity separates what stops a render from what only deserves a look.
type Severity int

const (
	Error Severity = iota
	Warning
)

// Problem is one finding. Path is the TOML key path in the form users see in
// their profile: interface[1].gateway (0-based array indices).
type Problem struct {
	Severity Severity
	File     string
	Line     int
	Path     string
	Msg      string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		fmt.Fprintf(&b, ":%d", p.Line)
	}
	b.WriteString(": ")
	if p.Severity == Warning {
		b.WriteString("warning: ")
	}
	if p.Path != "" {
		b.WriteString(p.Path)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return printable(b.String())
}

// printable escapes every rune a terminal would not show as itself. Key
// paths and the decoder's messages quote the profile raw (a quoted TOML key
// may hold any character), and a newline would split the report while an
// escape sequence would drive the user's terminal.
func printable(s string) string {
	if strings.IndexFunc(s, notPrint) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if !notPrint(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
	return b.String()
}

func notPrint(r rune) bool { return !unicode.IsPrint(r) }

// LineOf maps a key path to the line it was written on; 0 when unknown.
type LineOf func(path string) int

// List collects problems so that a run reports all of them, not the first.
type List struct {
	File   string
	LineOf LineOf
	Items  []Problem
}

func (l *List) add(sev Severity, path, format string, args ...any) {
	line := 0
	if l.LineOf != nil {
		line = l.LineOf(path)
	}
	l.Items = append(l.Items, Problem{Severity: sev, File: l.File, Line: line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// Errorf records an error at a key path.
func (l *List) Errorf(path, format string, args ...any) { l.add(Error, path, format, args...) }

// Warnf records a warning at a key path.
func (l *List) Warnf(path, format string, args ...any) { l.add(Warning, path, format, args...) }

// HasErrors reports whether any problem is an error.
func (l *List) HasErrors() bool { return l.ErrorsSince(0) > 0 }

// ErrorsSince counts the errors among the problems after the first n, so a
// reader of one object can tell whether anything in it was wrong.
func (l *List) ErrorsSince(n int) int {
	c := 0
	for _, p := range l.Items[n:] {
		if p.Severity == Error {
			c++
		}
	}
	return c
}

// Sorted returns the problems ordered by line, then path, errors first, so
// output follows the profile from top to bottom.
func (l *List) Sorted() []Problem {
	out := append([]Problem(nil), l.Items...)
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Severity != b.Severity {
			return a.Severity < b.Severity
		}
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Path < b.Path
	})
	return out
}
