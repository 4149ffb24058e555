# The maintainer scripts' shared part: build.sh puts it in place of the
# "#@lib" line of each, as package formats take each script as one file.

# systemd is running on this root: not in a chroot, an image build or a
# dpkg --root installation.
systemd_running() {
	[ -z "${DPKG_ROOT:-}" ] || return 1
	[ -d /run/systemd/system ] || return 1
	command -v systemctl >/dev/null 2>&1 || return 1
	if command -v systemd-detect-virt >/dev/null 2>&1 && systemd-detect-virt --quiet --chroot; then
		return 1
	fi
	return 0
}
