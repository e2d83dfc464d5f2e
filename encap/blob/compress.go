package blob

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strings"

	"github.com/klauspost/compress/zstd"
	"github.com/klauspost/pgzip"
	"github.com/ocitree/ocitree/oci"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Layer compression: the pinned compressors a build writes with, and the
// decompressors a pull reads any layer media type with.

// Compression names a layer compression.
type Compression string

// Supported layer compressions.
const (
	Gzip Compression = "gzip"
	Zstd Compression = "zstd"
)

// MediaType is the OCI layer media type of a compression.
func MediaType(c Compression) (string, error) {
	switch c {
	case Gzip:
		return v1.MediaTypeImageLayerGzip, nil
	case Zstd, ZstdChunked:
		return v1.MediaTypeImageLayerZstd, nil
	}
	return "", fmt.Errorf("compression %q is not supported (want gzip, zstd or zstd:chunked)", c)
}

// WriteLayer compresses one tar into a temp file, hashing the uncompressed
// bytes for the diff_id and the compressed ones for the digest, then hands
// the file to w. Compressing outside PutBlob lets layers compress in
// parallel even where the destination takes one blob at a time (oci:).
func WriteLayer(ctx context.Context, w oci.Writer, write func(io.Writer) error, comp Compression, mediaType string) (oci.Descriptor, digest.Digest, error) {
	f, err := os.CreateTemp(scratchDir(), "ocitree-layer-*")
	if err != nil {
		return oci.Descriptor{}, "", fmt.Errorf("creating a scratch file for the layer: %w", err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	diff, blob := sha256.New(), sha256.New()
	counter := &countingWriter{w: io.MultiWriter(f, blob)}
	cw, err := NewCompressor(counter, comp)
	if err != nil {
		return oci.Descriptor{}, "", err
	}
	bw := bufio.NewWriterSize(io.MultiWriter(cw, diff), 256<<10)
	err = write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := cw.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		return oci.Descriptor{}, "", err
	}
	desc := oci.Descriptor{MediaType: mediaType, Digest: sha256Digest(blob), Size: counter.n}
	got, err := w.PutBlob(ctx, bufio.NewReaderSize(f, 1<<20), desc)
	if err != nil {
		return oci.Descriptor{}, "", err
	}
	return oci.Descriptor{MediaType: mediaType, Digest: got.Digest, Size: got.Size, Annotations: LayerAnnotations(cw)}, sha256Digest(diff), nil
}

func sha256Digest(h hash.Hash) digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, hex.EncodeToString(h.Sum(nil)))
}

// scratchDir is where compressed layers wait for the destination: $TMPDIR
// when set, else /var/tmp (disk-backed, unlike a tmpfs /tmp), as ostree-ext.
func scratchDir() string {
	if d := os.Getenv("TMPDIR"); d != "" {
		return d
	}
	return "/var/tmp"
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// NewCompressor returns a pinned, deterministic compressor: the same input
// gives the same bytes with the same library version on any machine.
func NewCompressor(w io.Writer, c Compression) (io.WriteCloser, error) {
	switch c {
	case Gzip:
		// Header without name or mtime; level 6, as `gzip -6` and ostree-ext.
		return gzip.NewWriterLevel(w, 6)
	case Zstd:
		return zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	case ZstdChunked:
		return NewZstdChunkedCompressor(w)
	}
	return nil, fmt.Errorf("compression %q is not supported", c)
}

// MaxZstdWindow is the largest zstd window a layer may declare: libzstd's
// default limit (ZSTD_WINDOWLOG_LIMIT_DEFAULT, 2²⁷), which zstd --long and
// --ultra -22 stay within.
const MaxZstdWindow = 1 << 27

// zstdReader names the window limit when a frame is over it.
type zstdReader struct{ io.ReadCloser }

func (z zstdReader) Read(p []byte) (int, error) {
	n, err := z.ReadCloser.Read(p)
	if errors.Is(err, zstd.ErrWindowSizeExceeded) {
		err = fmt.Errorf("zstd frame declares a window over the limit of %d bytes: %w", MaxZstdWindow, err)
	}
	return n, err
}

// gzipBlockSize and gzipBlocks size pgzip's inflate-ahead buffer.
const (
	gzipBlockSize = 512 << 10
	gzipBlocks    = 8
)

// Decompress returns the uncompressed stream of a layer blob of mediaType
// (gzip, zstd or plain tar, OCI or Docker).
func Decompress(r io.Reader, mediaType string) (io.ReadCloser, error) {
	// Large reads through the digest verifier and hashers below; the
	// decompressors use a ByteReader as it is.
	r = bufio.NewReaderSize(r, 1<<20)
	switch {
	case strings.HasSuffix(mediaType, "+gzip"), strings.HasSuffix(mediaType, ".tar.gzip"), mediaType == "application/vnd.docker.image.rootfs.diff.tar.gzip":
		// pgzip inflates in a goroutine of its own, up to eight blocks ahead
		// (and checks the CRC beside it), so inflating overlaps the hashing,
		// parsing and writing of what was already inflated. Blocks of 512 KiB
		// rather than 1 MiB: the same depth in blocks with 4 MiB less memory
		// to fault in, which is dear on small VMs (the builder row's import
		// took ~3 % less wall time, three A/B series of 8-10 runs each;
		// 256 KiB blocks or only four blocks were slower).
		zr, err := pgzip.NewReaderN(r, gzipBlockSize, gzipBlocks)
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, nil
	case strings.HasSuffix(mediaType, "+zstd"):
		// The frame header's window size is a length field: the decoder
		// keeps that much history, so it is capped as libzstd caps it by
		// default (ostree-ext decodes with libzstd).
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxWindow(MaxZstdWindow))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zstdReader{zr.IOReadCloser()}, nil
	case mediaType == v1.MediaTypeImageLayer, mediaType == "application/vnd.docker.image.rootfs.diff.tar":
		return io.NopCloser(r), nil
	}
	return nil, fmt.Errorf("unsupported layer media type %q", mediaType)
}
