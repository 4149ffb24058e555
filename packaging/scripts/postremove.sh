#!/bin/sh
# nicpersist post-removal: deb postrm, rpm %postun.
#
# deb: $1 = remove | purge | upgrade | disappear | abort-install | ...
# rpm: $1 = 0 (erase) | 1 (upgrade)
#
# The rendered files went in prerm/%preun (`nicpersist uninstall`, while the
# binary was there); here systemd forgets the unit they held. Purge removes
# nothing more: the profile (/etc/nicpersist/profile.toml) is the user's,
# never a file of the package.
set -e

case "$1" in
remove | purge | 0) ;;
*) exit 0 ;;
esac

#@lib

if [ "$1" = remove ] || [ "$1" = 0 ]; then
	if systemd_running; then
		systemctl daemon-reload || echo "nicpersist: systemctl daemon-reload failed" >&2
	fi
fi
# Said once: deb's purge runs postrm remove first.
if [ "$1" != purge ] && [ -e "${DPKG_ROOT:-}/etc/nicpersist/manifest" ]; then
	echo "nicpersist: ${DPKG_ROOT:-}/etc/nicpersist/manifest lists files nicpersist rendered that are still there; to remove them, put nicpersist back and run: nicpersist uninstall" >&2
fi
exit 0
