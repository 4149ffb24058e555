#!/bin/sh
# Both families: one reply table with an IPv4 and an IPv6 default and one
# priority, IPv6 SNAT, an IPv6 default in main and an IPv6 route.
ip route replace default via 172.22.5.97 dev eth2
ip -6 route add default via 2001:db8:2::1 dev eth2 metric 100
ip route add default via 172.22.5.65 dev eth1 table 120
ip -6 route add default via 2001:db8:1::1 dev eth1 table 120
ip rule add from 172.22.5.68 table 120 pref 900
ip -6 rule add from 2001:db8:1::68 table 120 pref 900
ip -6 route add 2001:db8:ff::/48 via 2001:db8:2::1 dev eth2
ip6tables -t nat -A POSTROUTING -s 2001:db8:3::/64 -o eth2 -j SNAT --to-source 2001:db8:2::100
iptables -t nat -A POSTROUTING -s 172.22.5.128/26 -o eth2 -j MASQUERADE
sysctl -w net.ipv6.conf.all.forwarding=1 net.ipv4.ip_forward=1
