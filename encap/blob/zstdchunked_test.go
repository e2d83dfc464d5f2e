package blob

import (
	"archive/tar"
	"bytes"
	"testing"
	"time"
)

// TestZstdChunkedZone: the same tar gives the same zstd:chunked blob whatever
// the process's time zone was (the table of contents holds mtimes in
// time.Local, which the compressor makes UTC).
func TestZstdChunkedZone(t *testing.T) {
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "usr/a", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1, ModTime: time.Unix(0, 0)})
	tw.Write([]byte("a"))
	tw.Close()
	compress := func() []byte {
		var out bytes.Buffer
		cw, err := NewCompressor(&out, ZstdChunked)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cw.Write(tb.Bytes()); err != nil {
			t.Fatal(err)
		}
		if err := cw.Close(); err != nil {
			t.Fatal(err)
		}
		return out.Bytes()
	}
	old := time.Local
	t.Cleanup(func() { time.Local = old })
	time.Local = time.FixedZone("UTC+5", 5*3600)
	a := compress()
	time.Local = time.UTC
	b := compress()
	if !bytes.Equal(a, b) {
		t.Error("zstd:chunked blob depends on the time zone")
	}
}
