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
