#!/bin/sh
# Variables (quoted or not, $X and ${X}) and line continuations.
GW1=172.22.5.65
GW2="172.22.5.97"
OUT='eth2'
ADDR1=172.22.5.68
TBL=110
ip route replace default \
    via $GW2 dev "${OUT}"
ip route add default via ${GW1} dev eth1 \
  table $TBL
ip rule add from "$ADDR1" \
  table ${TBL} \
  pref 2000
iptables -t nat -A POSTROUTING \
  -o $OUT -j MASQUERADE   # comment after the command
/sbin/sysctl -w "net.ipv4.ip_forward=1" >/dev/null 2>&1 || true
exit 0
