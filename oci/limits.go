package oci

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// MaxManifestSize bounds a manifest or image index held in memory: 4 MiB,
// containers/image's iolimits.MaxManifestBodySize.
const MaxManifestSize = 4 << 20

// MaxConfigSize bounds an image config held in memory: 4 MiB,
// containers/image's iolimits.MaxConfigBodySize.
const MaxConfigSize = 4 << 20

// ErrTooLarge: a manifest, index or config is over its limit (or is no
// regular file), refused before it is read into memory.
var ErrTooLarge = errors.New("over the size limit")

// checkLayoutLimits refuses an OCI layout at dir whose index.json, or the
// manifest or index blob it lists under tag (every one when tag is empty;
// and those a listed index lists), is over
// MaxManifestSize or not a regular file — containers/image reads those
// whole, so a blob that never ends (a FIFO, a device) would exhaust memory
// (issue 11, class 3). Descriptors claiming a size over the limit are
// refused too. A missing blob is left to the reader's own error.
func checkLayoutLimits(dir, tag string) error {
	idx, err := readLimited(filepath.Join(dir, "index.json"), "index.json")
	if err != nil {
		return err
	}
	var top imgspecv1.Index
	if err := json.Unmarshal(idx, &top); err != nil {
		return nil // the reader reports it
	}
	for _, d := range top.Manifests {
		if tag != "" && d.Annotations[imgspecv1.AnnotationRefName] != tag {
			continue // another image's entry is not this pull's business
		}
		b, err := checkManifestBlob(dir, d)
		if err != nil || b == nil {
			return err
		}
		if d.MediaType != imgspecv1.MediaTypeImageIndex && d.MediaType != "application/vnd.docker.distribution.manifest.list.v2+json" {
			continue
		}
		var sub imgspecv1.Index
		if json.Unmarshal(b, &sub) != nil {
			continue
		}
		for _, sd := range sub.Manifests {
			if _, err := checkManifestBlob(dir, sd); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkManifestBlob checks the manifest or index blob d of the layout dir
// and returns its bytes (nil when it is missing or its digest is invalid).
func checkManifestBlob(dir string, d imgspecv1.Descriptor) ([]byte, error) {
	if d.Size > MaxManifestSize {
		return nil, fmt.Errorf("manifest %s: descriptor size %d bytes; the limit is %d bytes: %w", d.Digest, d.Size, MaxManifestSize, ErrTooLarge)
	}
	if d.Digest.Validate() != nil {
		return nil, nil
	}
	p := filepath.Join(dir, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded())
	b, err := readLimited(p, "manifest "+d.Digest.String())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// readLimited reads the regular file p (what names it in errors) of at most
// MaxManifestSize bytes.
func readLimited(p, what string) ([]byte, error) {
	// Stat first: opening a FIFO would block.
	st, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file (%s): %w", what, st.Mode().Type(), ErrTooLarge)
	}
	if st.Size() > MaxManifestSize {
		return nil, fmt.Errorf("%s is %d bytes; the limit is %d bytes: %w", what, st.Size(), MaxManifestSize, ErrTooLarge)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxManifestSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxManifestSize {
		return nil, fmt.Errorf("%s is over %d bytes; the limit is %d bytes: %w", what, MaxManifestSize, MaxManifestSize, ErrTooLarge)
	}
	return b, nil
}
