package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The import command's contract: usage, exit codes, --out and --force.
// What import understands is tested in render/internal/importer, and that
// its profiles give the same kernel state in render/e2e.
func TestImportUsage(t *testing.T) {
	rc := filepath.Join(t.TempDir(), "rc.local")
	if err := os.WriteFile(rc, []byte("ip rule add from 10.1.0.0/16 table 2000 pref 1100\nip route add 10.9.0.0/16 dev lo table 2000\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"import"}, ExitInvalid, "give exactly one of --rc-local FILE and --live"},
		{[]string{"import", "--live", "--rc-local", rc}, ExitInvalid, "give exactly one"},
		{[]string{"import", "--rc-local", rc, "--force"}, ExitInvalid, "--force only goes with --out"},
		{[]string{"import", "--rc-local", rc, "extra"}, ExitInvalid, `unexpected argument "extra"`},
		{[]string{"import", "--bogus"}, ExitInvalid, "unknown flag: --bogus"},
		{[]string{"import", "--rc-local", filepath.Join(t.TempDir(), "missing")}, ExitRuntime, "no such file or directory"},
	} {
		out, stderr, code := run(tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.err) || out != "" {
			t.Errorf("%v: exit %d, stdout %q, stderr %q; want exit %d and %q", tc.args, code, out, stderr, tc.code, tc.err)
		}
	}
	out, stderr, code := run("import", "--help")
	if code != ExitOK || stderr != "" || !strings.Contains(out, "Exit codes: 0 ") || !strings.Contains(out, "--rc-local") {
		t.Errorf("import --help: exit %d, stderr %q, stdout:\n%s", code, stderr, out)
	}
}

func TestImportOut(t *testing.T) {
	dir := t.TempDir()
	rc := filepath.Join(dir, "rc.local")
	write := func(text string) {
		t.Helper()
		if err := os.WriteFile(rc, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// lo is in every namespace, with 127.0.0.1/8 (host scope: not an
	// address import writes), so the profile is valid wherever this runs.
	write("#!/bin/sh\nset -e\nip rule add from 10.1.0.0/16 table 2000 pref 1100\nip route add 10.9.0.0/16 dev lo table 2000\nexit 0\n")
	out, stderr, code := run("import", "--rc-local", rc)
	if code != ExitOK || !strings.Contains(out, "priority = 1100") || !strings.Contains(out, "[[table]]\nid = 2000") {
		t.Fatalf("import to stdout: exit %d\n%s\n%s", code, stderr, out)
	}
	prof := filepath.Join(dir, "profile.toml")
	if _, stderr, code := run("import", "--rc-local", rc, "--out", prof); code != ExitOK {
		t.Fatalf("--out: exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(prof); string(b) != out {
		t.Errorf("--out wrote something else than stdout:\n%s", b)
	}
	if _, _, code := run("check", "--profile", prof); code != ExitOK {
		t.Errorf("check refuses the imported profile")
	}
	// An existing profile stays unless --force.
	write("ip route add 10.9.0.0/16 dev lo table 2000 src 127.0.0.1\n")
	if _, stderr, code := run("import", "--rc-local", rc, "--out", prof); code != ExitRuntime || !strings.Contains(stderr, "exists; nothing written (give --force") {
		t.Errorf("over an existing file: exit %d: %s", code, stderr)
	}
	if b, _ := os.ReadFile(prof); string(b) != out {
		t.Errorf("the existing profile changed")
	}
	// A line not carried over: exit 3, listed on stderr, commented in the
	// profile, which is written all the same.
	_, stderr, code = run("import", "--rc-local", rc, "--out", prof, "--force")
	b, _ := os.ReadFile(prof)
	if code != ExitIncomplete || !strings.Contains(stderr, rc+":1: not carried over: src 127.0.0.1 has no profile key: ip route add") ||
		!strings.Contains(string(b), "#   "+rc+":1: ip route add 10.9.0.0/16 dev lo table 2000 src 127.0.0.1\n#     not carried over: src") {
		t.Errorf("incomplete import: exit %d\n%s\n%s", code, stderr, b)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 2 {
		t.Errorf("temporary files left: %v", entries)
	}
	// A file no shell reads: exit 2, nothing written.
	write("ip route add 10.9.0.0/16 dev lo\nip rule add from '10.1.0.0/16 table 2000\n")
	out, stderr, code = run("import", "--rc-local", rc)
	if code != ExitInvalid || out != "" || !strings.Contains(stderr, rc+":2: a quote opened here is never closed") {
		t.Errorf("syntax error: exit %d, stdout %q, stderr %q", code, out, stderr)
	}
	// A profile that does not validate: exit 3, written.
	write("ip route add 10.9.0.0/16 via 10.99.0.1 dev nosuch0 table 2000\n")
	out, stderr, code = run("import", "--rc-local", rc)
	if code != ExitIncomplete || !strings.Contains(out, `name = "nosuch0"`) || !strings.Contains(stderr, "does not validate") {
		t.Errorf("invalid profile: exit %d\n%s\n%s", code, stderr, out)
	}
}
