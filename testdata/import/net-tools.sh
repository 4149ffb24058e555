#!/bin/sh
# net-tools route(8) instead of ip route.
route del default gw 172.22.5.65 dev eth1
route add default gw 172.22.5.97 eth2
route add -net 10.10.0.0 netmask 255.255.0.0 gw 172.22.5.97 dev eth2
route add -host 192.0.2.7 gw 172.22.5.97
route add -net 10.30.0.0/16 dev eth3 metric 5
iptables -t nat -A POSTROUTING -o eth2 -j MASQUERADE
