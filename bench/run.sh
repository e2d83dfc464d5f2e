#!/usr/bin/env bash
# bench/run.sh: ocitree beside its peers, measured in the same run (`make bench`).
#
# Method: input tree = fixtures/debian (the
# "v1" Debian 12 tree with a kernel); every timed command runs under hyperfine
# with an untimed --prepare that makes a fresh, empty destination and then
# `sync`; page cache warm; each timed command is wrapped in GNU `time -v` and the
# peak RSS of a row is the largest "Maximum resident set size" over its runs.
# Peer and ocitree runs are interleaved (peer, ours, peer, ours, ...): each run
# is its own `hyperfine --runs 1` invocation, so slow drift of the disk hits
# both sides alike. The verdict of a row is the ratio ocitree/peer of the
# median wall times, never absolute seconds.
#
# Environment:
#   RUNS=3            timed runs per side and row
#   BENCH_ONLY=a,b    only these rows (names: see the bottom of this file)
#   BENCH_OUT=FILE    report file (default bench/last-report.md; stdout gets it too)
#   BENCH_WORK=DIR    scratch dir (default: mktemp -d /var/tmp/ocitree-bench.XXXXXX;
#                     must not be tmpfs; must be one filesystem for hardlinks)
#   BENCH_KEEP=1      keep the scratch dir (repos, checkouts, raw results)
#   BENCH_TREE=DIR    input tree instead of fixtures/debian/build.sh's
#   OCITREE=PATH      use this ocitree binary instead of building cmd/ocitree
#
# Exit status: 0 when every timed command ran (whether or not targets were
# met: see the ok? column), 1 when a command failed or setup went wrong.
#
# Adding a row: write a row_NAME function calling bench_row (see its comment),
# and add NAME to ALL_ROWS at the bottom.
set -euo pipefail

log() { printf 'bench: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
q() { printf '%q' "$1"; }

here=$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)
root=$(cd "$here/.." && pwd)
cd "$root"

RUNS=${RUNS:-3}
BENCH_ONLY=${BENCH_ONLY:-}
BENCH_OUT=${BENCH_OUT:-$root/bench/last-report.md}
[[ "$RUNS" =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, got '$RUNS'"

# ---------------------------------------------------------------- tools
missing=()
command -v ostree >/dev/null 2>&1 || missing+=(ostree)
command -v hyperfine >/dev/null 2>&1 || missing+=(hyperfine)
[ -x /usr/bin/time ] || missing+=(time)
command -v python3 >/dev/null 2>&1 || missing+=(python3)
command -v zstd >/dev/null 2>&1 || missing+=(zstd)
# The pull rows need a local registry, skopeo and umoci (and curl to probe the servers).
case ",${BENCH_ONLY:-pull}," in
*,pull,* | *,pull_vs_ostree,* | *,upgrade,*)
	command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
	command -v skopeo >/dev/null 2>&1 || missing+=(skopeo)
	command -v umoci >/dev/null 2>&1 || missing+=(umoci)
	command -v curl >/dev/null 2>&1 || missing+=(curl)
	;;
esac
if [ "${#missing[@]}" -gt 0 ]; then
	log "installing ${missing[*]}"
	if ! { apt-get update >&2 && apt-get install -y "${missing[@]}" >&2; }; then
		die "could not install ${missing[*]} (need root and a Debian mirror)"
	fi
fi

# ---------------------------------------------------------------- scratch dir
if [ -n "${BENCH_WORK:-}" ]; then
	WORK=$BENCH_WORK
	mkdir -p "$WORK"
	own_work=0
else
	WORK=$(mktemp -d /var/tmp/ocitree-bench.XXXXXX)
	own_work=1
fi
WORK=$(cd "$WORK" && pwd)
work_fs=$(findmnt -n -o FSTYPE -T "$WORK" 2>/dev/null || stat -f -c %T "$WORK")
if [ "$work_fs" = tmpfs ]; then
	die "BENCH_WORK=$WORK is on tmpfs; use a directory on the disk"
fi
REG_PID=
HTTP_PID=
# stop_servers: stop the registry and the HTTP server this script started, by PID.
stop_servers() {
	local pid
	for pid in "$REG_PID" "$HTTP_PID"; do
		[ -n "$pid" ] || continue
		kill "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	done
	REG_PID="" HTTP_PID=""
}
cleanup() {
	stop_servers
	if [ "${BENCH_KEEP:-0}" = 1 ]; then
		log "kept $WORK"
	elif [ "$own_work" = 1 ]; then
		rm -rf "$WORK"
	else
		rm -rf "${WORK:?}/store" "${WORK:?}/checkout" "${WORK:?}/registry" "${WORK:?}/etc"
	fi
}
trap cleanup EXIT
mkdir -p "$WORK/cmds" "$WORK/results" "$WORK/store" "$WORK/checkout"
log "scratch dir $WORK"

# ---------------------------------------------------------------- ocitree
if [ -n "${OCITREE:-}" ]; then
	OCITREE=$(readlink -f "$OCITREE")
	[ -x "$OCITREE" ] || die "OCITREE=$OCITREE is not executable"
	log "using OCITREE=$OCITREE (not built from this tree)"
else
	command -v go >/dev/null 2>&1 || die "go not found; install Go or set OCITREE=PATH"
	log "building ./cmd/ocitree"
	CGO_ENABLED=0 go build \
		-tags "containers_image_openpgp containers_image_storage_stub containers_image_docker_daemon_stub" \
		-o "$WORK/ocitree" ./cmd/ocitree >&2 || die "go build ./cmd/ocitree failed"
	OCITREE=$WORK/ocitree
fi

# ---------------------------------------------------------------- input tree
if [ -n "${BENCH_TREE:-}" ]; then
	TREE=$(readlink -f "$BENCH_TREE")
else
	TREE=$(bash "$root/fixtures/debian/build.sh" | tail -n1)
fi
[ -d "$TREE/usr" ] || die "input tree $TREE does not look like a root filesystem"
log "input tree $TREE; warming the page cache"
tar -C "$TREE" -cf - . | cat >/dev/null

load_start=$(cut -d' ' -f1-3 /proc/loadavg)
S=$WORK/store
C=$WORK/checkout
R=$WORK/results
qT=$(q "$TREE")
qO=$(q "$OCITREE")
qS=$(q "$S")
qC=$(q "$C")

# ---------------------------------------------------------------- harness
selected() {
	[ -z "$BENCH_ONLY" ] && return 0
	case ",$BENCH_ONLY," in *",$1,"*) return 0 ;; esac
	return 1
}

