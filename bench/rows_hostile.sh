# bench/rows_hostile.sh: the hostile-shape rows of bench/run.sh (issue 11,
# class 2), sourced by it: hostile_deep and hostile_many.
#
# A derived layer of a hostile shape over a small base (fixtures.MiniOS):
# hostile_deep lists every directory of a 10,000-deep chain under usr/ (112
# MB of tar: the names grow with the depth), hostile_many has 200,000 small
# files in 200 directories with a whiteout every 100 files (204 MB of tar);
# bench/hostilelayer writes them as encap/derived's BenchmarkApplyDeepChain
# and BenchmarkApplyManyEntries do.
#
# Untimed setup: MiniOS committed by both tools (fixed timestamp),
# encapsulated by ocitree into an oci: layout (v1), the hostile layer
# appended (v1-hostile), v1 pulled into a bare-user store. Before every run
# that store is cloned (clone_repo).
# Timed, ocitree: `image pull` of v1-hostile into the clone: only the
# hostile layer is fetched and applied, and the merge commit written.
# Timed, peer of hostile_many: ostree-ext's derived-layer import with the
# ostree CLI, as in the derived row (the layer committed with --tree=tar,
# the base and the layer checked out with --union into one directory, that
# committed). No peer imports the 10,000-deep chain (its paths are 20 KB
# long: `ostree commit --tree=tar` refuses them as too long, GNU tar -x
# fails past PATH_MAX after 36 s, umoci unpack ran over 5 minutes), so the
# peer of hostile_deep is `tar -tzf` of the layer blob: reading and
# listing every entry, the least any importer does.
# Target: ocitree under 5 s, peak RSS under 300 MiB; the ratio is reported.
# hostile_many also reports a second ratio, hostile-many-floor: the same
# import against bench/fsfloor, which only creates the layer's 200,000 small
# files (lookup, create, write, xattr) in a staging directory, renames them
# into objects/XX/ and syncs: the least any transactional importer does, and
# on a slow disk more than 5 s on its own.

# hostile_setup SHAPE N: untimed; writes $S/hostile-SHAPE.{img,base,layer.tar.gz}
# and, once, $S/hostile-minios-{ours,peer}. Returns 1 on failure.
hostile_setup() {
	local shape=$1 n=$2
	local img="$S/hostile-$shape.img" base="$S/hostile-$shape.base" mini="$WORK/hostile-minios"
	local ours="$S/hostile-minios-ours" peer="$S/hostile-minios-peer"
	if [ ! -d "$peer" ]; then
		rm -rf "$mini" "$ours" "$peer"
		"$WORK/mkfixture" minios "$mini" >&2 &&
			"$OCITREE" repo init --repo "$ours" --mode bare-user >&2 &&
			"$OCITREE" repo commit --repo "$ours" --branch os/v1 --subject v1 \
				--timestamp 2024-01-01T00:00:00Z "$mini" >/dev/null &&
			ostree init --repo="$peer.new" --mode=bare-user >&2 &&
			ostree commit --repo="$peer.new" --branch=os/v1 --subject=v1 \
				--timestamp=@1704067200 --tree=dir="$mini" >/dev/null &&
			mv "$peer.new" "$peer" || return 1
	fi
	rm -rf "$img" "$base"
	log "untimed: hostile-$shape: encapsulate MiniOS, append the $shape layer ($n), pull the base image"
	"$OCITREE" encapsulate --repo "$ours" --previous-build none os/v1 "oci:$img:v1" >&2 || return 1
	"$WORK/hostilelayer" "$img" v1 v1-hostile "$shape" "$n" >&2 || return 1
	python3 - "$img" "$S/hostile-$shape.layer.tar.gz" <<'PYEOF' || return 1
import json, shutil, sys
img, out = sys.argv[1:3]
idx = json.load(open(f"{img}/index.json"))
m = next(d for d in idx["manifests"] if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == "v1-hostile")
man = json.load(open(f"{img}/blobs/sha256/{m['digest'].split(':')[1]}"))
layer = man["layers"][-1]
shutil.copyfile(f"{img}/blobs/sha256/{layer['digest'].split(':')[1]}", out)
print(f"hostile layer {layer['digest']}: {layer['size']} bytes", file=sys.stderr)
PYEOF
	"$OCITREE" repo init --repo "$base" --mode bare-user >&2 || return 1
	"$OCITREE" image pull --quiet --repo "$base" "oci:$img:v1" >&2 || return 1
}

