# nicpersist apply script: run by nicpersist.service. Do not edit; it is
# rewritten by `nicpersist render`. It reads only the files beside it, which
# nicpersist renders from a validated profile.
#
#   apply.sh start   apply (idempotent; also what `systemctl reload` runs)
#   apply.sh stop    remove what start added and restore what it displaced
#
# Environment: NICPERSIST_STATE (default $RUNTIME_DIRECTORY or /run/nicpersist)
# keeps what start displaced and applied; NICPERSIST_WAIT (default 60) is how
# many seconds start waits for the interfaces.
set -u
LC_ALL=C
export LC_ALL

here=$(cd "$(dirname "$0")" && pwd) || exit 1
state=${NICPERSIST_STATE:-${RUNTIME_DIRECTORY:-/run/nicpersist}}
wait_max=${NICPERSIST_WAIT:-60}
proto=241

log() { echo "nicpersist: $*" >&2; }

# clean_route drops the words `ip route show` prints about a route's state
# (linkdown, offload, expires 300sec, ...), which `ip route replace` refuses;
# whole words only and never a value, so links named deadnet or trap keep
# their names.
clean_route() {
	awk '{ out = ""
		for (i = 1; i <= NF; i++) {
			if (i > 1 && $(i - 1) ~ /^(dev|via|src|table|proto|scope|metric|weight|pref|realms?|mtu|advmss|nhid|from|tos|dsfield)$/) {
				out = out " " $i
				continue
			}
			if ($i ~ /^(rt_offload_failed|rt_offload|rt_trap|linkdown|dead|offload|trap)$/) continue
			if ($i == "expires" && $(i + 1) ~ /sec$/) { i++; continue }
			out = out (out == "" ? "" : " ") $i
		}
		print out }'
}

# section FILE NAME prints the lines of one "#@ NAME" section of a batch file.
section() {
	[ -f "$1" ] || return 0
	awk -v want="$2" '/^#@ /{cur=$2; next} /^#/{next} NF && cur==want' "$1"
}

# missing A B prints the lines of B that are not in A (both may be absent).
missing() {
	[ -s "$2" ] || return 0
	if [ -s "$1" ]; then grep -vxF -f "$1" "$2" || true; else cat "$2"; fi
}

# wait_links: a route through a link that is down or has no address yet fails
# with "Device for nexthop is not up"; wait for each routed link's address.
wait_links() {
	[ -f "$here/links" ] || return 0
	deadline=$(( $(date +%s) + wait_max ))
	while read -r dev addr; do
		case $dev in '' | '#'*) continue ;; esac
		while :; do
			if ip -o link show dev "$dev" 2>/dev/null | grep -q '[<,]UP[,>]'; then
				[ "$addr" = - ] && break
				# "inet A/N" or, point to point, "inet A peer B/N".
				ip -o addr show dev "$dev" 2>/dev/null | awk -v a="$addr" '!/ tentative/ {
					for (i = 1; i < NF; i++) if ($i == "inet" || $i == "inet6") { split($(i + 1), p, "/"); if (p[1] == a) ok = 1 } }
					END { exit !ok }' && break
			fi
			if [ "$(date +%s)" -ge "$deadline" ]; then
				log "$dev is not up with address $addr after ${wait_max}s"
				return 1
			fi
			sleep 0.2 2>/dev/null || sleep 1
		done
	done <"$here/links"
}

apply_sysctls() {
	[ -f "$here/sysctl.list" ] || return 0
	if [ ! -f "$state/sysctl.saved" ]; then
		while read -r key val; do
			case $key in '' | '#'*) continue ;; esac
			[ -f "/proc/sys/$key" ] && echo "$key $(cat "/proc/sys/$key")"
		done <"$here/sysctl.list" >"$state/sysctl.saved.tmp" && mv "$state/sysctl.saved.tmp" "$state/sysctl.saved"
	fi
	while read -r key val; do
		case $key in '' | '#'*) continue ;; esac
		# An interface that is not there yet gets its value from
		# systemd-sysctl when udev sees it, as sysctl.d(5) says.
		[ -f "/proc/sys/$key" ] || continue
		echo "$val" >"/proc/sys/$key" || { log "cannot set $key"; return 1; }
	done <"$here/sysctl.list"
}

restore_sysctls() {
	[ -f "$state/sysctl.saved" ] || return 0
	while read -r key val; do
		[ -f "/proc/sys/$key" ] && echo "$val" >"/proc/sys/$key"
	done <"$state/sysctl.saved"
	rm -f "$state/sysctl.saved"
}

