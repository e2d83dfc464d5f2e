// Package encap encapsulates OSTree commits as container images the way
// ostree-ext ("ostree container encapsulate") does, and imports them back:
// [Encapsulate] writes a commit as a chunked v1 image (commit layer first,
// then the component layers, with ostree-ext's labels and history), and
// [Unencapsulate] imports one into a repository. [ParseImageLayout] reads
// what an image's manifest and config say about its layers.
//
// The leaves do the work: encap/ostreetar the layer tar stream, encap/pkgdb
// which package owns which file, encap/pack the packing of components into
// layers, encap/blob compression and verified fetch. The image store of a
// host (pull, push, list, GC) is encap/imgstore, built on this package.
package encap
