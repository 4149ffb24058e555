package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nicpersist/nicpersist/render/testenv"
)

// cloudInitMAC is 50-cloud-init.yaml as cloud-init writes it on a cloud
// that gives MAC addresses: match: macaddress and set-name.
const cloudInitMAC = `# This file is generated from information provided by the datasource.  Changes
# to it will not persist across an instance reboot.  To disable cloud-init's
# network configuration capabilities, write a file
# /etc/cloud/cloud.cfg.d/99-disable-network-config.cfg with the following:
# network: {config: disabled}
network:
    ethernets:
        eth1:
            dhcp4: true
            match:
                macaddress: 52:54:00:12:34:01
            set-name: eth1
        id-eth2:
            dhcp4: true
            dhcp4-overrides:
                route-metric: 200
            match:
                macaddress: 52:54:00:12:34:02
            set-name: eth2
        eth3:
            addresses:
            - 172.22.5.132/26
            match:
                macaddress: 52:54:00:12:34:03
            set-name: eth3
    version: 2
`

// TestNetplanGenerate renders the netplan target beside a cloud-init file
// and runs the real `netplan generate --root-dir` on the result: the
// networkd files netplan writes must hold cloud-init's match and DHCP and
// nicpersist's routes and rules, merged into one .network file per
// interface, under cloud-init's ids (id-eth2 is not the interface's name).
func TestNetplanGenerate(t *testing.T) {
	testenv.Need(t, "", "", "netplan")
	t.Parallel()
	for _, c := range []struct {
		name, cloud string
		want        map[string][]string
		warn        string
		unitMain    bool
	}{
		{
			name:  "cloud-init",
			cloud: cloudInitMAC,
			want: map[string][]string{
				"10-netplan-eth1.network": {"[Match]\nPermanentMACAddress=52:54:00:12:34:01\nName=eth1\n", "DHCP=ipv4",
					"[Route]\nDestination=172.22.5.64/27\nScope=link\nMetric=0\nTable=1000\n",
					"[Route]\nDestination=0.0.0.0/0\nGateway=172.22.5.65\nGatewayOnLink=true\nMetric=0\nTable=1000\n",
					"[RoutingPolicyRule]\nFrom=172.22.5.68/32\nTable=1000\nPriority=1000\n", "[DHCP]\nRouteMetric=100\n"},
				"10-netplan-id-eth2.network": {"[Match]\nPermanentMACAddress=52:54:00:12:34:02\nName=eth2\n",
					"[Route]\nDestination=0.0.0.0/0\nGateway=172.22.5.97\nGatewayOnLink=true\nMetric=0\n", "[DHCP]\nRouteMetric=200\n"},
				"10-netplan-eth3.network": {"Address=172.22.5.132/26"},
			},
		},
		{
			// gateway4 is a metric-0 default no later file can outrank: the
			// unit keeps the main default, and the warning says what to do.
			name:     "gateway4",
			cloud:    "network:\n  version: 2\n  ethernets:\n    eth1:\n      addresses: [172.22.5.68/27]\n      gateway4: 172.22.5.65\n    eth2:\n      dhcp4: true\n",
			warn:     "/etc/netplan/50-cloud-init.yaml gives eth1 gateway4: 172.22.5.65",
			unitMain: true,
			want: map[string][]string{
				"10-netplan-eth1.network": {"[RoutingPolicyRule]\nFrom=172.22.5.68/32\nTable=1000\nPriority=1000\n"},
			},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			writeFiles(t, root, map[string]string{
				"etc/os-release":                 "ID=ubuntu\nVERSION_ID=\"24.04\"\nPRETTY_NAME=\"Ubuntu 24.04 LTS\"\n",
				"usr/sbin/netplan":               "",
				"etc/netplan/50-cloud-init.yaml": c.cloud,
			})
			os.Chmod(filepath.Join(root, "etc/netplan/50-cloud-init.yaml"), 0o600)
			var errb strings.Builder
			renderIntoOut(t, root, seedProfile, "auto", &errb)
			if !strings.Contains(errb.String(), "target netplan:") {
				t.Errorf("--target auto did not pick netplan:\n%s", errb.String())
			}
			if c.warn != "" && !strings.Contains(errb.String(), c.warn) {
				t.Errorf("no warning %q in\n%s", c.warn, errb.String())
			}
			fi, err := os.Stat(filepath.Join(root, "etc/netplan/90-nicpersist.yaml"))
			if err != nil || fi.Mode().Perm() != 0o600 {
				t.Fatalf("etc/netplan/90-nicpersist.yaml: %v, %v; want mode 0600", fi, err)
			}
			out, err := exec.Command("netplan", "generate", "--root-dir", root).CombinedOutput()
			// netplan's only complaint may be about the cloud's gateway4.
			if err != nil || (len(out) > 0 && !strings.Contains(string(out), "`gateway4` has been deprecated")) {
				t.Fatalf("netplan generate --root-dir: %v\n%s", err, out)
			}
			for name, parts := range c.want {
				b, err := os.ReadFile(filepath.Join(root, "run/systemd/network", name))
				if err != nil {
					t.Fatal(err)
				}
				for _, p := range parts {
					if !strings.Contains(string(b), p) {
						t.Errorf("%s: no\n%s\nin\n%s", name, p, b)
					}
				}
			}
			batch, _ := os.ReadFile(filepath.Join(root, "etc/nicpersist/ip4.batch"))
			if got := strings.Contains(string(batch), "route replace default via 172.22.5.97 dev eth2"); got != c.unitMain {
				t.Errorf("the unit applies the main default: %v, want %v\n%s", got, c.unitMain, batch)
			}
			if strings.Contains(string(batch), "rule add") || strings.Contains(string(batch), "table 1000") {
				t.Errorf("the unit applies what netplan holds:\n%s", batch)
			}
		})
	}
}
