// Package deploy manages the deployments of an OSTree sysroot the way
// libostree 2022.7's `ostree admin` does, so that the stock tools read and
// keep working on what it writes: the sysroot layout (init-fs, os-init),
// reading the deployment list from the boot entries, deploying a commit
// (hardlink checkout, /etc from usr/etc and the /etc merge, /var, origin,
// immutable bit), writing a new deployment list (through package boot),
// retention, deployment refs and cleanup. Image pulls go through the image
// store (image.go, the only file that calls package encap).
package deploy
