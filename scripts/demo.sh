#!/usr/bin/env bash
# `make demo`: the main job end to end on the bundled fixture OS, in a
# throwaway directory: commit, list, fsck, check out, encapsulate into an
# oci: layout, unencapsulate into a second store, derive an image from it
# (a Containerfile-like RUN layer), push both images to a local
# docker-registry when one is installed, pull them into a third store with
# `ocitree image pull` and check the derived one out (and let the real
# ostree check the stores when it is installed), then install, switch,
# upgrade --check and roll back a throwaway sysroot directory.
# DEMO_KEEP=1 keeps the directory; DEMO_NO_REGISTRY=1 pulls from the oci:
# layout even when docker-registry is installed.
set -euo pipefail
bin=$(readlink -f "${1:-bin/ocitree}")
work=$(mktemp -d /var/tmp/ocitree-demo.XXXXXX)
reg_pid=
cleanup() {
	if [ -n "$reg_pid" ]; then
		kill "$reg_pid" 2>/dev/null || true
		wait "$reg_pid" 2>/dev/null || true
	fi
	# Deployment roots carry the immutable bit (as libostree's do).
	[ "${DEMO_KEEP:-}" = 1 ] || { chattr -i "$work"/sysroot/ostree/deploy/*/deploy/* 2>/dev/null || true; }
	[ "${DEMO_KEEP:-}" = 1 ] || rm -rf "$work"
}
trap cleanup EXIT
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '$ %s\n' "$*" >&2; "$@"; }

# registry_ready PORT: a docker-registry answers GET /v2/ on 127.0.0.1:PORT
# (bash's /dev/tcp: no curl needed).
registry_ready() {
	local resp
	resp=$({ exec 3<>"/dev/tcp/127.0.0.1/$1" &&
		printf 'GET /v2/ HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n' >&3 &&
		timeout 2 cat <&3; } 2>/dev/null) || return 1
	[[ $resp == "HTTP/1."?" 200 "* && $resp == *"Docker-Distribution-Api-Version: registry/2.0"* ]]
}

# start_registry: runs docker-registry on a free 127.0.0.1 port with a
# throwaway config and storage under $work/registry; sets reg (HOST:PORT)
# and reg_pid (stopped by the EXIT trap).
start_registry() {
	local try port i
	mkdir -p "$work/registry/data"
	for try in 1 2 3 4 5; do
		port=$((20000 + RANDOM % 40000))
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			continue # in use
		fi
		cat >"$work/registry/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $work/registry/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: ocitree-demo
EOF
		docker-registry serve "$work/registry/config.yml" >"$work/registry/log" 2>&1 &
		reg_pid=$!
		for i in {1..100}; do
			if registry_ready "$port"; then
				reg=127.0.0.1:$port
				return 0
			fi
			kill -0 "$reg_pid" 2>/dev/null || break
			sleep 0.1
		done
		kill "$reg_pid" 2>/dev/null || true
		wait "$reg_pid" 2>/dev/null || true
		reg_pid=
	done
	echo "docker-registry did not start; its log:" >&2
	tail -n 5 "$work/registry/log" >&2 || true
	return 1
}

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
diff -r --no-dereference "$work/rootfs" "$work/checkout" || { echo "checkout differs from the source" >&2; exit 1; }
echo "checkout matches the source tree"

step "encapsulate the commit as a chunked OCI image (oci: layout)"
digest=$(run "$bin" encapsulate --repo "$work/repo" demo/os "oci:$work/image:1.0")
echo "manifest $digest"
# The layer listing needs python3 (not in a minimal Debian); the rest does not.
command -v python3 >/dev/null 2>&1 && python3 - "$work/image" <<'PY'
import json, sys, os
d = sys.argv[1]
idx = json.load(open(os.path.join(d, "index.json")))
m = json.load(open(os.path.join(d, "blobs", *idx["manifests"][0]["digest"].split(":"))))
for i, l in enumerate(m["layers"]):
    comps = l.get("annotations", {}).get("ostree.components", "(ostree commit layer)" if i == 0 else "")
    print(f"  layer {i:2d} {l['size']:>9} bytes  {comps[:70]}")
PY
again=$("$bin" encapsulate --repo "$work/repo" --previous-build none demo/os "oci:$work/image2:1.0")
[ "$again" = "$digest" ] || { echo "a second build gave $again, not $digest" >&2; exit 1; }
echo "a second build gives the same digest: reproducible"

step "unencapsulate it into a second, archive-mode store"
run "$bin" repo init --repo "$work/repo2" --mode archive
back=$(run "$bin" unencapsulate --repo "$work/repo2" --write-ref demo/os "oci:$work/image:1.0")
[ "$back" = "$csum" ] || { echo "round trip gave commit $back, not $csum" >&2; exit 1; }
echo "same commit $back after the round trip"

step "derive an image: a RUN layer on top of 1.0 (fixtures.DerivedLayer)"
run go run ./fixtures/mkfixture derive "$work/image" 1.0 1.0-hello

src="oci:$work/image"
pull_flags=()
no_registry=
if [ "${DEMO_NO_REGISTRY:-}" = 1 ]; then
	no_registry="DEMO_NO_REGISTRY=1"
elif ! command -v docker-registry >/dev/null 2>&1; then
	no_registry="docker-registry is not installed"
elif ! start_registry; then
	no_registry="docker-registry did not start"
fi
if [ -z "$no_registry" ]; then
	step "push both tags to a local registry (docker-registry on $reg)"
	for tag in 1.0 1.0-hello; do
		run "$bin" image copy --tls-verify=false "oci:$work/image:$tag" "docker://$reg/demo/os:$tag"
	done
	src="docker://$reg/demo/os"
	pull_flags=(--tls-verify=false)
else
	step "no registry ($no_registry): pull from the oci: layout"
fi

step "pull 1.0, then 1.0-hello, into a fresh bare-user store"
run "$bin" repo init --repo "$work/store" --mode bare-user
for tag in 1.0 1.0-hello; do
	merge=$(run "$bin" image pull "${pull_flags[@]}" --progress=never --repo "$work/store" "$src:$tag" 2>"$work/pull.err") ||
		{ cat "$work/pull.err" >&2; exit 1; }
	cat "$work/pull.err"
	echo "merge commit $merge"
done
if ! grep -q '; layers needed: 1 (' "$work/pull.err"; then
	echo "the second pull should have downloaded only the derived layer" >&2
	exit 1
fi
echo "the second pull downloaded only the derived layer"
run "$bin" image list --repo "$work/store"
run "$bin" image history --repo "$work/store" "$src:1.0-hello" |
	awk 'NR <= 2 { print; next } / derived / { d = d $0 "\n"; next } { n++ } END { printf "...    (%d more component layers)\n%s", n, d }'

step "check out the derived image and look at what its layer did"
run "$bin" repo refs --repo "$work/store" | grep '^ostree/container/image/'
ref=$("$bin" repo refs --repo "$work/store" | grep '^ostree/container/image/.*-hello$')
run "$bin" repo checkout --repo "$work/store" --user-mode "$ref" "$work/hello"
echo "usr/etc/hello.conf (etc/hello.conf in the layer):"
sed 's/^/  /' "$work/hello/usr/etc/hello.conf"
if [ -e "$work/hello/usr/bin/su" ] || [ ! -e "$work/checkout/usr/bin/su" ]; then
	echo "usr/bin/su should be in 1.0 and whited out in 1.0-hello" >&2
	exit 1
fi
echo "usr/bin/su: in 1.0, removed by the layer's whiteout usr/bin/.wh.su"
echo "multi-user.target.wants (opaque in the layer): $(ls "$work/hello/usr/lib/systemd/system/multi-user.target.wants")"
echo "tmp (the layer's tmp/hello-install.log is dropped): $(ls -A "$work/hello/tmp" | wc -l) entries"

step "push the derived image from the store (no original blobs kept): same digests"
pushed=$(run "$bin" image push --require-identical --repo "$work/store" "$src:1.0-hello" "oci:$work/pushed:1.0-hello")
want=$("$bin" image list --repo "$work/store" --format json | grep -A1 '"image": ".*:1.0-hello"' |
	sed -n 's/.*"manifest_digest": "\(.*\)".*/\1/p')
echo "pushed manifest $pushed"
if [ "$pushed" != "$want" ]; then
	echo "the pushed manifest should be the pulled one ($want)" >&2
	exit 1
fi
echo "the same manifest digest as the image that was pulled"

if command -v ostree >/dev/null 2>&1; then
	step "the real ostree reads the same stores"
	run ostree fsck --repo="$work/repo"
	run ostree fsck --repo="$work/repo2"
	run ostree fsck --repo="$work/store"
	run ostree log --repo="$work/repo" demo/os
fi

# A Containerfile built by the real buildah, on an OS with a real shell
# (MiniOS's tools are stand-ins, so 1.0-hello above stays Go-generated).
if command -v buildah >/dev/null 2>&1 && [ -x /bin/busybox ]; then
	step "a Containerfile built by buildah on fixtures.BusyboxOS (scripts/demo.Containerfile)"
	go run ./fixtures/mkfixture busybox "$work/bbroot"
	run "$bin" repo commit --repo "$work/repo" --branch demo/busybox --subject "busybox OS 1.0" --bootable "$work/bbroot" >/dev/null
	# buildah names a local image after the layout's path: keep it lowercase.
	bb=/var/tmp/ocitree-demo-buildah-$$
	bbclean() { rm -rf "$bb"; cleanup; }
	trap bbclean EXIT
	mkdir -p "$bb"
	run "$bin" encapsulate --repo "$work/repo" demo/busybox "oci:$bb/image:1.0" >/dev/null
	bah=(buildah --root "$bb/storage" --runroot "$bb/run" --storage-driver vfs)
	sed -n '/^ARG/,$p' scripts/demo.Containerfile
	run "${bah[@]}" bud --quiet --isolation chroot --build-arg "BASE=oci:$bb/image:1.0" \
		-t localhost/demo-built -f scripts/demo.Containerfile scripts >/dev/null
	run "${bah[@]}" push --quiet localhost/demo-built "oci:$bb/image:1.0-built"
	merge=$(run "$bin" image pull --progress=never --repo "$work/store" "oci:$bb/image:1.0-built")
	echo "merge commit $merge"
	run "$bin" repo checkout --repo "$work/store" --user-mode "$merge" "$work/built"
	echo "usr/etc/hello.conf: $(cat "$work/built/usr/etc/hello.conf")"
	echo "usr/etc/motd (appended in place by the RUN): $(tail -n 1 "$work/built/usr/etc/motd")"
	echo "usr/etc/passwd: $(grep '^demo:' "$work/built/usr/etc/passwd")"
	[ "$(tail -n 1 "$work/built/usr/etc/motd")" = "built with buildah" ] ||
		{ echo "the in-place append to /etc/motd did not reach the store" >&2; exit 1; }
	[ ! -e "$work/built/sysroot/ostree" ] || { echo "sysroot/ostree reached the tree" >&2; exit 1; }
	if command -v ostree >/dev/null 2>&1; then run ostree fsck --repo="$work/store"; fi
else
	step "buildah or busybox-static not installed: no Containerfile build (1.0-hello above is Go-generated)"
fi

step "host: install 1.0 into a throwaway sysroot directory"
sysroot="$work/sysroot"
run "$bin" install --sysroot "$sysroot" --karg root=LABEL=root --karg rw "oci:$work/image:1.0"
run "$bin" status --sysroot "$sysroot"
echo "boot entry:"
sed 's/^/  /' "$sysroot"/boot/loader/entries/*.conf

step "host: a local edit in /etc, then switch to 1.0-hello"
dep=$(ls -d "$sysroot"/ostree/deploy/default/deploy/*.0)
echo "demo-host" >"$dep/etc/hostname"
run "$bin" config-diff --sysroot "$sysroot"
run "$bin" switch --sysroot "$sysroot" "oci:$work/image:1.0-hello"
run "$bin" status --sysroot "$sysroot"
new=$(ls -d "$sysroot"/ostree/deploy/default/deploy/*.0 | grep -v "^$dep\$" | head -1)
[ "$(cat "$new/etc/hostname")" = demo-host ] || { echo "the /etc edit was not carried to the new deployment" >&2; exit 1; }
echo "etc/hostname carried over: $(cat "$new/etc/hostname"); etc/hello.conf from the new image: $(cat "$new/etc/hello.conf" 2>/dev/null | head -1)"

step "host: upgrade --check (the tracked tag has not moved), rollback"
run "$bin" upgrade --check --sysroot "$sysroot"
run "$bin" rollback --sysroot "$sysroot"
run "$bin" status --sysroot "$sysroot" --format yaml | sed -n '/deployments:/,$p'

if command -v ostree >/dev/null 2>&1; then
	step "host: the real ostree reads the same sysroot"
	run ostree admin status --sysroot="$sysroot"
fi
step "done (work dir: $work${DEMO_KEEP:+, kept})"
