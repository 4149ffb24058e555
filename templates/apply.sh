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
				ip -o addr show dev "$dev" 2>/dev/null | grep -F " $addr/" | grep -qv tentative && break
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
	w=""
	"$cmd" -w -L -n -t nat >/dev/null 2>&1 && w=-w
	if [ -f "$rules" ]; then
		"$cmd-restore" $w --noflush <"$rules" || return 1
		"$cmd" $w -t nat -C POSTROUTING -j NICPERSIST-POSTROUTING 2>/dev/null ||
			"$cmd" $w -t nat -I POSTROUTING 1 -j NICPERSIST-POSTROUTING || return 1
	else
		nat_remove "$1"
	fi
}

nat_remove() {
	cmd=iptables
	[ "$1" = 6 ] && cmd=ip6tables
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
	ip -4 route show table main default 2>/dev/null |
		grep -v -e ' metric ' -e " proto $proto" -e '^\s' |
		sed -e 's/ linkdown//g' -e 's/ dead//g' -e 's/ offload//g' -e 's/ trap//g' -e 's/ rt_offload//g' |
		head -n 1 >"$state/default4.saved.tmp" && mv "$state/default4.saved.tmp" "$state/default4.saved"
}

# errors_other_than_exists FILE: an `ip -force -batch` error log holds only
# "File exists" answers (a rule already there) or not.
only_exists() {
	! grep -v -e 'File exists' -e '^Command failed' "$1" | grep -q .
}

# apply_family FAMILY: routes in nicpersist's tables, then rules, then the
# main table, each step make-before-break; then remove what an earlier start
# applied and this one does not.
apply_family() {
	f=$1 batch="$here/ip$1.batch" st="$state/ip$1"
	if [ -f "$batch" ]; then
		save_default "$f"
		for s in routes rules main; do section "$batch" "$s" >"$st.$s.new"; done
	else
		for s in routes rules main; do : >"$st.$s.new"; done
	fi
	if [ -s "$st.routes.new" ]; then
		ip -"$f" -batch "$st.routes.new" || return 1
	fi
	if [ -s "$st.rules.new" ]; then
		# An identical rule answers "File exists"; anything else fails.
		ip -"$f" -force -batch "$st.rules.new" 2>"$st.err" || only_exists "$st.err" || {
			cat "$st.err" >&2
			return 1
		}
	fi
	if [ -s "$st.main.new" ]; then
		ip -"$f" -batch "$st.main.new" || return 1
	fi
	missing "$st.rules.new" "$st.rules" | sed 's/^rule add /rule del /' >"$st.stale"
	missing "$st.main.new" "$st.main" | sed 's/^route replace /route del /' >>"$st.stale"
	missing "$st.routes.new" "$st.routes" | sed 's/^route replace /route del /' >>"$st.stale"
	[ -s "$st.stale" ] && ip -"$f" -force -batch "$st.stale" 2>/dev/null
	for s in routes rules main; do mv "$st.$s.new" "$st.$s"; done
	rm -f "$st.stale" "$st.err"
	return 0
}

# remove_family FAMILY: put back a displaced default first (it replaces ours,
# so there is always a default route), then delete rules and routes.
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
	{
		[ -f "$st.rules" ] && sed 's/^rule add /rule del /' "$st.rules"
		[ -f "$st.main" ] && sed 's/^route replace /route del /' "$st.main"
		[ -f "$st.routes" ] && sed 's/^route replace /route del /' "$st.routes"
	} >"$st.del"
	[ -s "$st.del" ] && ip -"$f" -force -batch "$st.del" 2>/dev/null
	rm -f "$st.del" "$st.rules" "$st.main" "$st.routes"
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
