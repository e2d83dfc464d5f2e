package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sync"

	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/blobinfocache/memory"
	"go.podman.io/image/v5/types"
)

// Writer stores one image: stream its blobs (layers, config), then its manifest, then
// Commit. Blobs are written as given (no recompression), so digests are kept.
type Writer interface {
	// PutBlob streams r to the destination and returns desc with Digest and Size filled
	// in. desc.Digest "" and desc.Size -1 (or 0) mean unknown: they are computed while
	// streaming. Known values are checked and a mismatch fails the call (errors.Is
	// ErrDigestMismatch / ErrSizeMismatch) without storing the blob. The blob is never
	// held in memory. When desc.Digest is known and a registry already has that blob,
	// r may be left unread. Safe for concurrent use.
	PutBlob(ctx context.Context, r io.Reader, desc Descriptor) (Descriptor, error)
	// PutManifest records a manifest of mediaType ("" = taken from the manifest). An
	// image manifest is uploaded by Commit; to store a multi-platform image, put each
	// image manifest and then the index or list that references them all, which
	// uploads them and makes the index the top level.
	PutManifest(ctx context.Context, manifest []byte, mediaType string) error
	// Commit writes the pending manifest and makes the image visible (tags it, writes
	// index.json, or writes the oci-archive file).
	Commit(ctx context.Context) error
	// Close releases resources; without Commit the image is not stored (blobs may remain).
	Close() error
}

type pendingManifest struct {
	bytes    []byte
	mimeType string
	digest   digest.Digest
}

type writer struct {
	ref   *Ref
	dest  types.ImageDestination
	cache types.BlobInfoCache

	blobMu sync.Mutex // serialises PutBlob when the destination needs it
	mu     sync.Mutex // manifests and commit
	// pending holds image manifests not uploaded yet; top is the uploaded top level.
	pending   []pendingManifest
	top       *pendingManifest
	committed bool
}

// NewWriter opens the destination r points to. Parent directories of oci:, oci-archive:,
// docker-archive: and dir: paths are created when missing. The signature source of r
// is ignored: writing never signs.
func NewWriter(ctx context.Context, r *Ref, opts ...Option) (Writer, error) {
	sys := systemContext(opts)
	if p, isPath := r.pathOf(); isPath {
		if err := os.MkdirAll(filepath.Dir(filepath.Clean(p)), 0o755); err != nil {
			return nil, fmt.Errorf("creating the parent of %s: %w", p, err)
		}
	}
	ir, err := r.ImageReference()
	if err != nil {
		return nil, err
	}
	dest, err := ir.NewImageDestination(ctx, sys)
	if err != nil {
		return nil, fmt.Errorf("opening %s for writing: %w", r.ImageString(), err)
	}
	return &writer{ref: r, dest: dest, cache: memory.New()}, nil
}

// isConfigMediaType reports whether a blob is an image config.
func isConfigMediaType(mt string) bool {
	return mt == imgspecv1.MediaTypeImageConfig || mt == manifest.DockerV2Schema2ConfigMediaType
}

func (w *writer) PutBlob(ctx context.Context, r io.Reader, desc Descriptor) (Descriptor, error) {
	if !w.dest.HasThreadSafePutBlob() {
		w.blobMu.Lock()
		defer w.blobMu.Unlock()
	}
	size := knownSize(desc.Digest, desc.Size)
	v, err := newVerifier(ctx, r, desc.Digest, size)
	if err != nil {
		return Descriptor{}, err
	}
	info := types.BlobInfo{Digest: desc.Digest, Size: size, MediaType: desc.MediaType, URLs: desc.URLs, Annotations: desc.Annotations}
	got, err := w.dest.PutBlob(ctx, v, info, w.cache, isConfigMediaType(desc.MediaType))
	if err == nil && v.err == nil && v.n > 0 {
		// The destination stopped reading at the declared size: make sure nothing
		// follows and the digest matches.
		var b [1]byte
		v.Read(b[:]) //nolint:errcheck // the result is in v.err
	}
	if v.err != nil && !v.done() {
		return Descriptor{}, fmt.Errorf("writing to %s: %w", w.ref.ImageString(), v.err)
	}
	if err != nil {
		return Descriptor{}, fmt.Errorf("writing blob %s to %s: %w", desc.Digest, w.ref.ImageString(), err)
	}
	if v.done() {
		if d := v.digester.Digest(); got.Digest != d || got.Size != v.n {
			return Descriptor{}, fmt.Errorf("writing to %s: destination stored %s (%d bytes) for a blob of %s (%d bytes)", w.ref.ImageString(), got.Digest, got.Size, d, v.n)
		}
	} else if got.Digest != desc.Digest || (size >= 0 && got.Size != size) {
		// Reused without reading r: the destination must already hold exactly this blob.
		return Descriptor{}, fmt.Errorf("writing to %s: destination reused %s (%d bytes) for %s (%d bytes)", w.ref.ImageString(), got.Digest, got.Size, desc.Digest, size)
	}
	out := desc
	out.Digest, out.Size = got.Digest, got.Size
	return out, nil
}