TABLE_ROWS=()   # markdown lines of the main table
DETAIL_ROWS=()  # markdown lines of the per-side details
NOTES=()        # side checks
SIZE_ROWS=()    # markdown lines of the size table (rows that time nothing)
ANY_FAILED=0    # a timed command failed: exit 1 after writing the report

# run_one NAME SIDE I: one timed run of one side, via hyperfine --runs 1.
run_one() {
	local name=$1 side=$2 i=$3
	local base="$WORK/cmds/$name.$side"
	log "$name: $side run $i/$RUNS"
	hyperfine --runs 1 --shell bash --style basic \
		--prepare "bash -e -o pipefail $(q "$base.prep.sh") && sync" \
		--export-json "$R/$name.$side.$i.json" \
		"/usr/bin/time -v -a -o $(q "$R/$name.$side.time") bash -e -o pipefail $(q "$base.sh")" >&2
}

# summarize NAME SIDE -> "median min max user sys rss_mib" (or "FAIL")
summarize() {
	python3 - "$R" "$1" "$2" <<'EOF'
import glob, json, re, statistics, sys
r, name, side = sys.argv[1:4]
t, u, s = [], [], []
for f in sorted(glob.glob(f"{r}/{name}.{side}.*.json")):
    try:
        res = json.load(open(f))["results"][0]
    except (ValueError, KeyError, IndexError):
        continue  # hyperfine stopped on a failed command
    if any(c != 0 for c in (res.get("exit_codes") or [0])):
        continue
    t += res["times"]; u.append(res["user"]); s.append(res["system"])
rss = 0
try:
    for line in open(f"{r}/{name}.{side}.time"):
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", line)
        if m:
            rss = max(rss, int(m.group(1)))
except FileNotFoundError:
    pass
if not t:
    print("FAIL")
else:
    print(f"{statistics.median(t):.3f} {min(t):.3f} {max(t):.3f} "
          f"{statistics.mean(u):.2f} {statistics.mean(s):.2f} {rss/1024:.0f} {len(t)}")
EOF
}

# bench_row NAME PEER_LABEL PEER_PREP PEER_CMD OURS_PREP OURS_CMD TARGET_RATIO [RSS_LIMIT_MIB [MAX_OURS_S]]
#   PREP: untimed shell code run before every run (fresh, empty destination);
#   CMD: the timed shell code. Both run with `bash -e -o pipefail` from files
#   kept in $WORK/cmds. TARGET_RATIO: pass if median(ours)/median(peer) is at
#   most this ("-": no ratio target, the ratio is only reported);
#   RSS_LIMIT_MIB (optional, "" for none): pass only if ocitree's peak RSS is
#   below it; MAX_OURS_S (optional): pass only if ocitree's median wall time
#   is below this many seconds (an absolute target, e.g. a latency budget).
bench_row() {
	local name=$1 peer_label=$2 peer_prep=$3 peer_cmd=$4 ours_prep=$5 ours_cmd=$6
	local target=$7 rss_limit=${8:-} max_s=${9:-}
	printf '%s\n' "$peer_prep" >"$WORK/cmds/$name.peer.prep.sh"
	printf '%s\n' "$peer_cmd" >"$WORK/cmds/$name.peer.sh"
	printf '%s\n' "$ours_prep" >"$WORK/cmds/$name.ours.prep.sh"
	printf '%s\n' "$ours_cmd" >"$WORK/cmds/$name.ours.sh"
	rm -f "$R/$name".*.json "$R/$name".*.time

	local i side peer_failed=0 ours_failed=0
	for ((i = 1; i <= RUNS; i++)); do
		for side in peer ours; do
			if [ "$side" = peer ] && [ "$peer_failed" = 1 ]; then continue; fi
			if [ "$side" = ours ] && [ "$ours_failed" = 1 ]; then continue; fi
			if ! run_one "$name" "$side" "$i"; then
				log "$name: $side FAILED (commands in $WORK/cmds/$name.$side*.sh)"
				if [ "$side" = peer ]; then peer_failed=1; else ours_failed=1; fi
			fi
		done
	done

	local p o pm pmin pmax pu ps prss pn om omin omax ou os orss on
	p=$(summarize "$name" peer)
	o=$(summarize "$name" ours)
	local verdict ratio target_txt=""
	[ "$target" = - ] || target_txt="≤ $target"
	[ -z "$max_s" ] || target_txt="${target_txt:+$target_txt, }ocitree < $max_s s"
	[ -z "$rss_limit" ] || target_txt="$target_txt, RSS < $rss_limit MiB"
	if [ "$p" = FAIL ] || [ "$o" = FAIL ] || [ "$peer_failed" = 1 ] || [ "$ours_failed" = 1 ]; then
		pm=FAIL prss=- om=FAIL orss=-
		[ "$p" = FAIL ] || read -r pm pmin pmax pu ps prss pn <<<"$p"
		[ "$o" = FAIL ] || read -r om omin omax ou os orss on <<<"$o"
		[ "$peer_failed" = 0 ] || pm="FAIL"
		[ "$ours_failed" = 0 ] || om="FAIL"
		TABLE_ROWS+=("| $name | $peer_label | $pm | $om | – | $target_txt | **FAIL** | $prss | $orss |")
		ANY_FAILED=1
		return 0
	fi
	read -r pm pmin pmax pu ps prss pn <<<"$p"
	read -r om omin omax ou os orss on <<<"$o"
	read -r ratio verdict < <(python3 - "$pm" "$om" "$target" "$orss" "$rss_limit" "$max_s" <<'EOF'
import sys
pm, om, target, orss, lim, max_s = sys.argv[1:7]
ratio = float(om) / float(pm)
ok = (target == "-" or ratio <= float(target)) and (not lim or float(orss) < float(lim)) \
    and (not max_s or float(om) < float(max_s))
print(f"{ratio:.2f}", "yes" if ok else "**NO**")
EOF
)
	TABLE_ROWS+=("| $name | $peer_label | $pm | $om | $ratio | $target_txt | $verdict | $prss | $orss |")
	DETAIL_ROWS+=("| $name | peer | $pm | $pmin–$pmax | $pu | $ps | $prss | $pn |")
	DETAIL_ROWS+=("| $name | ocitree | $om | $omin–$omax | $ou | $os | $orss | $on |")
}

