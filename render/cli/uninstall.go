package cli

import (
	"bytes"
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
	if !dry && !write(r, changes, "uninstall", stderr) {
		return ExitRuntime
	}
	if asJSON {
		printJSON(stdout, newJSONChanges(changes, dry))
	} else {
		printChanges(stdout, changes, dry, true)
	}
	return code
}
