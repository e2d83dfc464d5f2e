// Package boot writes and reads the boot side of an OSTree sysroot the way
// libostree 2022.7 does: kernel discovery and the boot checksum of a
// deployment tree, the kernel directories under boot/ostree/, BLS entries
// under boot/loader.N/entries, the ostree/boot.N.M bootlink farms, and the
// atomic boot/loader symlink swap that commits a new deployment list. It
// also parses and serialises kernel arguments and reads bootc's
// usr/lib/bootc/kargs.d/*.toml. It knows nothing of images or /etc.
package boot
