package oci

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/blobinfocache/memory"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

// Descriptor describes a blob (layer, config) or manifest: the OCI image-spec type.
type Descriptor = imgspecv1.Descriptor

// Reader reads one image. Manifest and Config are fetched once and cached.
type Reader interface {
	// Manifest returns the image manifest and its media type. A manifest list or image
	// index is resolved to the entry for the running platform (or WithPlatform); the
	// bytes are exactly what the source serves, checked against the digest that names them.
	Manifest(ctx context.Context) ([]byte, string, error)
	// Config returns the config blob of the manifest, verified against its digest.
	Config(ctx context.Context) ([]byte, error)
	// Blob streams the blob d. The stream is verified while it is read: a Read returns
	// an error wrapping ErrSizeMismatch or ErrDigestMismatch (naming d.Digest) at EOF,
	// or as soon as more than d.Size bytes arrive, so a caller that reads to io.EOF
	// without error has the right bytes. d.Size <= 0 means unknown (except for the
	// empty blob).
	Blob(ctx context.Context, d Descriptor) (io.ReadCloser, error)
	// Close releases the source.
	Close() error
}

// maxConfigSize bounds the config blob held in memory (MaxConfigSize).
const maxConfigSize = MaxConfigSize

type reader struct {
	ref      *Ref
	src      types.ImageSource
	cache    types.BlobInfoCache
	manifest []byte
	mimeType string
	config   []byte
}

// NewReader opens the image r points to, resolves a manifest list to one instance and
// checks the signature policy (see policyFor) on that instance before returning.
func NewReader(ctx context.Context, r *Ref, opts ...Option) (Reader, error) {
	sys := systemContext(opts)
	ir, err := r.ImageReference()
	if err != nil {
		return nil, err
	}
	if r.Transport == TransportOCI {
		// containers/image reads index.json and manifests whole.
		if dir, ok := r.pathOf(); ok {
			_, tag, _ := strings.Cut(r.Name, ":")
			if err := checkLayoutLimits(dir, tag); err != nil {
				return nil, fmt.Errorf("%s: %w", r.ImageString(), err)
			}
		}
	}
	policy, err := policyFor(r, sys)
	if err != nil {
		return nil, err
	}
	src, err := ir.NewImageSource(ctx, sys)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", r.ImageString(), err)
	}
	rd, err := openInstance(ctx, r, src, sys, policy)
	if err != nil {
		src.Close() //nolint:errcheck // already failing
		return nil, err
	}
	return rd, nil
}

func openInstance(ctx context.Context, r *Ref, src types.ImageSource, sys *types.SystemContext, policy *signature.Policy) (*reader, error) {
	unparsed := image.UnparsedInstance(src, nil)
	top, mt, err := unparsed.Manifest(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading manifest of %s: %w", r.ImageString(), err)
	}
	mt = mimeType(top, mt)
	var instance types.UnparsedImage = unparsed
	if manifest.MIMETypeIsMultiImage(mt) {
		list, err := manifest.ListFromBlob(top, mt)
		if err != nil {
			return nil, fmt.Errorf("parsing manifest list of %s: %w", r.ImageString(), err)
		}
		d, err := list.ChooseInstance(sys)
		if err != nil {
			return nil, fmt.Errorf("choosing an image from the manifest list of %s: %w", r.ImageString(), err)
		}
		instance = image.UnparsedInstance(src, &d)
	}
	if err := checkPolicy(ctx, r, policy, instance); err != nil {
		return nil, err
	}
	m, mt, err := instance.Manifest(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading manifest of %s: %w", r.ImageString(), err)
	}
	mt = mimeType(m, mt)
	if manifest.MIMETypeIsMultiImage(mt) {
		return nil, fmt.Errorf("%s: manifest list entry is itself a list (%s)", r.ImageString(), mt)
	}
	return &reader{ref: r, src: src, cache: memory.New(), manifest: m, mimeType: mt}, nil
}

// mimeType returns the manifest media type: the source's when it is a manifest type,
// else guessed from the bytes (sources may serve "", text/plain, application/json…).
func mimeType(m []byte, mt string) string {
	if manifest.NormalizedMIMEType(mt) == mt {
		return mt
	}
	if g := manifest.GuessMIMEType(m); g != "" {
		return g
	}
	return manifest.NormalizedMIMEType(mt)
}

func (rd *reader) Manifest(ctx context.Context) ([]byte, string, error) {
	return rd.manifest, rd.mimeType, nil
}

func (rd *reader) Config(ctx context.Context) ([]byte, error) {
	if rd.config != nil {
		return rd.config, nil
	}
	m, err := manifest.FromBlob(rd.manifest, rd.mimeType)
	if err != nil {
		return nil, fmt.Errorf("parsing manifest of %s: %w", rd.ref.ImageString(), err)
	}
	ci := m.ConfigInfo()
	if ci.Digest == "" {
		return nil, fmt.Errorf("%s: %s manifest has no config blob", rd.ref.ImageString(), rd.mimeType)
	}
	if ci.Size > maxConfigSize {
		return nil, fmt.Errorf("%s: config %s is %d bytes; the limit is %d bytes: %w", rd.ref.ImageString(), ci.Digest, ci.Size, maxConfigSize, ErrTooLarge)
	}
	rc, err := rd.Blob(ctx, Descriptor{MediaType: ci.MediaType, Digest: ci.Digest, Size: ci.Size})
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading config of %s: %w", rd.ref.ImageString(), err)
	}
	if len(b) > maxConfigSize {
		return nil, fmt.Errorf("%s: config %s is over %d bytes; the limit is %d bytes: %w", rd.ref.ImageString(), ci.Digest, maxConfigSize, maxConfigSize, ErrTooLarge)
	}
	rd.config = b
	return b, nil
}

func (rd *reader) Blob(ctx context.Context, d Descriptor) (io.ReadCloser, error) {
	if d.Digest == "" {
		return nil, errors.New("blob descriptor without digest")
	}
	if err := d.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("blob digest %q: %w", d.Digest, err)
	}
	size := knownSize(d.Digest, d.Size)
	info := types.BlobInfo{Digest: d.Digest, Size: size, MediaType: d.MediaType, URLs: d.URLs, Annotations: d.Annotations}
	rc, _, err := rd.src.GetBlob(ctx, info, rd.cache)
	if err != nil {
		return nil, fmt.Errorf("fetching blob %s from %s: %w", d.Digest, rd.ref.ImageString(), err)
	}
	v, err := newVerifier(ctx, rc, d.Digest, size)
	if err != nil {
		rc.Close() //nolint:errcheck // already failing
		return nil, err
	}
	return verifyingReadCloser{verifier: v, c: rc}, nil
}

func (rd *reader) Close() error { return rd.src.Close() }
