#!/usr/bin/env bash
# Builds satstream's three binaries for release, reproducibly: the same
# commit and Go version give the same bytes on any machine (-trimpath drops
# local paths, -buildvcs stamps the commit that --version prints, fixed
# ldflags drop the build id, CGO_ENABLED=0 links nothing of the host).
# `go install ...@latest` cannot build satstream: go.mod carries replace
# directives lnd needs, and go install refuses modules with them.
#
#   scripts/release.sh [--quick] [--out DIR]
#
# Writes DIR/satstream-<version>-<os>-<arch>.tar.gz (.zip for windows) for
# linux, darwin and windows on amd64 and arm64, and DIR/SHA256SUMS.
# --quick builds the host's os/arch only (for tests and a quick check).
set -euo pipefail
cd "$(dirname "$0")/.."

out=dist
quick=0
while [ $# -gt 0 ]; do
	case "$1" in
	--quick) quick=1 ;;
	--out) out="$2"; shift ;;
	*) echo "usage: $0 [--quick] [--out DIR]" >&2; exit 2 ;;
	esac
	shift
done

version=$(git describe --tags --always --dirty 2>/dev/null || echo dev)
# Archive timestamps come from the commit, not the clock.
epoch=$(git log -1 --format=%ct 2>/dev/null || echo 0)
bins="satstream satstream-receiver satstream-sender"

if [ "$quick" = 1 ]; then
	targets="$(go env GOOS)/$(go env GOARCH)"
else
	targets="linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64 windows/arm64"
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

for t in $targets; do
	goos=${t%/*}
	goarch=${t#*/}
	name="satstream-$version-$goos-$goarch"
	dir="$work/$name"
	mkdir -p "$dir"
	ext=""
	[ "$goos" = windows ] && ext=.exe
	for b in $bins; do
		echo "building $name/$b$ext"
		CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build \
			-trimpath -buildvcs=true -ldflags="-s -w -buildid=" \
			-o "$dir/$b$ext" "./cmd/$b"
	done
	cp LICENSE README.md "$dir/"
	find "$dir" -exec touch -h -d "@$epoch" {} +
	if [ "$goos" = windows ] && command -v zip >/dev/null; then
		(cd "$work" && rm -f "$out/$name.zip" &&
			TZ=UTC zip -q -X -r "$out/$name.zip" "$name")
	else
		(cd "$work" && tar --sort=name --owner=0 --group=0 \
			--numeric-owner --mtime="@$epoch" -cf - "$name" |
			gzip -n >"$out/$name.tar.gz")
	fi
done

(cd "$out" && sha256sum satstream-"$version"-* >SHA256SUMS)
echo "wrote $out/SHA256SUMS:"
cat "$out/SHA256SUMS"
