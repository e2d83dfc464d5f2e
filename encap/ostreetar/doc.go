// Package ostreetar writes and reads the tar stream of an ostree container
// image's layers, the "ostree-container tar format v1"
// (chunked v1 image layout): every layer carries a skeleton of a
// bare-split-xattrs repository under sysroot/ostree/repo/ holding the
// objects, plus hardlinks from the commit's checkout paths (/usr/etc shown as
// /etc) to those objects, so that both an OSTree importer and a plain
// container runtime can use it.
//
//   - The commit ("ostree") layer, [WriteCommitLayer]: the commit object, its
//     detached metadata, every dirtree and dirmeta object, the directory
//     entries of the tree, and the content objects not placed in any
//     component layer.
//   - Component layers, [WriteChunkLayer]: a group of content objects.
//
// [ImportCommitLayer] and [ImportChunkLayer] read such layers (as written by
// this package or by ostree-ext, in either of its xattrs forms) into an
// [ostree.Txn], verifying every object's checksum, and
// [VerifyCommitComplete] checks that a commit is whole before the caller
// points a ref at it.
//
// Writers stream: file contents go from the repository to the tar writer
// without being held in memory, and the output is deterministic (the same
// commit and chunks give the same bytes).
package ostreetar