func (w *writer) PutManifest(ctx context.Context, m []byte, mediaType string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.committed {
		return errors.New("PutManifest after Commit")
	}
	if w.top != nil {
		return fmt.Errorf("%s: the top-level manifest is already written", w.ref.ImageString())
	}
	guess := manifest.GuessMIMEType(m)
	if guess == "" {
		return fmt.Errorf("%s: manifest is not a recognised manifest or index", w.ref.ImageString())
	}
	if mediaType == "" {
		mediaType = guess
	}
	if mediaType != guess {
		return fmt.Errorf("%s: manifest given as %s is a %s (set its mediaType field)", w.ref.ImageString(), mediaType, guess)
	}
	if supported := w.dest.SupportedManifestMIMETypes(); len(supported) > 0 && !slices.Contains(supported, mediaType) {
		return fmt.Errorf("%s does not accept %s manifests (only %v)", w.ref.ImageString(), mediaType, supported)
	}
	d, err := manifest.Digest(m)
	if err != nil {
		return fmt.Errorf("manifest digest: %w", err)
	}
	pm := pendingManifest{bytes: m, mimeType: mediaType, digest: d}
	if !manifest.MIMETypeIsMultiImage(mediaType) {
		w.pending = append(w.pending, pm)
		return nil
	}
	list, err := manifest.ListFromBlob(m, mediaType)
	if err != nil {
		return fmt.Errorf("%s: parsing index: %w", w.ref.ImageString(), err)
	}
	listed := list.Instances()
	for _, p := range w.pending {
		if !slices.Contains(listed, p.digest) {
			return fmt.Errorf("%s: manifest %s was put but the index does not reference it", w.ref.ImageString(), p.digest)
		}
	}
	for _, p := range w.pending {
		if err := w.dest.PutManifest(ctx, p.bytes, &p.digest); err != nil {
			return fmt.Errorf("writing manifest %s to %s: %w", p.digest, w.ref.ImageString(), err)
		}
	}
	if err := w.dest.PutManifest(ctx, m, nil); err != nil {
		return fmt.Errorf("writing index %s to %s: %w", d, w.ref.ImageString(), err)
	}
	w.pending, w.top = nil, &pm
	return nil
}

func (w *writer) Commit(ctx context.Context) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.committed {
		return errors.New("Commit called twice")
	}
	if w.top == nil {
		switch len(w.pending) {
		case 0:
			return fmt.Errorf("%s: Commit without a manifest", w.ref.ImageString())
		case 1:
		default:
			return fmt.Errorf("%s: %d image manifests but no index referencing them", w.ref.ImageString(), len(w.pending))
		}
		p := w.pending[0]
		if err := w.dest.PutManifest(ctx, p.bytes, nil); err != nil {
			return fmt.Errorf("writing manifest %s to %s: %w", p.digest, w.ref.ImageString(), err)
		}
		w.pending, w.top = nil, &p
	}
	if err := w.dest.Commit(ctx, &writtenImage{ref: w.dest.Reference(), m: w.top}); err != nil {
		return fmt.Errorf("committing %s: %w", w.ref.ImageString(), err)
	}
	w.committed = true
	return nil
}

func (w *writer) Close() error { return w.dest.Close() }

// writtenImage is the UnparsedImage ImageDestination.Commit wants: the top-level manifest.
type writtenImage struct {
	ref types.ImageReference
	m   *pendingManifest
}

func (wi *writtenImage) Reference() types.ImageReference { return wi.ref }

func (wi *writtenImage) Manifest(context.Context) ([]byte, string, error) {
	return wi.m.bytes, wi.m.mimeType, nil
}

func (wi *writtenImage) Signatures(context.Context) ([][]byte, error) { return nil, nil }
