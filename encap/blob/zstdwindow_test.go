package blob

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestDecompressZstdWindowLimit: a zstd frame whose header declares a window
// over MaxZstdWindow (the decoder would keep that much history: 512 MiB by
// the library's default) is refused with the limit named; one at the limit
// decodes (issue 11, class 3: any length field).
func TestDecompressZstdWindowLimit(t *testing.T) {
	data := bytes.Repeat([]byte("layer bytes "), 1<<16)
	for _, tc := range []struct {
		window  int
		wantErr bool
	}{
		{MaxZstdWindow, false},
		{2 * MaxZstdWindow, true},
	} {
		var blob bytes.Buffer
		zw, err := zstd.NewWriter(&blob, zstd.WithWindowSize(tc.window), zstd.WithEncoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(data) // streamed: no content size, so the header carries the window
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
		rc, err := Decompress(bytes.NewReader(blob.Bytes()), v1.MediaTypeImageLayerZstd)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if !tc.wantErr {
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("window %d: %d bytes, %v", tc.window, len(got), err)
			}
			continue
		}
		if !errors.Is(err, zstd.ErrWindowSizeExceeded) || !strings.Contains(err.Error(), "limit of 134217728 bytes") {
			t.Errorf("window %d: %v, want the window limit named", tc.window, err)
		}
	}
}
