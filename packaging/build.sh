#!/bin/bash
# Build the nicpersist packages from packaging/nfpm.yaml:
#   dist/nicpersist_<version>_<arch>.deb     (amd64, arm64)
#   dist/nicpersist-<version>-1.<arch>.rpm   (x86_64, aarch64)
#
# Why nfpm: one declarative file gives both formats, without dpkg-buildpackage
# or rpmbuild (and a spec file and a debian/ directory to keep in step), and
# it runs anywhere Go runs. It and go-md2man are pinned in the separate
# module packaging/tools, so neither is ever a dependency of the nicpersist
# binary (the root go.mod does not mention them). Only the Go module proxy is
# needed, the first time.
#
# Environment:
#   VERSION   package and binary version (default: `git describe` of a v* tag,
#             else render/cli.Version)
#   ARCHES    GOARCH values to build (default "amd64 arm64")
#   DIST      output directory (default dist)
#   MAN_SRC   the man page's markdown (default packaging/man/nicpersist.8.md)
#   SOURCE_DATE_EPOCH  timestamps in the packages (default: the last commit's)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH=$PATH:/usr/local/go/bin

DIST=${DIST:-dist}
ARCHES=${ARCHES:-amd64 arm64}
MAN_SRC=${MAN_SRC:-packaging/man/nicpersist.8.md}

if [ -z "${VERSION:-}" ]; then
	# v1.2.3 -> 1.2.3; v1.2.3-4-gabcdef0 -> 1.2.3+4.gabcdef0 (a valid native
	# Debian version and rpm version that sorts after 1.2.3).
	if d=$(git describe --tags --match 'v[0-9]*' 2>/dev/null); then
		VERSION=$(printf '%s\n' "${d#v}" | sed -E 's/-([0-9]+)-g([0-9a-f]+)$/+\1.g\2/')
	else
		VERSION=$(sed -nE 's/^var Version = "([^"]+)"$/\1/p' render/cli/cli.go)
	fi
fi
case $VERSION in
[0-9]*) ;;
*) echo "build.sh: VERSION '$VERSION' must start with a digit" >&2; exit 2 ;;
esac
if [ ! -f "$MAN_SRC" ]; then
	echo "build.sh: the man page source $MAN_SRC is missing (set MAN_SRC to build with another)" >&2
	exit 2
fi
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}

work=$DIST/build
rm -rf "$work"
mkdir -p "$work/tools"
abs_work=$(cd "$work" && pwd)

# The tools, for the build machine (whatever GOARCH the caller set).
(cd packaging/tools && env -u GOOS -u GOARCH CGO_ENABLED=0 go build -o "$abs_work/tools/" \
	github.com/goreleaser/nfpm/v2/cmd/nfpm github.com/cpuguy83/go-md2man/v2)

# The maintainer scripts, each with the shared part in place of its "#@lib".
mkdir -p "$work/scripts"
for s in postinstall preremove postremove; do
	sed -e '/^#@lib$/{r packaging/scripts/lib.sh' -e 'd}' "packaging/scripts/$s.sh" >"$work/scripts/$s.sh"
	grep -q '^systemd_running()' "$work/scripts/$s.sh" || { echo "build.sh: $s.sh did not get lib.sh" >&2; exit 1; }
done
sed "s|packaging/scripts/|$abs_work/scripts/|" packaging/nfpm.yaml >"$work/nfpm.yaml"

# Debian wants man pages compressed with gzip -9n (no name, no timestamp).
"$work/tools/go-md2man" -in "$MAN_SRC" -out "$work/nicpersist.8"
gzip -9n -c "$work/nicpersist.8" >"$work/nicpersist.8.gz"

for arch in $ARCHES; do
	stage=$work/$arch
	mkdir -p "$stage"
	CGO_ENABLED=0 GOOS=linux GOARCH=$arch go build -trimpath \
		-ldflags "-s -w -buildid= -X github.com/nicpersist/nicpersist/render/cli.Version=$VERSION" \
		-o "$stage/nicpersist" ./cmd/nicpersist
	cp "$work/nicpersist.8.gz" "$stage/"
	for fmt in deb rpm; do
		VERSION=$VERSION GOARCH=$arch STAGE=$stage \
			"$work/tools/nfpm" package --config "$work/nfpm.yaml" --packager "$fmt" --target "$DIST/"
	done
done
ls -l "$DIST"/*.deb "$DIST"/*.rpm