# nat FAMILY: restore our own chain (the file declares it, so --noflush
# flushes it first), then jump to it once from POSTROUTING.
nat() {
	cmd=iptables rules="$here/iptables.rules"
	[ "$1" = 6 ] && cmd=ip6tables rules="$here/ip6tables.rules"
	command -v "$cmd" >/dev/null 2>&1 || {
		[ -f "$rules" ] && { log "$cmd is not installed"; return 1; }
		return 0
	}
	w="" rw=""
	"$cmd" -w -L -n -t nat >/dev/null 2>&1 && w=-w
	# iptables-restore learnt -w later than iptables (1.6.2; CentOS 7 has
	# 1.4.21), so ask it separately.
	"$cmd-restore" -w --test </dev/null >/dev/null 2>&1 && rw=-w
	if [ -f "$rules" ]; then
		# The mark nicpersist apply reads: a later start without rules
		# removes the chain.
		: >"$state/nat$1"
		"$cmd-restore" $rw --noflush <"$rules" || return 1
		"$cmd" $w -t nat -C POSTROUTING -j NICPERSIST-POSTROUTING 2>/dev/null ||
			"$cmd" $w -t nat -I POSTROUTING 1 -j NICPERSIST-POSTROUTING || return 1
	else
		nat_remove "$1"
	fi
}

nat_remove() {
	cmd=iptables
	[ "$1" = 6 ] && cmd=ip6tables
	rm -f "$state/nat$1"
	command -v "$cmd" >/dev/null 2>&1 || return 0
	w=""
	"$cmd" -w -L -n -t nat >/dev/null 2>&1 && w=-w
	while "$cmd" $w -t nat -D POSTROUTING -j NICPERSIST-POSTROUTING 2>/dev/null; do :; done
	"$cmd" $w -t nat -F NICPERSIST-POSTROUTING 2>/dev/null
	"$cmd" $w -t nat -X NICPERSIST-POSTROUTING 2>/dev/null
	return 0
}

# save_default: our IPv4 default route has metric 0, so `route replace`
# takes the place of a metric-0 default the system had (legacy dhclient,
# network-scripts). Keep that route once, to put it back on stop.
save_default() {
	f=$1
	[ "$f" = 4 ] || return 0
	[ -f "$state/default4.saved" ] && return 0
	section "$here/ip4.batch" main | grep -q '^route replace default .*dev' || return 0
	section "$here/ip4.batch" main | grep '^route replace default ' | grep -q ' metric ' && return 0
	# A multipath default's nexthops are on lines of their own: join them.
	ip -4 route show table main default 2>/dev/null |
		awk '/^[ \t]/ { sub(/^[ \t]+/, ""); cur = cur " " $0; next }
			{ if (cur != "") print cur; cur = $0 } END { if (cur != "") print cur }' |
		grep -v -e ' metric ' -e " proto $proto" | head -n 1 |
		clean_route >"$state/default4.saved.tmp" && mv "$state/default4.saved.tmp" "$state/default4.saved"
}

# only_exists FILE: an `ip -force -batch` error log holds only "File exists"
# answers (a rule already there) or not.
only_exists() {
	! grep -v -e 'File exists' -e '^Command failed' "$1" | grep -q .
}

# exists_lines ERRLOG BATCH prints the lines of BATCH that `ip -force -batch`
# answered with "File exists" (it logs "Command failed FILE:N" after each
# failed line's error).
exists_lines() {
	awk '/^Command failed / { n = $NF; sub(/.*:/, "", n); if (msg ~ /File exists/) print n; msg = ""; next }
		{ msg = msg $0 }' "$1" >"$2.n"
	awk 'FILENAME == ARGV[1] { want[$1]; next } FNR in want' "$2.n" "$2"
	rm -f "$2.n"
}

# union A B prints the lines of A and then those of B not in A.
union() {
	[ -f "$1" ] && cat "$1"
	[ -f "$2" ] && missing "$1" "$2"
	return 0
}

