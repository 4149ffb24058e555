package deploytest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// recap is a host's line of ansible-playbook's PLAY RECAP.
type recap struct{ ok, changed, unreachable, failed int }

var recapRE = regexp.MustCompile(`(?m)^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)`)

// playbook runs ansible-playbook for the role.
type playbook struct {
	t        *testing.T
	dir      string // scratch: ansible's home, temp, config, extra vars
	root     string // nicpersist_root
	env      []string
	playbook string
	calls    string // where the fake systemctl records its calls
}

func newPlaybook(t *testing.T) *playbook {
	bin := binDir(t)
	dir := t.TempDir()
	p := &playbook{
		t:        t,
		dir:      dir,
		root:     filepath.Join(dir, "root"),
		playbook: filepath.Join(repoRoot(t), "packaging", "ansible", "playbook.example.yml"),
		calls:    filepath.Join(dir, "systemctl.calls"),
	}
	// nicpersist and a systemctl that only records that it was called, both
	// first on PATH: the role must never call systemctl for a scratch root.
	fake := filepath.Join(dir, "fakebin")
	mkdirs(t, p.root, fake, filepath.Join(dir, "home"), filepath.Join(dir, "tmp"))
	writeFile(t, filepath.Join(fake, "systemctl"), "#!/bin/sh\necho \"$*\" >> '"+p.calls+"'\nexit 1\n", 0o755)
	writeFile(t, filepath.Join(dir, "ansible.cfg"), "", 0o644)
	p.env = append(os.Environ(),
		"PATH="+fake+string(os.PathListSeparator)+bin+string(os.PathListSeparator)+os.Getenv("PATH"),
		"ANSIBLE_CONFIG="+filepath.Join(dir, "ansible.cfg"), // not /etc/ansible/ansible.cfg or ./ansible.cfg
		"ANSIBLE_HOME="+filepath.Join(dir, "home"),
		"ANSIBLE_LOCAL_TEMP="+filepath.Join(dir, "tmp"),
		"ANSIBLE_REMOTE_TEMP="+filepath.Join(dir, "tmp"),
		"ANSIBLE_LOCALHOST_WARNING=false",
		"ANSIBLE_INVENTORY_UNPARSED_WARNING=false",
		"ANSIBLE_GATHERING=explicit",
		"ANSIBLE_RETRY_FILES_ENABLED=false",
		"ANSIBLE_NOCOLOR=1",
		"ANSIBLE_FORCE_COLOR=0",
		"ANSIBLE_STDOUT_CALLBACK=default",
	)
	return p
}

// run runs the example playbook against localhost, over the local
// connection, without become, rendering into p.root and installing nothing;
// profile, when not empty, replaces the playbook's own.
func (p *playbook) run(profile string, extra ...string) (recap, string) {
	t := p.t
	t.Helper()
	vars := map[string]any{
		"nicpersist_hosts":           "all",
		"nicpersist_root":            p.root,
		"nicpersist_package":         "",
		"ansible_connection":         "local",
		"ansible_become":             false,
		"ansible_python_interpreter": "{{ ansible_playbook_python }}",
	}
	if profile != "" {
		vars["nicpersist_profile"] = profile
	}
	b, err := json.Marshal(vars)
	if err != nil {
		t.Fatal(err)
	}
	varsFile := filepath.Join(p.dir, "vars.json")
	writeFile(t, varsFile, string(b), 0o600)
	args := append([]string{"-i", "localhost,", "-e", "@" + varsFile}, extra...)
	args = append(args, p.playbook)
	cmd := exec.Command("ansible-playbook", args...)
	cmd.Dir = p.dir
	cmd.Env = p.env
	start := time.Now()
	out, err := cmd.CombinedOutput()
	t.Logf("ansible-playbook %s: %v in %.1fs", strings.Join(extra, " "), errOrOK(err), time.Since(start).Seconds())
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("ansible-playbook: %v\n%s", err, out)
	}
	m := recapRE.FindStringSubmatch(string(out))
	if m == nil {
		t.Fatalf("ansible-playbook: no PLAY RECAP line for localhost (%v):\n%s", err, out)
	}
	atoi := func(s string) int { n, _ := strconv.Atoi(s); return n }
	r := recap{atoi(m[1]), atoi(m[2]), atoi(m[3]), atoi(m[4])}
	if (r.failed > 0 || r.unreachable > 0) != (err != nil) {
		t.Fatalf("ansible-playbook exited with %v but PLAY RECAP says %+v:\n%s", errOrOK(err), r, out)
	}
	return r, string(out)
}

func errOrOK(err error) string {
	if err == nil {
		return "exit 0"
	}
	return err.Error()
}

