package blob

import (
	"io"
	"maps"
	"sync"
	"time"

	"go.podman.io/storage/pkg/chunked/compressor"
)

// ZstdChunked writes every layer as zstd:chunked (containers/storage): a
// zstd stream with one frame per file (and per chunk of large files),
// followed by skippable frames holding a table of contents and the
// tar-split data. Any zstd decoder yields the plain tar (same diff_id);
// aware clients pull only missing files. The layer media type is
// application/vnd.oci.image.layer.v1.tar+zstd; the descriptor carries the
// io.github.containers.zstd-chunked.* annotations.
//
// The table of contents records each tar entry's mtime as the Go archive/tar
// reader returns it, in time.Local: its JSON (and so the blob digest) would
// depend on the time zone of the process. So the first zstd:chunked
// compressor sets time.Local to UTC, for the whole process.
const ZstdChunked Compression = "zstd:chunked"

// zstdChunkedLevel is the zstd level of the zstd:chunked frames (the library
// default, 10, is several times slower).
const zstdChunkedLevel = 3

// zstdChunkedWriter compresses a tar as zstd:chunked; after Close,
// Annotations returns the layer descriptor annotations.
type zstdChunkedWriter struct {
	io.WriteCloser
	annot map[string]string
}

// utcOnce makes time.Local UTC once, before the first zstd:chunked stream.
var utcOnce sync.Once

// NewZstdChunkedCompressor returns a zstd:chunked compressor; after Close,
// its Annotations method returns the layer descriptor annotations.
func NewZstdChunkedCompressor(w io.Writer) (io.WriteCloser, error) {
	utcOnce.Do(func() { time.Local = time.UTC })
	level := zstdChunkedLevel
	zw := &zstdChunkedWriter{annot: map[string]string{}}
	var err error
	zw.WriteCloser, err = compressor.ZstdCompressor(w, zw.annot, &level)
	if err != nil {
		return nil, err
	}
	return zw, nil
}

// Annotations returns a copy of the annotations the compressor filled in
// (complete only after Close).
func (z *zstdChunkedWriter) Annotations() map[string]string { return maps.Clone(z.annot) }

// LayerAnnotations returns the descriptor annotations a compressor produced,
// if any.
func LayerAnnotations(cw io.WriteCloser) map[string]string {
	if a, ok := cw.(interface{ Annotations() map[string]string }); ok {
		return a.Annotations()
	}
	return nil
}

// MergeAnnotations adds extra to a (allocating a when nil) and returns it.
func MergeAnnotations(a, extra map[string]string) map[string]string {
	if len(extra) == 0 {
		return a
	}
	if a == nil {
		a = make(map[string]string, len(extra))
	}
	maps.Copy(a, extra)
	return a
}
