# bench/rows_host.sh: the host rows of bench/run.sh (sourced by it; uses its
# harness: bench_row, ensure_source_repos, ensure_servers, update_tree, q, log,
# $S, $WORK, $OCITREE, $TREE, NOTES).
#
# deploy: deploying the commit of the input tree (already in the sysroot's
#   repository) as a second deployment beside one that has local /etc edits:
#   checkout, /etc merge, boot entries, cleanup and prune. Peer: `ostree admin
#   deploy` of the same commit on an identical sysroot. ocitree's side is
#   bench/hostdeploy (package deploy: Inspect, Deploy, WriteDeployments,
#   PruneRepo, i.e. what `ocitree switch` does after its pull).
# upgrade: `ocitree upgrade` of a sysroot installed from a registry tag that
#   then moved to the libssl3 update of row update_bytes (encapsulated with
#   --previous-build): manifest check, fetch of the changed layers, import,
#   merge commit, deploy, boot entries, cleanup, prune. Peer: `ostree
#   pull-local` of the same update (committed by ostree) from a local
#   bare-user repository + `ostree admin deploy`, on a sysroot that has the
#   old commit deployed (no network, no decompression: a lower bound).
#   Targets: ocitree under 1.5 s, peak RSS under 150 MiB.
#
# Each run starts from a fresh `cp -a` copy of a base sysroot (untimed
# --prepare). Deployment roots carry the immutable bit: sysroot_rm clears it
# before removing a copy.

# sysroot_rm_code DIR: shell code removing the sysroot DIR (immutable bits cleared).
sysroot_rm_code() {
	local d
	d=$(q "$1")
	printf '%s' "if [ -d $d ]; then chattr -i $d/ostree/deploy/*/deploy/* 2>/dev/null || true; rm -rf $d; fi"
}

# sysroot_copy_code BASE DIR: shell code making DIR a fresh copy of BASE.
sysroot_copy_code() {
	printf '%s && cp -a %s %s' "$(sysroot_rm_code "$2")" "$(q "$1")" "$(q "$2")"
}

# sysroot_rm DIR: remove the sysroot DIR now.
sysroot_rm() {
	bash -c "$(sysroot_rm_code "$1")"
}

# etc_edits DIR: the local /etc edits of a base sysroot's deployment (a
# modified file, an added file, a removed file), for the merge to carry.
etc_edits() {
	local d
	d=$(find "$1/ostree/deploy/default/deploy" -mindepth 1 -maxdepth 1 -type d | head -n1)
	[ -n "$d" ] || return 1
	echo "bench.example" >"$d/etc/hostname" &&
		printf 'BENCH=1\n' >"$d/etc/bench.conf" &&
		rm -f "$d/etc/motd"
}

# HOSTDEPLOY: the helper built once from this tree (bench/hostdeploy).
HOSTDEPLOY=
ensure_hostdeploy() {
	[ -z "$HOSTDEPLOY" ] || return 0
	CGO_ENABLED=0 go build \
		-tags "containers_image_openpgp containers_image_storage_stub containers_image_docker_daemon_stub" \
		-o "$WORK/hostdeploy" ./bench/hostdeploy >&2 || return 1
	HOSTDEPLOY=$WORK/hostdeploy
}

# stock_sysroot DIR SRCREPO REF: untimed, a sysroot made by the stock tools:
# init-fs, os-init default, pull-local REF, `ostree admin deploy` with the
# kernel arguments root=LABEL=root rw, then the /etc edits.
stock_sysroot() {
	local dir=$1 src=$2 ref=$3
	sysroot_rm "$dir"
	mkdir -p "$dir"
	ostree admin init-fs "$dir" >&2 &&
		ostree admin os-init --sysroot="$dir" default >&2 &&
		ostree pull-local --repo="$dir/ostree/repo" "$src" "$ref" >&2 &&
		ostree admin deploy --sysroot="$dir" --os=default --karg=root=LABEL=root --karg=rw "$ref" >&2 &&
		etc_edits "$dir"
}