# pre_routes FAMILY NEW OLD prints "LINE|ROUTE" for each line of NEW that no
# earlier start applied (it is not in OLD) and whose route, the same table,
# prefix and metric, is in the kernel already: a route-<if> line that ifup or
# NetworkManager applied before the unit, or the user's own route. ROUTE is
# that route as `ip route replace` takes it; stop puts it back rather than
# deleting it. The IPv4 main-table metric-0 default is save_default's.
pre_routes() {
	f=$1
	missing "$3" "$2" |
		awk -v fam="$f" '!(fam == 4 && $3 == "default" && !/ table / && !/ metric /)' >"$st.cand"
	if [ -s "$st.cand" ]; then
		# shellcheck disable=SC2013 # table ids are words
		for t in $(awk '{ t = "main"; for (i = 4; i < NF; i++) if ($i == "table") t = $(i + 1); print t }' "$st.cand" | sort -u); do
			# The table goes before a multipath route's nexthops, where
			# `ip route replace` takes it.
			ip -"$f" route show table "$t" 2>/dev/null |
				awk -v t="$t" '/^[ \t]/ { sub(/^[ \t]+/, ""); cur = cur " " $0; next }
					{ if (cur != "") print cur; cur = $0 " table " t }
					END { if (cur != "") print cur }'
		done | clean_route >"$st.dump"
		awk -v fam="$f" '
			# key: table, prefix and metric, which identify a route.
			function key(line,   n, w, i, dst, table, metric) {
				n = split(line, w, " ")
				i = (w[1] == "route") ? 3 : 1
				if (w[i] ~ /^(unicast|local|broadcast|multicast|anycast|blackhole|unreachable|prohibit|throw|nat)$/) i++
				dst = w[i]
				if (fam == 4) sub(/\/32$/, "", dst); else sub(/\/128$/, "", dst)
				table = "main"
				metric = (fam == 4) ? 0 : 1024
				for (; i < n; i++) {
					if (w[i] == "table") table = w[i + 1]
					if (w[i] == "metric") metric = w[i + 1]
				}
				if (table == "254") table = "main"
				return table " " dst " " metric
			}
			FILENAME == ARGV[1] { k = key($0); if (!(k in route)) route[k] = $0; next }
			(key($0) in route) { print $0 "|" route[key($0)] }' "$st.dump" "$st.cand"
	fi
	rm -f "$st.cand" "$st.dump"
}

# undo_routes PRE turns "route replace" lines read from stdin into the batch
# that undoes them: `route replace` of the route that was there before (PRE,
# from pre_routes), else `route del`.
undo_routes() {
	awk -F'|' 'FILENAME == ARGV[1] { was[$1] = $2; next }
		($0 in was) { print "route replace " was[$0]; next }
		{ sub(/^route replace /, "route del "); print }' "$1" -
}

# undo FAMILY FILE runs a batch of deletions and put-backs, in which errors
# (what is already gone) are expected. Should ip stop early (a line it
# cannot parse ends even a -force batch), the lines run one by one, so that
# one bad line does not keep the others from running.
undo() {
	ip -"$1" -force -batch "$2" 2>"$2.err" ||
		tail -n 1 "$2.err" | grep -q '^Command failed ' || {
		log "ip -$1 -batch $2 stopped early; running its lines one by one: $(cat "$2.err")"
		while read -r line; do
			# shellcheck disable=SC2086 # a batch line is ip's words
			ip -"$1" $line >/dev/null 2>&1
		done <"$2"
	}
	rm -f "$2.err"
}

# grow STATE adds STATE.new's lines to STATE before they are applied: if
# applying them fails, stop then removes what was applied.
grow() {
	union "$1" "$1.new" >"$1.tmp" && mv "$1.tmp" "$1"
}

