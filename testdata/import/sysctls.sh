#!/bin/sh
# Every way of setting the forwarding and rp_filter sysctls.
sysctl -w net.ipv4.ip_forward=1
echo 2 > /proc/sys/net/ipv4/conf/all/rp_filter
sysctl -w net.ipv6.conf.all.forwarding=1
echo "net.ipv4.ip_forward = 1" >> /etc/sysctl.conf
sysctl -p /etc/sysctl.conf
