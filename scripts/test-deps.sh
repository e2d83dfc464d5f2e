#!/usr/bin/env bash
# Installs the real tools the tests run against, when they are missing:
# ostree (the peer for every store test), python3 (serves a repo over HTTP
# for `ostree pull`), attr (getfattr/setfattr, handy when a test fails),
# skopeo and umoci (they must accept the images encapsulate writes),
# docker-registry (a real registry for `image pull`), gpg (signs commits
# for the ostree-remote-image tests, as `ostree gpg-sign` needs it),
# buildah (builds derived images from Containerfiles, as users do) and
# busybox-static (the real shell of fixtures.BusyboxOS),
# systemd (systemd-tmpfiles applies the lines rootfs prepare writes),
# and for the QEMU boot test (integration/boot): qemu-system-x86, e2fsprogs
# (mkfs.ext4 -d, debugfs, e2fsck) and debootstrap (fixtures/debian/bootable.sh).
set -euo pipefail
need=()
command -v ostree >/dev/null 2>&1 || need+=(ostree)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v getfattr >/dev/null 2>&1 || need+=(attr)
command -v rpmbuild >/dev/null 2>&1 || need+=(rpm)
command -v sqlite3 >/dev/null 2>&1 || need+=(sqlite3)
command -v skopeo >/dev/null 2>&1 || need+=(skopeo)
command -v umoci >/dev/null 2>&1 || need+=(umoci)
command -v docker-registry >/dev/null 2>&1 || need+=(docker-registry)
command -v gpg >/dev/null 2>&1 || need+=(gpg gpg-agent)
command -v systemd-tmpfiles >/dev/null 2>&1 || need+=(systemd)
command -v buildah >/dev/null 2>&1 || need+=(buildah)
[ -x /bin/busybox ] || need+=(busybox-static)
command -v qemu-system-x86_64 >/dev/null 2>&1 || need+=(qemu-system-x86)
have_sbin() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ]; }
{ have_sbin mkfs.ext4 && have_sbin debugfs && have_sbin e2fsck; } || need+=(e2fsprogs)
have_sbin debootstrap || need+=(debootstrap)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "test-deps: missing ${need[*]}; run as root or install them with apt-get" >&2
	exit 1
fi
echo "test-deps: installing ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
