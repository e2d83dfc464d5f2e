package imgstore

// Reproducing a layer blob: the record rebuilds the exact tar, but the blob
// digest also depends on the compressor, its version and settings, none of
// which an image records. Push therefore tries the compressors that
// the usual image builders use, cheapest check first: a candidate must
// reproduce the blob's first bytes (fingerprinted at pull, blobInfo.Prefix)
// before it compresses the whole layer, and the whole blob is checked
// against its digest while it is uploaded.

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"

	kgzip "github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// layerCompressor is one way to compress a layer.
type layerCompressor struct {
	name string
	new  func(w io.Writer) (io.WriteCloser, error)
}

type nopWriteCloser struct{ io.Writer }

func (nopWriteCloser) Close() error { return nil }

// compressorCandidates lists, most likely first, the compressors that may
// have produced a blob of mediaType: ocitree's own settings, then
// containers/image (pgzip; zstd level 3), umoci (pgzip, 256 KiB
// blocks), Go's compress/gzip (docker,
// BuildKit, go-containerregistry, umoci) and klauspost's gzip at every
// level, then the other zstd speeds.
func compressorCandidates(mediaType string, annotations map[string]string) []layerCompressor {
	switch {
	case strings.HasSuffix(mediaType, "+gzip"), strings.HasSuffix(mediaType, ".tar.gzip"):
		c := []layerCompressor{{"ocitree gzip", func(w io.Writer) (io.WriteCloser, error) { return blob.NewCompressor(w, blob.Gzip) }},
			{"pgzip default", func(w io.Writer) (io.WriteCloser, error) { return pgzip.NewWriterLevel(w, pgzip.DefaultCompression) }},
			{"pgzip 256 KiB blocks (umoci)", newUmociGzip}}
		for _, l := range []int{6, 1, 9, 2, 3, 4, 5, 7, 8} {
			c = append(c, layerCompressor{fmt.Sprintf("compress/gzip level %d", l), func(w io.Writer) (io.WriteCloser, error) { return gzip.NewWriterLevel(w, l) }})
		}
		for _, l := range []int{1, 9, 2, 3, 4, 5, 7, 8} {
			c = append(c, layerCompressor{fmt.Sprintf("klauspost gzip level %d", l), func(w io.Writer) (io.WriteCloser, error) { return kgzip.NewWriterLevel(w, l) }})
		}
		for _, l := range []int{1, 9} {
			c = append(c, layerCompressor{fmt.Sprintf("pgzip level %d", l), func(w io.Writer) (io.WriteCloser, error) { return pgzip.NewWriterLevel(w, l) }})
		}
		return c
	case strings.HasSuffix(mediaType, "+zstd"):
		if _, chunked := annotations["io.github.containers.zstd-chunked.manifest-checksum"]; chunked {
			return []layerCompressor{{"ocitree zstd:chunked", blob.NewZstdChunkedCompressor}}
		}
		c := []layerCompressor{{"ocitree zstd", func(w io.Writer) (io.WriteCloser, error) { return blob.NewCompressor(w, blob.Zstd) }}}
		for _, l := range []zstd.EncoderLevel{zstd.SpeedDefault, zstd.SpeedFastest, zstd.SpeedBetterCompression, zstd.SpeedBestCompression} {
			c = append(c, layerCompressor{"zstd " + l.String(), func(w io.Writer) (io.WriteCloser, error) {
				return zstd.NewWriter(w, zstd.WithEncoderLevel(l))
			}})
		}
		return c
	case strings.HasSuffix(mediaType, ".tar"):
		return []layerCompressor{{"uncompressed", func(w io.Writer) (io.WriteCloser, error) { return nopWriteCloser{w}, nil }}}
	}
	return nil
}

// newUmociGzip is umoci's layer compressor: pgzip at the default level with
// 256 KiB blocks (the block size shapes the output; the block count does
// not).
func newUmociGzip(w io.Writer) (io.WriteCloser, error) {
	zw := pgzip.NewWriter(w)
	if err := zw.SetConcurrency(256<<10, 4); err != nil {
		return nil, err
	}
	return zw, nil
}

// errPrefixDone stops a candidate once it has produced the fingerprinted
// prefix.
var errPrefixDone = errors.New("prefix complete")

// prefixWriter hashes the first limit bytes written, then fails.
type prefixWriter struct {
	limit, n int64
	h        interface {
		io.Writer
		Sum([]byte) []byte
	}
}

func (p *prefixWriter) Write(b []byte) (int, error) {
	if k := min(int64(len(b)), p.limit-p.n); k > 0 {
		p.h.Write(b[:k])
		p.n += k
	}
	if p.n >= p.limit {
		return 0, errPrefixDone
	}
	return len(b), nil
}

// findCompressor returns the first candidate that reproduces the record's
// blob prefix, or false.
//
// A record without a fingerprint (a layer reused by diff_id) has each
// candidate compress the whole layer, stopped once it passes the blob's
// size, and compared with the blob digest.
func findCompressor(repo *ostree.Repo, rec *layerRecord, desc v1.Descriptor) (layerCompressor, bool, error) {
	n, want, ok := parsePrefix(rec.Prefix)
	if !ok || n <= 0 {
		if desc.Size <= 0 || desc.Digest.Algorithm() != digest.SHA256 {
			return layerCompressor{}, false, nil
		}
		n, want = desc.Size+1, desc.Digest.Encoded()
	}
	for _, c := range compressorCandidates(desc.MediaType, desc.Annotations) {
		pw := &prefixWriter{limit: n, h: sha256.New()}
		cw, err := c.new(pw)
		if err != nil {
			return layerCompressor{}, false, err
		}
		err = rec.assemble(repo, cw)
		if err == nil {
			err = cw.Close()
		}
		if err != nil && !errors.Is(err, errPrefixDone) {
			return layerCompressor{}, false, err
		}
		if (pw.n == n || pw.n == desc.Size && n == desc.Size+1) && hex.EncodeToString(pw.h.Sum(nil)) == want {
			return c, true, nil
		}
	}
	return layerCompressor{}, false, nil
}

// parsePrefix splits a blobInfo prefix "<n>:<hex>".
func parsePrefix(p string) (n int64, hexSum string, ok bool) {
	ns, h, ok := strings.Cut(p, ":")
	if !ok {
		return 0, "", false
	}
	var v int64
	if _, err := fmt.Sscanf(ns, "%d", &v); err != nil {
		return 0, "", false
	}
	return v, h, true
}
