package blob

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestLayerLimitReader reads tars of every entry kind through limitLayer with the
// limit at exactly the tar's size (must pass, read by archive/tar) and one byte less
// (must fail).
func TestLayerLimitReader(t *testing.T) {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	long := strings.Repeat("d/", 80) + "file"
	ents := []*tar.Header{
		{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "usr/a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1000},
		{Name: "usr/link", Typeflag: tar.TypeLink, Linkname: "usr/a"},
		{Name: "usr/sym", Typeflag: tar.TypeSymlink, Linkname: strings.Repeat("t", 200)},
		{Name: long, Typeflag: tar.TypeReg, Mode: 0o644, Size: 5000, Format: tar.FormatPAX, PAXRecords: map[string]string{"user.x": strings.Repeat("v", 3000)}},
		{Name: long + "2", Typeflag: tar.TypeReg, Mode: 0o644, Size: 10, Format: tar.FormatGNU},
		{Name: "usr/fifo", Typeflag: tar.TypeFifo},
		{Name: "usr/b", Typeflag: tar.TypeReg, Mode: 0o644, Size: 3},
	}
	for _, h := range ents {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		tw.Write(bytes.Repeat([]byte{'x'}, int(h.Size)))
	}
	tw.Close()
	plain := tb.Bytes()
	desc := v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: digest.FromBytes(plain), Size: int64(len(plain))}

	readAll := func(limit int64, data []byte, chunk int) error {
		l := Limits{MaxLayerUncompressed: limit, MaxCompressionRatio: 1000, RatioFloor: 1 << 30}
		tr := tar.NewReader(limitLayer(&chunkReader{data: data, chunk: chunk}, desc, l))
		for {
			_, err := tr.Next()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
			if _, err := io.Copy(io.Discard, tr); err != nil {
				return err
			}
		}
	}
	for _, chunk := range []int{1, 7, 512, 4096, 1 << 20} {
		if err := readAll(int64(len(plain)), plain, chunk); err != nil {
			t.Fatalf("chunk %d: at the limit: %v", chunk, err)
		}
		// archive/tar stops after the two zero blocks: the stream past them is
		// not read, so cut the limit into the data.
		if err := readAll(int64(len(plain))-2048, plain, chunk); !errors.Is(err, ErrLayerTooLarge) {
			t.Fatalf("chunk %d: over the limit: %v", chunk, err)
		}
	}

	// A PAX size far beyond the limit is refused at its header, before any data.
	var pb bytes.Buffer
	tw = tar.NewWriter(&pb)
	tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 9 << 33, Format: tar.FormatPAX})
	hdrOnly := append([]byte(nil), pb.Bytes()...)
	for _, chunk := range []int{1, 100, 4096} {
		err := readAll(1<<30, hdrOnly, chunk)
		if !errors.Is(err, ErrLayerTooLarge) || !strings.Contains(err.Error(), `tar entry "big" declaring 77309411328 bytes`) {
			t.Fatalf("chunk %d: PAX size: %v", chunk, err)
		}
	}
	// A base-256 size too.
	pb.Reset()
	tw = tar.NewWriter(&pb)
	tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 9 << 33, Format: tar.FormatGNU})
	if err := readAll(1<<30, pb.Bytes(), 512); !errors.Is(err, ErrLayerTooLarge) || !strings.Contains(err.Error(), "declaring 77309411328") {
		t.Fatalf("GNU size: %v", err)
	}
}

// chunkReader returns data chunk bytes at a time.
type chunkReader struct {
	data  []byte
	chunk int
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.chunk)], c.data)
	c.data = c.data[n:]
	return n, nil
}
