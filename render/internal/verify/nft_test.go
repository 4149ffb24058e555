package verify

import (
	"bytes"
	"os"
	"os/exec"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/diag"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/profile"
	"github.com/nicpersist/nicpersist/render/testenv"
)

// TestPredictNFT: the rendered table, loaded by this machine's nft, lists
// exactly as predictNFT says (so an unchanged table needs no scratch
// namespace), and canonNFT gives that listing too. The profile is the
// golden case with every kind of rule, both families.
func TestPredictNFT(t *testing.T) {
	testenv.Need(t, "make network namespaces", "np-verify-", "nft", "unshare")
	src, err := os.ReadFile("../../../testdata/nft-recipes/profile.toml")
	if err != nil {
		t.Fatal(err)
	}
	l := &diag.List{File: "p"}
	p := plan.Build(profile.Decode(src, l), l)
	if p == nil {
		t.Fatal(l.Items)
	}
	text, err := renderedNFT(p)
	if err != nil {
		t.Fatal(err)
	}
	ns := testenv.Netns(t, "np-verify-", "nft")
	load := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	load.Stdin = bytes.NewReader(text)
	if out, err := load.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}
	listing, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "table", "inet", "nicpersist").Output()
	if err != nil {
		t.Fatal(err)
	}
	want, err := predictNFT(p)
	if err != nil {
		t.Fatal(err)
	}
	if d := compareNFT(want, string(listing)); len(d) != 0 {
		t.Errorf("the listing differs from the prediction: %v\nlisting:\n%s", d, listing)
	}
	canon, err := canonNFT(p)
	if err != nil {
		t.Fatal(err)
	}
	if canon != string(listing) {
		t.Errorf("canonNFT:\n%s\nwant the listing\n%s", canon, listing)
	}
}
