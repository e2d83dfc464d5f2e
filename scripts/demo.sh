#!/usr/bin/env bash
# `make demo`: the main job end to end on the bundled fixture OS, in a
# throwaway directory: commit, list, fsck, check out (and let the real ostree
# check our repo when it is installed). DEMO_KEEP=1 keeps the directory.
set -euo pipefail
bin=$(readlink -f "${1:-bin/ocitree}")
work=$(mktemp -d /var/tmp/ocitree-demo.XXXXXX)
[ "${DEMO_KEEP:-}" = 1 ] || trap 'rm -rf "$work"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*"; "$@"; }

step "a small bootable OS tree (fixtures.MiniOS)"
go run ./fixtures/mkfixture minios "$work/rootfs"
echo "$(find "$work/rootfs" | wc -l) entries in $work/rootfs"

step "commit it into a new bare-user store"
run "$bin" repo init --repo "$work/repo" --mode bare-user
csum=$(run "$bin" repo commit --repo "$work/repo" --branch demo/os --subject "demo OS 1.0" \
	--add-metadata-string version=1.0 --bootable "$work/rootfs")
echo "commit $csum"

step "list refs, show the commit, list a directory"
run "$bin" repo refs --repo "$work/repo"
run "$bin" repo show --repo "$work/repo" demo/os
run "$bin" repo ls --repo "$work/repo" demo/os /usr/lib/modules

step "fsck: re-hash every object"
run "$bin" repo fsck --repo "$work/repo"

step "check out and compare with the source"
run "$bin" repo checkout --repo "$work/repo" --user-mode demo/os "$work/checkout"
diff -r --no-dereference "$work/rootfs" "$work/checkout" && echo "checkout matches the source tree"

if command -v ostree >/dev/null 2>&1; then
	step "the real ostree reads the same store"
	run ostree fsck --repo="$work/repo"
	run ostree log --repo="$work/repo" demo/os
fi
step "done (work dir: $work${DEMO_KEEP:+, kept})"
