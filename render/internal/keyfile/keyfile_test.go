package keyfile

import (
	"strings"
	"testing"
)

func TestEditKeepsEveryOtherLine(t *testing.T) {
	in := "# the user's comment\n[connection]\nid=eth1\n\n[ipv4]\nmethod=auto\n route1 = 10.0.0.0/8,10.1.1.1\n\n[ipv6]\nmethod=ignore\n"
	f := Parse([]byte(in))
	if v, ok := f.Get("ipv4", "route1"); !ok || v != "10.0.0.0/8,10.1.1.1" {
		t.Fatalf("Get route1 = %q %v", v, ok)
	}
	f.Set("ipv4", "route2", "172.22.5.64/27")
	f.Set("ipv4", "method", "manual")
	f.Set("proxy", "method", " x\\y")
	want := "# the user's comment\n[connection]\nid=eth1\n\n[ipv4]\nmethod=manual\n route1 = 10.0.0.0/8,10.1.1.1\nroute2=172.22.5.64/27\n\n[ipv6]\nmethod=ignore\n\n[proxy]\nmethod=\\sx\\\\y\n"
	if got := string(f.Bytes()); got != want {
		t.Fatalf("after Set:\n%s\nwant:\n%s", got, want)
	}
	if v, _ := f.Get("proxy", "method"); v != " x\\y" {
		t.Errorf("escaped value read back as %q", v)
	}
	f.Delete("ipv4", "route2")
	f.Set("ipv4", "method", "auto")
	f.DeleteGroup("proxy")
	if got := string(f.Bytes()); got != in {
		t.Fatalf("after undoing:\n%s\nwant:\n%s", got, in)
	}
	if f.Delete("ipv4", "nothing") {
		t.Error("Delete of an absent key said it deleted one")
	}
	if got := Parse(nil).Bytes(); got != nil {
		t.Errorf("empty file: %q", got)
	}
}

func TestSetInGroupWithoutKeys(t *testing.T) {
	f := Parse([]byte("[connection]\nid=x\n[ipv4]\n# only a comment\n"))
	f.Set("ipv4", "route1", "10.0.0.0/8")
	if got, want := string(f.Bytes()), "[connection]\nid=x\n[ipv4]\nroute1=10.0.0.0/8\n# only a comment\n"; got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestVars(t *testing.T) {
	in := "# by hand\nDEVICE=eth1\nNAME='System eth1'\nROUTING_RULE_1=\"priority 900 from 10.0.0.0/8 table 200\"\n"
	v := ParseVars([]byte(in))
	if n, _ := v.Get("NAME"); n != "System eth1" {
		t.Errorf("NAME = %q", n)
	}
	if r, _ := v.Get("ROUTING_RULE_1"); r != "priority 900 from 10.0.0.0/8 table 200" {
		t.Errorf("ROUTING_RULE_1 = %q", r)
	}
	v.Set("ROUTING_RULE_2", `a "b" $c`)
	if got, _ := v.Get("ROUTING_RULE_2"); got != `a "b" $c` {
		t.Errorf("round trip: %q", got)
	}
	v.Delete("ROUTING_RULE_2")
	if string(v.Bytes()) != in {
		t.Errorf("after undoing: %q", v.Bytes())
	}
}

// FuzzKeyfile: any file and any edit; no panic, a value set is read back,
// and lines the edit does not name stay.
func FuzzKeyfile(f *testing.F) {
	f.Add([]byte("[connection]\nid=eth1\n\n[ipv4]\nmethod=auto\nroute1=10.0.0.0/8\n"), "ipv4", "route2", "172.22.5.64/27")
	f.Add([]byte("#c\n[ipv4]\n"), "ipv6", "route1", " lead\\ing")
	f.Add([]byte("garbage\n[[x]\n=v\n"), "x", "k", "v\n")
	f.Fuzz(func(t *testing.T, data []byte, g, k, v string) {
		kf := Parse(data)
		if strings.ContainsAny(g, "[]\n\r") || g == "" || g != strings.TrimSpace(g) ||
			strings.ContainsAny(k, "=\n\r#[") || k == "" || k != strings.TrimSpace(k) {
			return
		}
		before := Parse(data)
		kf.Set(g, k, v)
		if got, ok := kf.Get(g, k); !ok || got != v {
			t.Fatalf("Set(%q, %q, %q) read back as %q, %v\n%s", g, k, v, got, ok, kf.Bytes())
		}
		if _, had := before.Get(g, k); !had && len(before.Groups()) == len(kf.Groups()) {
			kf.Delete(g, k)
			if string(kf.Bytes()) != string(before.Bytes()) {
				t.Fatalf("Set then Delete of a new key changed the file:\n%q\n%q", before.Bytes(), kf.Bytes())
			}
		}
	})
}
