package verify

import (
	"bytes"
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strconv"
	"strings"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// nftChain is one chain of an `nft list table` listing: its header line
// (type, hook, priority, policy) and its rules in order.
type nftChain struct {
	name, header string
	rules        []string
}

// parseNFT reads `nft list table` output into its chains, in order.
func parseNFT(list string) []nftChain {
	var out []nftChain
	var cur *nftChain
	for _, l := range strings.Split(list, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case strings.HasPrefix(l, "chain ") && strings.HasSuffix(l, "{"):
			out = append(out, nftChain{name: strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(l, "chain "), "{"))})
			cur = &out[len(out)-1]
		case cur == nil || l == "":
		case l == "}":
			cur = nil
		case strings.HasPrefix(l, "type ") && cur.header == "" && len(cur.rules) == 0:
			cur.header = l
		default:
			cur.rules = append(cur.rules, l)
		}
	}
	return out
}

// nftOrigin is the profile key a rendered rule names in its comment.
func nftOrigin(rule string) string {
	i := strings.LastIndex(rule, ` comment "`)
	if i < 0 {
		return ""
	}
	if s, err := strconv.Unquote(rule[i+len(" comment "):]); err == nil {
		return s
	}
	return ""
}

// nftChainKind is the kind and whole-chain key of each chain nicpersist
// renders.
func nftChainKind(name string) (kind, key string) {
	switch name {
	case "prerouting":
		return KindPortForward, "port_forward"
	case "forward":
		return KindForward, "netfilter.forward_accept"
	case "marks":
		return KindMark, "mark"
	}
	return KindNAT, "nat"
}

// compareNFT compares nicpersist's nftables table as the kernel has it
// with the rendered table as the same nft lists it (both canonical, so
// text equality is rule equality): each chain's header and rules in order,
// and no chain or rule besides.
func compareNFT(want, have string) []Difference {
	const table = "table " + unitfiles.NFTTable
	if strings.TrimSpace(have) == "" {
		return []Difference{{Kind: KindNAT, Key: "netfilter", What: table + " missing", Want: "nft -f /etc/nicpersist/" + unitfiles.NFTName}}
	}
	add := func(chain, rule string) string {
		return "nft add rule " + unitfiles.NFTTable + " " + chain + " " + rule
	}
	haveChains := parseNFT(have)
	var out []Difference
	for _, w := range parseNFT(want) {
		kind, key := nftChainKind(w.name)
		i := slices.IndexFunc(haveChains, func(c nftChain) bool { return c.name == w.name })
		if i < 0 {
			for _, r := range w.rules {
				out = append(out, Difference{Kind: originKind(nftOrigin(r), kind), Key: nftOrigin(r), What: "rule missing", Want: add(w.name, r), Have: "no chain " + w.name})
			}
			continue
		}
		h := haveChains[i]
		haveChains = slices.Delete(haveChains, i, i+1)
		if h.header != w.header {
			out = append(out, Difference{Kind: kind, Key: key, What: "chain " + w.name + " differs", Want: w.header, Have: h.header})
		}
		used := make([]bool, len(h.rules))
		for _, r := range w.rules {
			j := -1
			for k, x := range h.rules {
				if !used[k] && x == r {
					j = k
					break
				}
			}
			if j >= 0 {
				used[j] = true
				continue
			}
			out = append(out, Difference{Kind: originKind(nftOrigin(r), kind), Key: nftOrigin(r), What: "rule missing", Want: add(w.name, r)})
		}
		extra := false
		for k, x := range h.rules {
			if !used[k] {
				extra = true
				out = append(out, Difference{Kind: kind, Key: key, What: "rule in chain " + w.name + " that the profile does not hold", Have: add(w.name, x)})
			}
		}
		if !extra && len(h.rules) == len(w.rules) && !slices.Equal(h.rules, w.rules) {
			out = append(out, Difference{Kind: kind, Key: key, What: "rules out of order in chain " + w.name, Want: strings.Join(w.rules, " | "), Have: strings.Join(h.rules, " | ")})
		}
	}
	for _, h := range haveChains {
		kind, _ := nftChainKind(h.name)
		out = append(out, Difference{Kind: kind, What: "chain " + h.name + " in " + table + " that the profile does not hold", Have: h.header})
	}
	return out
}

// noNFT is how a missing nft says so.
func noNFT(err error) error {
	return fmt.Errorf("nft is not installed, and the profile has NAT, port forwards or marks on the nftables backend: install the nftables package (%w)", err)
}

// readNFT lists nicpersist's table in this network namespace; "" when
// there is none.
func readNFT() (string, error) {
	path, err := exec.LookPath("nft")
	if err != nil {
		return "", noNFT(err)
	}
	var out, eb bytes.Buffer
	c := exec.Command(path, "list", "table", unitfiles.NFTTable)
	c.Stdout, c.Stderr = &out, &eb
	if err := c.Run(); err != nil {
		if strings.Contains(eb.String(), "No such file or directory") {
			return "", nil
		}
		return "", fmt.Errorf("nft list table %s: %s", unitfiles.NFTTable, strings.TrimSpace(eb.String()))
	}
	return out.String(), nil
}

// renderedNFT is the plan's nftables file as render writes it.
func renderedNFT(p *plan.Plan) ([]byte, error) {
	files, err := unitfiles.Render(p, plan.BackendNFTables)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if f.Name == unitfiles.NFTName {
			return f.Body, nil
		}
	}
	return nil, errors.New("the plan renders no nftables table")
}

// priorityNames are the standard priorities nft lists by name (nft 0.9.1
// and later), for the hooks render uses them on.
var priorityNames = strings.NewReplacer(
	"type nat hook postrouting priority 100;", "type nat hook postrouting priority srcnat;",
	"type nat hook prerouting priority -100;", "type nat hook prerouting priority dstnat;",
	"type filter hook prerouting priority -150;", "type filter hook prerouting priority mangle;",
	"type filter hook forward priority 0;", "type filter hook forward priority filter;",
)

// predictNFT is the plan's table as nft is expected to list it: the
// rendered file with the priorities named.
func predictNFT(p *plan.Plan) (string, error) {
	text, err := renderedNFT(p)
	if err != nil {
		return "", err
	}
	return priorityNames.Replace(string(text)), nil
}

// canonNFT is the plan's table as this machine's nft lists it: loaded into
// a network namespace of its own (unshare -n), which goes with the
// process, so that what nft prints differently from what render wrote
// (priority names, merged masks) compares equal.
func canonNFT(p *plan.Plan) (string, error) {
	text, err := renderedNFT(p)
	if err != nil {
		return "", err
	}
	if _, err := exec.LookPath("nft"); err != nil {
		return "", noNFT(err)
	}
	var out, eb bytes.Buffer
	c := exec.Command("unshare", "--net", "sh", "-c", "nft -f - && nft list table "+unitfiles.NFTTable)
	c.Stdin = bytes.NewReader(text)
	c.Stdout, c.Stderr = &out, &eb
	if err := c.Run(); err != nil {
		return "", fmt.Errorf("listing the rendered table in a scratch namespace (unshare --net): %v: %s", err, strings.TrimSpace(eb.String()))
	}
	return out.String(), nil
}
