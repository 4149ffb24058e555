#!/bin/sh
# Rules added then deleted, a route replaced in its own table, a del of a
# route the file added, and the kernel's priority after a delete.
ip route add default via 172.22.5.65 dev eth1 table 140
ip route replace default via 172.22.5.65 dev eth1 table 140
ip route add 10.60.0.0/16 via 172.22.5.97 dev eth2
ip route del 10.60.0.0/16
ip rule add from 172.22.5.68 table 140
ip rule add from 10.70.0.0/16 table 140
ip rule del from 10.70.0.0/16 table 140
ip rule add iif eth3 table 140