row_deploy() {
	local label="ostree admin deploy" target="≤ 0.6"
	ensure_source_repos
	local base="$S/host-deploy-base"
	if [ -z "$PEER_CSUM" ] || ! ensure_hostdeploy; then
		setup_failed deploy "$label" "$target"
		return 0
	fi
	log "untimed: deploy: a stock sysroot with os/v1 deployed (and /etc edits)"
	if ! stock_sysroot "$base" "$S/peer-src" os/v1; then
		setup_failed deploy "$label" "$target"
		sysroot_rm "$base"
		return 0
	fi
	local peer="$S/host-deploy-peer" ours="$S/host-deploy-ours"
	bench_row deploy "$label" \
		"$(sysroot_copy_code "$base" "$peer")" \
		"ostree admin deploy --sysroot=$(q "$peer") --os=default os/v1" \
		"$(sysroot_copy_code "$base" "$ours")" \
		"$(q "$HOSTDEPLOY") $(q "$ours") default os/v1" \
		0.6
	host_side_checks deploy "$peer" "$ours"
	sysroot_rm "$base"
	sysroot_rm "$peer"
	sysroot_rm "$ours"
}

# host_side_checks ROW PEER OURS: after the last run, stock `ostree admin
# status` on both sysroots (same deployments, versions), the merged /etc and
# the link count of a file of the new deployment (hardlinked to the repo).
host_side_checks() {
	local row=$1 peer=$2 ours=$3 ps os
	[ -d "$peer/ostree" ] && [ -d "$ours/ostree" ] || return 0
	if ps=$(ostree admin status --sysroot="$peer" 2>&1) && os=$(ostree admin status --sysroot="$ours" 2>&1); then
		local pn on
		pn=$(grep -c '^[ *] default ' <<<"$ps" || true)
		on=$(grep -c '^[ *] default ' <<<"$os" || true)
		NOTES+=("- $row: \`ostree admin status\` of the sysroots after the last run: ostree's $pn deployments, ocitree's $on deployments")
	else
		NOTES+=("- $row: \`ostree admin status\` of ocitree's sysroot after the last run: **FAILED**: $(tail -n 2 <<<"$os" | tr '\n' ' ')")
	fi
	local d
	d=$(find "$ours/ostree/deploy/default/deploy" -mindepth 1 -maxdepth 1 -type d -name '*.[0-9]*' -newer "$ours/ostree/deploy/default/var" | head -n1)
	local pd
	pd=$(find "$peer/ostree/deploy/default/deploy" -mindepth 1 -maxdepth 1 -type d -name '*.[0-9]*' -newer "$peer/ostree/deploy/default/var" | head -n1)
	if [ -n "$d" ] && [ -n "$pd" ]; then
		local etc_ok="no"
		if [ "$(cat "$d/etc/hostname" 2>/dev/null)" = bench.example ] && [ -f "$d/etc/bench.conf" ] && [ ! -e "$d/etc/motd" ] &&
			[ "$(cat "$pd/etc/hostname" 2>/dev/null)" = bench.example ] && [ -f "$pd/etc/bench.conf" ] && [ ! -e "$pd/etc/motd" ]; then
			etc_ok="yes"
		fi
		local libc=usr/lib/x86_64-linux-gnu/libc.so.6
		NOTES+=("- $row: the local /etc edits (hostname modified, bench.conf added, motd removed) carried into the new deployment by both: $etc_ok; link count of $libc there: ostree $(stat -c %h "$pd/$libc" 2>/dev/null || echo –), ocitree $(stat -c %h "$d/$libc" 2>/dev/null || echo –)")
	fi
}

