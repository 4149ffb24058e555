// Package profile reads a nicpersist profile and checks it: strict decoding,
// every semantic rule of the contract, and problems reported with file, line
// and key path.
package profile

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"

	"github.com/BurntSushi/toml"

	"github.com/nicpersist/nicpersist/render/internal/diag"
)

// Decoded is a profile as read, with what is needed to point at its lines.
type Decoded struct {
	Profile *Profile
	pos     positions
}

// LineOf returns the line of a key path, or of its nearest written ancestor.
func (d *Decoded) LineOf(path string) int {
	if d == nil {
		return 0
	}
	return d.pos.lineOf(path)
}

// Compiled on first use: package init runs at every start of the binary
// (the unit at boot, verify), most of which never need it.
var lineInMsg = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`line (\d+)`) })

// Decode reads src strictly. Problems go to problems; the returned Decoded is
// nil only when the text is not TOML or its shape is beyond repair.
func Decode(src []byte, problems *diag.List) *Decoded {
	d := &Decoded{Profile: &Profile{}, pos: indexPositions(string(src))}
	problems.LineOf = d.LineOf
	md, err := toml.Decode(string(src), d.Profile)
	if err != nil {
		var pe toml.ParseError
		line := 0
		msg := err.Error()
		if errors.As(err, &pe) {
			line, msg = errorLine(string(src), pe.Position), pe.Message
			if pe.LastKey != "" {
				msg = fmt.Sprintf("%s (after key %s)", msg, pe.LastKey)
			}
		} else if m := lineInMsg().FindStringSubmatch(msg); m != nil {
			line, _ = strconv.Atoi(m[1])
			msg = structuralHint(msg)
		}
		problems.Items = append(problems.Items, diag.Problem{File: problems.File, Line: line, Msg: "not a valid profile: " + msg})
		return nil
	}
	// The decoder matches keys regardless of case; a profile must spell
	// them exactly, or two spellings of one key would race for the value.
	var unknown []toml.Key
	for _, k := range md.Keys() {
		if !exactKey(k) {
			unknown = append(unknown, k)
		}
	}
	unknown = append(unknown, md.Undecoded()...)
	reported := map[string]bool{}
	for _, k := range unknown {
		below := false
		for i := 1; i <= len(k); i++ {
			below = below || reported[k[:i].String()]
		}
		if below {
			continue // the key itself or a table above it is already reported
		}
		reported[k.String()] = true
		reportUnknown(d, k, problems)
	}
	return d
}

// errorLine is the line that holds a syntax error. The decoder counts the
// newline it stopped at, so a mistake at the end of a line (an unclosed
// [[interface]) comes out on the next line; the error's byte offset does not.
func errorLine(src string, p toml.Position) int {
	// The decoder's offsets start after a byte order mark.
	for _, bom := range []string{"\xef\xbb\xbf", "\xff\xfe", "\xfe\xff"} {
		if strings.HasPrefix(src, bom) {
			src = src[len(bom):]
			break
		}
	}
	if p.Start < 0 || p.Start > len(src) {
		return p.Line
	}
	return min(p.Line, 1+strings.Count(src[:p.Start], "\n"))
}

// structuralHint replaces the decoder's Go type names with the TOML form a
// user should have written.
func structuralHint(msg string) string {
	if i := strings.Index(msg, "incompatible types"); i >= 0 {
		key := ""
		if m := regexp.MustCompile(`last key "([^"]+)"`).FindStringSubmatch(msg); m != nil {
			key = m[1]
		}
		switch {
		case strings.Contains(msg, "slice"):
			return fmt.Sprintf("%s must be an array of tables, written [[%s]]", key, key)
		case strings.Contains(msg, "struct"):
			return fmt.Sprintf("%s must be a table, written [%s]", key, key)
		}
		return msg[i:]
	}
	return strings.TrimPrefix(msg, "toml: ")
}

// reportUnknown places an undecoded key (which the decoder names without array
// indices) on every line it occurs, and suggests the nearest known key.
func reportUnknown(d *Decoded, k toml.Key, problems *diag.List) {
	plain := k.String()
	var paths []string
	for p := range d.pos {
		if stripIndices(p) == plain {
			paths = append(paths, p)
		}
	}
	if len(paths) == 0 {
		paths = []string{plain}
	}
	sort.Strings(paths)
	known := knownKeys(k[:len(k)-1])
	for _, p := range paths {
		msg := "unknown key"
		if s := nearest(k[len(k)-1], known); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		} else if len(known) > 0 {
			msg += "; known keys here: " + strings.Join(known, ", ")
		}
		problems.Errorf(p, "%s", msg)
	}
}

// Compiled on first use: package init runs at every start of the binary
// (the unit at boot, verify), most of which never need it.
var indexRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`\[\d+\]`) })

func stripIndices(p string) string { return indexRE().ReplaceAllString(p, "") }

// knownKeys lists the TOML keys of the schema table at parent; none when
// parent is no table of the schema.
func knownKeys(parent []string) []string {
	t, ok := schemaAt(parent)
	if !ok || t == nil || t.Kind() != reflect.Struct || isLeaf(t) {
		return nil
	}
	var keys []string
	for i := 0; i < t.NumField(); i++ {
		keys = append(keys, t.Field(i).Tag.Get("toml"))
	}
	sort.Strings(keys)
	return keys
}

func fieldByTag(t reflect.Type, tag string) (reflect.StructField, bool) {
	for i := 0; i < t.NumField(); i++ {
		if t.Field(i).Tag.Get("toml") == tag {
			return t.Field(i), true
		}
	}
	return reflect.StructField{}, false
}

func isLeaf(t reflect.Type) bool {
	return t == reflect.TypeOf(Scalar{}) || strings.HasPrefix(t.Name(), "Opt[")
}

// nearest returns the known key within edit distance 2 of s, if any.
func nearest(s string, known []string) string {
	best, bestD := "", 3
	for _, k := range known {
		if strings.EqualFold(s, k) {
			return k // keys are case-sensitive
		}
	}
	for _, k := range known {
		// On a tie, a key that holds every letter typed, in order, is the
		// likelier intent: "addres6" is "address6", not "address".
		if d := editDistance(s, k); d < bestD || d == bestD && best != "" && !subsequence(s, best) && subsequence(s, k) {
			best, bestD = k, d
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// exactKey reports whether every part of k is a schema key as spelled, or
// lies below a leaf (whose contents the leaf's own check reports).
func exactKey(k toml.Key) bool {
	_, ok := schemaAt(k)
	return ok
}

// schemaAt walks the schema along parts, spelled exactly: the type found
// there, nil when the walk passed a leaf (what lies below is the leaf's own
// check), and false when a part is no schema key.
func schemaAt(parts []string) (reflect.Type, bool) {
	t := reflect.TypeOf(Profile{})
	for _, part := range parts {
		if t.Kind() != reflect.Struct || isLeaf(t) {
			return nil, true
		}
		f, ok := fieldByTag(t, part)
		if !ok {
			return nil, false
		}
		t = f.Type
		if t.Kind() == reflect.Slice {
			t = t.Elem()
		}
	}
	return t, true
}

func subsequence(s, of string) bool {
	i := 0
	for j := 0; i < len(s) && j < len(of); j++ {
		if s[i] == of[j] {
			i++
		}
	}
	return i == len(s)
}
