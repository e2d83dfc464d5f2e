# bench/rows_builder.sh: the builder row of bench/run.sh (sourced by it; uses its
# harness: bench_row, ensure_source_repos, clone_repo, NOTES, $S, $C, $TREE...).

# builder: importing what a real Containerfile build adds to the Debian bench
# image (issue 10's Debian case): `apt-get install -y cowsay` and a new
# /etc/hello.conf, built by buildah (Debian's, chroot isolation, vfs storage)
# FROM ocitree's encapsulation of the bench tree.
#
# Untimed, once per BUILDER_CACHE entry: the tree committed and encapsulated
# (tag base), buildah bud of BUILDER_CONTAINERFILE, pushed into the same oci:
# layout (tag cowsay). The build needs a Debian mirror and takes minutes, so
# the layout is cached outside the checkout, in
#   ${OCITREE_CACHE:-/var/cache/ocitree}/builder-<sha256(BUILDER_CACHE_KEY)[:12]>/img
# with a `done` stamp written last: the key is the Containerfile, the build
# steps' version and the input tree's path; changing any makes a new entry.
# Untimed, every run: base pulled into a bare-user store (once), cloned.
# Timed, ocitree: `image pull` of the cowsay image into the clone: buildah
# recompressed the base layers, which the store knows by their diff_ids, so
# only the derived layer is fetched, applied onto the base tree (with the
# rewrites for the base's object-path hardlinks apt's in-place writes leave)
# and the merge commit written. Timed, peer: what ostree-ext does for a
# derived layer, with the ostree CLI (as the derived row): `ostree commit
# --tree=tar=BLOB` of the layer, `checkout -U --union -H` of base and layer,
# `commit --link-checkout-speedup` of the merged directory.
# Target: ocitree under 1 s; the ratio is reported, with no target.
# Side checks: usr/games/cowsay and usr/etc/hello.conf are in the merge
# commit, the store passes `ostree fsck`, and a second pull fetches nothing.
BUILDER_CONTAINERFILE='FROM oci:BASE
RUN apt-get update && apt-get install -y cowsay && echo motd=hello > /etc/hello.conf
'
# Bump when builder_cache builds differently.
BUILDER_STEPS_VERSION=1

# builder_cache: prints the cached layout directory, building it first when
# needed (serialised with flock, like fixtures/debian/build.sh). Run
# ensure_source_repos first: this runs in a command substitution.
builder_cache() {
	local cache=${OCITREE_CACHE:-/var/cache/ocitree} key dest tmp
	key=$(printf '%s\n' "$BUILDER_CONTAINERFILE" "$BUILDER_STEPS_VERSION" "$TREE" | sha256sum | cut -c1-12)
	dest="$cache/builder-$key"
	if [ -f "$dest/done" ]; then
		printf '%s\n' "$dest/img"
		return 0
	fi
	mkdir -p "$cache"
	exec 9>"$cache/.builder-$key.lock"
	flock 9
	if [ -f "$dest/done" ]; then
		exec 9>&-
		printf '%s\n' "$dest/img"
		return 0
	fi
	[ -n "$OURS_CSUM" ] || { exec 9>&-; return 1; }
	# buildah names the local image of an oci: layout after its path, which
	# must be a lowercase repository name: no mktemp here.
	tmp="$cache/builder-$key-tmp$$"
	rm -rf "$tmp" "$dest"
	mkdir -p "$tmp/ctx"
	log "untimed, once: builder: encapsulate the base, buildah bud of apt-get install cowsay (cached in $dest)"
	local b=(buildah --root "$WORK/buildah-root" --runroot "$WORK/buildah-run" --storage-driver vfs)
	printf '%s' "${BUILDER_CONTAINERFILE//BASE/$tmp/img:base}" >"$tmp/ctx/Containerfile"
	if "$OCITREE" encapsulate --repo "$S/ours-src" --previous-build none os/v1 "oci:$tmp/img:base" >&2 &&
		"${b[@]}" bud --isolation chroot --layers=false -t localhost/bench-cowsay "$tmp/ctx" >&2 &&
		"${b[@]}" push localhost/bench-cowsay "oci:$tmp/img:cowsay" >&2; then
		rm -rf "$tmp/ctx"
		mv "$tmp" "$dest" && touch "$dest/done"
	fi
	# vfs storage: plain directories, no mounts; rm is far faster than rmi.
	rm -rf "$tmp" "$WORK/buildah-root" "$WORK/buildah-run"
	exec 9>&-
	[ -f "$dest/done" ] || return 1
	printf '%s\n' "$dest/img"
}

