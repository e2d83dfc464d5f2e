#!/usr/bin/env bash
# make check-clone: what a new contributor (or CI) gets. Clones HEAD into a
# fresh temporary directory, with nothing beside the clone (no shared folder, no
# build products, no untracked files), and runs `CI=true make test` there: a
# test that reads a file the repository does not hold, or a tool the tests
# need but do not install, fails here. Uncommitted changes are not tested.
set -euo pipefail
root=$(git rev-parse --show-toplevel)
head=$(git -C "$root" rev-parse HEAD)
if [ -n "$(git -C "$root" status --porcelain)" ]; then
	echo "check-clone: the work tree has uncommitted changes; testing HEAD ($head) only" >&2
fi
tmp=$(mktemp -d "${TMPDIR:-/tmp}/ocitree-check-clone.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
git clone -q --no-checkout "$root" "$tmp/ocitree"
git -C "$tmp/ocitree" checkout -q --detach "$head"
if [ -e "$tmp/shared" ] || [ -n "$(ls -A "$tmp" | grep -vx ocitree)" ]; then
	echo "check-clone: $tmp holds more than the clone" >&2
	exit 1
fi
echo "check-clone: CI=true make test in a clone of $head at $tmp/ocitree" >&2
cd "$tmp/ocitree"
CI=true make test
