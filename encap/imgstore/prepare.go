package imgstore

import (
	"context"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Store is the image store inside one repository. A pull is two steps, as
// ostree-ext's ImageImporter has them: [Store.Prepare] fetches the manifest
// and config only and says which layers are stored; [Store.Import] fetches
// the others and writes the merge commit. [Store.Pull] does both.
type Store struct {
	repo *ostree.Repo
}

// New returns the image store of repo.
func New(repo *ostree.Repo) *Store { return &Store{repo: repo} }

// Repo returns the repository the store lives in.
func (s *Store) Repo() *ostree.Repo { return s.repo }

// Prepared is what Prepare found out about an image: its manifest and
// config, and for each layer whether the store holds it. Import pulls it.
// It keeps the reader it was prepared with, which must stay open until
// Import returns.
type Prepared struct {
	// ImageRef is the image reference (display form) the image is stored
	// under (ImageRefName).
	ImageRef       string
	ManifestDigest digest.Digest
	// Manifest and Config are the image's raw manifest and config. With
	// AlreadyPresent the config is the stored image's (it was not fetched).
	Manifest []byte
	Config   []byte
	// AlreadyPresent: the image ref holds this manifest, or an image with
	// the same config digest (ostree-ext's "same image ID"); Import fetches
	// nothing. Layers is then empty.
	AlreadyPresent bool
	// Previous is the merge commit the image ref points at (zero when it
	// does not exist).
	Previous ostree.Checksum
	// BaseCommit is the image's ostree commit when its layer is stored
	// (with AlreadyPresent: the stored merge commit's parent).
	BaseCommit ostree.Checksum
	// Layers are the image's layers in manifest order.
	Layers []PreparedLayer
	// Plain: the image has no ostree layer (plain.go); every layer is
	// applied onto an empty tree.
	Plain bool
	// Warnings are what the pull accepts but a user should know (bootc
	// logs them): a missing containers.bootc label, a truncated history;
	// Import adds the paths it dropped.
	Warnings []string

	r           oci.Reader
	refName     string
	layout      *encap.ImageLayout
	layerCount  int
	ostree      []*layerState
	missing     []*layerState
	derived     []*derivedState
	created     []string
	freshCommit bool
}

// PreparedLayer is one layer of a prepared image (ostree-ext's
// ManifestLayerState).
type PreparedLayer struct {
	Descriptor v1.Descriptor
	// Derived: a layer after the image's ostree layers, applied onto the
	// tree (not an ostree chunk).
	Derived bool
	// Ref is the layer's blob ref (BlobRefName).
	Ref string
	// Present: the store holds the layer, under Ref or (same diff_id) under
	// another layer's ref; Import does not fetch it.
	Present bool
	// Commit is what holds a present layer: its blob ref's commit, or the
	// stored layer's that serves it by diff_id.
	Commit ostree.Checksum
}

// LayersPresent counts the layers the store holds (all of them with
// AlreadyPresent).
func (p *Prepared) LayersPresent() int {
	if p.AlreadyPresent {
		return p.layerCount
	}
	n := 0
	for _, l := range p.Layers {
		if l.Present {
			n++
		}
	}
	return n
}

// LayersToFetch counts the layers Import fetches and their compressed
// bytes (the descriptor sizes).
func (p *Prepared) LayersToFetch() (n int, bytes int64) {
	for _, l := range p.Layers {
		if !l.Present {
			n++
			if l.Descriptor.Size > 0 {
				bytes += l.Descriptor.Size
			}
		}
	}
	return n, bytes
}

// result is the PullResult of a prepared image before Import.
func (p *Prepared) result() *PullResult {
	res := &PullResult{ManifestDigest: p.ManifestDigest, AlreadyPresent: p.AlreadyPresent, LayersPresent: p.LayersPresent(),
		Plain: p.Plain, Warnings: append([]string(nil), p.Warnings...)}
	res.LayersFetched, res.BytesFetched = p.LayersToFetch()
	if !p.AlreadyPresent {
		res.BaseCommit = p.BaseCommit
	}
	return res
}

// preparedLayers lists the layers of a prepared image in manifest order.
func preparedLayers(ls []*layerState, ds []*derivedState) []PreparedLayer {
	var out []PreparedLayer
	for _, l := range ls {
		out = append(out, PreparedLayer{Descriptor: l.desc, Ref: l.ref, Present: l.have, Commit: l.commit})
	}
	for _, d := range ds {
		pl := PreparedLayer{Descriptor: d.desc, Derived: true, Ref: d.ref, Present: d.have, Commit: d.record}
		if !d.have && d.reuse != nil {
			pl.Present, pl.Commit = true, d.reuse.record
		}
		out = append(out, pl)
	}
	return out
}

// Pull is Prepare then, unless opts.Check, Import.
func (s *Store) Pull(ctx context.Context, r oci.Reader, imgref string, opts PullOptions) (*PullResult, error) {
	p, err := s.Prepare(ctx, r, imgref, opts)
	if err != nil {
		return nil, err
	}
	if opts.Check {
		return p.result(), nil
	}
	return s.Import(ctx, p, opts)
}
