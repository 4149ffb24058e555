package cli

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The bad-profile corpus: testdata/bad/<name>.toml is a profile that must be
// refused, testdata/bad/<name>.err the exact stderr of
//
//	nicpersist check --profile testdata/bad/<name>.toml
//
// (run from the repository root against an empty --root). `go test
// ./render/cli -run TestBadProfiles -update` rewrites the .err files; review
// every changed message as if it shipped.

const badDir = testdataDir + "/bad"

// badShown is how messages name a corpus file: as from the repository root.
func badShown(name string) string { return "testdata/bad/" + name + ".toml" }

// badNoLine lists corpus files with an error that carries no line number;
// every other error must point at a line. Each entry says why.
var badNoLine = map[string]string{
	// A key that is not in the file has no line; version is top-level.
	"version-missing": "version: is missing",
	"multiple-errors": "version: is missing (the file spells it versoin)",
}

var badProblemLine = regexp.MustCompile(`^testdata/bad/[^:]+\.toml:([0-9]+): `)

func badCorpus(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(badDir, "*.toml"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range files {
		names = append(names, strings.TrimSuffix(filepath.Base(f), ".toml"))
	}
	sort.Strings(names)
	if len(names) < 40 {
		t.Fatalf("the bad-profile corpus has %d profiles; it must keep at least 40", len(names))
	}
	return names
}

func TestBadProfiles(t *testing.T) {
	for _, name := range badCorpus(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			file := filepath.Join(badDir, name+".toml")
			root := t.TempDir()
			out, errOut, code := run("check", "--root", root, "--profile", file)
			errOut = strings.ReplaceAll(errOut, file, badShown(name))
			if code != ExitInvalid {
				t.Errorf("check exited %d, want %d (invalid profile); stderr:\n%s", code, ExitInvalid, errOut)
			}
			if out != "" {
				t.Errorf("check printed a plan for an invalid profile:\n%s", out)
			}
			errFile := filepath.Join(badDir, name+".err")
			if *update {
				if err := os.WriteFile(errFile, []byte(errOut), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(errFile)
			if err != nil {
				t.Fatalf("%v (run go test ./render/cli -run TestBadProfiles -update, then review the message)", err)
			}
			if errOut != string(want) {
				t.Errorf("stderr differs from %s at %s", errFile, firstDiff(errOut, string(want)))
			}
			badCheckShape(t, name, errOut)
			if entries := readDir(t, root); len(entries) != 0 {
				t.Errorf("check of an invalid profile wrote %d entries under the root", len(entries))
			}

			// render: the same messages, exit 2, nothing under the root.
			// Each target has a root of its own, so that what one wrote is
			// not blamed on the other.
			for _, tgt := range []string{"systemd", "rhel"} {
				t.Run("render-"+tgt, func(t *testing.T) {
					root := t.TempDir()
					rout, rerr, rcode := run("render", "--root", root, "--profile", file, "--target", tgt)
					rerr = strings.ReplaceAll(rerr, file, badShown(name))
					if rcode != ExitInvalid || rout != "" {
						t.Errorf("render --target %s: exit %d, stdout %q; want exit 2 and no output", tgt, rcode, rout)
					}
					if rerr != errOut {
						t.Errorf("render --target %s says other things than check at %s", tgt, firstDiff(rerr, errOut))
					}
					if entries := readDir(t, root); len(entries) != 0 {
						t.Errorf("render --target %s of an invalid profile wrote %d entries under the root", tgt, len(entries))
					}
				})
			}
		})
	}
}

// badCheckShape holds every message to the contract: file and line first,
// and a summary that counts the errors.
func badCheckShape(t *testing.T, name, errOut string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(errOut, "\n"), "\n")
	if len(lines) < 2 {
		t.Errorf("want at least one problem and the summary, got %q", errOut)
		return
	}
	errs := 0
	for _, l := range lines[:len(lines)-1] {
		if strings.Contains(l, ": warning: ") {
			continue // a warning may be about a key the file lacks
		}
		errs++
		if m := badProblemLine.FindStringSubmatch(l); m == nil || m[1] == "0" {
			if _, ok := badNoLine[name]; !ok {
				t.Errorf("error without a line number: %q", l)
			}
		}
	}
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "nicpersist: ") || !strings.HasSuffix(last, " error(s) in "+badShown(name)+"; nothing written") {
		t.Errorf("last line %q is not the summary", last)
	}
	if errs == 0 {
		t.Errorf("no error line in %q", errOut)
	}
}
