#!/bin/bash
# verify benchmark: `nicpersist verify` of the shipped seed profile
# (packaging/profile.example.toml) against a network namespace where `apply
# start` applied it, as a whole process (hyperfine, inside the namespace,
# beside `nicpersist version`, the Go runtime's start alone, and the
# `iptables-save -t nat` verify runs) and in process (BenchmarkVerifySeed).
#
#   sudo bash packaging/bench/verify-bench.sh [--runs 200] [--count 5] [--nicpersist BIN]
#
# Goal: under 20 ms wall for a whole verify at the seed's size.
set -euo pipefail

runs=200
count=5
bin=""
while [ $# -gt 0 ]; do
	case $1 in
	--runs) runs=$2; shift 2 ;;
	--count) count=$2; shift 2 ;;
	--nicpersist) bin=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "verify-bench: unknown argument $1" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "verify-bench: needs root (it makes a network namespace)" >&2; exit 2; }
for t in ip iptables iptables-save hyperfine; do
	command -v "$t" >/dev/null || { echo "verify-bench: needs $t" >&2; exit 2; }
done
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=$PATH:/usr/local/go/bin
work=$(mktemp -d /tmp/np-verify-bench.XXXXXX)
ns=np-verify-bench-$$
trap 'ip netns del "$ns" 2>/dev/null || true; rm -rf "$work"' EXIT
trap 'exit 130' INT TERM
if [ -z "$bin" ]; then
	(cd "$repo" && CGO_ENABLED=0 go build -o "$work/nicpersist" ./cmd/nicpersist)
	bin=$work/nicpersist
fi
prof=$repo/packaging/profile.example.toml

# The seed VM's links, as render/cli's TestVerifySeed makes them.
ip netns add "$ns"
ip -n "$ns" link set lo up
for i in 1 2 3; do
	ip -n "$ns" link add eth$i type veth peer name peer$i
	ip -n "$ns" link set eth$i up
	ip -n "$ns" link set peer$i up
done
ip -n "$ns" addr add 172.22.5.68/27 dev eth1
ip -n "$ns" addr add 172.22.5.100/27 dev eth2
ip -n "$ns" addr add 172.22.5.132/26 dev eth3
ip -n "$ns" route add default via 172.22.5.65 dev eth1
mkdir "$work/root"
"$bin" render --profile "$prof" --root "$work/root" --target systemd >/dev/null 2>"$work/render.err" || { cat "$work/render.err" >&2; exit 1; }
ip netns exec "$ns" "$bin" apply start --dir "$work/root/etc/nicpersist" --state "$work/state" --wait 5
ip netns exec "$ns" "$bin" verify --profile "$prof" >/dev/null || { echo "verify-bench: not in sync after apply start" >&2; exit 1; }

echo "whole process, in the namespace (hyperfine -N, $runs runs):"
ip netns exec "$ns" hyperfine -N --warmup 10 --runs "$runs" --style none --export-csv "$work/hf.csv" \
	"$bin version" "$bin verify --profile $prof" "iptables-save -t nat" >/dev/null
awk -F, 'BEGIN { split("nicpersist version|nicpersist verify (seed, in sync)|iptables-save -t nat", name, "|") }
	NR > 1 { printf "  %-40s mean %6.2f ms  median %6.2f ms  min %6.2f ms\n", name[NR - 1], $2 * 1000, $4 * 1000, $7 * 1000 }' "$work/hf.csv"

echo "in process (go test -bench BenchmarkVerifySeed, $count runs):"
(cd "$repo" && go test ./render/cli -run '^$' -bench '^BenchmarkVerifySeed$' -count "$count") |
	awk '/^BenchmarkVerifySeed/ { v[++n] = $3 / 1e6 } END {
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		printf "  verify in process                        median %6.2f ms  min %6.2f ms\n", (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2, v[1] }'
