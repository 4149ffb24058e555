#!/bin/sh
# SNAT to a fixed address with a source, -I ahead of an -A, ip_forward
# through sysctl without -w.
iptables -t nat -A POSTROUTING -o eth1 -j MASQUERADE
iptables -t nat -I POSTROUTING -s 172.22.5.128/26 -o eth2 -j SNAT --to-source 172.22.5.100
iptables -w -t nat -A POSTROUTING -s 10.8.0.0/24 -o eth2 -j MASQUERADE
sysctl net.ipv4.ip_forward=1
