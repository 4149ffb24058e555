package firewalld

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/plan"
)

// FuzzRoot feeds arbitrary firewalld.conf, zone, ifcfg and keyfile text to
// Read and renders the seed plan with the result: the root's text reaches
// the policy (zone names), so every policy must be well-formed XML whose
// zones are ANY or names nicpersist writes, and no input may panic.
func FuzzRoot(f *testing.F) {
	f.Add("DefaultZone=public\n", zoneFile("eth3"), "DEVICE=eth2\nZONE=external\n", "[connection]\ninterface-name=eth1\nzone=home\n")
	f.Add("DefaultZone=a\"b\n", "<zone><interface name=\"eth2\"/></zone>", "ZONE=--x\n", "[connection]\ninterface-name=eth3\nzone=<x>\n")
	f.Add("", "<zone", "ZONE=\n", "")
	f.Fuzz(func(t *testing.T, conf, zone, ifcfg, keyfile string) {
		r := debianRoot()
		r[Conf] = conf
		r[EtcZones+"/z.xml"] = zone
		r[EtcZones+"/external.xml"] = zoneFile()
		r[scriptsDir+"/ifcfg-eth2"] = ifcfg
		r[nmKeyfiles+"/k.nmconnection"] = keyfile
		facts := Read(r)
		for _, backend := range []string{plan.BackendNFTables, plan.BackendIPTables} {
			res, err := Render(seedPlanFwd(masq4, snat6, any4), facts, backend, "/p.toml")
			if err != nil {
				t.Fatal(err)
			}
			for _, file := range res.Files {
				checkPolicy(t, file)
			}
			for _, w := range res.Warnings {
				if strings.ContainsAny(w, "\n\r") {
					t.Errorf("warning over lines: %q", w)
				}
			}
		}
	})
}

func checkPolicy(t *testing.T, file File) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(file.Data))
	d.Strict = true
	for {
		tok, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: not well-formed: %v\n%s", file.Path, err, file.Data)
		}
		el, ok := tok.(xml.StartElement)
		if !ok || (el.Name.Local != "ingress-zone" && el.Name.Local != "egress-zone") {
			continue
		}
		for _, a := range el.Attr {
			if a.Name.Local == "name" && a.Value != "ANY" && !zoneName().MatchString(a.Value) {
				t.Fatalf("%s: zone %q reached the policy", file.Path, a.Value)
			}
		}
	}
}
