#!/usr/bin/env bash
# satstream's test command (README "Run the tests"): vet, unit tests, then the
# integration tests on a real regtest network (btcd + lnd on 127.0.0.1, built
# from the versions pinned in go.mod and itest/bins, cached outside git).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }
start=$(date +%s)

step "building or reusing lnd, lncli, btcd, btcctl (cache: \${SATSTREAM_BIN_CACHE:-~/.cache/satstream/bin})"
go run ./itest/cmd/satstream-bins >/dev/null

step "go vet"
go vet ./...
go vet -tags itest ./itest/...

step "unit tests"
go test -count=1 -timeout 20m ./...

step "integration tests (real btcd and lnd on 127.0.0.1)"
go test -tags itest -count=1 -timeout 60m -v ./itest/...

# The harness kills every process it starts, by PID; prove it here too.
cache=$(go run ./itest/cmd/satstream-bins 2>/dev/null | sed -n 's/^lnd=//p' | xargs dirname | xargs dirname)
if pgrep -f "^$cache/" >/dev/null; then
	echo "leaked processes:" >&2
	pgrep -af "^$cache/" >&2
	exit 1
fi

step "all tests passed in $(( $(date +%s) - start ))s"
