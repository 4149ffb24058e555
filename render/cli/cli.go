// Package cli holds nicpersist's commands: flags, what each prints, and exit
// codes. cmd/nicpersist only hands it the process's arguments and streams.
package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"github.com/spf13/pflag"

	"github.com/nicpersist/nicpersist/render/internal/changeset"
	"github.com/nicpersist/nicpersist/render/internal/diag"
	"github.com/nicpersist/nicpersist/render/internal/distro"
	"github.com/nicpersist/nicpersist/render/internal/fsroot"
	"github.com/nicpersist/nicpersist/render/internal/plan"
	"github.com/nicpersist/nicpersist/render/internal/profile"
	"github.com/nicpersist/nicpersist/render/internal/sysroot"
	"github.com/nicpersist/nicpersist/render/internal/unitfiles"
)

// Exit codes of the contract.
const (
	ExitOK      = 0
	ExitRuntime = 1
	ExitInvalid = 2
	ExitDrift   = 3 // verify: the kernel is not what the profile says
)

// DefaultProfile is read under --root when --profile is not given.
const DefaultProfile = "etc/nicpersist/profile.toml"

// Version may be set by the build: -ldflags "-X
// github.com/nicpersist/nicpersist/render/cli.Version=...".
var Version = "0.1.0"

const usage = `nicpersist renders boot-persistent policy routing, NAT and sysctls for
multi-NIC machines from one TOML profile.

Usage:
  nicpersist render  [--profile FILE] [--root DIR]
                     [--target auto|rhel|nm|networkd|netplan|ifupdown|systemd]
                     [--rhel-stack auto|network-scripts|networkmanager]
                     [--dry-run] [--diff] [--json]
  nicpersist check   [--profile FILE] [--root DIR]
  nicpersist apply   start|stop|watch [--dir DIR] [--state DIR] [--wait SECONDS]
  nicpersist uninstall [--root DIR] [--dry-run] [--json]
  nicpersist try     [--profile FILE] [--root DIR] [--target T] [--timeout SECONDS]
  nicpersist try     --confirm
  nicpersist import  --rc-local FILE | --live [--out PROFILE [--force]]
  nicpersist verify  [--profile FILE] [--root DIR] [--json]
  nicpersist version

Exit codes: 0 success, 1 runtime failure (I/O, permission), 2 invalid usage or profile,
3 verify found drift; import: 3 the profile was written but is incomplete or invalid
(see "nicpersist import --help").
Run "nicpersist <command> --help" for a command's flags.
`

// Main runs one command line and returns the exit code.
func Main(args []string, stdout, stderr io.Writer) (code int) {
	defer func() {
		// A bug must not show a user a goroutine dump.
		if r := recover(); r != nil {
			fmt.Fprintf(stderr, "nicpersist: internal error: %v (please report this)\n", r)
			code = ExitRuntime
		}
	}()
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return ExitInvalid
	}
	switch args[0] {
	case "render":
		return runRender(args[1:], stdout, stderr)
	case "check":
		return runCheck(args[1:], stdout, stderr)
	case "apply":
		return runApply(args[1:], stdout, stderr)
	case "uninstall":
		return runUninstall(args[1:], stdout, stderr)
	case "try":
		return runTry(args[1:], os.Stdin, stdout, stderr)
	case "import":
		return runImport(args[1:], stdout, stderr)
	case "verify":
		return runVerify(args[1:], stdout, stderr)
	case "version", "--version":
		if len(args) == 2 && (args[1] == "-h" || args[1] == "--help") {
			fmt.Fprint(stdout, "Usage of nicpersist version:\n  prints \"nicpersist <version>\"; it takes no flags\n")
			return ExitOK
		}
		if len(args) > 1 {
			fmt.Fprintf(stderr, "nicpersist version: unexpected argument %q\n", args[1])
			return ExitInvalid
		}
		fmt.Fprintf(stdout, "nicpersist %s\n", Version)
		return ExitOK
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return ExitOK
	}
	fmt.Fprintf(stderr, "nicpersist: unknown command %q\n\n%s", args[0], usage)
	return ExitInvalid
}

type common struct {
	profile string
	root    string
	// noFacts skips reading what the root already holds (rt_tables, rule
	// files, the distribution), which only render's target and warnings
	// use: verify reads the profile for what it says, and runs often.
	noFacts bool
}

