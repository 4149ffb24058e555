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

func TestErrorsSince(t *testing.T) {
	l := &List{File: "p"}
	l.Errorf("a", "one")
	mark := len(l.Items)
	if n := l.ErrorsSince(mark); n != 0 {
		t.Errorf("no problem since the mark: %d errors", n)
	}
	l.Warnf("b", "only a warning")
	if n := l.ErrorsSince(mark); n != 0 || !l.HasErrors() {
		t.Errorf("a warning since the mark: %d errors (HasErrors %v), want 0 (true)", n, l.HasErrors())
	}
	l.Errorf("c", "two")
	if n, all := l.ErrorsSince(mark), l.ErrorsSince(0); n != 1 || all != 2 {
		t.Errorf("ErrorsSince(mark) = %d, ErrorsSince(0) = %d; want 1 and 2", n, all)
	}
	if (&List{}).HasErrors() {
		t.Error("an empty list has errors")
	}
}