# Untimed: one commit per tool with a fixed timestamp, into $S/peer-src and
# $S/ours-src (bare-user). Used for the checksum side check and as the source
# repos of the checkout row. Sets PEER_CSUM / OURS_CSUM ("" on failure).
SRC_DONE=0
PEER_CSUM=
OURS_CSUM=
ensure_source_repos() {
	[ "$SRC_DONE" = 0 ] || return 0
	SRC_DONE=1
	log "untimed: committing the tree with a fixed timestamp (2024-01-01T00:00:00Z) with both tools"
	rm -rf "$S/peer-src" "$S/ours-src"
	if ostree init --repo="$S/peer-src" --mode=bare-user >&2 &&
		ostree commit --repo="$S/peer-src" --branch=os/v1 --subject=v1 \
			--timestamp=@1704067200 --tree=dir="$TREE" >/dev/null; then
		PEER_CSUM=$(ostree rev-parse --repo="$S/peer-src" os/v1)
	else
		log "ostree commit (untimed, --timestamp) FAILED"
	fi
	if "$OCITREE" repo init --repo "$S/ours-src" --mode bare-user >&2 &&
		OURS_CSUM=$("$OCITREE" repo commit --repo "$S/ours-src" --branch os/v1 --subject v1 \
			--timestamp 2024-01-01T00:00:00Z "$TREE" | tail -n1); then
		:
	else
		OURS_CSUM=
		log "ocitree repo commit (untimed, --timestamp) FAILED"
	fi
	local verdict
	if [ -z "$PEER_CSUM" ] || [ -z "$OURS_CSUM" ]; then
		verdict="**NOT COMPARED** (a commit failed)"
	elif [ "$PEER_CSUM" = "$OURS_CSUM" ]; then
		verdict="EQUAL"
	else
		verdict="**DIFFERENT**"
	fi
	NOTES+=("- commit checksum, same tree, \`--timestamp\` 2024-01-01T00:00:00Z, bare-user: ostree \`${PEER_CSUM:-–}\`, ocitree \`${OURS_CSUM:-–}\`: $verdict")
	if [ -n "$OURS_CSUM" ]; then
		local fsck_out
		if fsck_out=$(ostree fsck --repo="$S/ours-src" 2>&1); then
			NOTES+=("- \`ostree fsck\` of ocitree's bare-user repo: ok")
		else
			NOTES+=("- \`ostree fsck\` of ocitree's bare-user repo: **FAILED**: $(printf '%s' "$fsck_out" | tail -n 3 | tr '\n' ' ')")
		fi
	fi
}

