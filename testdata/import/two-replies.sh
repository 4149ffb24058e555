#!/bin/sh
# Two reply tables, rules without priority (32765 then 32764), the default
# moved with replace, and a DHCP-style dash of noise: comments, set -e,
# rc.local's lock file.
set -e
touch /var/lock/subsys/local
ip route replace default via 172.22.5.97 dev eth2
ip route add default via 172.22.5.65 dev eth1 table 101   # eth1's replies
ip rule add from 172.22.5.68 table 101
ip route add default via 172.22.5.97 dev eth2 table 102
ip rule add from 172.22.5.100 table 102
