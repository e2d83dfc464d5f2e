package encap

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/encap/ostreetar"
	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ImageLayout is what an ostree container image's manifest and config say
// about its layers (spec §5.2).
type ImageLayout struct {
	Manifest v1.Manifest
	Config   v1.Image
	// Commit is the ostree.commit label, when present.
	Commit string
	// OstreeLayers is the number of leading layers that carry ostree
	// content: the commit layer and the component layers up to the one whose
	// diff_id is ostree.final-diffid. The rest are derived layers.
	OstreeLayers int
}

// ParseImageLayout reads an ostree container image's manifest and config.
func ParseImageLayout(manifest, config []byte) (*ImageLayout, error) {
	var l ImageLayout
	if err := json.Unmarshal(manifest, &l.Manifest); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	if err := json.Unmarshal(config, &l.Config); err != nil {
		return nil, fmt.Errorf("parsing image config: %w", err)
	}
	if len(l.Manifest.Layers) == 0 {
		return nil, errors.New("image has no layers")
	}
	if len(l.Config.RootFS.DiffIDs) != len(l.Manifest.Layers) {
		return nil, fmt.Errorf("image config lists %d diff_ids for %d layers", len(l.Config.RootFS.DiffIDs), len(l.Manifest.Layers))
	}
	label := func(k string) string {
		if v, ok := l.Config.Config.Labels[k]; ok {
			return v
		}
		return l.Manifest.Annotations[k]
	}
	l.Commit = label("ostree.commit")
	final := label("ostree.final-diffid")
	if final == "" {
		if label("ostree.diffid") != "" {
			return nil, errors.New("image uses the old chunked v0 layout (ostree.diffid); rebuild it")
		}
		return nil, errors.New("not an ostree container image: no ostree.final-diffid label")
	}
	for i, d := range l.Config.RootFS.DiffIDs {
		if d.String() == final {
			l.OstreeLayers = i + 1
			break
		}
	}
	if l.OstreeLayers == 0 {
		return nil, fmt.Errorf("ostree.final-diffid %s is not among the image's diff_ids", final)
	}
	return &l, nil
}

// ComponentAnnotations returns the ostree.components annotations of the
// component layers, for Options.Prior through PriorLayers.
func (l *ImageLayout) ComponentAnnotations() ([]string, error) {
	var out []string
	for i := 1; i < l.OstreeLayers; i++ {
		a, ok := l.Manifest.Layers[i].Annotations[pack.ComponentsAnnotation]
		if !ok {
			return nil, fmt.Errorf("layer %d has no %s annotation", i, pack.ComponentsAnnotation)
		}
		out = append(out, a)
	}
	return out, nil
}

// Unencapsulate imports the ostree layers of the image r reads into repo,
// verifying every blob digest, diff_id and object checksum, and returns the
// commit. With ref set, the ref points at the commit afterwards. Nothing is
// kept when anything fails. Images with derived layers are refused: they
// need the importer of `image pull`.
func Unencapsulate(ctx context.Context, repo *ostree.Repo, r oci.Reader, ref string) (ostree.Checksum, error) {
	var zero ostree.Checksum
	mb, _, err := r.Manifest(ctx)
	if err != nil {
		return zero, err
	}
	cb, err := r.Config(ctx)
	if err != nil {
		return zero, err
	}
	layout, err := ParseImageLayout(mb, cb)
	if err != nil {
		return zero, err
	}
	if n := len(layout.Manifest.Layers) - layout.OstreeLayers; n > 0 {
		return zero, fmt.Errorf("image has %d derived (non-ostree) layers; unencapsulate imports only ostree layers", n)
	}
	txn, err := repo.Begin()
	if err != nil {
		return zero, err
	}
	defer txn.Abort()
	var commit ostree.Checksum
	for i, desc := range layout.Manifest.Layers {
		_, err := blob.Fetch(ctx, r, desc, layout.Config.RootFS.DiffIDs[i], blob.FetchOptions{}, func(tr io.Reader) error {
			if i == 0 {
				c, err := ostreetar.ImportCommitLayer(txn, tr)
				commit = c
				return err
			}
			return ostreetar.ImportChunkLayer(txn, tr)
		})
		if err != nil {
			return zero, fmt.Errorf("layer %d (%s): %w", i, desc.Digest, err)
		}
	}
	if layout.Commit != "" && layout.Commit != commit.String() {
		return zero, fmt.Errorf("image label ostree.commit=%s but its commit layer carries %s", layout.Commit, commit)
	}
	if err := ostreetar.VerifyCommitComplete(txn, commit); err != nil {
		return zero, err
	}
	if ref != "" {
		if err := txn.SetRef(ref, &commit); err != nil {
			return zero, err
		}
	}
	return commit, txn.Commit()
}