# free_port: an unused TCP port on 127.0.0.1.
free_port() {
	python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_http URL: wait up to 10 s until URL answers 2xx.
wait_http() {
	local i
	for i in $(seq 1 100); do
		curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
		sleep 0.1
	done
	return 1
}

# Untimed, once: the image (ocitree encapsulate of $S/ours-src os/v1, gzip)
# pushed with skopeo to a docker-registry on 127.0.0.1:$REG_PORT as os:v1; and
# the same tree committed (same timestamp) into an archive repo served by
# python3 -m http.server on 127.0.0.1:$HTTP_PORT. Both servers are stopped by
# stop_servers (EXIT trap). Sets REG_OK / HTTP_OK to 1 on success.
SERVERS_DONE=0
REG_OK=0
HTTP_OK=0
REG_PORT=
HTTP_PORT=
ensure_servers() {
	[ "$SERVERS_DONE" = 0 ] || return 0
	SERVERS_DONE=1
	ensure_source_repos
	mkdir -p "$WORK/etc" "$WORK/registry/data"
	printf '%s\n' '{ "default": [ { "type": "insecureAcceptAnything" } ] }' >"$WORK/etc/policy.json"

	REG_PORT=$(free_port)
	cat >"$WORK/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $WORK/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$REG_PORT
EOF
	docker-registry serve "$WORK/registry/config.yml" >"$WORK/registry/registry.log" 2>&1 &
	REG_PID=$!
	log "untimed: docker-registry on 127.0.0.1:$REG_PORT (pid $REG_PID)"
	if ! wait_http "http://127.0.0.1:$REG_PORT/v2/"; then
		log "docker-registry did not come up: $(tail -n 5 "$WORK/registry/registry.log" | tr '\n' ' ')"
	elif [ -z "$OURS_CSUM" ]; then
		log "no ocitree source commit; not pushing an image"
	else
		log "untimed: ocitree encapsulate (gzip) + skopeo copy to docker://127.0.0.1:$REG_PORT/os:v1"
		rm -rf "$S/pull-img"
		if "$OCITREE" encapsulate --repo "$S/ours-src" --previous-build none os/v1 "oci:$S/pull-img:v1" >&2 &&
			skopeo --policy "$WORK/etc/policy.json" copy --dest-tls-verify=false \
				"oci:$S/pull-img:v1" "docker://127.0.0.1:$REG_PORT/os:v1" >&2; then
			REG_OK=1
		else
			log "encapsulate + push (untimed) FAILED"
		fi
		rm -rf "$S/pull-img"
	fi

	log "untimed: ostree commit of the tree into an archive repo (--timestamp 2024-01-01T00:00:00Z)"
	rm -rf "$S/archive"
	if ostree init --repo="$S/archive" --mode=archive >&2 &&
		ostree commit --repo="$S/archive" --branch=os/v1 --subject=v1 \
			--timestamp=@1704067200 --tree=dir="$TREE" >/dev/null; then
		HTTP_PORT=$(free_port)
		python3 -m http.server --bind 127.0.0.1 --directory "$S/archive" "$HTTP_PORT" \
			>"$WORK/registry/http.log" 2>&1 &
		HTTP_PID=$!
		log "untimed: python3 -m http.server on 127.0.0.1:$HTTP_PORT (pid $HTTP_PID)"
		if wait_http "http://127.0.0.1:$HTTP_PORT/config"; then
			HTTP_OK=1
		else
			log "http.server did not come up: $(tail -n 5 "$WORK/registry/http.log" | tr '\n' ' ')"
		fi
	else
		log "ostree commit into the archive repo (untimed) FAILED"
	fi
}

# setup_failed NAME PEER_LABEL TARGET_TXT: a row whose untimed setup failed.
setup_failed() {
	TABLE_ROWS+=("| $1 | $2 | – | – | – | $3 | **FAIL** (setup) | – | – |")
	ANY_FAILED=1
}

# ---------------------------------------------------------------- rows

row_commit() {
	bench_row commit "ostree commit (bare-user)" \
		"rm -rf $qS/peer-commit && ostree init --repo=$qS/peer-commit --mode=bare-user" \
		"ostree commit --repo=$qS/peer-commit --branch=os/v1 --subject=v1 --tree=dir=$qT" \
		"rm -rf $qS/ours-commit && $qO repo init --repo $qS/ours-commit --mode bare-user" \
		"$qO repo commit --repo $qS/ours-commit --branch os/v1 --subject v1 $qT" \
		0.5 150
	rm -rf "$S/peer-commit" "$S/ours-commit"
	ensure_source_repos
}

row_checkout() {
	ensure_source_repos
	bench_row checkout "ostree checkout -U -H" \
		"rm -rf $qC/peer" \
		"ostree checkout --repo=$qS/peer-src -U -H os/v1 $qC/peer" \
		"rm -rf $qC/ours" \
		"$qO repo checkout --repo $qS/ours-src --user-mode os/v1 $qC/ours" \
		0.7
	# Side checks on the last run's checkouts.
	if [ -d "$C/peer" ] && [ -d "$C/ours" ]; then
		local same
		(cd "$C/peer" && find . -printf '%p\t%y %m %s %l\n' | LC_ALL=C sort) >"$R/checkout.peer.list"
		(cd "$C/ours" && find . -printf '%p\t%y %m %s %l\n' | LC_ALL=C sort) >"$R/checkout.ours.list"
		same=$(python3 - "$R/checkout.peer.list" "$R/checkout.ours.list" <<'EOF'
import sys
def load(f):
    return dict(l.rstrip("\n").split("\t", 1) for l in open(f))
a, b = load(sys.argv[1]), load(sys.argv[2])
diff = sorted(p for p in set(a) | set(b) if a.get(p) != b.get(p))
if not diff:
    print("identical")
else:
    ex = "; ".join(f"`{p}` ostree `{a.get(p, 'missing')}`, ocitree `{b.get(p, 'missing')}`" for p in diff[:3])
    print(f"**DIFFERENT** in {len(diff)} entries, e.g. {ex}")
EOF
)
		NOTES+=("- checkouts (type, octal mode, size, symlink target per path): $same")
		local libc=usr/lib/x86_64-linux-gnu/libc.so.6
		if [ -f "$C/ours/$libc" ]; then
			NOTES+=("- link count of $libc in the checkout (>1: hardlinked to the repo): ostree $(stat -c %h "$C/peer/$libc" 2>/dev/null || echo –), ocitree $(stat -c %h "$C/ours/$libc")")
		fi
	fi
	rm -rf "$C/peer" "$C/ours"
}

row_encap_gzip() {
	ensure_source_repos
	bench_row encap-gzip "tar -c | gzip -6" \
		"rm -f $qS/peer.tar.gz" \
		"tar -C $qT -cf - . | gzip -6 > $qS/peer.tar.gz" \
		"rm -rf $qS/img-gzip" \
		"$qO encapsulate --repo $qS/ours-src --previous-build none os/v1 oci:$qS/img-gzip:v1" \
		0.25 300
	encap_size_note gzip "$S/peer.tar.gz" "$S/img-gzip"
	rm -rf "$S/peer.tar.gz" "$S/img-gzip"
}

row_encap_zstd() {
	ensure_source_repos
	bench_row encap-zstd "tar -c | zstd -3 -T2" \
		"rm -f $qS/peer.tar.zst" \
		"tar -C $qT -cf - . | zstd -3 -T2 -q -c > $qS/peer.tar.zst" \
		"rm -rf $qS/img-zstd" \
		"$qO encapsulate --repo $qS/ours-src --previous-build none --compression zstd os/v1 oci:$qS/img-zstd:v1" \
		1.5 300
	encap_size_note zstd "$S/peer.tar.zst" "$S/img-zstd"
	rm -rf "$S/peer.tar.zst" "$S/img-zstd"
}

# encap_size_note KIND PEER_FILE OCI_DIR: the image's blob bytes (all layers,
# config, manifest) against the peer's single-layer file.
encap_size_note() {
	[ -f "$2" ] && [ -d "$3/blobs" ] || return 0
	local peer ours layers
	peer=$(stat -c %s "$2")
	ours=$(du -sb "$3/blobs" | cut -f1)
	layers=$(find "$3/blobs/sha256" -type f | wc -l)
	NOTES+=("- $1 image size: ocitree $ours bytes in $((layers - 2)) layers vs single-layer $peer bytes: $(python3 -c "print(f'{$ours/$peer:.3f}')")× (target for gzip: within 5%)")
}

# The ocitree side of both pull rows: a registry pull into a fresh bare-user repo.
ours_pull_prep() {
	printf '%s' "rm -rf $qS/ours-pull && $qO repo init --repo $qS/ours-pull --mode bare-user"
}
ours_pull_cmd() {
	printf '%s' "$qO image pull --tls-verify=false --quiet --repo $qS/ours-pull docker://127.0.0.1:$REG_PORT/os:v1"
}

row_pull() {
	ensure_servers
	local label="skopeo copy + umoci unpack"
	if [ "$REG_OK" != 1 ]; then
		setup_failed pull "$label" "≤ 0.5, RSS < 300 MiB"
		return 0
	fi
	local qP
	qP=$(q "$WORK/etc/policy.json")
	bench_row pull "$label" \
		"rm -rf $qS/peer-pull-oci $qC/peer-bundle" \
		"skopeo --policy $qP copy --src-tls-verify=false docker://127.0.0.1:$REG_PORT/os:v1 oci:$qS/peer-pull-oci:v1 && umoci unpack --image $qS/peer-pull-oci:v1 $qC/peer-bundle" \
		"$(ours_pull_prep)" \
		"$(ours_pull_cmd)" \
		0.5 300
	if [ -d "$S/ours-pull" ]; then
		if ostree fsck --repo="$S/ours-pull" >/dev/null 2>&1; then
			NOTES+=("- \`ostree fsck\` of the repo ocitree pulled into: ok")
		else
			NOTES+=("- \`ostree fsck\` of the repo ocitree pulled into: **FAILED**")
		fi
	fi
	rm -rf "$S/peer-pull-oci" "$C/peer-bundle" "$S/ours-pull"
}

row_pull_vs_ostree() {
	ensure_servers
	local label="ostree pull (archive over HTTP)"
	if [ "$REG_OK" != 1 ] || [ "$HTTP_OK" != 1 ]; then
		setup_failed pull-vs-ostree "$label" "≤ 0.3, RSS < 300 MiB"
		return 0
	fi
	bench_row pull-vs-ostree "$label" \
		"rm -rf $qS/peer-ostree-pull && ostree init --repo=$qS/peer-ostree-pull --mode=bare-user && ostree remote add --repo=$qS/peer-ostree-pull --no-gpg-verify origin http://127.0.0.1:$HTTP_PORT" \
		"ostree pull --repo=$qS/peer-ostree-pull origin os/v1" \
		"$(ours_pull_prep)" \
		"$(ours_pull_cmd)" \
		0.3 300
	rm -rf "$S/peer-ostree-pull" "$S/ours-pull"
}

# Untimed, once: the helper programs of the derived row, built from this tree
# (bench/appendlayer, fixtures/mkfixture). Sets HELPERS_OK to 1 on success.
HELPERS_DONE=0
HELPERS_OK=0
ensure_helpers() {
	[ "$HELPERS_DONE" = 0 ] || return 0
	HELPERS_DONE=1
	if ! command -v go >/dev/null 2>&1; then
		log "go not found: cannot build bench/appendlayer and fixtures/mkfixture"
		return 0
	fi
	if CGO_ENABLED=0 go build -o "$WORK/appendlayer" ./bench/appendlayer >&2 &&
		CGO_ENABLED=0 go build -o "$WORK/mkfixture" ./fixtures/mkfixture >&2; then
		HELPERS_OK=1
	else
		log "building bench/appendlayer or fixtures/mkfixture FAILED"
	fi
}

# clone_repo SRC DEST: shell code making DEST a copy of the (closed) repo SRC
# in a fraction of a second: objects hardlinked (objects are never modified
# in place, by either tool: new objects, refs and detached metadata are
# written to new files and renamed), refs, config and state copied.
clone_repo() {
	local s d
	s=$(q "$1") d=$(q "$2")
	printf '%s' "rm -rf $d && cp -al $s $d && rm -rf $d/refs $d/config $d/state $d/.lock && cp -a $s/refs $s/config $s/state $d/"
}

# derived_setup KIND TREE OURS_REPO PEER_REPO: untimed setup of one derived
# row on the base tree TREE, committed (fixed timestamp) as os/v1 in the
# bare-user repos OURS_REPO (ocitree) and PEER_REPO (ostree). Writes
# $S/derived-KIND.img (oci: layout: v1 = ocitree encapsulate of os/v1,
# v1-derived = v1 + bench/appendlayer's 1 MiB layer), $S/derived-KIND.layer.tar.gz
# (that layer's blob, for the peer) and $S/derived-KIND.base (bare-user store
# with v1 pulled). Returns 1 on failure.
derived_setup() {
	local kind=$1 tree=$2 ours=$3 peer=$4
	local img="$S/derived-$kind.img" base="$S/derived-$kind.base"
	rm -rf "$img" "$base"
	log "untimed: derived-$kind: encapsulate, append a 1 MiB layer, pull the base image"
	"$OCITREE" encapsulate --repo "$ours" --previous-build none os/v1 "oci:$img:v1" >&2 || return 1
	"$WORK/appendlayer" "$img" v1 v1-derived "$tree" 1024 >&2 || return 1
	# The new layer is the last of the v1-derived manifest: keep its blob for the peer.
	python3 - "$img" "$S/derived-$kind.layer.tar.gz" <<'EOF' || return 1
import json, shutil, sys
img, out = sys.argv[1:3]
idx = json.load(open(f"{img}/index.json"))
m = next(d for d in idx["manifests"] if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == "v1-derived")
man = json.load(open(f"{img}/blobs/sha256/{m['digest'].split(':')[1]}"))
layer = man["layers"][-1]
shutil.copyfile(f"{img}/blobs/sha256/{layer['digest'].split(':')[1]}", out)
print(f"derived layer {layer['digest']}: {layer['size']} bytes", file=sys.stderr)
EOF
	"$OCITREE" repo init --repo "$base" --mode bare-user >&2 || return 1
	"$OCITREE" image pull --quiet --repo "$base" "oci:$img:v1" >&2 || return 1
	[ -n "$peer" ] && ostree rev-parse --repo="$peer" os/v1 >/dev/null || return 1
}

# derived_row NAME KIND PEER_REPO: the timed part of one derived row.
derived_row() {
	local name=$1 kind=$2 peer=$3
	local img="$S/derived-$kind.img" base="$S/derived-$kind.base"
	local run="$S/derived-$kind.run" prun="$S/derived-$kind.peer" merge="$C/derived-$kind.merge"
	local qrun qprun qmerge qblob
	qrun=$(q "$run") qprun=$(q "$prun") qmerge=$(q "$merge") qblob=$(q "$S/derived-$kind.layer.tar.gz")
	bench_row "$name" "ostree-ext's derived-layer import (ostree CLI)" \
		"rm -rf $qmerge && $(clone_repo "$peer" "$prun")" \
		"ostree commit --repo=$qprun --branch=derived/layer --no-bindings --tar-autocreate-parents --tar-pathname-filter='^etc/,usr/etc/' --tree=tar=$qblob >/dev/null
ostree checkout --repo=$qprun -U --union -H --force-copy-zerosized os/v1 $qmerge
ostree checkout --repo=$qprun -U --union -H --force-copy-zerosized derived/layer $qmerge
ostree commit --repo=$qprun --branch=derived/merged --no-bindings --link-checkout-speedup --tree=dir=$qmerge >/dev/null" \
		"$(clone_repo "$base" "$run")" \
		"$qO image pull --quiet --repo $qrun $(q "oci:$img:v1-derived")" \
		- 300 1
}

# derived, derived-minios: importing a derived layer (1 MiB of new files, an
# /etc edit; bench/appendlayer) over a base image already in the store.
#
# Untimed setup: the base commit (os/v1) encapsulated by ocitree into an oci:
# layout, the derived layer appended there (tag v1-derived), v1 pulled into
# a bare-user store; before every run that store is cloned (clone_repo).
# Timed, ocitree: `image pull` of v1-derived into the clone: only the derived
# layer is fetched, applied onto the base tree and the merge commit written.
# Timed, peer: what ostree-ext does for a derived layer (container/store.rs),
# with the ostree CLI on a clone of the peer's bare-user repo holding the same
# base tree: the layer committed with `ostree commit --tree=tar=BLOB`
# (libarchive decompresses it; etc/ -> usr/etc/ by --tar-pathname-filter,
# where ostree-ext filters the stream itself), then `ostree checkout -U
# --union -H` of the base commit and then of the layer commit into one temp
# directory, then `ostree commit --link-checkout-speedup` of the merged
# directory (ostree-ext commits it with a devino cache too).
# Target: ocitree under 1 s; the ratio is reported, with no target. The
# derived-minios row repeats both on fixtures.MiniOS, a far smaller base: a
# side check compares ocitree's two times (the cost must not grow with the
# base).
row_derived() {
	ensure_source_repos
	ensure_helpers
	local label="ostree-ext's derived-layer import (ostree CLI)" target="ocitree < 1 s, RSS < 300 MiB"
	if [ "$HELPERS_OK" != 1 ] || [ -z "$OURS_CSUM" ] || [ -z "$PEER_CSUM" ] ||
		! derived_setup debian "$TREE" "$S/ours-src" "$S/peer-src"; then
		setup_failed derived "$label" "$target"
		return 0
	fi
	# MiniOS: generated, committed by both tools with the same timestamp.
	local mini="$WORK/minios" ok=1
	rm -rf "$mini" "$S/minios-ours" "$S/minios-peer"
	if ! "$WORK/mkfixture" minios "$mini" >&2 ||
		! "$OCITREE" repo init --repo "$S/minios-ours" --mode bare-user >&2 ||
		! "$OCITREE" repo commit --repo "$S/minios-ours" --branch os/v1 --subject v1 \
			--timestamp 2024-01-01T00:00:00Z "$mini" >/dev/null ||
		! ostree init --repo="$S/minios-peer" --mode=bare-user >&2 ||
		! ostree commit --repo="$S/minios-peer" --branch=os/v1 --subject=v1 \
			--timestamp=@1704067200 --tree=dir="$mini" >/dev/null ||
		! derived_setup minios "$mini" "$S/minios-ours" "$S/minios-peer"; then
		ok=0
	fi
	derived_row derived debian "$S/peer-src"
	if [ "$ok" = 1 ]; then
		derived_row derived-minios minios "$S/minios-peer"
	else
		setup_failed derived-minios "$label" "$target"
	fi
	# Side checks: what a pull of v1-derived over v1 fetches; the pulled store.
	local check
	if check=$("$OCITREE" image pull --check --repo "$S/derived-debian.base" "oci:$S/derived-debian.img:v1-derived" 2>&1 | tail -n1); then
		NOTES+=("- derived: \`image pull --check\` of v1-derived over v1: $check")
	fi
	local run="$S/derived-debian.run"
	if [ -d "$run" ]; then
		if ostree fsck --repo="$run" >/dev/null 2>&1; then
			NOTES+=("- \`ostree fsck\` of the store ocitree pulled the derived image into: ok")
		else
			NOTES+=("- \`ostree fsck\` of the store ocitree pulled the derived image into: **FAILED**")
		fi
	fi
	# The cost must not grow with the base: ocitree's time on the Debian base
	# at most 2× its time on MiniOS (a base over 1000× smaller; fixed costs
	# such as process start and the image's layer count remain).
	local d m pd pm
	d=$(summarize derived ours) m=$(summarize derived-minios ours)
	pd=$(summarize derived peer) pm=$(summarize derived-minios peer)
	if [ "$d" != FAIL ] && [ "$m" != FAIL ]; then
		NOTES+=("- derived layer over a larger base: $(python3 - "${d%% *}" "${m%% *}" "${pd%% *}" "${pm%% *}" "$(du -sb "$TREE" | cut -f1)" "$(du -sb "$mini" | cut -f1)" <<'EOF'
import sys
d, m, pd, pm, bd, bm = sys.argv[1:7]
f = float(d) / float(m)
peer = f", peer {float(pd) / float(pm):.1f}×" if pd != "FAIL" and pm != "FAIL" else ""
print(f"ocitree {d} s on the Debian base ({int(bd) / 1e6:.0f} MB) vs {m} s on MiniOS ({int(bm) / 1e3:.0f} kB): "
      f"{f:.2f}× for a {int(bd) / int(bm):.0f}× larger base{peer} (target ≤ 2×: {'ok' if f <= 2 else '**NO**'})")
EOF
)")
	fi
	rm -rf "$S"/derived-*.run "$S"/derived-*.peer "$C"/derived-*.merge
}

# update_bytes: the bytes a host downloads for a one-package update of the
# Debian tree (a size row: nothing is timed).
#
# Untimed: the tree is copied (cp -al: files hardlinked, and every file the
# update changes is replaced by a new file, never written in place, so the
# cached tree stays as it is; this is checked), libssl3 is updated in the
# copy to another version from apt (`apt-get download libssl3=VERSION`,
# unpacked with `dpkg-deb -x`, etc/ mapped to usr/etc/, its control files
# into var/lib/dpkg/info/, Version and Installed-Size in var/lib/dpkg/status;
# when apt has no other version or cannot download: a synthetic bump, every
# file of the package rewritten with each byte XORed with 0x5a, which keeps
# its compressibility, and "+bench1" added to the version), committed as
# os/v2, and both commits encapsulated: v1 with --previous-build none, v2 with
# --previous-build v1 (ocitree's update path). Ours: the compressed bytes of
# v2's layers whose digest is not in v1's manifest (what a pull of v2 over v1
# downloads, manifest and config aside). Peer: `tar | gzip -6` of just the
# changed paths (files and symlinks that differ between the trees, new ones
# included). Target: ratio ≤ 1.5.
row_update_bytes() {
	ensure_source_repos
	local label="gzip -6 of a tar of the changed files" target="≤ 1.5"
	if [ -z "$OURS_CSUM" ]; then
		SIZE_ROWS+=("| update_bytes | $label | – | – | – | $target | **FAIL** (setup) | |")
		ANY_FAILED=1
		return 0
	fi
	local U="$WORK/update" pkg=libssl3
	local new="$U/tree" how
	rm -rf "$U"
	mkdir -p "$U"
	if how=$(update_tree "$U" "$pkg"); then
		:
	else
		SIZE_ROWS+=("| update_bytes | $label | – | – | – | $target | **FAIL** (setup) | |")
		ANY_FAILED=1
		rm -rf "$U"
		return 0
	fi
	log "untimed: update_bytes: commit os/v2, encapsulate v1 and v2 (--previous-build v1)"
	local out
	if ! "$OCITREE" repo commit --repo "$S/ours-src" --branch os/v2 --subject v2 \
		--timestamp 2024-01-02T00:00:00Z "$new" >/dev/null ||
		! "$OCITREE" encapsulate --repo "$S/ours-src" --previous-build none os/v1 "oci:$U/img:v1" >/dev/null ||
		! "$OCITREE" encapsulate --repo "$S/ours-src" --previous-build "oci:$U/img:v1" os/v2 "oci:$U/img:v2" >/dev/null ||
		! out=$(python3 - "$TREE" "$new" "$U" <<'EOF'
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
    c = (l.get("annotations") or {}).get("ostree.components", "")
    names.append(f"{c[:40]}{'…' if len(c) > 40 else ''} {l['size']} B" if c else f"ostree layer {l['size']} B")

# Changed paths: type, mode, owner, content or target differ, or new, or gone.
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
            while True:
                x, y = fa.read(1 << 20), fb.read(1 << 20)
                if x != y:
                    return False
                if not x:
                    return True
    return True

changed, gone, dirs = [], 0, 0
for root, ds, fs in os.walk(new):
    for n in ds + fs:
        p = os.path.join(root, n)
        rel = os.path.relpath(p, new)
        o = os.path.join(old, rel)
        if os.path.lexists(o) and same(o, p):
            continue
        if os.path.isdir(p) and not os.path.islink(p):
            dirs += 1  # a directory's metadata: no payload to compress
        else:
            changed.append(rel)
for root, ds, fs in os.walk(old):
    for n in ds + fs:
        rel = os.path.relpath(os.path.join(root, n), old)
        if not os.path.lexists(os.path.join(new, rel)):
            gone += 1
with open(f"{u}/changed.list", "w") as f:
    f.write("".join(f"./{c}\n" for c in changed))
tar = subprocess.Popen(["tar", "-C", new, "--no-recursion", "-cf", "-", "-T", f"{u}/changed.list"], stdout=subprocess.PIPE)
gz = subprocess.run(["gzip", "-6", "-c"], stdin=tar.stdout, stdout=subprocess.PIPE, check=True).stdout
if tar.wait() != 0:
    sys.exit("tar of the changed files failed")
print(ours, len(gz), len(changed), gone, dirs, len(fresh), len(m2["layers"]), "; ".join(names))
EOF
); then
		SIZE_ROWS+=("| update_bytes | $label | – | – | – | $target | **FAIL** (setup) | $how |")
		ANY_FAILED=1
		rm -rf "$U"
		return 0
	fi
	local ours peer nchanged ngone ndirs nfresh nlayers names ratio verdict
	read -r ours peer nchanged ngone ndirs nfresh nlayers names <<<"$out"
	read -r ratio verdict < <(python3 -c "r = $ours / $peer; print(f'{r:.2f}', 'yes' if r <= 1.5 else '**NO**')")
	SIZE_ROWS+=("| update_bytes | $label | $peer | $ours | $ratio | $target | $verdict | $how; $nchanged changed files/symlinks, $ngone removed, $ndirs directories with new metadata; $nfresh new of $nlayers layers: $names |")
	rm -rf "$U"
}

# update_tree U PKG: make U/tree, the bench tree with PKG updated (see
# row_update_bytes); prints how. The cached tree must not change: the
# package's files and the dpkg status are hashed before and after.
update_tree() {
	local U=$1 pkg=$2 new="$1/tree"
	local admin="$TREE/var/lib/dpkg" arch oldver newver="" deb="" how
	arch=$(dpkg-query --admindir="$admin" -W -f='${Architecture}' "$pkg" 2>/dev/null) || arch=
	oldver=$(dpkg-query --admindir="$admin" -W -f='${Version}' "$pkg" 2>/dev/null) || oldver=
	if [ -z "$oldver" ]; then
		log "update_bytes: $pkg is not installed in $TREE"
		return 1
	fi
	local info="$admin/info/$pkg:$arch.list"
	[ -f "$info" ] || info="$admin/info/$pkg.list"
	local before
	before=$(cd "$TREE" && { echo var/lib/dpkg/status; sed 's|^/||' "$info"; } |
		while IFS= read -r p; do [ -f "$p" ] && [ ! -L "$p" ] && echo "$p"; done | xargs -d '\n' sha256sum)

	log "untimed: update_bytes: hardlinked copy of the tree"
	cp -al "$TREE" "$new" 2>/dev/null || { rm -rf "$new" && cp -a "$TREE" "$new"; } || return 1

	pick_version() {
		apt-cache madison "$pkg" 2>/dev/null |
			awk -F'|' -v a="$arch" -v o="$oldver" '$3 ~ (" " a " Packages|all Packages") { v = $2; gsub(/ /, "", v); if (v != o) { print v; exit } }'
	}
	if command -v apt-get >/dev/null 2>&1; then
		newver=$(pick_version)
		if [ -z "$newver" ]; then
			apt-get update >&2 || true
			newver=$(pick_version)
		fi
		if [ -n "$newver" ] && (cd "$U" && apt-get download "$pkg:$arch=$newver" >&2); then
			deb=$(find "$U" -maxdepth 1 -name "${pkg}_*.deb" | head -n1)
		fi
	fi
	if [ -n "$deb" ]; then
		how="$pkg $oldver → $newver (apt)"
		log "update_bytes: $how"
		mkdir "$U/deb" "$U/ctrl"
		dpkg-deb -x "$deb" "$U/deb" && dpkg-deb -e "$deb" "$U/ctrl" || return 1
		if [ -d "$U/deb/etc" ]; then
			mkdir -p "$U/deb/usr/etc"
			cp -a "$U/deb/etc/." "$U/deb/usr/etc/" && rm -rf "$U/deb/etc" || return 1
		fi
		# Files and symlinks: replace (never write through a hardlink).
		(cd "$U/deb" && find . ! -type d) | while IFS= read -r p; do
			mkdir -p "$new/$(dirname "$p")" && rm -f "$new/$p" && cp -a "$U/deb/$p" "$new/$p" || exit 1
		done || return 1
		local f
		for f in "$U"/ctrl/*; do
			case "${f##*/}" in control | conffiles) continue ;; esac
			rm -f "$new/var/lib/dpkg/info/$pkg:$arch.${f##*/}"
			cp "$f" "$new/var/lib/dpkg/info/$pkg:$arch.${f##*/}" || return 1
		done
		local isize
		isize=$(dpkg-deb -f "$deb" Installed-Size)
		python3 - "$new/var/lib/dpkg/status" "$pkg" "$arch" "$newver" "$isize" <<'EOF' || return 1
import os, sys
path, pkg, arch, ver, isize = sys.argv[1:6]
out, hit = [], False
for st in open(path, encoding="utf-8").read().split("\n\n"):
    lines = st.split("\n")
    if f"Package: {pkg}" in lines and any(l in (f"Architecture: {arch}", "Architecture: all") for l in lines):
        hit = True
        lines = [f"Version: {ver}" if l.startswith("Version: ") else
                 f"Installed-Size: {isize}" if l.startswith("Installed-Size: ") and isize else l for l in lines]
    out.append("\n".join(lines))
if not hit:
    sys.exit(f"{pkg} not in {path}")
tmp = path + ".bench-new"
open(tmp, "w", encoding="utf-8").write("\n\n".join(out))
os.replace(tmp, path)  # a new file: the hardlinked original stays as it was
EOF
	else
		how="$pkg $oldver → $oldver+bench1 (synthetic: apt had no other version or could not download it)"
		log "update_bytes: $how"
		python3 - "$new" "$info" "$pkg" "$arch" "$oldver+bench1" <<'EOF' || return 1
import os, stat, sys
new, info, pkg, arch, ver = sys.argv[1:6]
for line in open(info):
    p = os.path.join(new, line.strip().lstrip("/"))
    if not os.path.isfile(p) or os.path.islink(p):
        continue
    st = os.lstat(p)
    data = bytes(b ^ 0x5A for b in open(p, "rb").read())
    tmp = p + ".bench-new"
    with open(tmp, "wb") as f:
        f.write(data)
    os.chmod(tmp, stat.S_IMODE(st.st_mode))
    os.chown(tmp, st.st_uid, st.st_gid)
    os.replace(tmp, p)
path = os.path.join(new, "var/lib/dpkg/status")
out = []
for st in open(path, encoding="utf-8").read().split("\n\n"):
    lines = st.split("\n")
    if f"Package: {pkg}" in lines:
        lines = [f"Version: {ver}" if l.startswith("Version: ") else l for l in lines]
    out.append("\n".join(lines))
open(path + ".bench-new", "w", encoding="utf-8").write("\n\n".join(out))
os.replace(path + ".bench-new", path)
EOF
	fi
	local after
	after=$(cd "$TREE" && printf '%s\n' "$before" | awk '{ print $2 }' | xargs -d '\n' sha256sum)
	if [ "$before" != "$after" ]; then
		die "update_bytes modified the cached tree $TREE (package files or dpkg status); rebuild it: rm -rf $(dirname "$TREE")"
	fi
	printf '%s' "$how"
}