func (c *common) register(fl *pflag.FlagSet) {
	fl.StringVar(&c.profile, "profile", "", "profile to read (default <root>/"+DefaultProfile+")")
	fl.StringVar(&c.root, "root", "/", "directory the rendered paths are relative to")
}

// parse handles --help and usage errors the same way for every command;
// nargs is how many arguments besides the flags the command takes at most.
func parse(fl *pflag.FlagSet, args []string, nargs int, stdout, stderr io.Writer) (int, bool) {
	fl.SetOutput(io.Discard)
	err := fl.Parse(args)
	if errors.Is(err, pflag.ErrHelp) {
		fmt.Fprintf(stdout, "Usage of nicpersist %s:\n%s", fl.Name(), fl.FlagUsages())
		return ExitOK, false
	}
	if err == nil && fl.NArg() > nargs {
		err = fmt.Errorf("unexpected argument %q", fl.Arg(nargs))
	}
	if err != nil {
		return usageError(fl, err, stderr), false
	}
	return 0, true
}

// usageError says what is wrong with the command line, and how it goes.
func usageError(fl *pflag.FlagSet, err error, stderr io.Writer) int {
	fmt.Fprintf(stderr, "nicpersist %s: %v\nUsage of nicpersist %s:\n%s", fl.Name(), err, fl.Name(), fl.FlagUsages())
	return ExitInvalid
}

// loaded is a profile read, checked and expanded against a root.
type loaded struct {
	root     *fsroot.Root
	name     string // the profile as rendered files name it
	plan     *plan.Plan
	problems *diag.List
	facts    sysroot.Facts // what the root already holds; read once the profile is good
	backend  distro.Backend
}

// load reads and checks the profile. It returns an exit code when the run
// cannot go on; problems are printed either way.
func load(c common, stderr io.Writer) (*loaded, int) {
	if fi, err := os.Stat(c.root); err != nil || !fi.IsDir() {
		fmt.Fprintf(stderr, "nicpersist: --root %s is not a directory\n", c.root)
		return nil, ExitInvalid
	}
	root, err := fsroot.Open(c.root)
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist: %v\n", err)
		return nil, ExitRuntime
	}
	l := &loaded{root: root}
	var src []byte
	if c.profile == "" {
		l.name = "/" + DefaultProfile
		src, err = root.ReadFile(DefaultProfile)
	} else {
		l.name = c.profile
		if fi, serr := os.Stat(c.profile); serr == nil && fi.IsDir() {
			root.Close()
			fmt.Fprintf(stderr, "nicpersist: --profile %s is a directory; give the profile file\n", c.profile)
			return nil, ExitInvalid
		}
		src, err = os.ReadFile(c.profile)
	}
	if err != nil {
		root.Close()
		if errors.Is(err, fs.ErrNotExist) {
			fmt.Fprintf(stderr, "nicpersist: profile %s does not exist; write one (see README) or pass --profile\n", l.name)
			return nil, ExitInvalid
		}
		fmt.Fprintf(stderr, "nicpersist: reading profile: %v\n", err)
		return nil, ExitRuntime
	}
	l.problems = &diag.List{File: l.name}
	if d := profile.Decode(src, l.problems); d != nil {
		l.plan = plan.Build(d, l.problems)
	}
	if l.plan != nil && !c.noFacts {
		l.facts = sysroot.Read(root, l.plan.InterfaceNames()...)
		l.plan.Warnings(l.facts.System, l.problems.Warnf)
		l.backend = distro.ChooseBackend(l.facts, l.plan)
		for _, w := range l.backend.Warnings {
			l.problems.Warnf(w.Key, "%s", w.Msg)
		}
	} else if l.plan != nil {
		// verify must compare against the backend render chose for this
		// root; its warnings are render's.
		l.backend = distro.ChooseBackend(sysroot.ReadNetfilter(root), l.plan)
	}
	for _, p := range l.problems.Sorted() {
		fmt.Fprintln(stderr, p)
	}
	if l.problems.HasErrors() {
		root.Close()
		fmt.Fprintf(stderr, "nicpersist: %d error(s) in %s; nothing written\n", l.problems.ErrorsSince(0), l.name)
		return nil, ExitInvalid
	}
	return l, 0
}

type jsonFile struct {
	Path   string `json:"path"`
	Status string `json:"status"`
}

// jsonChanges is what render --json and uninstall --json print alike.
type jsonChanges struct {
	Changed bool       `json:"changed"`
	DryRun  bool       `json:"dry_run,omitempty"`
	Files   []jsonFile `json:"files"`
}

