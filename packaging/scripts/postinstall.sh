#!/bin/sh
# nicpersist post-installation: deb postinst, rpm %post.
#
# deb: $1 = configure | abort-remove (a failed removal after prerm ran uninstall) |
#      abort-upgrade | abort-deconfigure (nothing to do)
# rpm: $1 = 1 (install) | 2 (upgrade)
#
# Renders the machine's profile, if it has one, with the binary just
# installed (the unit runs that binary, which reads the files of the version
# that rendered them), then has systemd pick the unit up. The root is
# $DPKG_ROOT: dpkg --root --force-script-chrootless runs this script outside
# the chroot with DPKG_ROOT set; otherwise (dpkg without --root, dpkg
# chrooted, rpm, which always runs scriptlets chrooted in its --root) it is
# empty and the root is /.
#
# Nothing here may fail the package manager: a broken profile is the user's
# to fix, and render writes nothing on an invalid profile, so the files
# rendered before stay as they were.
set -e

case "$1" in
configure | abort-remove | 1 | 2) ;;
*) exit 0 ;;
esac

root="${DPKG_ROOT:-}"
nicpersist="$root/usr/bin/nicpersist"
profile="$root/etc/nicpersist/profile.toml"

#@lib

if [ ! -e "$profile" ]; then
	echo "nicpersist: no profile at /etc/nicpersist/profile.toml, nothing rendered;"
	echo "nicpersist: start from /usr/share/doc/nicpersist/examples/profile.toml, then run: nicpersist render"
	exit 0
fi

rc=0
"$nicpersist" render --root "${root:-/}" || rc=$?
if [ "$rc" -ne 0 ]; then
	echo "nicpersist: render failed (exit $rc): the files rendered before are unchanged." >&2
	echo "nicpersist: fix /etc/nicpersist/profile.toml, then run: nicpersist render && systemctl reload-or-restart nicpersist.service" >&2
	exit 0
fi

if systemd_running; then
	systemctl daemon-reload || echo "nicpersist: systemctl daemon-reload failed" >&2
	# Only a running unit is reloaded: installing never starts it (a route
	# change can cut the session of whoever installs); boot or
	# `systemctl start nicpersist.service` does.
	systemctl try-reload-or-restart nicpersist.service ||
		echo "nicpersist: reloading nicpersist.service failed; see: systemctl status nicpersist.service" >&2
	# The ifupdown target's watcher: a running one restarts on the new
	# binary and watch file; only a render for ifupdown makes its unit.
	if [ -e "$root/etc/systemd/system/nicpersist-watch.service" ]; then
		systemctl try-restart nicpersist-watch.service ||
			echo "nicpersist: restarting nicpersist-watch.service failed; see: systemctl status nicpersist-watch.service" >&2
	fi
fi
exit 0
