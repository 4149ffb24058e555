package plan

import (
	"fmt"

	"github.com/nicpersist/nicpersist/render/internal/profile"
)

func (b *builder) nat(pr *profile.Profile) {
	for i, in := range pr.NAT {
		p := fmt.Sprintf("nat[%d]", i)
		sound := b.object()
		n := NAT{Origin: p}
		var out *iface
		if s, ok := b.c.str(p+".out_interface", in.OutInterface); ok {
			if out, ok = b.ifRef(p+".out_interface", s, false); ok {
				n.Out = s
			}
		} else if !in.OutInterface.Set {
			b.c.p.Errorf(p+".out_interface", "is missing; name the interface whose outgoing traffic is translated")
		}
		if s, ok := b.c.str(p+".source", in.Source); ok {
			if src, ok := b.c.network(p+".source", s); ok {
				n.Source, n.Family = src, familyOf(src.Addr())
			}
		}
		masq, masqOK := b.c.boolean(p+".masquerade", in.Masquerade)
		to, toOK := b.c.str(p+".to_source", in.ToSource)
		switch {
		case masq && toOK:
			b.c.p.Errorf(p, "sets both masquerade = true and to_source; keep one")
		case toOK:
			if a, ok := b.c.addr(p+".to_source", to); ok {
				if n.Family != 0 && familyOf(a) != n.Family {
					b.c.p.Errorf(p+".to_source", "%s is %s but source is %s", to, familyOf(a), n.Family)
				}
				n.ToSource, n.Family = a, familyOf(a)
				if out != nil && (!out.has(n.Family) || out.addr[n.Family].Addr() != a) {
					b.c.p.Warnf(p+".to_source", "%s is not the profile address of %s; replies come back only if the address is routed to this host", a, out.name)
				}
			}
		case masq:
			n.Masquerade = true
		case masqOK || !in.Masquerade.Set: // a mistyped masquerade is already reported
			b.c.p.Errorf(p, "needs masquerade = true or to_source = \"<address>\"")
		}
		if n.Family == 0 {
			n.Family = V4
		}
		if sound() {
			b.p.NAT = append(b.p.NAT, n)
		}
	}
}
