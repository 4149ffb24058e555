#!/bin/sh
# want-exit: 3
# set -e ends the file at the first command that fails (here a route the
# file already added): what follows never runs, in the namespace or in the
# profile. A failure behind || true does not end it.
set -e
ip route replace default via 172.22.5.97 dev eth2
ip route add 10.30.0.0/16 dev eth3
ip route add 10.30.0.0/16 dev eth3 || true
ip rule add from 172.22.5.132 table 150 pref 1500 && ip route add default via 172.22.5.97 dev eth2 table 150
ip route add 10.30.0.0/16 dev eth3
ip rule add from 172.22.5.68 table 150 pref 1501
