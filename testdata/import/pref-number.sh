#!/bin/bash
# Table by number, rule with pref, replace instead of del+add, and the
# table's subnet route written out (so import adds nothing).
set -e
ip route replace default via 172.22.5.97 dev eth2
ip route add 172.22.5.64/27 dev eth1 table 101
ip route add default via 172.22.5.65 dev eth1 table 101
ip rule add from 172.22.5.68/32 pref 1500 table 101
iptables -t nat -A POSTROUTING -s 172.22.5.128/26 -o eth2 -j MASQUERADE
sysctl -w net.ipv4.ip_forward=1