row_upgrade() {
	local label="ostree pull-local + ostree admin deploy" target="ocitree < 1.5 s, RSS < 150 MiB"
	ensure_servers
	ensure_source_repos
	if [ "$REG_OK" != 1 ] || [ -z "$PEER_CSUM" ] || [ -z "$OURS_CSUM" ]; then
		setup_failed upgrade "$label" "$target"
		return 0
	fi
	local U="$WORK/host-update" how
	rm -rf "$U"
	mkdir -p "$U"
	if ! how=$(update_tree "$U" libssl3); then
		setup_failed upgrade "$label" "$target"
		rm -rf "$U"
		return 0
	fi
	local reg="127.0.0.1:$REG_PORT" qP
	qP=$(q "$WORK/etc/policy.json")
	log "untimed: upgrade: commit the update with both tools, encapsulate v1 and v2 (--previous-build v1), push os:h1, os:h2"
	if ! "$OCITREE" repo commit --repo "$S/ours-src" --branch host/v2 --subject v2 \
		--timestamp 2024-01-02T00:00:00Z "$U/tree" >/dev/null ||
		! ostree commit --repo="$S/peer-src" --branch=host/v2 --subject=v2 \
			--timestamp=@1704153600 --tree=dir="$U/tree" >/dev/null ||
		! "$OCITREE" encapsulate --repo "$S/ours-src" --previous-build none --label org.opencontainers.image.version=1 os/v1 "oci:$U/img:v1" >&2 ||
		! "$OCITREE" encapsulate --repo "$S/ours-src" --previous-build "oci:$U/img:v1" --label org.opencontainers.image.version=2 host/v2 "oci:$U/img:v2" >&2 ||
		! skopeo --policy "$WORK/etc/policy.json" copy --dest-tls-verify=false "oci:$U/img:v1" "docker://$reg/os:h1" >&2 ||
		! skopeo --policy "$WORK/etc/policy.json" copy --dest-tls-verify=false "oci:$U/img:v2" "docker://$reg/os:h2" >&2 ||
		! skopeo --policy "$WORK/etc/policy.json" copy --src-tls-verify=false --dest-tls-verify=false "docker://$reg/os:h1" "docker://$reg/os:host" >&2; then
		setup_failed upgrade "$label" "$target"
		rm -rf "$U"
		return 0
	fi
	local obase="$S/host-upgrade-ours-base" pbase="$S/host-upgrade-peer-base"
	log "untimed: upgrade: ocitree install of docker://$reg/os:host (v1), stock sysroot with os/v1; the tag moves to v2"
	sysroot_rm "$obase"
	if ! "$OCITREE" install --tls-verify=false --sysroot "$obase" --karg root=LABEL=root --karg rw "docker://$reg/os:host" >&2 ||
		! etc_edits "$obase" ||
		! stock_sysroot "$pbase" "$S/peer-src" os/v1 ||
		! skopeo --policy "$WORK/etc/policy.json" copy --src-tls-verify=false --dest-tls-verify=false "docker://$reg/os:h2" "docker://$reg/os:host" >&2; then
		setup_failed upgrade "$label" "$target"
		sysroot_rm "$obase"
		sysroot_rm "$pbase"
		rm -rf "$U"
		return 0
	fi
	local check
	if check=$("$OCITREE" upgrade --tls-verify=false --sysroot "$obase" --check 2>&1); then
		NOTES+=("- upgrade: $how; \`ocitree upgrade --check\` before the runs: $(tr '\n' ' ' <<<"$check" | sed 's/  */ /g')")
	fi
	local peer="$S/host-upgrade-peer" ours="$S/host-upgrade-ours"
	bench_row upgrade "$label" \
		"$(sysroot_copy_code "$pbase" "$peer")" \
		"ostree pull-local --repo=$(q "$peer/ostree/repo") $qS/peer-src host/v2 && ostree admin deploy --sysroot=$(q "$peer") --os=default host/v2" \
		"$(sysroot_copy_code "$obase" "$ours")" \
		"$qO upgrade --tls-verify=false --sysroot $(q "$ours")" \
		- 150 1.5
	host_side_checks upgrade "$peer" "$ours"
	if [ -d "$ours/ostree/repo" ]; then
		if ostree fsck --repo="$ours/ostree/repo" >/dev/null 2>&1; then
			NOTES+=("- upgrade: \`ostree fsck\` of ocitree's sysroot repository after the last run: ok")
		else
			NOTES+=("- upgrade: \`ostree fsck\` of ocitree's sysroot repository after the last run: **FAILED**")
		fi
	fi
	for d in "$obase" "$pbase" "$peer" "$ours"; do sysroot_rm "$d"; done
	rm -rf "$U"
}
