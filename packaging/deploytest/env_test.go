package deploytest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// need skips t unless the tools are on PATH, or fails it under
// NICPERSIST_E2E=1, as render/internal/testenv does (which this package,
// outside render/, may not import).
func need(t *testing.T, tools ...string) {
	t.Helper()
	var why []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			why = append(why, "needs "+tool+" on PATH")
		}
	}
	if len(why) == 0 {
		return
	}
	if os.Getenv("NICPERSIST_E2E") == "1" {
		t.Fatalf("%s, and NICPERSIST_E2E=1 forbids skipping", strings.Join(why, "; "))
	}
	t.Skipf("skipping: %s (apt-get install ansible-core cloud-init, as .ci/run does)", strings.Join(why, "; "))
}

// repoRoot is the repository's top directory (this package is packaging/deploytest).
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		t.Fatalf("repository root: %v", err)
	}
	return dir
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
	buildOut  []byte
)

// binDir builds nicpersist once per test binary into a directory of its own
// (to put first on PATH) and returns that directory.
func binDir(t *testing.T) string {
	t.Helper()
	root := repoRoot(t)
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "nicpersist-deploytest-bin-")
		if buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, "nicpersist"), "./cmd/nicpersist")
		cmd.Dir = root
		buildOut, buildErr = cmd.CombinedOutput()
	})
	if buildErr != nil {
		t.Fatalf("go build ./cmd/nicpersist: %v\n%s", buildErr, buildOut)
	}
	return buildDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}