type jsonResult struct {
	jsonChanges
	Target   string   `json:"target"`
	Warnings []string `json:"warnings"`
}

func newJSONChanges(changes []changeset.Change, dry bool) jsonChanges {
	res := jsonChanges{DryRun: dry, Files: []jsonFile{}}
	for _, ch := range changes {
		res.Files = append(res.Files, jsonFile{Path: ch.Path, Status: string(ch.Status)})
		res.Changed = res.Changed || ch.Changed()
	}
	return res
}

func printJSON(stdout io.Writer, v any) {
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// printChanges prints a line per changed path (unless the caller printed a
// diff instead) and "N changed".
func printChanges(stdout io.Writer, changes []changeset.Change, dry, lines bool) {
	n := 0
	for _, ch := range changes {
		if ch.Changed() {
			n++
			if lines {
				fmt.Fprintf(stdout, "%-9s %s\n", ch.Status, ch.Path)
			}
		}
	}
	suffix := ""
	if dry {
		suffix = " (dry run: nothing written)"
	}
	fmt.Fprintf(stdout, "%d changed%s\n", n, suffix)
}

// write carries the changes out, and says what to do should it stop part
// way.
func write(r *fsroot.Root, changes []changeset.Change, verb string, stderr io.Writer) bool {
	err := changeset.Write(r, changes)
	if err == nil {
		return true
	}
	hint := "fix the cause above and run it again to finish"
	if errors.Is(err, fsroot.ErrOutsideRoot) {
		hint = "replace that symbolic link with a directory under the root, then run it again"
	}
	fmt.Fprintf(stderr, "nicpersist: %v\nnicpersist: the %s stopped part way; each file is whole (old or new); %s\n", err, verb, hint)
	return false
}

func runRender(args []string, stdout, stderr io.Writer) int {
	var c common
	var tgt, stack string
	var dry, diff, asJSON bool
	fl := pflag.NewFlagSet("render", pflag.ContinueOnError)
	c.register(fl)
	fl.StringVar(&tgt, "target", "auto", "auto, rhel, nm, networkd, netplan, ifupdown or systemd")
	fl.StringVar(&stack, "rhel-stack", "auto", "for --target rhel: auto, network-scripts or networkmanager")
	fl.BoolVar(&dry, "dry-run", false, "write nothing")
	fl.BoolVar(&diff, "diff", false, "print a unified diff of what changes")
	fl.BoolVar(&asJSON, "json", false, `print {"changed": bool, "files": [...]} on stdout`)
	if code, ok := parse(fl, args, 0, stdout, stderr); !ok {
		return code
	}
	l, code := load(c, stderr)
	if l == nil {
		return code
	}
	defer l.root.Close()
	choice, files, warnings, code := renderFiles(l, "render", tgt, stack, stderr)
	if files == nil {
		return code
	}
	if w := distro.BinaryWarning(l.facts); w != "" {
		fmt.Fprintf(stderr, "nicpersist: warning: %s\n", w)
		warnings = append(warnings, w)
	}
	// What the root lacks or holds against the netfilter part was printed
	// with the profile's problems; --json lists it with the root's other
	// warnings.
	for _, w := range l.backend.Warnings {
		warnings = append(warnings, w.Key+": "+w.Msg)
	}
	changes, err := changeset.Compute(l.root, files, l.name)
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist: nothing written:\n%v\n", err)
		return ExitRuntime
	}
	if diff {
		for _, ch := range changes {
			fmt.Fprint(stdout, ch.Diff())
		}
	}
	if !dry && !write(l.root, changes, "render", stderr) {
		return ExitRuntime
	}
	if !dry {
		nmReload(c.root, choice, changes, stderr)
		if l.root.Dir() == "/" {
			var changed []string
			for _, ch := range changes {
				if ch.Changed() {
					changed = append(changed, ch.Path)
				}
			}
			if note := distro.FirewallReload(changed); note != "" {
				fmt.Fprintf(stderr, "nicpersist: %s\n", note)
			}
		}
	}
	if asJSON {
		printJSON(stdout, jsonResult{jsonChanges: newJSONChanges(changes, dry), Target: choice.String(), Warnings: append([]string{}, warnings...)})
		return ExitOK
	}
	printChanges(stdout, changes, dry, !diff)
	return ExitOK
}

