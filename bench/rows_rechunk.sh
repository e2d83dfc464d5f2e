# bench/rows_rechunk.sh: the rechunk rows of bench/run.sh (sourced by it;
# uses its harness: bench_row, ensure_source_repos, update_tree, $S, $TREE...).
#
# rechunk: the Debian tree as a single-layer plain image (an uncompressed
# `tar` of the tree in an oci: layout, labelled containers.bootc=1; untimed),
# rechunked by `ocitree rechunk` into a gzip plain image with package-aware
# layers. Peers on the same tree in the same run: `tar | gzip -6` (row
# rechunk) and `ocitree encapsulate` of the tree's commit (row
# rechunk-vs-encap; it starts from a commit, rechunk from an image it must
# first import). Side checks: layer count (target ≥ 32) and image size
# against both.
#
# rechunk_update_bytes (a size row): the libssl3 bump of row_update_bytes
# (update_tree) as a second single-layer image, rechunked with
# --previous-build = the rechunk of the first; ours = the compressed bytes
# of v2's layers whose digest v1 lacks, peer = `tar | gzip -6` of the
# changed files. Target ≤ 1.4 (encapsulate's number is row update_bytes).

# plain_image TREE LAYOUT TAG: an oci: layout with one uncompressed tar layer
# of TREE (numeric owners, GNU tar defaults) and a minimal config.
plain_image() {
	local tree=$1 layout=$2 tag=$3
	rm -rf "$layout"
	mkdir -p "$layout/blobs/sha256"
	# Exit status 1: a file changed while read (other benches hardlink the
	# cached tree, which changes ctimes); the content is what it was.
	tar -C "$tree" --numeric-owner --warning=no-file-changed -cf "$layout/layer.tar" . || [ $? = 1 ] || return 1
	python3 - "$layout" "$tag" <<'EOF'
import hashlib, json, os, sys
layout, tag = sys.argv[1:3]
h = hashlib.sha256()
with open(f"{layout}/layer.tar", "rb") as f:
    for b in iter(lambda: f.read(1 << 20), b""):
        h.update(b)
d = h.hexdigest()
size = os.path.getsize(f"{layout}/layer.tar")
os.replace(f"{layout}/layer.tar", f"{layout}/blobs/sha256/{d}")
def blob(obj):
    b = json.dumps(obj, sort_keys=True).encode()
    x = hashlib.sha256(b).hexdigest()
    open(f"{layout}/blobs/sha256/{x}", "wb").write(b)
    return {"digest": f"sha256:{x}", "size": len(b)}
created = "2024-01-01T00:00:00Z"
cfg = blob({"architecture": "amd64", "os": "linux", "created": created,
            "config": {"Labels": {"containers.bootc": "1"}},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{d}"]},
            "history": [{"created": created, "created_by": "tar"}]})
man = blob({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": dict(mediaType="application/vnd.oci.image.config.v1+json", **cfg),
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": f"sha256:{d}", "size": size}]})
json.dump({"schemaVersion": 2, "manifests": [dict(mediaType="application/vnd.oci.image.manifest.v1+json",
          annotations={"org.opencontainers.image.ref.name": tag}, **man)]}, open(f"{layout}/index.json", "w"))
open(f"{layout}/oci-layout", "w").write('{"imageLayoutVersion":"1.0.0"}')
EOF
}

# layout_layers LAYOUT TAG: "count bytes" of the image's layers.
layout_layers() {
	python3 - "$1" "$2" <<'EOF'
import json, sys
layout, tag = sys.argv[1:3]
idx = json.load(open(f"{layout}/index.json"))
d = next(m for m in idx["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
m = json.load(open(f"{layout}/blobs/sha256/{d['digest'].split(':')[1]}"))
print(len(m["layers"]), sum(l["size"] for l in m["layers"]))
EOF
}

row_rechunk() {
	ensure_source_repos
	local label="tar -c | gzip -6" target="≤ 1, RSS < 500 MiB"
	log "untimed: rechunk: the tree as a single-layer plain image"
	if ! plain_image "$TREE" "$S/plain" v1; then
		setup_failed rechunk "$label" "$target"
		return 0
	fi
	local rc="SOURCE_DATE_EPOCH=1704067200 $qO rechunk --previous-build none oci:$qS/plain:v1 oci:$qS/rechunk-img:v1"
	bench_row rechunk "$label" \
		"rm -f $qS/peer.tar.gz" \
		"{ tar -C $qT --warning=no-file-changed -cf - . || [ \$? = 1 ]; } | gzip -6 > $qS/peer.tar.gz" \
		"rm -rf $qS/rechunk-img" \
		"$rc" \
		1 500
	local rl rb
	if [ -d "$S/rechunk-img" ] && read -r rl rb < <(layout_layers "$S/rechunk-img" v1); then
		local peer
		peer=$(stat -c %s "$S/peer.tar.gz" 2>/dev/null || echo 0)
		NOTES+=("- rechunk of the single-layer image: $rl layers (target ≥ 32: $([ "$rl" -ge 32 ] && echo ok || echo '**NO**')), $rb bytes of layers: $(python3 -c "print(f'{$rb/$peer:.3f}' if $peer else '–')")× \`tar | gzip -6\`")
	fi
	if [ -n "$OURS_CSUM" ]; then
		bench_row rechunk-vs-encap "ocitree encapsulate (gzip, from the commit)" \
			"rm -rf $qS/img-gzip" \
			"$qO encapsulate --repo $qS/ours-src --previous-build none os/v1 oci:$qS/img-gzip:v1 >/dev/null" \
			"rm -rf $qS/rechunk-img" \
			"$rc" \
			- 500
		local el eb
		if [ -d "$S/img-gzip" ] && [ -d "$S/rechunk-img" ] && read -r el eb < <(layout_layers "$S/img-gzip" v1) &&
			read -r rl rb < <(layout_layers "$S/rechunk-img" v1); then
			NOTES+=("- rechunk vs encapsulate, same tree: $rl vs $el layers, $rb vs $eb bytes of layers: $(python3 -c "print(f'{$rb/$eb:.3f}')")×")
		fi
	else
		setup_failed rechunk-vs-encap "ocitree encapsulate (gzip, from the commit)" "–"
	fi
	rm -rf "$S/peer.tar.gz" "$S/img-gzip" "$S/rechunk-img" "$S/plain"
	row_rechunk_update_bytes
}

row_rechunk_update_bytes() {
	local label="gzip -6 of a tar of the changed files" target="≤ 1.4"
	local U="$WORK/rechunk-update" how out
	rm -rf "$U"
	mkdir -p "$U"
	if ! how=$(update_tree "$U" libssl3) ||
		! plain_image "$TREE" "$U/plain" v1 || ! plain_image "$U/tree" "$U/plain2" v2; then
		SIZE_ROWS+=("| rechunk_update_bytes | $label | – | – | – | $target | **FAIL** (setup) | |")
		ANY_FAILED=1
		rm -rf "$U"
		return 0
	fi
	log "untimed: rechunk_update_bytes: rechunk v1, then v2 with --previous-build v1"
	if ! SOURCE_DATE_EPOCH=1704067200 "$OCITREE" rechunk --previous-build none "oci:$U/plain:v1" "oci:$U/img:v1" >/dev/null ||
		! SOURCE_DATE_EPOCH=1704067200 "$OCITREE" rechunk --previous-build "oci:$U/img:v1" "oci:$U/plain2:v2" "oci:$U/img:v2" >/dev/null ||
		! out=$(python3 - "$TREE" "$U/tree" "$U" <<'EOF'
import json, os, stat, subprocess, sys
old, new, u = sys.argv[1:4]

def manifest(tag):
    idx = json.load(open(f"{u}/img/index.json"))
    d = next(m for m in idx["manifests"] if m.get("annotations", {}).get("org.opencontainers.image.ref.name") == tag)
    return json.load(open(f"{u}/img/blobs/sha256/{d['digest'].split(':')[1]}"))

m1, m2 = manifest("v1"), manifest("v2")
have = {l["digest"] for l in m1["layers"]}
fresh = [l for l in m2["layers"] if l["digest"] not in have]
ours = sum(l["size"] for l in fresh)
names = []
for l in fresh:
    c = (l.get("annotations") or {}).get("org.chunkah.component", "")
    names.append(f"{c[:50]}{'…' if len(c) > 50 else ''} {l['size']} B")

def same(a, b):
    sa, sb = os.lstat(a), os.lstat(b)
    if (sa.st_mode, sa.st_uid, sa.st_gid) != (sb.st_mode, sb.st_uid, sb.st_gid):
        return False
    if stat.S_ISLNK(sa.st_mode):
        return os.readlink(a) == os.readlink(b)
    if stat.S_ISREG(sa.st_mode):
        if (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino):
            return True
        if sa.st_size != sb.st_size:
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            return fa.read() == fb.read()
    return True

changed = []
for root, ds, fs in os.walk(new):
    for n in ds + fs:
        p = os.path.join(root, n)
        rel = os.path.relpath(p, new)
        o = os.path.join(old, rel)
        if os.path.lexists(o) and same(o, p):
            continue
        if not (os.path.isdir(p) and not os.path.islink(p)):
            changed.append(rel)
with open(f"{u}/changed.list", "w") as f:
    f.write("".join(f"./{c}\n" for c in changed))
tar = subprocess.Popen(["tar", "-C", new, "--no-recursion", "-cf", "-", "-T", f"{u}/changed.list"], stdout=subprocess.PIPE)
gz = subprocess.run(["gzip", "-6", "-c"], stdin=tar.stdout, stdout=subprocess.PIPE, check=True).stdout
if tar.wait() != 0:
    sys.exit("tar of the changed files failed")
print(ours, len(gz), len(changed), len(fresh), len(m2["layers"]), "; ".join(names))
EOF
); then
		SIZE_ROWS+=("| rechunk_update_bytes | $label | – | – | – | $target | **FAIL** (setup) | $how |")
		ANY_FAILED=1
		rm -rf "$U"
		return 0
	fi
	local ours peer nchanged nfresh nlayers names ratio verdict
	read -r ours peer nchanged nfresh nlayers names <<<"$out"
	read -r ratio verdict < <(python3 -c "r = $ours / $peer; print(f'{r:.2f}', 'yes' if r <= 1.4 else '**NO**')")
	SIZE_ROWS+=("| rechunk_update_bytes | $label | $peer | $ours | $ratio | $target | $verdict | $how; $nchanged changed files/symlinks; $nfresh new of $nlayers layers: $names |")
	rm -rf "$U"
}
