package imgstore

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ocitree/ocitree/encap/derived"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
)

// ErrImageNotStored: no image ref exists for the image reference.
var ErrImageNotStored = errors.New("image not stored")

// StoredImage is an image as its merge commit records it (§5.9 step 6).
type StoredImage struct {
	// ImageRef is the image reference the image was pulled as.
	ImageRef       string
	MergeCommit    ostree.Checksum
	ManifestDigest string
	// Manifest and Config are the JSON the merge commit stores
	// (ostree.manifest, ostree.container.image-config); Config is nil when an
	// old importer stored a literal null.
	Manifest []byte
	Config   []byte
}

// Image reads the merge commit of the image stored for imgref (a
// plain image reference in display form, as for ImageRefName). A missing image
// ref gives an error wrapping ErrImageNotStored that names imgref.
func Image(repo *ostree.Repo, imgref string) (*StoredImage, error) {
	ref, err := ImageRefName(imgref)
	if err != nil {
		return nil, err
	}
	c, err := repo.ReadRef(ref)
	if errors.Is(err, ostree.ErrRefNotFound) {
		return nil, fmt.Errorf("%w: %s (no ref %s)", ErrImageNotStored, imgref, ref)
	}
	if err != nil {
		return nil, err
	}
	cm, err := repo.ReadCommit(c)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", imgref, err)
	}
	img := &StoredImage{ImageRef: imgref, MergeCommit: c, ManifestDigest: cm.Metadata.String(derived.MergeMetaManifestDigest)}
	m := cm.Metadata.String(derived.MergeMetaManifest)
	if m == "" {
		return nil, fmt.Errorf("image %s: merge commit %s has no %s metadata", imgref, c, derived.MergeMetaManifest)
	}
	img.Manifest = []byte(m)
	if s := cm.Metadata.String(derived.MergeMetaImageConfig); s != "" && s != "null" {
		img.Config = []byte(s)
	}
	return img, nil
}

// Layer kinds of HistoryEntry.
const (
	LayerCommit    = "commit"    // the ostree commit layer
	LayerComponent = "component" // an ostree component (chunk) layer
	LayerDerived   = "derived"   // a layer built on top of the ostree image
)

// HistoryEntry is one layer of a stored image with its config history entry.
type HistoryEntry struct {
	Index  int           `json:"index"`
	Digest digest.Digest `json:"digest"`
	Size   int64         `json:"size"`
	// Created and CreatedBy come from the config history entry of the layer
	// (entries with empty_layer are skipped); empty when there is none.
	Created   string `json:"created,omitempty"`
	CreatedBy string `json:"created_by,omitempty"`
	// Kind is LayerCommit, LayerComponent or LayerDerived.
	Kind string `json:"kind"`
}

// History lists the layers of the image stored for imgref in manifest
// order, each zipped with the non-empty history entry of the config at the
// same position.
func History(repo *ostree.Repo, imgref string) ([]HistoryEntry, error) {
	img, err := Image(repo, imgref)
	if err != nil {
		return nil, err
	}
	cfg := img.Config
	if cfg == nil {
		cfg = []byte("{}")
	}
	layout, err := storedLayout(img.Manifest, cfg)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", imgref, err)
	}
	var hist []int // indexes of the non-empty history entries
	for i, h := range layout.Config.History {
		if !h.EmptyLayer {
			hist = append(hist, i)
		}
	}
	out := make([]HistoryEntry, 0, len(layout.Manifest.Layers))
	for i, l := range layout.Manifest.Layers {
		e := HistoryEntry{Index: i, Digest: l.Digest, Size: l.Size, Kind: LayerDerived}
		switch {
		case i == 0 && layout.OstreeLayers > 0:
			e.Kind = LayerCommit
		case i < layout.OstreeLayers:
			e.Kind = LayerComponent
		}
		if i < len(hist) {
			h := layout.Config.History[hist[i]]
			if h.Created != nil {
				e.Created = h.Created.UTC().Format("2006-01-02T15:04:05Z07:00")
			}
			e.CreatedBy = h.CreatedBy
		}
		out = append(out, e)
	}
	return out, nil
}

// Remove deletes the image refs of imgrefs, then runs GC
// (§5.10). Images that are not stored do not stop the others from being
// removed; they are named in the error (wrapping ErrImageNotStored)
// afterwards, as ostree-ext does. It returns how many layer refs the GC
// deleted.
func Remove(repo *ostree.Repo, imgrefs []string) (int, error) {
	var del, missing []string
	seen := map[string]bool{}
	for _, img := range imgrefs {
		ref, err := ImageRefName(img)
		if err != nil {
			return 0, err
		}
		if seen[ref] {
			continue
		}
		seen[ref] = true
		if _, err := repo.ReadRef(ref); errors.Is(err, ostree.ErrRefNotFound) {
			missing = append(missing, img)
			continue
		} else if err != nil {
			return 0, err
		}
		del = append(del, ref)
	}
	if len(del) > 0 {
		txn, err := repo.Begin()
		if err != nil {
			return 0, err
		}
		defer txn.Abort()
		for _, ref := range del {
			if err := txn.SetRef(ref, nil); err != nil {
				return 0, err
			}
		}
		if err := txn.Commit(); err != nil {
			return 0, err
		}
		if err := fpRemoveBeforeLayerGC.Hit(); err != nil {
			return 0, err
		}
	}
	n, err := GC(repo)
	if err != nil {
		return n, err
	}
	if len(missing) > 0 {
		return n, fmt.Errorf("%w: %s", ErrImageNotStored, strings.Join(missing, ", "))
	}
	return n, nil
}

// PruneResult says what Prune removed.
type PruneResult struct {
	// LayerRefs is the number of layer refs GC deleted.
	LayerRefs int
	// Objects and Freed are the objects the prune deleted and their bytes.
	Objects int
	Freed   int64
}

// Prune deletes the layer refs no stored image needs (GC),
// then every object no ref reaches (ostree prune --refs-only), like
// ostree-ext's image prune without removing undeployed images.
func Prune(repo *ostree.Repo) (*PruneResult, error) {
	n, err := GC(repo)
	if err != nil {
		return nil, err
	}
	pr, err := repo.Prune(ostree.PruneOptions{RefsOnly: true})
	if err != nil {
		return nil, err
	}
	return &PruneResult{LayerRefs: n, Objects: pr.Deleted, Freed: pr.Freed}, nil
}
