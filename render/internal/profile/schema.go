package profile

// The profile as written, before any meaning is given to it. Leaves are Opt or
// Scalar so that a wrong TOML type is recorded, not fatal: validation then
// reports it together with every other problem.

// Profile is /etc/nicpersist/profile.toml.
type Profile struct {
	Version    Opt[int64]  `toml:"version"`
	Numbering  Numbering   `toml:"numbering"`
	Sysctl     Sysctl      `toml:"sysctl"`
	Interfaces []Interface `toml:"interface"`
	NAT        []NAT       `toml:"nat"`
	Netfilter  Netfilter   `toml:"netfilter"`
	Forwards   []Forward   `toml:"port_forward"`
	Marks      []Mark      `toml:"mark"`
	Tables     []Table     `toml:"table"`
	Routes     []Route     `toml:"route"`
	Rules      []Rule      `toml:"rule"`
}

// Numbering sets where auto-assigned table ids and rule priorities start.
type Numbering struct {
	TableBase    Opt[int64] `toml:"table_base"`
	PriorityBase Opt[int64] `toml:"priority_base"`
}

// Sysctl holds the forwarding and reverse-path settings.
type Sysctl struct {
	IPForward      Opt[bool]   `toml:"ip_forward"`
	IPv6Forwarding Opt[bool]   `toml:"ipv6_forwarding"`
	RPFilter       Opt[string] `toml:"rp_filter"`
}

// Interface describes one NIC as the cloud or DHCP configured it.
type Interface struct {
	Name         Opt[string] `toml:"name"`
	Address      Opt[string] `toml:"address"`
	Gateway      Opt[string] `toml:"gateway"`
	Address6     Opt[string] `toml:"address6"`
	Gateway6     Opt[string] `toml:"gateway6"`
	ReplyViaSelf Opt[bool]   `toml:"reply_via_self"`
	DefaultRoute Opt[bool]   `toml:"default_route"`
	Table        Opt[int64]  `toml:"table"`
	Priority     Opt[int64]  `toml:"priority"`
	Sysctl       IfSysctl    `toml:"sysctl"`
}

// IfSysctl is the per-interface net.ipv4.conf.<if>.* keys (and IPv6's
// accept_ra) that rc.local recipes for multi-NIC hosts set beside their
// routes.
type IfSysctl struct {
	ArpAnnounce     Opt[int64] `toml:"arp_announce"`
	ArpIgnore       Opt[int64] `toml:"arp_ignore"`
	ArpFilter       Opt[int64] `toml:"arp_filter"`
	ProxyARP        Opt[int64] `toml:"proxy_arp"`
	AcceptLocal     Opt[int64] `toml:"accept_local"`
	RPFilter        Opt[int64] `toml:"rp_filter"`
	SendRedirects   Opt[int64] `toml:"send_redirects"`
	AcceptRedirects Opt[int64] `toml:"accept_redirects"`
	RouteLocalnet   Opt[int64] `toml:"route_localnet"`
	AcceptRA        Opt[int64] `toml:"accept_ra"` // net.ipv6.conf.<if>.accept_ra
}

// Netfilter says how NAT, port forwards, marks and forward accepts are
// loaded.
type Netfilter struct {
	Backend       Opt[string] `toml:"backend"`
	ForwardAccept Opt[bool]   `toml:"forward_accept"`
}

// Forward is one port forward (DNAT) arriving on an interface.
type Forward struct {
	InInterface Opt[string] `toml:"in_interface"`
	Protocol    Opt[string] `toml:"protocol"`
	Port        Scalar      `toml:"port"`
	To          Opt[string] `toml:"to"`
}

// Mark sets a firewall mark on packets arriving, for [[rule]] fwmark.
type Mark struct {
	InInterface Opt[string] `toml:"in_interface"`
	Protocol    Opt[string] `toml:"protocol"`
	Port        Scalar      `toml:"port"`
	Source      Opt[string] `toml:"source"`
	FWMark      Scalar      `toml:"fwmark"`
}

// NAT is one source-NAT rule on an outgoing interface.
type NAT struct {
	OutInterface Opt[string] `toml:"out_interface"`
	Source       Opt[string] `toml:"source"`
	Masquerade   Opt[bool]   `toml:"masquerade"`
	ToSource     Opt[string] `toml:"to_source"`
}

// Table names a routing table.
type Table struct {
	ID   Opt[int64]  `toml:"id"`
	Name Opt[string] `toml:"name"`
}

// Route is any extra route.
type Route struct {
	To     Opt[string] `toml:"to"`
	Via    Opt[string] `toml:"via"`
	Dev    Opt[string] `toml:"dev"`
	Table  Scalar      `toml:"table"`
	Metric Opt[int64]  `toml:"metric"`
}

// Rule is any extra policy rule.
type Rule struct {
	Priority Opt[int64]  `toml:"priority"`
	From     Opt[string] `toml:"from"`
	To       Opt[string] `toml:"to"`
	IIF      Opt[string] `toml:"iif"`
	OIF      Opt[string] `toml:"oif"`
	FWMark   Scalar      `toml:"fwmark"`
	Table    Scalar      `toml:"table"`
}
