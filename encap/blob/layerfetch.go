package blob

import (
	"context"
	"crypto/sha256"
	_ "crypto/sha512" // sha384 and sha512 diff_ids
	"fmt"
	"hash"
	"io"

	"github.com/ocitree/ocitree/oci"
	"github.com/opencontainers/go-digest"
)

// PrefixLen is how much of a compressed blob's start is fingerprinted
// at import (Info.Prefix), so that a push can tell within that many
// bytes whether a compressor reproduces the blob.
const PrefixLen = 64 << 10

// FetchOptions control Fetch.
type FetchOptions struct {
	Progress Progress
	// Record, when set, wraps the uncompressed stream: the consumer reads
	// the Recording, which Fetch then finishes (or aborts when the consumer
	// failed). The image store records a layer's tar-split this way.
	Record func(io.Reader) Recording
	// Limits bound the uncompressed stream (DefaultLimits when nil).
	Limits *Limits
}

// A Recording is an uncompressed layer stream seen by a recorder.
type Recording interface {
	io.Reader
	// Finish reads the rest of the stream (the zero padding after the tar)
	// and completes the recording.
	Finish() error
	// Abort ends the recording after the consumer failed with err.
	Abort(err error)
}

// Info is what Fetch learnt about a blob besides its content.
type Info struct {
	// Prefix is "<n>:<sha256 hex>" of the blob's first n bytes, n =
	// min(size, PrefixLen).
	Prefix string
}

// Fetch streams one layer blob through decompression into
// consume, and checks the uncompressed bytes against diffID (the blob's
// digest is checked by r).
func Fetch(ctx context.Context, r oci.Reader, desc oci.Descriptor, diffID digest.Digest, opts FetchOptions, consume func(io.Reader) error) (*Info, error) {
	// Any algorithm go-digest knows (and this binary links) verifies; an
	// unknown one is refused before anything is read.
	if err := diffID.Validate(); err != nil {
		return nil, fmt.Errorf("layer diff_id %q: %w", diffID, err)
	}
	rc, err := r.Blob(ctx, desc)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	pf := &prefixHasher{r: rc, h: sha256.New(), left: PrefixLen}
	var blob io.Reader = pf
	if opts.Progress != nil {
		blob = &progressReader{r: blob, p: opts.Progress}
	}
	// The blob is read (and its digest hashed) up to 1 MiB ahead on a
	// goroutine of its own; the read-ahead is drained below.
	ra := newReadAhead(blob, 256<<10, 4)
	defer ra.Close()
	dr, err := Decompress(ra, desc.MediaType)
	if err != nil {
		return nil, err
	}
	defer dr.Close()
	dd := diffID.Algorithm().Digester()
	limits := DefaultLimits()
	if opts.Limits != nil {
		limits = *opts.Limits
	}
	var tar io.Reader = io.TeeReader(limitLayer(dr, desc, limits), dd.Hash())
	var rec Recording
	if opts.Record != nil {
		rec = opts.Record(tar)
		tar = rec
	}
	if err := consume(tar); err != nil {
		if rec != nil {
			rec.Abort(err)
		}
		return nil, err
	}
	// The tar may end before the stream does (zero padding): read the rest.
	if rec != nil {
		err = rec.Finish()
	} else {
		_, err = io.Copy(io.Discard, tar)
	}
	if err != nil {
		return nil, fmt.Errorf("reading layer: %w", err)
	}
	// Drain the blob so the reader verifies its digest.
	if _, err := io.Copy(io.Discard, ra); err != nil {
		return nil, err
	}
	if got := dd.Digest(); got != diffID {
		return nil, fmt.Errorf("diff_id mismatch: uncompressed layer is %s, config says %s", got, diffID)
	}
	if opts.Progress != nil {
		opts.Progress.LayerDone()
	}
	return &Info{Prefix: fmt.Sprintf("%d:%x", pf.n, pf.h.Sum(nil))}, nil
}

// prefixHasher hashes the first bytes read through it.
type prefixHasher struct {
	r    io.Reader
	h    hash.Hash
	left int
	n    int
}

func (p *prefixHasher) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if k := min(n, p.left); k > 0 {
		p.h.Write(b[:k])
		p.left -= k
		p.n += k
	}
	return n, err
}

// Progress receives a pull's progress. Its methods may be called from
// several goroutines at once and must not block for long.
type Progress interface {
	// Begin is called once before the first fetch with the number of
	// layers and compressed bytes that will be downloaded.
	Begin(layers int, bytes int64)
	// Fetched reports n more compressed bytes read from the source.
	Fetched(n int64)
	// LayerDone reports one more layer fetched, verified and imported.
	LayerDone()
}

// progressReader reports the bytes read through it.
type progressReader struct {
	r io.Reader
	p Progress
}

func (pr *progressReader) Read(b []byte) (int, error) {
	n, err := pr.r.Read(b)
	if n > 0 {
		pr.p.Fetched(int64(n))
	}
	return n, err
}
