#!/bin/sh
# The seed article's rc.local (shared/seed/README.md), word for word.
ip route del default via 172.22.5.65 dev eth1
ip route add default via 172.22.5.97 dev eth2
iptables -t nat -A POSTROUTING -o eth2 -j MASQUERADE
sed -ri 's/net.ipv4.ip_forward = 0/net.ipv4.ip_forward = 1/g' /etc/sysctl.conf
sysctl -p
echo "100 table1" >> /etc/iproute2/rt_tables
ip route add default via 172.22.5.65 dev eth1 table table1
ip rule add from 172.22.5.68 table table1
exit 0
