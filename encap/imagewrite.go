package encap

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	"github.com/ocitree/ocitree/oci"
	"github.com/opencontainers/go-digest"
	imgspec "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// WrittenImage is what WriteImage wrote: the config and manifest bytes and
// the manifest's digest.
type WrittenImage struct {
	Config         []byte
	Manifest       []byte
	ManifestDigest digest.Digest
}

// WriteImage finishes an image whose layers w already holds: it writes
// cfg as the config blob, then the manifest listing layers (with
// annotations, nil for none), and commits w. Encapsulate and rechunk share
// it so that both write manifests byte for byte alike.
func WriteImage(ctx context.Context, w oci.Writer, cfg v1.Image, layers []oci.Descriptor, annotations map[string]string) (*WrittenImage, error) {
	var out WrittenImage
	var err error
	if out.Config, err = json.Marshal(cfg); err != nil {
		return nil, err
	}
	cfgDesc, err := w.PutBlob(ctx, bytes.NewReader(out.Config), oci.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(out.Config), Size: int64(len(out.Config))})
	if err != nil {
		return nil, fmt.Errorf("writing image config: %w", err)
	}
	m := v1.Manifest{
		Versioned:   imgspec.Versioned{SchemaVersion: 2},
		MediaType:   v1.MediaTypeImageManifest,
		Config:      oci.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cfgDesc.Digest, Size: cfgDesc.Size},
		Layers:      layers,
		Annotations: annotations,
	}
	if out.Manifest, err = json.Marshal(m); err != nil {
		return nil, err
	}
	out.ManifestDigest = digest.FromBytes(out.Manifest)
	if err := w.PutManifest(ctx, out.Manifest, v1.MediaTypeImageManifest); err != nil {
		return nil, fmt.Errorf("writing manifest: %w", err)
	}
	if err := w.Commit(ctx); err != nil {
		return nil, fmt.Errorf("committing image: %w", err)
	}
	return &out, nil
}