# apply_family FAMILY: routes in nicpersist's tables, then rules, then the
# main table, each step make-before-break; then remove what an earlier start
# applied and this one does not. The state files list what this start may
# have applied before each step applies it, so that a failed start's stop
# removes it; routes and rules that were there before the first start (see
# pre_routes; rules that answer "File exists" and no start added) are put
# back or left on stop.
apply_family() {
	f=$1 batch="$here/ip$1.batch" st="$state/ip$1"
	if [ -f "$batch" ]; then
		save_default "$f"
		for s in routes rules main; do section "$batch" "$s" >"$st.$s.new"; done
	else
		for s in routes rules main; do : >"$st.$s.new"; done
	fi
	for s in routes rules main pre rules.pre; do [ -f "$st.$s" ] || : >"$st.$s"; done
	cat "$st.routes" "$st.main" >"$st.old"
	cat "$st.routes.new" "$st.main.new" >"$st.all.new"
	{ cat "$st.pre"; pre_routes "$f" "$st.all.new" "$st.old"; } >"$st.pre.new"
	# What an earlier start added (as opposed to found), for stale removal.
	missing "$st.rules.pre" "$st.rules" >"$st.rules.ours"
	missing "$st.all.new" "$st.routes" >"$st.routes.stale"
	missing "$st.all.new" "$st.main" >"$st.main.stale"
	missing "$st.rules.new" "$st.rules.ours" >"$st.rules.stale"
	mv "$st.pre.new" "$st.pre"

	grow "$st.routes"
	if [ -s "$st.routes.new" ]; then
		ip -"$f" -batch "$st.routes.new" || return 1
	fi
	grow "$st.rules"
	if [ -s "$st.rules.new" ]; then
		# An identical rule answers "File exists"; anything else fails.
		ok=1
		ip -"$f" -force -batch "$st.rules.new" 2>"$st.err" || ok=0
		# Rules that were there before a start added them are not ours,
		# and stay not ours while the files hold them.
		exists_lines "$st.err" "$st.rules.new" >"$st.exists"
		{
			[ -s "$st.rules.pre" ] && grep -xF -f "$st.rules.new" "$st.rules.pre"
			missing "$st.rules.ours" "$st.exists"
		} | awk '!seen[$0]++' >"$st.rules.pre.tmp" && mv "$st.rules.pre.tmp" "$st.rules.pre"
		# A failure with nothing to say: ip did not run, or died.
		if [ "$ok" = 0 ] && { [ ! -s "$st.err" ] || ! only_exists "$st.err"; }; then
			cat "$st.err" >&2
			return 1
		fi
	else
		: >"$st.rules.pre"
	fi
	grow "$st.main"
	if [ -s "$st.main.new" ]; then
		ip -"$f" -batch "$st.main.new" || return 1
	fi
	{
		sed 's/^rule add /rule del /' "$st.rules.stale"
		undo_routes "$st.pre" <"$st.main.stale"
		undo_routes "$st.pre" <"$st.routes.stale"
	} >"$st.stale"
	[ -s "$st.stale" ] && undo "$f" "$st.stale"
	for s in routes rules main; do mv "$st.$s.new" "$st.$s"; done
	awk -F'|' 'FILENAME == ARGV[1] { keep[$0]; next } ($1 in keep)' "$st.all.new" "$st.pre" >"$st.pre.tmp" && mv "$st.pre.tmp" "$st.pre"
	rm -f "$st.stale" "$st.err" "$st.exists" "$st.old" "$st.all.new" "$st.rules.ours" \
		"$st.routes.stale" "$st.main.stale" "$st.rules.stale"
	return 0
}

# remove_family FAMILY: put back a displaced default first (it replaces ours,
# so there is always a default route), then delete rules and routes, putting
# back those that were there before the first start.
remove_family() {
	f=$1 st="$state/ip$1"
	if [ "$f" = 4 ]; then
		if [ -s "$state/default4.saved" ]; then
			# shellcheck disable=SC2046
			ip -4 route replace $(cat "$state/default4.saved") ||
				log "could not restore the default route: $(cat "$state/default4.saved")"
		fi
		rm -f "$state/default4.saved"
	fi
	[ -f "$st.pre" ] || : >"$st.pre"
	{
		[ -f "$st.rules" ] && missing "$st.rules.pre" "$st.rules" | sed 's/^rule add /rule del /'
		[ -f "$st.main" ] && undo_routes "$st.pre" <"$st.main"
		[ -f "$st.routes" ] && undo_routes "$st.pre" <"$st.routes"
	} >"$st.del"
	[ -s "$st.del" ] && undo "$f" "$st.del"
	rm -f "$st.del" "$st.rules" "$st.main" "$st.routes" "$st.pre" "$st.rules.pre" \
		"$st.routes.new" "$st.rules.new" "$st.main.new" "$st.err" "$st.exists" "$st.old" \
		"$st.all.new" "$st.rules.ours" "$st.routes.stale" "$st.main.stale" "$st.rules.stale" "$st.stale"
	return 0
}

start() {
	mkdir -p "$state" || exit 1
	wait_links || return 1
	apply_sysctls || return 1
	nat 4 || return 1
	nat 6 || return 1
	apply_family 4 || return 1
	apply_family 6 || return 1
}

stop() {
	mkdir -p "$state" || exit 1
	remove_family 6
	remove_family 4
	nat_remove 6
	nat_remove 4
	restore_sysctls
	return 0
}

case ${1:-} in
start)
	if ! start; then
		log "start failed; removing what was applied"
		stop
		exit 1
	fi
	;;
stop) stop ;;
*)
	echo "usage: $0 start|stop" >&2
	exit 2
	;;
esac
