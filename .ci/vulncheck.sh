#!/usr/bin/env bash
# govulncheck on the module, failing on any known vulnerability our code
# can reach that is not accepted in .ci/vulncheck-accepted (one ID per
# line, with the reason; review it whenever it changes).
#
# The database: the online one (https://vuln.go.dev) when reachable; else
# the copy the Go module proxy serves as the module golang.org/x/vulndb,
# whose data/osv directory holds the same OSV entries, fetched with
# `go mod download golang.org/x/vulndb@<version>` (latest by default, or
# SATSTREAM_VULNDB_VERSION=<pseudo-version> to pin one) and passed as
# -db file://<dir>/data/osv.
set -euo pipefail
cd "$(dirname "$0")/.."

accepted=.ci/vulncheck-accepted
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
report=$tmp/report

# Installed, not `go run`: go run turns the tool's exit status 3
# (vulnerabilities found) into 1.
GOBIN=$tmp go install golang.org/x/vuln/cmd/govulncheck@v1.9.0

run() {
	set +e
	"$tmp/govulncheck" -db "$1" ./... >"$report" 2>&1
	rc=$?
	set -e
}

run https://vuln.go.dev
# govulncheck exits 0 (nothing found), 3 (vulnerabilities found) or 1
# (it could not run: here, no network).
if [ "$rc" != 0 ] && [ "$rc" != 3 ]; then
	version=${SATSTREAM_VULNDB_VERSION:-latest}
	echo "vuln.go.dev unreachable ($(grep -m1 -o 'dial tcp.*\|lookup.*' "$report" || tail -1 "$report")); using golang.org/x/vulndb@$version from the module proxy"
	dir=$(cd "$(mktemp -d)" && go mod download -json "golang.org/x/vulndb@$version" |
		sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
	if [ ! -d "$dir/data/osv" ]; then
		echo "no vulnerability database: golang.org/x/vulndb@$version has no data/osv" >&2
		exit 1
	fi
	echo "vulnerability database: $dir/data/osv"
	run "file://$dir/data/osv"
fi
cat "$report"
if [ "$rc" = 0 ]; then
	exit 0
fi
if [ "$rc" != 3 ]; then
	echo "govulncheck failed to run (exit $rc)" >&2
	exit 1
fi

found=$(sed -n 's/^Vulnerability #[0-9]*: \(GO-[0-9]*-[0-9]*\).*/\1/p' "$report" | sort -u)
new=""
for id in $found; do
	if ! grep -q "^$id " "$accepted" 2>/dev/null; then
		new="$new $id"
	fi
done
for id in $(sed -n 's/^\(GO-[0-9]*-[0-9]*\) .*/\1/p' "$accepted" 2>/dev/null); do
	if ! grep -qx "$id" <<<"$found"; then
		echo "note: $id is accepted in $accepted but no longer reachable; remove it"
	fi
done
if [ -n "$new" ]; then
	echo "reachable known vulnerabilities not accepted in $accepted:$new" >&2
	exit 1
fi
echo "every reachable vulnerability above is accepted in $accepted (reasons there)"
