#!/bin/sh
# Extra static routes in main, a fwmark rule and an iif rule without a
# priority (the kernel counts down from 32765), beside reply_via_self.
ip route del default
ip route add default via 172.22.5.97 dev eth2
ip route add 10.20.0.0/16 via 172.22.5.97 dev eth2 metric 50
ip route add 10.21.0.0/16 via 172.22.5.65
ip route add default via 172.22.5.97 dev eth2 table 200
ip route add 10.40.0.0/16 dev eth3 table 200
ip rule add fwmark 0x10/0xff table 200 pref 300
ip rule add iif eth3 table 200
ip route add default via 172.22.5.65 dev eth1 table 201
ip rule add from 172.22.5.68 table 201
ip rule add to 10.50.0.0/16 oif eth2 lookup main