row_builder() {
	local label="ostree-ext's derived-layer import (ostree CLI)" target="ocitree < 1 s"
	if ! command -v buildah >/dev/null 2>&1; then
		log "installing buildah"
		apt-get install -y buildah >&2 || true
	fi
	ensure_source_repos
	local img
	if ! command -v buildah >/dev/null 2>&1 || ! img=$(builder_cache); then
		setup_failed builder "$label" "$target"
		return 0
	fi
	local base="$S/builder.base" run="$S/builder.run" prun="$S/builder.peer" merge="$C/builder.merge" blob
	# The derived layer (the last of the cowsay manifest): its blob for the peer.
	if ! blob=$(python3 - "$img" <<'EOF'
import json, sys
img = sys.argv[1]
idx = json.load(open(f"{img}/index.json"))
m = next(d for d in idx["manifests"] if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == "cowsay")
man = json.load(open(f"{img}/blobs/sha256/{m['digest'].split(':')[1]}"))
layer = man["layers"][-1]
print(f"{img}/blobs/sha256/{layer['digest'].split(':')[1]}")
print(f"derived layer {layer['digest']}: {layer['size']} bytes", file=sys.stderr)
EOF
	) || [ -z "$PEER_CSUM" ]; then
		setup_failed builder "$label" "$target"
		return 0
	fi
	rm -rf "$base"
	log "untimed: builder: pull the base image"
	if ! "$OCITREE" repo init --repo "$base" --mode bare-user >&2 ||
		! "$OCITREE" image pull --quiet --repo "$base" "oci:$img:base" >&2; then
		setup_failed builder "$label" "$target"
		return 0
	fi
	local qrun qprun qmerge qblob
	qrun=$(q "$run") qprun=$(q "$prun") qmerge=$(q "$merge") qblob=$(q "$blob")
	# Both preps end in sync: a timed run should not pay for the previous
	# run's removal still being written out (each side writes 166 MB).
	bench_row builder "$label" \
		"rm -rf $qmerge && $(clone_repo "$S/peer-src" "$prun") && sync" \
		"ostree commit --repo=$qprun --branch=derived/layer --no-bindings --tar-autocreate-parents --tar-pathname-filter='^etc/,usr/etc/' --tree=tar=$qblob >/dev/null
ostree checkout --repo=$qprun -U --union -H --force-copy-zerosized os/v1 $qmerge
ostree checkout --repo=$qprun -U --union -H --force-copy-zerosized derived/layer $qmerge
ostree commit --repo=$qprun --branch=derived/merged --no-bindings --link-checkout-speedup --tree=dir=$qmerge >/dev/null" \
		"$(clone_repo "$base" "$run") && sync" \
		"$qO image pull --quiet --repo $qrun $(q "oci:$img:cowsay")" \
		- "" 1
	# Side checks on the store of ocitree's last run.
	local m out p missing=""
	if [ -d "$run" ] && m=$("$OCITREE" image pull --repo "$run" "oci:$img:cowsay" 2>"$WORK/builder.second") ; then
		for p in /usr/games/cowsay /usr/etc/hello.conf; do
			ostree ls --repo="$run" "$m" "$p" >/dev/null 2>&1 || missing="$missing $p"
		done
		if [ -z "$missing" ] && [ "$(ostree cat --repo="$run" "$m" /usr/etc/hello.conf 2>/dev/null)" = motd=hello ]; then
			NOTES+=("- builder: the merge commit of buildah's \`apt-get install -y cowsay\` image holds usr/games/cowsay and usr/etc/hello.conf (motd=hello): ok")
		else
			NOTES+=("- builder: the merge commit of buildah's cowsay image lacks${missing:- the right usr/etc/hello.conf}: **FAILED**")
			ANY_FAILED=1
		fi
		out=$(tr '\n' ' ' <"$WORK/builder.second")
		NOTES+=("- builder: a second pull of the cowsay image: ${out% }")
		if ostree fsck --repo="$run" >/dev/null 2>&1; then
			NOTES+=("- \`ostree fsck\` of the store ocitree pulled the cowsay image into: ok")
		else
			NOTES+=("- \`ostree fsck\` of the store ocitree pulled the cowsay image into: **FAILED**")
		fi
	else
		NOTES+=("- builder: no store left to check (ocitree's pull failed)")
	fi
	rm -rf "$run" "$prun" "$merge" "$base"
}