// renderFiles chooses the target and renders its files, saying which target
// and why, and printing the target's warnings; on failure files is nil and
// code says how to exit.
func renderFiles(l *loaded, verb, tgt, stack string, stderr io.Writer) (choice distro.Choice, files []distro.File, warnings []string, code int) {
	choice, err := distro.Detect(l.facts, tgt, stack)
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist %s: %v\n", verb, err)
		return choice, nil, nil, ExitInvalid
	}
	fmt.Fprintf(stderr, "nicpersist: target %s: %s\n", choice, choice.Reason)
	if l.plan.NeedsNetfilter() {
		fmt.Fprintf(stderr, "nicpersist: %s\n", l.backend)
		if fw := l.facts.Firewalld; fw.Enabled {
			fmt.Fprintf(stderr, "nicpersist: firewalld is enabled: %s\n", fw.Why)
		}
	}
	choice.Backend = l.backend.Name
	choice.Firewalld = l.facts.Firewalld.Enabled
	files, err = distro.Render(l.plan, choice, l.name)
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist: %v\n", err)
		return choice, nil, nil, ExitRuntime
	}
	fw, fwWarnings, err := distro.Firewall(l.plan, l.facts, l.backend.Name, l.name)
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist: %v\n", err)
		return choice, nil, nil, ExitRuntime
	}
	files = distro.Sorted(append(files, fw...))
	warnings = append(distro.Warnings(l.facts, choice, files), distro.StackWarnings(l.plan, choice)...)
	warnings = append(warnings, fwWarnings...)
	for _, w := range warnings {
		fmt.Fprintf(stderr, "%s: warning: %s\n", l.name, w)
	}
	return choice, files, warnings, ExitOK
}

func runCheck(args []string, stdout, stderr io.Writer) int {
	var c common
	fl := pflag.NewFlagSet("check", pflag.ContinueOnError)
	c.register(fl)
	if code, ok := parse(fl, args, 0, stdout, stderr); !ok {
		return code
	}
	l, code := load(c, stderr)
	if l == nil {
		return code
	}
	defer l.root.Close()
	if w := distro.BinaryWarning(l.facts); w != "" {
		fmt.Fprintf(stderr, "nicpersist: warning: %s\n", w)
	}
	if _, fw, err := distro.Firewall(l.plan, l.facts, l.backend.Name, l.name); err == nil {
		for _, w := range fw {
			fmt.Fprintf(stderr, "%s: warning: %s\n", l.name, w)
		}
	}
	printPlan(stdout, l.plan, l.backend)
	return ExitOK
}

// printPlan shows what the conveniences expand to, as the commands that
// will run, each with the profile key it comes from.
func printPlan(w io.Writer, p *plan.Plan, backend distro.Backend) {
	section := func(title string, n int) bool {
		if n == 0 {
			return false
		}
		fmt.Fprintf(w, "%s:\n", title)
		return true
	}
	if section("tables", len(p.Tables)) {
		for _, t := range p.Tables {
			fmt.Fprintf(w, "  %-6d %-24s # %s\n", t.ID, t.Name, t.Origin)
		}
	}
	if section("routes", len(p.Routes)) {
		for _, r := range p.Routes {
			fmt.Fprintf(w, "  ip -%d route replace %s  # %s\n", r.Family, r.Args(), r.Origin)
		}
	}
	if section("rules", len(p.Rules)) {
		for _, r := range p.Rules {
			fmt.Fprintf(w, "  ip -%d rule add %s  # %s\n", r.Family, r.Args(), r.Origin)
		}
	}
	title := fmt.Sprintf("netfilter (%s: %s)", backend.Name, backend.Reason)
	if backend.Name == plan.BackendNFTables {
		rules := unitfiles.NFTRules(p)
		if section(title, len(rules)) {
			for _, r := range rules {
				fmt.Fprintf(w, "  nft add rule %s\n", r)
			}
		}
	} else {
		var lines []string
		for _, f := range unitfiles.Families {
			tables, rules := unitfiles.XRules(p, f)
			for i, r := range rules {
				lines = append(lines, fmt.Sprintf("  %s -t %s %s  # %s", f.IPTables(), tables[i], r.Text, r.Origin))
			}
		}
		if section(title, len(lines)) {
			for _, l := range lines {
				fmt.Fprintln(w, l)
			}
		}
	}
	if section("sysctls", len(p.Sysctls)) {
		for _, s := range p.Sysctls {
			fmt.Fprintf(w, "  %s = %s  # %s\n", s.Key, s.Value, s.Origin)
		}
	}
}
