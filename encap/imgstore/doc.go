// Package imgstore is the image store inside an ostree repository, as
// ostree-ext keeps it: [Store.Prepare] fetches an image's manifest and
// config and says which layers are stored, [Store.Import] imports the rest
// (ostree layers into objects, derived layers applied onto the merged tree,
// a merge commit under the image's ref) and [Pull] does both; [Push] writes a
// stored image back byte for byte from its tar-split records; [List],
// [Image], [History], [Remove], [Prune] and [GC] manage what is stored.
// [RemoteVerifier] checks an ostree-remote-* pull against the OSTree
// remote's keys.
package imgstore
