package blob

import (
	"bytes"
	"compress/gzip"
	"io"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// gz compresses b as one gzip member.
func gz(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestDecompressGzip pins what the layer inflater accepts: whole members,
// concatenated members (gzip's multistream, as compress/gzip and
// containers/image read them), and nothing with a bad CRC, a bad length, a
// missing end or junk after the last member. Each payload is larger than
// the inflater's whole read-ahead (gzipBlocks blocks of gzipBlockSize), so
// the errors cross it.
func TestDecompressGzip(t *testing.T) {
	payload := bytes.Repeat([]byte("ocitree layer bytes\n"), 300_000) // 6 MB
	if len(payload) <= gzipBlocks*gzipBlockSize {
		t.Fatalf("payload of %d bytes fits in the read-ahead of %d bytes", len(payload), gzipBlocks*gzipBlockSize)
	}
	one := gz(t, payload)
	crcBad := bytes.Clone(one)
	crcBad[len(crcBad)-8] ^= 0xff
	lenBad := bytes.Clone(one)
	lenBad[len(lenBad)-1] ^= 0xff
	mid := bytes.Clone(one)
	mid[len(mid)/2] ^= 0xff
	for _, tc := range []struct {
		name string
		blob []byte
		want []byte // nil: an error is expected
	}{
		{"one member", one, payload},
		{"two members", append(bytes.Clone(one), gz(t, []byte("tail"))...), append(bytes.Clone(payload), "tail"...)},
		{"bad crc", crcBad, nil},
		{"bad length", lenBad, nil},
		{"corrupt deflate data", mid, nil},
		{"truncated", one[:len(one)-20], nil},
		{"junk after the member", append(bytes.Clone(one), []byte("not gzip at all")...), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := Decompress(bytes.NewReader(tc.blob), v1.MediaTypeImageLayerGzip)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			got, err := io.ReadAll(r)
			if tc.want == nil {
				if err == nil {
					t.Fatalf("read %d bytes without an error", len(got))
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("got %d bytes, want %d", len(got), len(tc.want))
			}
		})
	}
}
