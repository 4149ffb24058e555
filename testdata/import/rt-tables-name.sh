#!/bin/sh
# A table named in rt_tables, lookup instead of table, priority spelled
# out, and the abbreviations people type.
echo "200 uplink1" >> /etc/iproute2/rt_tables
ip ro del default
ip r add default via 172.22.5.97 dev eth2 metric 0
ip -4 route add default via 172.22.5.65 dev eth1 table uplink1
ip ru add from 172.22.5.68 lookup uplink1 priority 200
echo 1 > /proc/sys/net/ipv4/ip_forward