# Rows kept in files of their own: bench/rows_*.sh (plain; rechunk; deploy, upgrade;
# hostile_deep, hostile_many; builder; ...).
for rows in "$here"/rows_*.sh; do
	# shellcheck source=/dev/null
	. "$rows"
done

ALL_ROWS=(commit checkout encap_gzip encap_zstd pull pull_vs_ostree derived plain update_bytes rechunk deploy upgrade hostile_deep hostile_many builder)

for row in "${ALL_ROWS[@]}"; do
	selected "$row" && "row_$row"
done
stop_servers
if [ "${#TABLE_ROWS[@]}" -eq 0 ] && [ "${#SIZE_ROWS[@]}" -eq 0 ]; then
	die "no row selected by BENCH_ONLY=$BENCH_ONLY (rows: ${ALL_ROWS[*]})"
fi

# ---------------------------------------------------------------- report
rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo "no commit")
if [ -n "$(git -C "$root" status --porcelain --untracked-files=no 2>/dev/null)" ]; then rev="$rev (dirty)"; fi
tree_info="$TREE"
if [ -f "$TREE/../info" ]; then
	tree_info="$tree_info ($(awk -F= '$1 == "bytes" { b = $2 } $1 == "entries" { e = $2 } $1 == "kernels" { k = $2 }
		END { printf "%.1f MB, %s entries, kernel %s", b / 1e6, e, k }' "$TREE/../info"))"
