package apply

import (
	"fmt"
	"os"
	"path"
	"strings"
)

// procKey returns /proc/sys/KEY for a sysctl.list key, refusing anything
// that would leave /proc/sys.
func procKey(key string) (string, error) {
	if key == "" || path.Clean(key) != key || strings.HasPrefix(key, "/") || strings.HasPrefix(key, "..") {
		return "", fmt.Errorf("sysctl.list: %q is not a key under /proc/sys", key)
	}
	return "/proc/sys/" + key, nil
}

// applySysctls saves the values it is about to change, once (so that stop
// puts back what was there before the first start), then sets them.
func (r *runner) applySysctls() error {
	lines, err := readLines(r.path("sysctl.list"))
	if err != nil || lines == nil {
		return err
	}
	type kv struct{ key, proc, val string }
	var want []kv
	for _, l := range lines {
		if strings.HasPrefix(l, "#") {
			continue
		}
		w := strings.Fields(l)
		if len(w) == 0 {
			continue
		}
		p, err := procKey(w[0])
		if err != nil {
			return err
		}
		want = append(want, kv{w[0], p, strings.Join(w[1:], " ")})
	}
	saved := r.spath("sysctl.saved")
	if !exists(saved) {
		var old []string
		for _, s := range want {
			if b, err := os.ReadFile(s.proc); err == nil {
				old = append(old, s.key+" "+strings.TrimRight(string(b), "\n"))
			}
		}
		if err := writeLines(saved, old); err != nil {
			return err
		}
	}
	for _, s := range want {
		// An interface that is not there yet gets its value from
		// systemd-sysctl when udev sees it, as sysctl.d(5) says.
		if !exists(s.proc) {
			continue
		}
		if err := os.WriteFile(s.proc, []byte(s.val+"\n"), 0o644); err != nil {
			r.logf("cannot set %s", s.key)
			return err
		}
	}
	return nil
}

func (r *runner) restoreSysctls() {
	saved := r.spath("sysctl.saved")
	lines, err := readLines(saved)
	if err != nil {
		r.logf("%v", err)
		return
	}
	for _, l := range lines {
		key, val := l, ""
		if i := strings.IndexAny(l, " \t"); i >= 0 {
			key, val = l[:i], l[i+1:]
		}
		p, err := procKey(key)
		if err != nil || !exists(p) {
			continue
		}
		if err := os.WriteFile(p, []byte(val+"\n"), 0o644); err != nil {
			r.logf("cannot put back %s: %v", key, err)
		}
	}
	os.Remove(saved)
}
