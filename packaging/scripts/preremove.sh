#!/bin/sh
# nicpersist pre-removal: deb prerm, rpm %preun.
#
# deb: $1 = remove | upgrade | deconfigure | failed-upgrade
# rpm: $1 = 0 (erase) | 1 (upgrade: the new version's %post has run)
#
# On removal (not on upgrade): stop the unit, so that it takes its routes,
# rules and NAT away while its binary is still there, then remove what
# render made with `nicpersist uninstall`. It runs here and not at purge
# (postrm) because the binary is gone by then, and because the rendered,
# enabled unit would fail at every boot once its binary is removed. Nothing
# is lost: the profile stays, and installing again renders the same files.
# rpm has no remove/purge distinction; erase is both.
#
# A failure here must not block the removal: it is reported, and the
# removal goes on.
set -e

case "$1" in
remove | 0) ;;
*) exit 0 ;;
esac

root="${DPKG_ROOT:-}"
nicpersist="$root/usr/bin/nicpersist"

#@lib

if systemd_running; then
	systemctl stop nicpersist.service ||
		echo "nicpersist: stopping nicpersist.service failed; see: systemctl status nicpersist.service" >&2
	# The ifupdown target's watcher would otherwise run on, its unit file
	# gone, until the next boot.
	if [ -e "$root/etc/systemd/system/nicpersist-watch.service" ]; then
		systemctl stop nicpersist-watch.service ||
			echo "nicpersist: stopping nicpersist-watch.service failed" >&2
	fi
fi

rc=0
"$nicpersist" uninstall --root "${root:-/}" || rc=$?
if [ "$rc" -ne 0 ]; then
	echo "nicpersist: uninstall failed (exit $rc): rendered files may remain; ${root}/etc/nicpersist/manifest lists them" >&2
fi
exit 0
