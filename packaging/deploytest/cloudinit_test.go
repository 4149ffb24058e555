package deploytest

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// userData is what the test reads of packaging/cloud-init/user-data.yaml.
type userData struct {
	Packages   []string `json:"packages"`
	WriteFiles []struct {
		Path        string `json:"path"`
		Permissions string `json:"permissions"`
		Content     string `json:"content"`
	} `json:"write_files"`
	Runcmd []any `json:"runcmd"`
}

// TestCloudInitUserData validates the user-data with Debian's cloud-init
// (`cloud-init schema`), then checks what it does: it installs nicpersist,
// writes a profile that `nicpersist check` accepts without a warning, and
// renders, reloads systemd and starts the unit, in that order.
func TestCloudInitUserData(t *testing.T) {
	need(t, "cloud-init", "go")
	file := filepath.Join(repoRoot(t), "packaging", "cloud-init", "user-data.yaml")

	out, err := exec.Command("cloud-init", "schema", "--config-file", file).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Valid cloud-config") {
		t.Fatalf("cloud-init schema --config-file %s: %v\n%s", file, err, out)
	}

	// Read the YAML with the Python that runs cloud-init (which has PyYAML).
	python := interpreter(t, "cloud-init")
	out, err = exec.Command(python, "-c", "import json, sys, yaml; json.dump(yaml.safe_load(open(sys.argv[1])), sys.stdout)", file).Output()
	if err != nil {
		t.Fatalf("reading %s as YAML: %v\n%s", file, err, stderrOf(err))
	}
	var ud userData
	if err := json.Unmarshal(out, &ud); err != nil {
		t.Fatalf("%s as JSON: %v", file, err)
	}

	if !reflect.DeepEqual(ud.Packages, []string{"nicpersist"}) {
		t.Errorf("packages: %v, want [nicpersist]", ud.Packages)
	}
	var profile string
	n := 0
	for _, f := range ud.WriteFiles {
		if f.Path == "/etc/nicpersist/profile.toml" {
			profile = f.Content
			n++
			if f.Permissions != "0644" {
				t.Errorf("write_files %s: permissions %q, want \"0644\"", f.Path, f.Permissions)
			}
		}
	}
	if n != 1 {
		t.Fatalf("write_files: %d entries for /etc/nicpersist/profile.toml, want 1", n)
	}

	// runcmd: render, daemon-reload, start, in that order.
	want := [][]string{
		{"nicpersist", "render", "--root", "/"},
		{"systemctl", "daemon-reload"},
		{"systemctl", "start", "nicpersist.service"},
	}
	var got [][]string
	for _, c := range ud.Runcmd {
		switch c := c.(type) {
		case string:
			got = append(got, strings.Fields(c))
		case []any:
			var argv []string
			for _, a := range c {
				s, _ := a.(string)
				argv = append(argv, s)
			}
			got = append(got, argv)
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("runcmd: %q, want %q", got, want)
	}

	// The embedded profile checks cleanly: no error and no warning, against a
	// root that has the binary, as the machine will once the package is in,
	// and nft, as Debian 12 and RHEL 9 cloud images have it.
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	mkdirs(t, filepath.Join(root, "usr", "bin"))
	mkdirs(t, filepath.Join(root, "usr", "sbin"))
	writeFile(t, filepath.Join(root, "usr", "bin", "nicpersist"), "", 0o755)
	writeFile(t, filepath.Join(root, "usr", "sbin", "nft"), "", 0o755)
	profileFile := filepath.Join(dir, "profile.toml")
	writeFile(t, profileFile, profile, 0o644)
	cmd := exec.Command(filepath.Join(binDir(t), "nicpersist"), "check", "--root", root, "--profile", profileFile)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil || stderr.Len() != 0 {
		t.Errorf("nicpersist check --profile <user-data's profile>: %v\n%s", err, stderr.String())
	}
}

// interpreter is the program in the #! line of the command on PATH.
func interpreter(t *testing.T, command string) string {
	t.Helper()
	path, err := exec.LookPath(command)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	fields := strings.Fields(strings.TrimPrefix(line, "#!"))
	if !strings.HasPrefix(line, "#!") || len(fields) == 0 {
		t.Fatalf("%s: no #! line", path)
	}
	if filepath.Base(fields[0]) == "env" && len(fields) > 1 {
		return fields[1]
	}
	return fields[0]
}

func stderrOf(err error) string {
	if exit, ok := err.(*exec.ExitError); ok {
		return string(exit.Stderr)
	}
	return ""
}