# hostile_row NAME SHAPE N PEER: one hostile row; PEER is ostree or tar-t.
hostile_row() {
	local name=$1 shape=$2 n=$3 peer_kind=$4
	local label="ostree-ext's derived-layer import (ostree CLI)"
	[ "$peer_kind" = ostree ] || label="GNU tar -tz of the layer (list only)"
	if ! command -v go >/dev/null 2>&1 ||
		! CGO_ENABLED=0 go build -o "$WORK/hostilelayer" ./bench/hostilelayer >&2 ||
		! CGO_ENABLED=0 go build -o "$WORK/mkfixture" ./fixtures/mkfixture >&2 ||
		! CGO_ENABLED=0 go build -o "$WORK/fsfloor" ./bench/fsfloor >&2 ||
		! hostile_setup "$shape" "$n"; then
		setup_failed "$name" "$label" "ocitree < 5 s, RSS < 300 MiB"
		return 0
	fi
	local img="$S/hostile-$shape.img" base="$S/hostile-$shape.base" peer="$S/hostile-minios-peer"
	local run="$S/hostile-$shape.run" prun="$S/hostile-$shape.peer" merge="$C/hostile-$shape.merge"
	local qrun qprun qmerge qblob
	qrun=$(q "$run") qprun=$(q "$prun") qmerge=$(q "$merge") qblob=$(q "$S/hostile-$shape.layer.tar.gz")
	local peer_prep peer_cmd
	if [ "$peer_kind" = ostree ]; then
		peer_prep="rm -rf $qmerge && $(clone_repo "$peer" "$prun")"
		peer_cmd="ostree commit --repo=$qprun --branch=derived/layer --no-bindings --tar-autocreate-parents --tar-pathname-filter='^etc/,usr/etc/' --tree=tar=$qblob >/dev/null
ostree checkout --repo=$qprun -U --union -H --force-copy-zerosized os/v1 $qmerge
ostree checkout --repo=$qprun -U --union -H --force-copy-zerosized derived/layer $qmerge
ostree commit --repo=$qprun --branch=derived/merged --no-bindings --link-checkout-speedup --tree=dir=$qmerge >/dev/null"
	else
		peer_prep=":"
		peer_cmd="tar -tzf $qblob >/dev/null"
	fi
	# Every prep ends in sync: removing the previous run's 200,000 files
	# leaves the disk busy, which the timed run would otherwise pay for.
	bench_row "$name" "$label" "$peer_prep && sync" "$peer_cmd" \
		"$(clone_repo "$base" "$run") && sync" \
		"$qO image pull --quiet --repo $qrun $(q "oci:$img:v1-hostile")" \
		- 300 5
	if [ "$shape" = many ]; then
		# The same import against the file-system floor: creating, staging
		# and renaming N small files, which no transactional import of this
		# layer can skip (see bench/fsfloor). Reported, no target.
		local floor="$S/hostile-floor"
		bench_row "$name-floor" "file-system floor: $n small files created and renamed (bench/fsfloor)" \
			"rm -rf $(q "$floor") && sync" "$(q "$WORK/fsfloor") $(q "$floor") $n" \
			"$(clone_repo "$base" "$run") && sync" \
			"$qO image pull --quiet --repo $qrun $(q "oci:$img:v1-hostile")" \
			-
		rm -rf "$floor"
	fi
	if [ -d "$run" ]; then
		if ostree fsck --repo="$run" >/dev/null 2>&1; then
			NOTES+=("- \`ostree fsck\` of the store ocitree pulled the $shape image into: ok")
		else
			NOTES+=("- \`ostree fsck\` of the store ocitree pulled the $shape image into: **FAILED**")
		fi
	fi
	rm -rf "$run" "$prun" "$merge" "$img" "$base" "$S/hostile-$shape.layer.tar.gz"
}

row_hostile_deep() { hostile_row hostile-deep deep 10000 tar-t; }
row_hostile_many() { hostile_row hostile-many many 200000 ostree; }
