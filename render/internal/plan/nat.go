package plan

import (
	"fmt"

	"github.com/nicpersist/nicpersist/render/internal/profile"
)

func (b *builder) nat(pr *profile.Profile) {
	for i, in := range pr.NAT {
		p := fmt.Sprintf("nat[%d]", i)
		ok := true
		n := NAT{Origin: p, Family: 0}
		var out *iface
		if s, set := b.c.str(p+".out_interface", in.OutInterface); set {
			if out, ok = b.ifRef(p+".out_interface", s, false); ok {
				n.Out = s
			}
		} else {
			if in.OutInterface.Bad == nil {
				b.c.p.Errorf(p+".out_interface", "is missing; name the interface whose outgoing traffic is translated")
			}
			ok = false
		}
		if s, set := b.c.str(p+".source", in.Source); set {
			if src, sok := b.c.network(p+".source", s); sok {
				n.Source, n.Family = src, familyOf(src.Addr())
			} else {
				ok = false
			}
		} else if in.Source.Bad != nil {
			ok = false
		}
		masq, mset := b.c.boolean(p+".masquerade", in.Masquerade)
		if in.Masquerade.Bad != nil {
			ok = false
		}
		to, tset := b.c.str(p+".to_source", in.ToSource)
		if in.ToSource.Bad != nil {
			ok = false
		}
		switch {
		case masq && tset:
			b.c.p.Errorf(p, "sets both masquerade = true and to_source; keep one")
			ok = false
		case tset:
			if a, aok := b.c.addr(p+".to_source", to); aok {
				if n.Family != 0 && familyOf(a) != n.Family {
					b.c.p.Errorf(p+".to_source", "%s is %s but source is %s", to, familyOf(a), n.Family)
					ok = false
				}
				n.ToSource, n.Family = a, familyOf(a)
				if out != nil && (!out.has(n.Family) || out.addr[n.Family].Addr() != a) {
					b.c.p.Warnf(p+".to_source", "%s is not the profile address of %s; replies come back only if the address is routed to this host", a, out.name)
				}
			} else {
				ok = false
			}
		case masq:
			n.Masquerade = true
		case mset || in.Masquerade.Bad == nil:
			b.c.p.Errorf(p, "needs masquerade = true or to_source = \"<address>\"")
			ok = false
		}
		if n.Family == 0 {
			n.Family = V4
		}
		if ok {
			b.p.NAT = append(b.p.NAT, n)
		}
	}
}