fi
ostree_ver=$(ostree --version | sed -n "s/^ *Version: *'\{0,1\}\([^']*\)'\{0,1\}$/\1/p")
report=$(
	echo "# ocitree bench"
	echo
	echo "$(date -u '+%Y-%m-%d %H:%M UTC'); ocitree $rev ($OCITREE); $(nproc) CPUs; kernel $(uname -r);" \
		"work dir on $work_fs ($WORK); runs per side: $RUNS, interleaved peer/ocitree;" \
		"ostree $ostree_ver; $(hyperfine --version)."
	echo "Input tree: $tree_info."
	echo "Load average (1/5/15 min) at start: $load_start; at end: $(cut -d' ' -f1-3 /proc/loadavg) (anything else running skews the ratios)."
	echo
	if [ "${#TABLE_ROWS[@]}" -gt 0 ]; then
		echo "| row | peer | peer median s | ocitree median s | ratio (ocitree/peer) | target | ok? | peer peak RSS MiB | ocitree peak RSS MiB |"
		echo "|---|---|---:|---:|---:|---|---|---:|---:|"
		printf '%s\n' "${TABLE_ROWS[@]}"
	fi
	if [ "${#SIZE_ROWS[@]}" -gt 0 ]; then
		echo
		echo "Sizes (bytes; ratio ocitree/peer):"
		echo
		echo "| row | peer | peer bytes | ocitree bytes | ratio | target | ok? | what changed |"
		echo "|---|---|---:|---:|---:|---|---|---|"
		printf '%s\n' "${SIZE_ROWS[@]}"
	fi
	if [ "${#NOTES[@]}" -gt 0 ]; then
		echo
		echo "Side checks:"
		echo
		printf '%s\n' "${NOTES[@]}"
	fi
	if [ "${#DETAIL_ROWS[@]}" -gt 0 ]; then
		echo
		echo "Details (wall median, min–max; user/sys: means incl. children):"
		echo
		echo "| row | side | median s | min–max s | user s | sys s | peak RSS MiB | runs |"
		echo "|---|---|---:|---:|---:|---:|---:|---:|"
		printf '%s\n' "${DETAIL_ROWS[@]}"
	fi
	echo
	echo "Commands: bench/run.sh (row_* functions); ratios are only meaningful within one run."
)
mkdir -p "$(dirname "$BENCH_OUT")"
printf '%s\n' "$report" >"$BENCH_OUT"
printf '%s\n' "$report"
if [ "$ANY_FAILED" = 1 ]; then
	log "some commands FAILED (see the report); exit 1"
	exit 1
fi
