package oci

import (
	"context"
	"errors"
	"fmt"
	"io"

	digest "github.com/opencontainers/go-digest"
)

// Errors a blob stream can end with; match them with errors.Is. The message also names
// the blob's digest.
var (
	// ErrDigestMismatch: the bytes do not hash to the expected digest.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrSizeMismatch: more or fewer bytes than the descriptor's size.
	ErrSizeMismatch = errors.New("size mismatch")
)

// emptyDigest is the sha256 of zero bytes.
const emptyDigest = digest.Digest("sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")

// knownSize returns the expected size from a descriptor: sizes > 0 are taken as given;
// 0 counts only for the empty blob (a zero Size in a hand-made descriptor usually
// means "not set", and the digest check catches every wrong size anyway); < 0 is unknown.
func knownSize(d digest.Digest, size int64) int64 {
	if size > 0 || (size == 0 && d == emptyDigest) {
		return size
	}
	return -1
}

// verifier passes bytes through, counting and hashing them. At EOF it checks the size
// and, when want is set, the digest; any mismatch is returned in place of io.EOF (and
// on every later Read). It never returns more than size bytes when size is known, and
// stops when ctx is cancelled.
type verifier struct {
	ctx      context.Context
	r        io.Reader
	want     digest.Digest // "" = compute only
	size     int64         // -1 = unknown
	n        int64
	digester digest.Digester
	err      error // sticky
}

func newVerifier(ctx context.Context, r io.Reader, want digest.Digest, size int64) (*verifier, error) {
	algo := digest.Canonical
	if want != "" {
		if err := want.Validate(); err != nil {
			return nil, fmt.Errorf("blob digest %q: %w", want, err)
		}
		algo = want.Algorithm()
	}
	return &verifier{ctx: ctx, r: r, want: want, size: size, digester: algo.Digester()}, nil
}

func (v *verifier) name() string {
	if v.want != "" {
		return "blob " + v.want.String()
	}
	return "blob"
}

func (v *verifier) Read(p []byte) (int, error) {
	if v.err != nil {
		return 0, v.err
	}
	if err := v.ctx.Err(); err != nil {
		v.err = err
		return 0, err
	}
	if v.size >= 0 && int64(len(p)) > v.size-v.n+1 {
		p = p[:v.size-v.n+1] // one byte more than allowed reveals an oversized blob
	}
	n, err := v.r.Read(p)
	if v.size >= 0 && v.n+int64(n) > v.size {
		n = int(v.size - v.n)
		err = fmt.Errorf("%s: %w: more than the expected %d bytes", v.name(), ErrSizeMismatch, v.size)
	}
	v.n += int64(n)
	v.digester.Hash().Write(p[:n])
	switch {
	case err == io.EOF:
		err = v.check()
	case err != nil && !errors.Is(err, ErrSizeMismatch):
		err = fmt.Errorf("reading %s: %w", v.name(), err)
	}
	v.err = err
	return n, err
}

// check runs at EOF: nil means the stream was complete and correct.
func (v *verifier) check() error {
	if v.size >= 0 && v.n != v.size {
		return fmt.Errorf("%s: %w: got %d bytes, expected %d", v.name(), ErrSizeMismatch, v.n, v.size)
	}
	if v.want != "" {
		if got := v.digester.Digest(); got != v.want {
			return fmt.Errorf("%s: %w: content hashes to %s", v.name(), ErrDigestMismatch, got)
		}
	}
	return io.EOF
}

// done reports whether the stream was read to a correct EOF.
func (v *verifier) done() bool { return v.err == io.EOF }

// verifyingReadCloser closes the underlying stream too.
type verifyingReadCloser struct {
	*verifier
	c io.Closer
}

func (v verifyingReadCloser) Close() error { return v.c.Close() }
