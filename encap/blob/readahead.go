package blob

import (
	"errors"
	"io"
)

// readAhead reads a blob on a goroutine of its own, up to a few chunks
// ahead of its consumer. A decompressor inflates on one core; reading the
// blob and hashing it for its digest (the oci.Reader verifies as it reads)
// then happen on the other instead of in between.
type readAhead struct {
	full chan chunk
	free chan []byte
	stop chan struct{}
	cur  chunk
	off  int
}

// chunk is one read of the source: its bytes, then the error that ended it.
type chunk struct {
	b   []byte
	err error
}

// newReadAhead starts reading r, n chunks of size bytes ahead.
func newReadAhead(r io.Reader, size, n int) *readAhead {
	ra := &readAhead{full: make(chan chunk, n), free: make(chan []byte, n), stop: make(chan struct{})}
	for range n {
		ra.free <- make([]byte, size)
	}
	go ra.fill(r)
	return ra
}

// fill reads r into free buffers until r ends or fails, or Close.
func (ra *readAhead) fill(r io.Reader) {
	for {
		var buf []byte
		select {
		case buf = <-ra.free:
		case <-ra.stop:
			return
		}
		n, err := io.ReadFull(r, buf)
		if errors.Is(err, io.ErrUnexpectedEOF) {
			err = io.EOF
		}
		ra.full <- chunk{buf[:n], err}
		if err != nil {
			return
		}
	}
}

// Read returns bytes in the order the source gave them, then its error.
func (ra *readAhead) Read(p []byte) (int, error) {
	for ra.off == len(ra.cur.b) {
		if ra.cur.err != nil {
			return 0, ra.cur.err
		}
		if ra.cur.b != nil {
			ra.free <- ra.cur.b[:cap(ra.cur.b)]
		}
		ra.cur, ra.off = <-ra.full, 0
	}
	n := copy(p, ra.cur.b[ra.off:])
	ra.off += n
	return n, nil
}

// Close stops the reading goroutine after its current read; the caller
// closes the source, which ends a read that waits for data.
func (ra *readAhead) Close() {
	select {
	case <-ra.stop:
	default:
		close(ra.stop)
	}
}
