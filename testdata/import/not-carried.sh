#!/bin/sh
# want-exit: 3
# Lines without a profile key, and a line after exit: commented in the
# profile, listed on stderr, exit 3; the rest still carried over.
ip route replace default via 172.22.5.97 dev eth2
echo 1 > /proc/sys/net/ipv4/conf/all/send_redirects
modprobe nf_conntrack
ip route add default via 172.22.5.65 dev eth1 table 130
ip rule add from 172.22.5.68 table 130 pref 1300
exit 0
ip rule add from 172.22.5.100 table 130 pref 1301
