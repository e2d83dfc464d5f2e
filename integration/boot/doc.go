// Package boot holds the QEMU boot test (boot_test.go): a real Debian 12
// (fixtures/debian/bootable.sh) built, shipped, installed and booted under
// QEMU through the stock initramfs and ostree-prepare-root, upgraded and
// rolled back from inside the guest. See docs/rootfs.md, "Boot proof".
package boot
