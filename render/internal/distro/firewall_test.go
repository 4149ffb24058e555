package distro

import (
	"strings"
	"testing"
)

func TestFirewallReload(t *testing.T) {
	if got := FirewallReload([]string{"etc/nicpersist/ip4.batch", Manifest}); got != "" {
		t.Errorf("no policy changed, yet: %q", got)
	}
	if got := FirewallReload([]string{"etc/firewalld/policies/nicpersist.xml"}); !strings.Contains(got, "firewall-cmd --reload") {
		t.Errorf("a policy changed: %q, want the reload named", got)
	}
}

// TestUnitAfterFirewalld: on the iptables backend with firewalld enabled,
// the unit starts after firewalld has flushed iptables, not merely after
// systemd calls it started.
func TestUnitAfterFirewalld(t *testing.T) {
	plain, err := unitFile("", false)
	if err != nil {
		t.Fatal(err)
	}
	after, err := unitFile("", true)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"After=network-online.target NetworkManager.service network.service systemd-networkd.service firewalld.service\n", "TimeoutStartSec=120\nExecStartPre=-/usr/bin/firewall-cmd --state\nExecStart="} {
		if !strings.Contains(string(after), want) {
			t.Errorf("no %q in\n%s", want, after)
		}
		if strings.Contains(string(plain), "firewall") {
			t.Errorf("firewalld in the unit without it:\n%s", plain)
		}
	}
	if strings.Count(string(after), "[Unit]") != 1 || strings.Count(string(after), "[Service]") != 1 {
		t.Errorf("a section twice:\n%s", after)
	}
}
