// Package oci parses image references (the ostree-ext OstreeImageReference grammar and
// the plain containers/image transports) and reads and writes OCI/Docker images through
// containers/image: registries, oci: layouts, oci-archive: files and the other
// transports, with registries.conf, auth.json and containers-policy.json applied.
//
// It knows nothing of OSTree: a Writer takes blobs and manifests as bytes, a Reader
// hands them back, verified against their digests while streaming. Blobs are never
// recompressed, so digests are kept. Blob-info caches are in memory only (the
// persistent cache of containers/image needs cgo).
package oci
