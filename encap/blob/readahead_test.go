package blob

import (
	"bytes"
	"errors"
	"io"
	"testing"
	"testing/iotest"
)

// TestReadAhead: the bytes come out in order, whatever the chunk and read
// sizes, then the source's error (a digest mismatch at the end of a blob);
// Close ends the reading goroutine early.
func TestReadAhead(t *testing.T) {
	data := make([]byte, 100_000)
	for i := range data {
		data[i] = byte(i * 31 >> 3)
	}
	errBad := errors.New("digest mismatch")
	for _, tc := range []struct {
		name    string
		src     io.Reader
		size, n int
		wantErr error
	}{
		{"one byte reads", iotest.OneByteReader(bytes.NewReader(data)), 4096, 3, nil},
		{"chunk larger than the blob", bytes.NewReader(data), 1 << 20, 2, nil},
		{"error at the end", io.MultiReader(bytes.NewReader(data), iotest.ErrReader(errBad)), 7000, 4, errBad},
		{"data with the error", iotest.DataErrReader(bytes.NewReader(data)), 3000, 1, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ra := newReadAhead(tc.src, tc.size, tc.n)
			defer ra.Close()
			got, err := io.ReadAll(iotest.HalfReader(ra))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			}
			if !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, not the source's %d", len(got), len(data))
			}
			if n, err := ra.Read(make([]byte, 10)); n != 0 || err == nil {
				t.Errorf("read after the end: %d, %v", n, err)
			}
		})
	}
}
