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
