package cli

import (
	"fmt"
	"io"

	"github.com/spf13/pflag"

	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/verify"
)

// jsonVerify is what verify --json prints, for monitoring and Ansible's
// check mode.
type jsonVerify struct {
	InSync      bool                `json:"in_sync"`
	Differences []verify.Difference `json:"differences"`
}

// runVerify compares the running kernel (this network namespace) with what
// the profile says must hold. It reads only; it needs no rendered file.
func runVerify(args []string, stdout, stderr io.Writer) int {
	c := common{noFacts: true}
	var asJSON bool
	fl := pflag.NewFlagSet("verify", pflag.ContinueOnError)
	c.register(fl)
	fl.BoolVar(&asJSON, "json", false, `print {"in_sync": bool, "differences": [...]} on stdout`)
	if code, ok := parse(fl, args, 0, stdout, stderr); !ok {
		return code
	}
	// Most profiles with NAT have IPv4 NAT, and iptables-save takes longer
	// than reading the profile and netlink together: it starts now, and
	// is stopped if the profile turns out not to need it.
	early := verify.StartSave(plan.V4)
	l, code := load(c, stderr)
	if l == nil {
		early.Stop()
		return code
	}
	l.root.Close()
	k, err := verify.Read(l.plan, l.backend.Name, early)
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist verify: cannot read the kernel's state: %v\n", err)
		return ExitRuntime
	}
	diffs := verify.Compare(l.plan, k)
	if asJSON {
		printJSON(stdout, jsonVerify{InSync: len(diffs) == 0, Differences: append([]verify.Difference{}, diffs...)})
	} else {
		for _, d := range diffs {
			fmt.Fprintln(stdout, d)
		}
		if len(diffs) == 0 {
			fmt.Fprintln(stdout, "in sync")
		} else {
			fmt.Fprintf(stdout, "%d difference(s)\n", len(diffs))
		}
	}
	if len(diffs) > 0 {
		return ExitDrift
	}
	return ExitOK
}
