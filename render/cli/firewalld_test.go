package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/internal/firewalld"
	"github.com/nicpersist/nicpersist/render/testenv"
)

// checkFirewalld runs firewalld's own checker on the root's /etc/firewalld,
// the policies nicpersist rendered included, with the host's
// /usr/lib/firewalld: firewall-offline-cmd reads only /etc/firewalld, so
// the root's is bind-mounted there in a mount namespace of its own.
func checkFirewalld(t testing.TB, root string) error {
	t.Helper()
	testenv.Need(t, "bind-mount /etc/firewalld in a mount namespace", "", "unshare", "mount", "firewall-offline-cmd")
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c",
		`mount --bind "$1" /etc/firewalld && exec firewall-offline-cmd --check-config`, "sh", filepath.Join(root, "etc/firewalld"))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("firewall-offline-cmd --check-config: %v\n%s", err, out)
	}
	return nil
}

// TestFirewalldChecker renders the firewalld golden case (a NAT policy from
// zone internal, a port forward's from ANY), the same with a NAT out of
// eth1, in zone dmz, from any source (an accept without source), and the
// same on nicpersist's iptables backend (the policy masquerades too), and
// has firewalld's checker accept them; a policy naming a zone that does not
// exist must be refused, or the checker proves nothing.
func TestFirewalldChecker(t *testing.T) {
	base, err := os.ReadFile(filepath.Join(testdataDir, "firewalld", "profile.toml"))
	if err != nil {
		t.Fatal(err)
	}
	extra := "\n[[nat]]\nout_interface = \"eth1\"\nmasquerade = true\n"
	// On nicpersist's iptables backend the policy masquerades as well.
	iptables := strings.Replace(string(base), "[sysctl]", "[netfilter]\nbackend = \"iptables\"\n\n[sysctl]", 1)
	for name, src := range map[string]string{"golden": string(base), "any-source": string(base) + extra, "iptables": iptables} {
		t.Run(name, func(t *testing.T) {
			root := t.TempDir()
			copyTree(t, filepath.Join(testdataDir, "firewalld", "root"), root)
			if name == "any-source" {
				// Without a source, a NAT gets a policy only towards an
				// explicit zone.
				zone := "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<zone>\n  <short>DMZ</short>\n  <interface name=\"eth1\"/>\n</zone>\n"
				if err := os.WriteFile(filepath.Join(root, "etc/firewalld/zones/dmz.xml"), []byte(zone), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			prof := filepath.Join(t.TempDir(), "profile.toml")
			if err := os.WriteFile(prof, []byte(src), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, errOut, code := run("render", "--root", root, "--profile", prof); code != 0 {
				t.Fatalf("render: exit %d\n%s%s", code, out, errOut)
			}
			pols, _ := filepath.Glob(filepath.Join(root, firewalld.PolicyDir, "*.xml"))
			want := 2
			if name == "any-source" {
				want = 3 // ANY to dmz, for the NAT without source
			}
			if len(pols) != want {
				t.Fatalf("policies %v, want %d", pols, want)
			}
			if err := checkFirewalld(t, root); err != nil {
				t.Fatal(err)
			}
			if name == "iptables" {
				if b, _ := os.ReadFile(filepath.Join(root, firewalld.PolicyDir, "nicpersist.xml")); !strings.Contains(string(b), "<masquerade/>") {
					t.Fatalf("the iptables backend's policy does not masquerade:\n%s", b)
				}
			}
			first := filepath.Join(root, firewalld.PolicyDir, firewalld.PolicyName(0)+".xml")
			b, err := os.ReadFile(first)
			if err != nil {
				t.Fatal(err)
			}
			bad := strings.Replace(string(b), `<ingress-zone name="internal"/>`, `<ingress-zone name="nosuch"/>`, 1)
			if bad == string(b) {
				t.Fatalf("no ingress zone internal in %s:\n%s", first, b)
			}
			if err := os.WriteFile(first, []byte(bad), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := checkFirewalld(t, root); err == nil || !strings.Contains(err.Error(), "nosuch") {
				t.Fatalf("a policy with an unknown zone: %v, want the checker to refuse it", err)
			}
		})
	}
}
