package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// TestMain makes this test binary nicpersist itself when it runs under that
// name (see selfAsNicpersist), as render/e2e does: TestFaultKill needs the
// command as a process of its own to kill, and building one with `go build`
// would cost it seconds and the go tool on PATH.
func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == "nicpersist" {
		os.Exit(Main(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}

// selfAsNicpersist returns a path named nicpersist that runs this binary.
func selfAsNicpersist(t testing.TB) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), "nicpersist")
	if err := os.Symlink(self, link); err != nil {
		t.Fatal(err)
	}
	return link
}
