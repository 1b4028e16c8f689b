#!/usr/bin/env bash
# Installs Debian's PostgreSQL server (initdb, pg_ctl, postgres in
# /usr/lib/postgresql/<version>/bin) when it is missing, with apt-get's
# progress on the terminal. The store's postgres tests, the cluster itests
# (itest/run.sh) and the benchmark's scale-out section
# (go run ./itest/cmd/bench) call it; store/postgres/pgtest then runs
# throw-away servers from those binaries as a non-root user.
set -euo pipefail

if command -v initdb >/dev/null || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
	exit 0
fi
printf '==> installing PostgreSQL (apt-get install -y postgresql)\n'
sudo=""
if [ "$(id -u)" != 0 ]; then sudo=sudo; fi
$sudo apt-get update
$sudo apt-get install -y postgresql
