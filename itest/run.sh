#!/usr/bin/env bash
# satstream's test command (README "Run the tests"): vet, unit tests with the
# race detector, a short run of every fuzz target, govulncheck, then the
# integration tests on a real regtest network (btcd + lnd on 127.0.0.1, built
# from the versions pinned in go.mod and itest/bins, cached outside git).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
start=$(date +%s)

step "building or reusing lnd, lncli, btcd, btcctl (cache: \${SATSTREAM_BIN_CACHE:-~/.cache/satstream/bin})"
go run ./itest/cmd/satstream-bins >/dev/null

# The store's PostgreSQL backend is tested on a real, throw-away cluster
# (store/postgres/pgtest: initdb + postgres as a non-root user, removed after
# each test). Debian puts initdb in /usr/lib/postgresql/<version>/bin.
# itest/install-postgres.sh installs it with apt-get when missing.
bash itest/install-postgres.sh
# Without it the postgres tests would skip; here they must run.
export SATSTREAM_REQUIRE_POSTGRES=1

step "go vet"
go vet ./...
go vet -tags itest ./itest/...

step "unit tests (race detector)"
go test -race -count=1 -timeout 30m ./...

step "fuzz targets, 5,000 executions each (itest/fuzz.sh)"
bash itest/fuzz.sh 5000x

step "govulncheck (.ci/vulncheck.sh; offline database from the module proxy if vuln.go.dev is unreachable)"
bash .ci/vulncheck.sh

# The dashboard tests drive Debian's chromium headless (chromedp).
if ! command -v chromium >/dev/null; then
	step "installing chromium for the dashboard browser tests (apt-get)"
	sudo=""
	if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
	$sudo apt-get update
	$sudo apt-get install -y chromium
fi

step "integration tests (real btcd and lnd on 127.0.0.1, dashboards in headless chromium)"
# The helper packages first, then the itest package alone: go test streams
# -v output as tests run only when it tests a single package (over several
# it buffers each package's output until the package ends, minutes here).
go test -tags itest -count=1 -timeout 10m $(go list -tags itest ./itest/... | grep -v '/itest$')
go test -tags itest -count=1 -timeout 60m -v ./itest/

# The harness kills every process it starts, by PID; prove it here too.
cache=$(go run ./itest/cmd/satstream-bins 2>/dev/null | sed -n 's/^lnd=//p' | xargs dirname | xargs dirname)
if pgrep -f "^$cache/" >/dev/null; then
	echo "leaked processes:" >&2
	pgrep -af "^$cache/" >&2
	exit 1
fi

step "all tests passed in $(( $(date +%s) - start ))s"
