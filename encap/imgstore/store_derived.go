package imgstore

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/encap/derived"
	"github.com/ocitree/ocitree/encap/imgstore/internal/tarsplit"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Detached metadata keys of a stored image's merge commit holding the newest
// manifest and config seen by a pull or a check (§5.3 step 4, ostree-ext's
// names).
const (
	cachedUpdateManifestDigest = "ostree-ext.cached.manifest-digest"
	cachedUpdateManifest       = "ostree-ext.cached.manifest"
	cachedUpdateConfig         = "ostree-ext.cached.config"
)

// derivedState is one derived layer of the image being pulled.
type derivedState struct {
	index  int
	desc   v1.Descriptor
	diffID digest.Digest
	ref    string
	record ostree.Checksum
	have   bool
	// reuse is a stored layer with the same diff_id (have is false).
	reuse *storedLayer
	// taken: the blob ref exists but is another kind of layer's (the same
	// blob listed as an ostree layer by another image); it is left alone.
	taken bool
}

// derivedLayers looks up the blob refs of the image's derived layers.
func derivedLayers(repo *ostree.Repo, layout *encap.ImageLayout) ([]*derivedState, error) {
	var out []*derivedState
	for i := layout.OstreeLayers; i < len(layout.Manifest.Layers); i++ {
		desc := layout.Manifest.Layers[i]
		ref, err := BlobRefName(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		c, ok, err := readRefMaybe(repo, ref)
		if err != nil {
			return nil, err
		}
		d := &derivedState{index: i, desc: desc, diffID: layout.Config.RootFS.DiffIDs[i], ref: ref, record: c, have: ok}
		if ok && !derivedRefAgrees(repo, d) {
			// Not this layer's record: fetch it again. A ref that is a
			// derived record (of another diff_id, from an older store) is
			// replaced; any other (an ostree layer's) is left alone.
			d.have, d.record = false, ostree.Checksum{}
			rec, err := readLayerRecord(repo, c)
			d.taken = err != nil || rec.Kind != recordDerived
		}
		out = append(out, d)
	}
	return out, nil
}

// fetchedDescs returns the descriptors of the derived layers to fetch.
func fetchedDescs(ds []*derivedState) []v1.Descriptor {
	var out []v1.Descriptor
	for _, d := range ds {
		if !d.have && d.reuse == nil {
			out = append(out, d.desc)
		}
	}
	return out
}

// writeCachedUpdate records the manifest and config a pull or check saw as
// the detached metadata of the stored image's merge commit prev.
func writeCachedUpdate(repo *ostree.Repo, prev ostree.Checksum, md digest.Digest, mb, cb []byte) error {
	old, err := repo.ReadDetachedMetadata(prev)
	if err != nil {
		return err
	}
	var out ostree.Metadata
	for _, e := range old {
		switch e.Key {
		case cachedUpdateManifestDigest, cachedUpdateManifest, cachedUpdateConfig:
		default:
			out = append(out, e)
		}
	}
	out = append(out,
		ostree.MetaEntry{Key: cachedUpdateManifestDigest, Value: ostree.StringVariant(md.String())},
		ostree.MetaEntry{Key: cachedUpdateManifest, Value: ostree.StringVariant(string(mb))},
		ostree.MetaEntry{Key: cachedUpdateConfig, Value: ostree.StringVariant(string(cb))})
	if err := repo.WriteDetachedMetadata(prev, out); err != nil {
		return fmt.Errorf("recording the cached update: %w", err)
	}
	return nil
}

// CachedUpdate is the newest manifest a pull or check saw for a stored
// image that differs from the stored one.
type CachedUpdate struct {
	ManifestDigest string `json:"manifest_digest"`
	// Version is the label org.opencontainers.image.version, else version.
	Version  string          `json:"version,omitempty"`
	Manifest json.RawMessage `json:"-"`
	Config   json.RawMessage `json:"-"`
}

// readCachedUpdate returns the cached update of merge commit c, nil when
// there is none or it is the stored image itself.
func readCachedUpdate(repo *ostree.Repo, c ostree.Checksum, current string) (*CachedUpdate, error) {
	md, err := repo.ReadDetachedMetadata(c)
	if err != nil || md == nil {
		return nil, err
	}
	d := md.String(cachedUpdateManifestDigest)
	if d == "" || d == current {
		return nil, nil
	}
	cu := &CachedUpdate{ManifestDigest: d, Manifest: json.RawMessage(md.String(cachedUpdateManifest)), Config: json.RawMessage(md.String(cachedUpdateConfig))}
	var cfg v1.Image
	if json.Unmarshal(cu.Config, &cfg) == nil {
		cu.Version = cfg.Config.Labels["org.opencontainers.image.version"]
		if cu.Version == "" {
			cu.Version = cfg.Config.Labels["version"]
		}
	}
	return cu, nil
}

// writeMerge applies the derived layers onto the base tree and writes the
// merge commit and the image ref in one transaction. A derived layer whose
// blob ref exists is rebuilt from its record and the store; one that does
// not is fetched, recorded, and gets its record and blob ref in the same
// transaction.
func writeMerge(ctx context.Context, repo *ostree.Repo, r oci.Reader, layers []*derivedState, base ostree.Checksum, md digest.Digest, mb, cb []byte, imageRef string, dopts derived.Options, progress fetchConfig) (ostree.Checksum, error) {
	var zero ostree.Checksum
	bc, err := repo.ReadCommit(base)
	if err != nil {
		return zero, err
	}
	txn, err := repo.Begin()
	if err != nil {
		return zero, err
	}
	defer txn.Abort()
	tree := ostree.NewMutableTreeFrom(repo, bc.RootTree, bc.RootMeta)
	for _, d := range layers {
		switch {
		case d.have:
			err = reapplyDerived(repo, txn, tree, d.record, d, dopts)
		case d.reuse != nil:
			err = reuseDerived(repo, txn, tree, d, dopts)
		default:
			err = fetchDerived(ctx, txn, r, tree, d, dopts, progress)
		}
		if err != nil {
			return zero, fmt.Errorf("derived layer %d (%s): %w", d.index, d.desc.Digest, err)
		}
	}
	merge, err := derived.WriteMergeCommit(txn, tree, base, md.String(), mb, cb)
	if err != nil {
		return zero, err
	}
	if err := txn.SetRef(imageRef, &merge); err != nil {
		return zero, err
	}
	txn.BeforeRefs(fpPullBeforeImageRef.Hit)
	if err := txn.Commit(); err != nil {
		return zero, err
	}
	return merge, nil
}

// fetchDerived fetches one derived layer, applies it onto tree and writes
// its record and blob ref.
func fetchDerived(ctx context.Context, txn *ostree.Txn, r oci.Reader, tree *ostree.MutableTree, d *derivedState, dopts derived.Options, progress fetchConfig) error {
	rec := tarsplit.NewRecorder(nil)
	var payloads []ostree.Checksum
	// One parse of the tar: the applier reads it through the recorder.
	info, err := blob.Fetch(ctx, r, d.desc, d.diffID, progress.options(nil), func(stream io.Reader) error {
		tr := rec.Reader(stream)
		if _, err := derived.ApplyRecording(txn, tree, tr, dopts, func(c ostree.Checksum) { payloads = append(payloads, c) }); err != nil {
			return err
		}
		return tr.Finish()
	})
	if err != nil {
		return err
	}
	split, err := rec.Bytes()
	if err != nil {
		return err
	}
	if rec.Payloads() != len(payloads) {
		return fmt.Errorf("recording: %d payloads in the tar but %d stored", rec.Payloads(), len(payloads))
	}
	c, err := writeLayerRecord(txn, recordDerived, &blobDesc{diffID: d.diffID, mediaType: d.desc.MediaType, size: d.desc.Size}, info, split, payloads)
	if err != nil {
		return err
	}
	if d.taken {
		return nil
	}
	return txn.SetRef(d.ref, &c)
}

// reapplyDerived applies a stored derived layer onto tree from its record;
// the rebuilt tar is checked against the layer's diff_id.
func reapplyDerived(repo *ostree.Repo, txn *ostree.Txn, tree *ostree.MutableTree, record ostree.Checksum, d *derivedState, dopts derived.Options) error {
	rec, err := readLayerRecord(repo, record)
	if err != nil {
		return err
	}
	if rec.Kind != recordDerived || rec.DiffID != d.diffID {
		return fmt.Errorf("layer record %s is not this layer's (kind %q, diff_id %s)", record, rec.Kind, rec.DiffID)
	}
	return withAssembledTar(repo, rec, func(tr io.Reader) error {
		_, err := derived.Apply(txn, tree, tr, dopts)
		return err
	})
}

// reuseDerived applies a derived layer from the record of a stored layer
// with the same diff_id. It writes no ref under the layer's digest: its
// bytes were never seen.
func reuseDerived(repo *ostree.Repo, txn *ostree.Txn, tree *ostree.MutableTree, d *derivedState, dopts derived.Options) error {
	return reapplyDerived(repo, txn, tree, d.reuse.record, d, dopts)
}

// withAssembledTar rebuilds the tar of a record and streams it to consume,
// checking the result against the record's diff_id.
func withAssembledTar(repo *ostree.Repo, rec *layerRecord, consume func(io.Reader) error) error {
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := rec.assemble(repo, pw)
		pw.CloseWithError(err)
		done <- err
	}()
	dig := rec.DiffID.Algorithm().Digester() // validated when the layer was fetched
	tee := io.TeeReader(pr, dig.Hash())
	err := consume(tee)
	if err == nil {
		_, err = io.Copy(io.Discard, tee)
	}
	pr.CloseWithError(err)
	if aerr := <-done; err == nil && aerr != nil {
		err = aerr
	}
	if err != nil {
		return err
	}
	if got := dig.Digest(); got != rec.DiffID {
		return fmt.Errorf("rebuilt layer is %s, recorded diff_id %s: %w", got, rec.DiffID, tarsplit.ErrRecordMismatch)
	}
	return nil
}