// TestAnsibleRole runs the role the way the example playbook does, into a
// scratch root: a check on an empty root writes nothing, the first run
// changes, the second does not, a check after a profile change reports it
// and writes nothing, and an invalid profile fails with nicpersist's
// message and leaves everything as it was. systemctl is never called.
func TestAnsibleRole(t *testing.T) {
	need(t, "ansible-playbook", "go")
	p := newPlaybook(t)
	playbookProfile := exampleProfile(t, p.playbook)

	// 1. --check on an empty root: changes reported, nothing written.
	r, out := p.run("", "--check")
	if r.failed != 0 || r.changed == 0 {
		t.Fatalf("--check on an empty root: %+v, want changed>=1 and failed=0:\n%s", r, out)
	}
	if tree := snapshot(t, p.root); len(tree) != 0 {
		t.Fatalf("--check on an empty root wrote %v", keys(tree))
	}

	// 2. The first run renders.
	r, out = p.run("")
	if r.failed != 0 || r.changed == 0 {
		t.Fatalf("first run: %+v, want changed>=1 and failed=0:\n%s", r, out)
	}
	first := snapshot(t, p.root)
	for _, f := range []string{
		"etc/nicpersist/profile.toml",
		"etc/nicpersist/manifest",
		"etc/sysctl.d/90-nicpersist.conf",
		"etc/systemd/system/nicpersist.service",
		"etc/systemd/system/multi-user.target.wants/nicpersist.service",
	} {
		if _, ok := first[f]; !ok {
			t.Errorf("first run: %s is not under the root; the root holds %v", f, keys(first))
		}
	}
	if got := readFile(t, filepath.Join(p.root, "etc/nicpersist/profile.toml")); got != playbookProfile {
		t.Errorf("profile.toml is not the playbook's nicpersist_profile:\n%s", got)
	}
	if fi, err := os.Stat(filepath.Join(p.root, "etc/nicpersist/profile.toml")); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("profile.toml: %v, mode %v; want mode 0644", err, fi.Mode())
	}
	if !strings.Contains(readFile(t, filepath.Join(p.root, "etc/sysctl.d/90-nicpersist.conf")), "from /etc/nicpersist/profile.toml;") {
		t.Errorf("the rendered files do not name /etc/nicpersist/profile.toml as their source (as the package's post-installation renders them)")
	}

	// 3. The second run changes nothing.
	r, out = p.run("")
	if r.failed != 0 || r.changed != 0 {
		t.Fatalf("second run: %+v, want changed=0 and failed=0:\n%s", r, out)
	}
	sameTree(t, "second run", first, snapshot(t, p.root))

	// 4. --check after a profile change: reported, not written.
	changed := replace(t, playbookProfile, `rp_filter = "loose"`, `rp_filter = "strict"`)
	r, out = p.run(changed, "--check", "--diff")
	if r.failed != 0 || r.changed == 0 {
		t.Fatalf("--check after a profile change: %+v, want changed>=1 and failed=0:\n%s", r, out)
	}
	if !strings.Contains(out, `+rp_filter = "strict"`) {
		t.Errorf("--check --diff does not show the profile's change:\n%s", out)
	}
	sameTree(t, "--check", first, snapshot(t, p.root))

	// 5. An invalid profile fails with nicpersist's message; nothing changes.
	invalid := replace(t, playbookProfile, `gateway = "172.22.5.65"`, `gateway = "172.22.6.1"`)
	r, out = p.run(invalid)
	if r.failed == 0 {
		t.Fatalf("invalid profile: %+v, want failed>=1:\n%s", r, out)
	}
	if !strings.Contains(out, "interface[0].gateway: 172.22.6.1 is not inside 172.22.5.64/27") {
		t.Errorf("invalid profile: the output lacks nicpersist's message:\n%s", out)
	}
	sameTree(t, "invalid profile", first, snapshot(t, p.root))

	if calls, err := os.ReadFile(p.calls); err == nil {
		t.Errorf("systemctl was called with a scratch root as nicpersist_root:\n%s", calls)
	}
}

// exampleProfile is nicpersist_profile of the example playbook.
func exampleProfile(t *testing.T, playbook string) string {
	t.Helper()
	text := readFile(t, playbook)
	_, rest, ok := strings.Cut(text, "    nicpersist_profile: |\n")
	if !ok {
		t.Fatalf("%s: no `nicpersist_profile: |` block", playbook)
	}
	var b strings.Builder
	for _, line := range strings.SplitAfter(rest, "\n") {
		if strings.TrimSpace(line) == "" {
			b.WriteString("\n")
			continue
		}
		body, ok := strings.CutPrefix(line, "      ")
		if !ok {
			break
		}
		b.WriteString(body)
	}
	// YAML's "|" keeps one final newline.
	return strings.TrimRight(b.String(), "\n") + "\n"
}

func replace(t *testing.T, s, old, new string) string {
	t.Helper()
	if !strings.Contains(s, old) {
		t.Fatalf("the profile has no %q to replace", old)
	}
	return strings.Replace(s, old, new, 1)
}

// snapshot is every file, link and directory under root, with its mode and
// content (or link target).
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	tree := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == root {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := os.Readlink(path)
			if err != nil {
				return err
			}
			desc += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(b)
			desc += " " + hex.EncodeToString(sum[:])
		}
		tree[filepath.ToSlash(rel)] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

func sameTree(t *testing.T, step string, want, got map[string]string) {
	t.Helper()
	for _, k := range keys(want) {
		if got[k] != want[k] {
			t.Errorf("%s: %s: %q, want %q", step, k, got[k], want[k])
		}
	}
	for _, k := range keys(got) {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s is new: %q", step, k, got[k])
		}
	}
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func mkdirs(t *testing.T, dirs ...string) {
	t.Helper()
	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
