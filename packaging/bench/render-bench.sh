#!/bin/bash
# Render benchmarks: runs the go test benchmarks of render/cli (profiles of
# 10, 1,000 and 10,000 routes, and the shipped seed profile) and prints the
# median ns/op, CPU ns/op and allocs/op of each, and the growth from 1,000
# to 10,000 routes (goal: 10x the routes, at most 12x the time).
#
#   bash packaging/bench/render-bench.sh [--count 5] [--benchtime 1s]
#
# Render*: the whole command (read, decode, validate, expand, render, write
# every file atomically with fsync) into a fresh root per render. Rerender:
# the second render of the same profile (reads and compares, writes nothing).
# Build: decode + validate + expand in memory. RenderMemory: Build plus the
# target's text. cpu-ns/op is the test process's user+system CPU per render
# (with the garbage collector's share of earlier benchmarks). With perf
# installed (linux-perf), the seed profile is also rendered by the built
# binary, 30 times into a fresh root: task-clock is the whole process's CPU,
# Go runtime start and the kernel's fsync work included, against `version`
# (start alone) and `render --dry-run` (no writes).
set -euo pipefail
count=5
benchtime=1s
while [ $# -gt 0 ]; do
	case $1 in
	--count) count=$2; shift 2 ;;
	--benchtime) benchtime=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -e/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "render-bench: unknown argument $1" >&2; exit 2 ;;
	esac
done
cd "$(dirname "$0")/../.."
export PATH=$PATH:/usr/local/go/bin
out=$(mktemp)
tmp=$(mktemp -d)
trap 'rm -rf "$out" "$tmp"' EXIT
go test ./render/cli -run '^$' -bench . -benchmem -count "$count" -benchtime "$benchtime" | tee "$out" >&2
awk '
	/^Benchmark/ {
		name = $1; sub(/-[0-9]+$/, "", name)
		ns = cpu = allocs = ""
		for (i = 3; i < NF; i++) {
			if ($(i + 1) == "ns/op") ns = $i
			if ($(i + 1) == "cpu-ns/op") cpu = $i
			if ($(i + 1) == "allocs/op") allocs = $i
		}
		n[name]++; NS[name, n[name]] = ns; CPU[name, n[name]] = cpu; AL[name, n[name]] = allocs
		if (!(name in seen)) { seen[name] = 1; order[++k] = name }
	}
	function median(arr, name, c,   v, i, j, t) {
		for (i = 1; i <= c; i++) v[i] = arr[name, i] + 0
		for (i = 1; i <= c; i++) for (j = i + 1; j <= c; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
		return (c % 2) ? v[(c + 1) / 2] : (v[c / 2] + v[c / 2 + 1]) / 2
	}
	END {
		printf "\n%-36s %12s %12s %11s\n", "benchmark (median of runs)", "ms/op", "cpu-ms/op", "allocs/op"
		for (i = 1; i <= k; i++) {
			b = order[i]
			m[b] = median(NS, b, n[b]); c = (CPU[b, 1] == "") ? "" : sprintf("%.2f", median(CPU, b, n[b]) / 1e6)
			printf "%-36s %12.2f %12s %11d\n", b, m[b] / 1e6, c, median(AL, b, n[b])
		}
		printf "\ngrowth from 1,000 to 10,000 routes (10x the work; goal <= 12x the time):\n"
		for (i = 1; i <= k; i++) {
			b = order[i]
			if (b !~ /routes=10000$/) continue
			base = b; sub(/routes=10000$/, "routes=1000", base)
			if (!(base in m)) continue
			g = m[b] / m[base]
			printf "  %-28s x%.2f %s\n", substr(base, 1, length(base) - 12), g, (g <= 12 ? "ok" : "OVER 12x")
		}
		if ("BenchmarkRenderSeed" in m)
			printf "seed profile: %.2f ms wall, %.2f ms CPU per render (goal: well under 10 ms of CPU)\n",
				m["BenchmarkRenderSeed"] / 1e6, median(CPU, "BenchmarkRenderSeed", n["BenchmarkRenderSeed"]) / 1e6
	}' "$out"

if command -v perf >/dev/null && perf stat -e task-clock true >/dev/null 2>&1; then
	go build -o "$tmp/nicpersist" ./cmd/nicpersist
	seed=packaging/profile.example.toml
	clock() {
		perf stat -r 30 -e task-clock "$@" 2>&1 >/dev/null | awk '/task-clock/ { ms = $1 } /elapsed/ { printf "%6.2f ms CPU %6.2f ms wall", ms, $1 * 1000 }'
	}
	echo "seed profile as a process (perf stat, mean of 30):"
	echo "  nicpersist version                    $(clock "$tmp/nicpersist" version)"
	echo "  nicpersist render --dry-run           $(clock --pre "rm -rf $tmp/root && mkdir $tmp/root" "$tmp/nicpersist" render --root "$tmp/root" --profile "$seed" --target systemd --dry-run)"
	echo "  nicpersist render (fresh root, fsync) $(clock --pre "rm -rf $tmp/root && mkdir $tmp/root" "$tmp/nicpersist" render --root "$tmp/root" --profile "$seed" --target systemd)"
fi
