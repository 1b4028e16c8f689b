#!/usr/bin/env bash
# Runs every fuzz target of the module (func FuzzXxx in a _test.go file) for
# a short time each, one at a time: a smoke run that replays the seed corpus
# (f.Add and testdata/fuzz/) and explores a little. A crasher is written to
# the package's testdata/fuzz/<target>/ and fails the run.
#   bash itest/fuzz.sh [fuzztime]   (default 5000x; CI uses the default)
# The default is a count of executions, not a duration: with a duration
# Go's fuzzing coordinator races its own deadline and can fail a target with
# a bare "context deadline exceeded" and no crasher on a loaded machine.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-5000x}

grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '/itest/' | sort |
while read -r file; do
	pkg=./$(dirname "${file#./}")
	for target in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
		echo "fuzz $pkg $target ($fuzztime)"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" \
			-parallel 1 "$pkg"
	done
done
