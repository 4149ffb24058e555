package profile

import (
	"fmt"
	"strconv"
)

// Opt is a leaf value that remembers whether it was set and, when the TOML type
// was wrong, what was there instead. UnmarshalTOML never fails, so a type
// mistake does not stop the decoder before the other keys are read.
type Opt[T string | bool | int64] struct {
	V   T
	Set bool
	Bad any // the value found when it was not a T
}

// UnmarshalTOML implements toml.Unmarshaler.
func (o *Opt[T]) UnmarshalTOML(v any) error {
	o.Set = true
	if t, ok := v.(T); ok {
		o.V = t
		return nil
	}
	o.Bad = v
	return nil
}

// Scalar accepts a string or an integer: a table given by name or id, a
// firewall mark given as 16 or "0x10/0xff".
type Scalar struct {
	Str   string
	Int   int64
	IsInt bool
	Set   bool
	Bad   any
}

// UnmarshalTOML implements toml.Unmarshaler.
func (s *Scalar) UnmarshalTOML(v any) error {
	s.Set = true
	switch t := v.(type) {
	case string:
		s.Str = t
	case int64:
		s.Int, s.IsInt = t, true
	default:
		s.Bad = v
	}
	return nil
}

// String shows the value as the user wrote it.
func (s Scalar) String() string {
	if s.IsInt {
		return strconv.FormatInt(s.Int, 10)
	}
	return strconv.Quote(s.Str)
}

// TypeName names a decoded TOML value's type the way the TOML spec does, for
// messages that say what was found.
func TypeName(v any) string {
	switch t := v.(type) {
	case string:
		return "a string"
	case int64:
		return "an integer"
	case float64:
		return "a float"
	case bool:
		return "a boolean"
	case []any:
		return "an array"
	case []map[string]any:
		return "an array of tables"
	case map[string]any:
		return "a table"
	case nil:
		return "nothing"
	default:
		return fmt.Sprintf("a %T", t)
	}
}
