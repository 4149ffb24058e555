package cli

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/spf13/pflag"

	"github.com/nicpersist/nicpersist/render/internal/apply"
	"github.com/nicpersist/nicpersist/render/internal/diag"
	"github.com/nicpersist/nicpersist/render/internal/importer"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/profile"
)

// ExitIncomplete is import's: the profile was written, but some of the
// set-up is not in it, or it does not validate.
const ExitIncomplete = 3

const importHelp = `Usage of nicpersist import:
  nicpersist import --rc-local FILE [--out PROFILE [--force]]
  nicpersist import --live [--out PROFILE [--force]]

Writes a profile that renders to the kernel state FILE makes when it runs
(--rc-local), or to the state of the running kernel's current network
namespace (--live). Lines it does not carry over are listed on stderr and
kept in the profile as comments, with the reason.

%s
Exit codes: 0 everything carried over and the profile is valid; 3 the
profile was written, but something was not carried over or it does not
validate (see stderr); 2 invalid usage, or FILE has syntax no shell reads
(an unclosed quote): nothing written; 1 I/O failure (FILE unreadable,
PROFILE exists or cannot be written).
`

func runImport(args []string, stdout, stderr io.Writer) int {
	var rcLocal, out string
	var live, force bool
	fl := pflag.NewFlagSet("import", pflag.ContinueOnError)
	fl.StringVar(&rcLocal, "rc-local", "", "the rc.local (or any sh script of ip, route, iptables and sysctl lines) to import")
	fl.BoolVar(&live, "live", false, "import the running kernel's routes, rules, NAT and sysctls (current network namespace)")
	fl.StringVar(&out, "out", "", "write the profile to this file, atomically (default: stdout)")
	fl.BoolVar(&force, "force", false, "with --out: replace PROFILE when it exists")
	fl.SetOutput(io.Discard)
	err := fl.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintf(stdout, importHelp, fl.FlagUsages())
		return ExitOK
	}
	switch {
	case err != nil:
	case fl.NArg() > 0:
		err = fmt.Errorf("unexpected argument %q", fl.Arg(0))
	case (rcLocal == "") == !live:
		err = errors.New("give exactly one of --rc-local FILE and --live")
	case force && out == "":
		err = errors.New("--force only goes with --out")
	}
	if err != nil {
		return usageError(fl, err, stderr)
	}
	if out != "" && !force {
		if _, err := os.Lstat(out); err == nil {
			fmt.Fprintf(stderr, "nicpersist import: %s exists; nothing written (give --force to replace it, or another --out)\n", out)
			return ExitRuntime
		}
	}
	env := importer.Env{ReadFile: os.ReadFile, Glob: filepath.Glob}
	links, lerr := apply.ReadLinks()
	if lerr == nil {
		env.Links = map[string][]netip.Prefix{}
		for _, l := range links {
			env.Links[l.Name] = l.Addrs
		}
	}
	var st *importer.State
	var source string
	if live {
		if lerr != nil {
			fmt.Fprintf(stderr, "nicpersist import: reading links: %v\n", lerr)
			return ExitRuntime
		}
		k, err := readKernel(links)
		if err != nil {
			fmt.Fprintf(stderr, "nicpersist import: %v\n", err)
			return ExitRuntime
		}
		st, source = importer.LiveState(k, env), "the running kernel"
	} else {
		src, err := os.ReadFile(rcLocal)
		if err != nil {
			fmt.Fprintf(stderr, "nicpersist import: %v\n", err)
			return ExitRuntime
		}
		if lerr != nil {
			fmt.Fprintf(stderr, "nicpersist import: note: cannot read this namespace's links (%v); addresses come from the file only\n", lerr)
		}
		st, err = importer.ParseRCLocal(rcLocal, src, env)
		var se *importer.SyntaxError
		if errors.As(err, &se) {
			fmt.Fprintf(stderr, "%s:%d: %s; nothing written\n", rcLocal, se.Line, se.Msg)
			return ExitInvalid
		}
		source = rcLocal
	}
	res := importer.Profile(st, env, source)
	for _, s := range res.Skipped {
		fmt.Fprintf(stderr, "%s: %s: %s\n", s.Where, s.Reason, s.Text)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(stderr, "nicpersist import: note: %s\n", n)
	}
	name := out
	if name == "" {
		name = "<stdout>"
	}
	problems := &diag.List{File: name}
	if d := profile.Decode(res.Profile, problems); d != nil {
		plan.Build(d, problems)
	}
	for _, p := range problems.Sorted() {
		fmt.Fprintln(stderr, p)
	}
	if out == "" {
		if _, err := stdout.Write(res.Profile); err != nil {
			fmt.Fprintf(stderr, "nicpersist import: %v\n", err)
			return ExitRuntime
		}
	} else if err := writeNew(out, res.Profile, force); err != nil {
		fmt.Fprintf(stderr, "nicpersist import: %v; nothing written\n", err)
		return ExitRuntime
	}
	switch {
	case problems.HasErrors():
		fmt.Fprintf(stderr, "nicpersist import: the profile written to %s does not validate (%d error(s) above); fix it before rendering\n", name, problems.ErrorsSince(0))
		return ExitIncomplete
	case len(res.Skipped) > 0:
		fmt.Fprintf(stderr, "nicpersist import: %d line(s) not carried over (listed above, and commented in the profile)\n", len(res.Skipped))
		return ExitIncomplete
	}
	return ExitOK
}

// writeNew writes a file atomically: a temporary file beside it, fsync,
// then a rename (with force) or a hard link, which fails when the name was
// taken meanwhile, so an existing profile is never replaced by surprise.
func writeNew(path string, data []byte, force bool) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err = tmp.Write(data); err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if force {
		err = os.Rename(tmp.Name(), path)
	} else {
		err = os.Link(tmp.Name(), path)
	}
	if err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// readKernel reads what --live imports.
func readKernel(links []apply.Link) (importer.Kernel, error) {
	k := importer.Kernel{
		Links:   links,
		Routes:  map[plan.Family][]apply.KernelRoute{},
		Rules:   map[plan.Family][]apply.KernelRule{},
		NATSave: map[plan.Family]string{},
		Sysctl: func(key string) (string, bool) {
			b, err := os.ReadFile("/proc/sys/" + key)
			return strings.TrimSpace(string(b)), err == nil
		},
	}
	for _, f := range []plan.Family{plan.V4, plan.V6} {
		var err error
		if k.Routes[f], err = apply.DumpRoutes(f); err != nil {
			return k, err
		}
		if k.Rules[f], err = apply.DumpRules(f); err != nil {
			return k, err
		}
		// NAT that cannot be read is listed as not carried, not fatal:
		// the routes and rules are still worth having.
		save := f.IPTables() + "-save"
		o, err := exec.Command(save, "-t", "nat").Output()
		if err != nil {
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				err = fmt.Errorf("%v: %s", err, strings.TrimSpace(string(ee.Stderr)))
			}
			k.Unread = append(k.Unread, importer.Skipped{Line: importer.Line{Where: "kernel", Text: save + " -t nat"},
				Reason: fmt.Sprintf("not carried over: the %s NAT rules could not be read: %v", f, err)})
			continue
		}
		k.NATSave[f] = string(o)
	}
	return k, nil
}
