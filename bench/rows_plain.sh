# shellcheck shell=bash
# Sourced by bench/run.sh: the plain row.

# plain: importing a plain bootable image (no ostree layer; spec
# plain-images §2) of the Debian tree: one layer, the tree with usr/etc at
# etc, made by GNU tar and added with `umoci raw add-layer` (umoci's gzip),
# labelled containers.bootc=1 (untimed). Timed, ocitree: `image pull` into an
# empty bare-user store (the layer applied onto an empty tree, merge commit).
# Timed, peer: what ostree-ext does for a plain image, with the ostree CLI
# into an empty bare-user repo: the layer committed with `ostree commit
# --tree=tar=BLOB --tar-autocreate-parents` (etc/ -> usr/etc/ by
# --tar-pathname-filter, where ostree-ext filters the stream itself), checked
# out with `-U --union -H --whiteouts`, the children of run, tmp, proc, sys
# and dev removed (ostree-ext drops them in its tar filter), and the merged
# directory committed with `--link-checkout-speedup`. No target; the ratio is
# reported. A side check compares the two trees' listings.
row_plain() {
	local label="ostree-ext's plain-image import (ostree CLI)" img="$S/plain.img" layer="$S/plain.layer.tar"
	rm -rf "$img" "$layer"
	log "untimed: plain: tar of the tree (usr/etc at etc), umoci raw add-layer"
	if ! command -v umoci >/dev/null 2>&1 ||
		! (cd "$TREE" && ls -A | LC_ALL=C sort | tar --numeric-owner --xattrs --xattrs-include='user.*' \
			--transform='s,^usr/etc\(/\|$\),etc\1,S' -cf "$layer" -T -) ||
		! umoci init --layout "$img" >&2 || ! umoci new --image "$img:v1" >&2 ||
		! umoci raw add-layer --image "$img:v1" "$layer" >&2 ||
		! umoci config --image "$img:v1" --config.label containers.bootc=1 >&2 ||
		! umoci gc --layout "$img" >&2; then
		setup_failed plain "$label" "-"
		return 0
	fi
	rm -f "$layer"
	local blob
	blob=$(python3 - "$img" <<'PYEOF'
import json, sys
img = sys.argv[1]
idx = json.load(open(f"{img}/index.json"))
m = json.load(open(f"{img}/blobs/sha256/{idx['manifests'][0]['digest'].split(':')[1]}"))
print(f"{img}/blobs/sha256/{m['layers'][-1]['digest'].split(':')[1]}")
PYEOF
)
	local qours qpeer qmerge
	qours=$(q "$S/plain.ours") qpeer=$(q "$S/plain.peer") qmerge=$(q "$C/plain.merge")
	bench_row plain "$label" \
		"rm -rf $qpeer $qmerge && ostree init --repo=$qpeer --mode=bare-user" \
		"ostree commit --repo=$qpeer --branch=plain/layer --no-bindings --tar-autocreate-parents --tar-pathname-filter='^etc/,usr/etc/' --tree=tar=$(q "$blob") >/dev/null
ostree checkout --repo=$qpeer -U --union -H --whiteouts plain/layer $qmerge
for d in run tmp proc sys dev; do [ ! -d $qmerge/\$d ] || find $qmerge/\$d -mindepth 1 -delete; done
ostree commit --repo=$qpeer --branch=plain/merged --no-bindings --link-checkout-speedup --tree=dir=$qmerge >/dev/null" \
		"rm -rf $qours && $qO repo init --repo $qours --mode bare-user" \
		"$qO image pull --quiet --repo $qours $(q "oci:$img:v1")" \
		-
	# Side check: type, permission bits, size and path of every entry (the
	# peer's -U checkout makes every file root's and drops setuid/setgid, so
	# owners, those bits and checksums differ).
	local ours peer mref
	mref=$(ostree refs --repo="$S/plain.ours" 2>/dev/null | grep '^ostree/container/image/' | head -n1 || true)
	if [ -n "$mref" ] && ours=$(ostree ls --repo="$S/plain.ours" -R "$mref" | awk '{ print substr($1, 1, 1) substr($1, length($1) - 2), $4, $5, $6, $7 }') &&
		peer=$(ostree ls --repo="$S/plain.peer" -R plain/merged | awk '{ print substr($1, 1, 1) substr($1, length($1) - 2), $4, $5, $6, $7 }'); then
		if [ "$ours" = "$peer" ]; then
			NOTES+=("- plain: \`ostree ls -R\` of ocitree's merge commit and of the ostree CLI's (type, rwx bits, size, path; $(echo "$ours" | wc -l) entries): identical")
		else
			NOTES+=("- plain: \`ostree ls -R\` of ocitree's merge commit and of the ostree CLI's: **DIFFERENT** in $(diff <(echo "$ours") <(echo "$peer") | grep -c '^[<>]') lines")
		fi
	fi
	rm -rf "$S/plain.ours" "$S/plain.peer" "$C/plain.merge" "$img"
}
