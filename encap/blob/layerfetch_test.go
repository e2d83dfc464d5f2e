package blob

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/oci"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// blobReader serves one blob; the other oci.Reader methods are not used.
type blobReader struct {
	oci.Reader
	data []byte
}

func (b blobReader) Blob(context.Context, oci.Descriptor) (io.ReadCloser, error) {
	return io.NopCloser(bytes.NewReader(b.data)), nil
}

// TestFetchDiffIDAlgorithms: a diff_id in any algorithm go-digest knows is
// verified; a wrong one or one in an unknown algorithm is refused.
func TestFetchDiffIDAlgorithms(t *testing.T) {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
	tw.Write([]byte("a"))
	tw.Close()
	plain := tb.Bytes()
	var gz bytes.Buffer
	cw, err := NewCompressor(&gz, Gzip)
	if err != nil {
		t.Fatal(err)
	}
	cw.Write(plain)
	cw.Close()
	desc := oci.Descriptor{MediaType: v1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(gz.Bytes()), Size: int64(gz.Len())}
	r := blobReader{data: gz.Bytes()}
	fetch := func(diffID digest.Digest) error {
		_, err := Fetch(context.Background(), r, desc, diffID, FetchOptions{}, func(tr io.Reader) error {
			_, err := io.Copy(io.Discard, tr)
			return err
		})
		return err
	}
	for _, alg := range []digest.Algorithm{digest.SHA256, digest.SHA384, digest.SHA512} {
		if err := fetch(alg.FromBytes(plain)); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
		if err := fetch(alg.FromString("other")); err == nil || !strings.Contains(err.Error(), "diff_id mismatch") {
			t.Errorf("%s, wrong diff_id: %v", alg, err)
		}
	}
	if err := fetch("md5:0123456789abcdef0123456789abcdef"); err == nil {
		t.Error("md5 diff_id accepted")
	}
}
