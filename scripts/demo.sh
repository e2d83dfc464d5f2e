#!/usr/bin/env bash
# `make demo`: the main job end to end on the bundled fixture OS, in a
# throwaway directory: commit, list, fsck, check out, encapsulate into an
# oci: layout, unencapsulate into a second store (and let the real ostree
# check both stores when it is installed). DEMO_KEEP=1 keeps the directory.
set -euo pipefail
bin=$(readlink -f "${1:-bin/ocitree}")
work=$(mktemp -d /var/tmp/ocitree-demo.XXXXXX)
[ "${DEMO_KEEP:-}" = 1 ] || trap 'rm -rf "$work"' EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

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

step "encapsulate the commit as a chunked OCI image (oci: layout)"
digest=$(run "$bin" encapsulate --repo "$work/repo" demo/os "oci:$work/image:1.0")
echo "manifest $digest"
python3 - "$work/image" <<'PY'
import json, sys, os
d = sys.argv[1]
idx = json.load(open(os.path.join(d, "index.json")))
m = json.load(open(os.path.join(d, "blobs", *idx["manifests"][0]["digest"].split(":"))))
for i, l in enumerate(m["layers"]):
    comps = l.get("annotations", {}).get("ostree.components", "(ostree commit layer)" if i == 0 else "")
    print(f"  layer {i:2d} {l['size']:>9} bytes  {comps[:70]}")
PY
again=$("$bin" encapsulate --repo "$work/repo" --previous-build none demo/os "oci:$work/image2:1.0")
[ "$again" = "$digest" ] && echo "a second build gives the same digest: reproducible"

step "unencapsulate it into a second, archive-mode store"
run "$bin" repo init --repo "$work/repo2" --mode archive
back=$(run "$bin" unencapsulate --repo "$work/repo2" --write-ref demo/os "oci:$work/image:1.0")
[ "$back" = "$csum" ] && echo "same commit $back after the round trip"

if command -v ostree >/dev/null 2>&1; then
	step "the real ostree reads the same store"
	run ostree fsck --repo="$work/repo"
	run ostree fsck --repo="$work/repo2"
	run ostree log --repo="$work/repo" demo/os
fi
step "done (work dir: $work${DEMO_KEEP:+, kept})"
