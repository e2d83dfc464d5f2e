// Package blob compresses and decompresses layer blobs and fetches them
// verified. Compressors are pinned so that the same tar always gives the same
// blob (gzip, zstd, zstd:chunked); [Fetch] streams a blob through its
// decompressor into a consumer while checking the blob digest, the diff_id
// and the size limits against decompression bombs, and reports progress.
package blob
