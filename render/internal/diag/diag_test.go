package diag

import "testing"

func TestProblemStringEscapes(t *testing.T) {
	for _, c := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "p", Line: 2, Path: "a", Msg: "plain"}, "p:2: a: plain"},
		{Problem{File: "p", Line: 1, Msg: "after key \n"}, `p:1: after key \n`},
		{Problem{File: "p", Path: "interface.\"\u2028\"", Msg: "x\x1b[31m\t"}, `p: interface."\u2028": x\x1b[31m\t`},
		{Problem{File: "p", Severity: Warning, Path: "é", Msg: "ünïcode stays"}, "p: warning: é: ünïcode stays"},
	} {
		if got := c.p.String(); got != c.want {
			t.Errorf("%+v: got %q, want %q", c.p, got, c.want)
		}
	}
}
