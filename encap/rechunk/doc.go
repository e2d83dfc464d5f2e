// Package rechunk writes a tree as a plain, package-aware OCI image, the
// format chunkah emits (spec plain-images §3, §5.3): no ostree layer and no
// ostree objects, every layer a self-contained tar of root-filesystem paths
// (explicit parent directories, mtimes clamped, no whiteouts), annotated
// org.chunkah.component and org.chunkah.stability.
//
// The components come from the same attribution as encapsulate's
// (encap/pkgdb: dpkg, rpm, the kernel, the package database, the rest),
// renamed the way chunkah names them (deb/<source package>, rpm/<source
// rpm>, chunkah/unclaimed) and refined by user.component xattrs and
// big unclaimed files; the packing is encap/pack's, so layers stay stable
// against the previous build read from its annotations.
package rechunk
