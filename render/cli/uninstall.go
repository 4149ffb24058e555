package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	"github.com/nicpersist/nicpersist/render/internal/changeset"
	"github.com/nicpersist/nicpersist/render/internal/fsroot"
)

// uninstallHelp heads `nicpersist uninstall --help`.
const uninstallHelp = `Removes what render made under --root, as its manifest (etc/nicpersist/manifest)
lists: the files nicpersist owns, its managed block in files shared with you
(your lines stay byte for byte; a file left empty is removed only if render
created it), the enable link, then the manifest. The profile stays.
It does not touch the running kernel: run "systemctl stop nicpersist" first
to remove the routes, rules and NAT the unit applied.
`

type jsonUninstall struct {
	Changed bool       `json:"changed"`
	DryRun  bool       `json:"dry_run,omitempty"`
	Files   []jsonFile `json:"files"`
}

func runUninstall(args []string, stdout, stderr io.Writer) int {
	var root string
	var dry, asJSON bool
	fl := pflag.NewFlagSet("uninstall", pflag.ContinueOnError)
	fl.StringVar(&root, "root", "/", "directory the rendered paths are relative to")
	fl.BoolVar(&dry, "dry-run", false, "write nothing")
	fl.BoolVar(&asJSON, "json", false, `print {"changed": bool, "files": [...]} on stdout`)
	var help bytes.Buffer
	if code, ok := parse(fl, args, 0, &help, stderr); !ok {
		if help.Len() > 0 {
			fmt.Fprint(stdout, uninstallHelp+"\n"+help.String())
		}
		return code
	}
	if fi, err := os.Stat(root); err != nil || !fi.IsDir() {
		fmt.Fprintf(stderr, "nicpersist: --root %s is not a directory\n", root)
		return ExitInvalid
	}
	r, err := fsroot.Open(root)
	if err != nil {
		fmt.Fprintf(stderr, "nicpersist: %v\n", err)
		return ExitRuntime
	}
	defer r.Close()
	code := ExitOK
	changes, err := changeset.Uninstall(r)
	if err != nil {
		// The other paths are still undone; the manifest stays so that a
		// second run finishes once the cause is fixed.
		fmt.Fprintf(stderr, "nicpersist: left as is:\n%v\nnicpersist: the manifest stays; fix the above and run uninstall again to finish\n", err)
		code = ExitRuntime
	}
	if !dry {
		if err := changeset.Write(r, changes); err != nil {
			hint := "fix the cause above and run it again to finish"
			if errors.Is(err, fsroot.ErrOutsideRoot) {
				hint = "replace that symbolic link with a directory under the root, then run it again"
			}
			fmt.Fprintf(stderr, "nicpersist: %v\nnicpersist: the uninstall stopped part way; each file is whole (old or new); %s\n", err, hint)
			return ExitRuntime
		}
	}
	n := 0
	res := jsonUninstall{DryRun: dry, Files: []jsonFile{}}
	for _, ch := range changes {
		if !ch.Changed() {
			continue
		}
		n++
		res.Files = append(res.Files, jsonFile{Path: ch.Path, Status: string(ch.Status)})
		if !asJSON {
			fmt.Fprintf(stdout, "%-9s %s\n", ch.Status, ch.Path)
		}
	}
	res.Changed = n > 0
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(res)
		return code
	}
	suffix := ""
	if dry {
		suffix = " (dry run: nothing written)"
	}
	fmt.Fprintf(stdout, "%d changed%s\n", n, suffix)
	return code
}
