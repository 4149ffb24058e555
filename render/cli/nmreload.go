package cli

import (
	"context"
	"fmt"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nicpersist/nicpersist/render/internal/changeset"
	"github.com/nicpersist/nicpersist/render/internal/distro"
)

// nmReload has a NetworkManager that runs on this machine read the
// keyfiles a render changed, and puts them on the devices they serve. It
// acts only when --root is "/" and NetworkManager answers: a root being
// built for an image, or one NetworkManager does not run, reads its files
// when it boots. Without the reapply the routes would wait for the next
// activation, while `systemctl reload nicpersist` already drops the unit's
// copies of them.
func nmReload(root string, c distro.Choice, changes []changeset.Change, stderr io.Writer) {
	if c.Target != distro.NM {
		return
	}
	var devs []string
	for _, ch := range changes {
		if ch.Kind != distro.Keyfile || !ch.Changed() {
			continue
		}
		for dev, conns := range c.Root.NM.ByIface {
			for _, conn := range conns {
				if conn.Path == ch.Path || filepath.Base(conn.Path) == filepath.Base(ch.Path) {
					devs = append(devs, dev)
				}
			}
		}
	}
	if len(devs) == 0 {
		return
	}
	if abs, err := filepath.Abs(root); err != nil || filepath.Clean(abs) != "/" {
		return
	}
	nmcli := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, "nmcli", args...).CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := nmcli("-t", "-f", "RUNNING", "general"); err != nil || out != "running" {
		return
	}
	if out, err := nmcli("connection", "reload"); err != nil {
		fmt.Fprintf(stderr, "nicpersist: warning: nmcli connection reload: %v: %s; run it yourself, then nmcli device reapply on %s\n", err, out, strings.Join(devs, ", "))
		return
	}
	fmt.Fprintln(stderr, "nicpersist: NetworkManager reloaded its connections")
	seen := map[string]bool{}
	for _, dev := range devs {
		if seen[dev] {
			continue
		}
		seen[dev] = true
		if out, err := nmcli("device", "reapply", dev); err != nil {
			fmt.Fprintf(stderr, "nicpersist: %s: not reapplied (%s); its routes come with its next activation\n", dev, out)
			continue
		}
		fmt.Fprintf(stderr, "nicpersist: %s: reapplied\n", dev)
	}
}
