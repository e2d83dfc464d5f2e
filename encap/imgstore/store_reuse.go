package imgstore

// Reuse by diff_id (§5.3 step 6, ostree-ext's newer behaviour): a layer
// whose blob is not stored but whose uncompressed tar (diff_id) is — the
// same layer recompressed, or pushed through a registry that recompresses
// — is not fetched. Its blob ref is pointed at what the stored layer's
// points at, and a copy of the stored record is written for the new digest
// without a blob fingerprint (the new blob's compressor is unknown; a push
// then tries candidates on whole blobs, recompress.go).

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ocitree/ocitree/ostree"
	"github.com/ocitree/ocitree/ostree/gvariant"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// storedLayer is a stored layer found by its diff_id.
type storedLayer struct {
	kind   string
	blob   ostree.Checksum // what its blob ref points at
	record ostree.Checksum
}

// storedByDiffID indexes the stored layers that have records by diff_id.
func storedByDiffID(repo *ostree.Repo) (map[digest.Digest]storedLayer, error) {
	refs, err := repo.ListRefs()
	if err != nil {
		return nil, err
	}
	blobs := map[string]ostree.Checksum{}
	for _, ref := range refs {
		if esc, ok := strings.CutPrefix(ref.Name, BlobRefPrefix); ok {
			blobs[esc] = ref.Checksum
		}
	}
	out := map[digest.Digest]storedLayer{}
	for _, ref := range refs {
		esc, isOstree := strings.CutPrefix(ref.Name, TarSplitRefPrefix)
		if !isOstree {
			esc = strings.TrimPrefix(ref.Name, BlobRefPrefix)
		}
		blob, ok := blobs[esc]
		if !ok || (!isOstree && blob != ref.Checksum) {
			continue // a record whose layer is gone, or an ostree layer's blob ref
		}
		rec, err := readLayerRecord(repo, ref.Checksum)
		if err != nil {
			if !isOstree {
				continue // an ostree layer's blob ref (no record)
			}
			return nil, fmt.Errorf("ref %s: %w", ref.Name, err)
		}
		out[rec.DiffID] = storedLayer{kind: rec.Kind, blob: blob, record: ref.Checksum}
	}
	return out, nil
}

// copyLayerRecord writes a copy of the record commit rec for the blob desc:
// same tree and tar-split, desc's media type and size, no fingerprint.
func copyLayerRecord(txn *ostree.Txn, rec ostree.Checksum, desc v1.Descriptor) (ostree.Checksum, error) {
	var zero ostree.Checksum
	b, err := txn.LoadMeta(rec, ostree.ObjCommit)
	if err != nil {
		return zero, err
	}
	cm, err := ostree.DecodeCommit(b)
	if err != nil {
		return zero, fmt.Errorf("record %s: %w", rec, err)
	}
	md := make(ostree.Metadata, 0, len(cm.Metadata))
	for _, e := range cm.Metadata {
		switch e.Key {
		case recordMetaMediaType:
			e.Value = ostree.StringVariant(desc.MediaType)
		case recordMetaSize:
			e.Value = gvariant.Variant{Type: "t", Value: uint64(desc.Size)}
		case recordMetaPrefix:
			e.Value = ostree.StringVariant("")
		}
		md = append(md, e)
	}
	cb, err := (&ostree.Commit{RootTree: cm.RootTree, RootMeta: cm.RootMeta, Metadata: md}).Encode()
	if err != nil {
		return zero, err
	}
	return txn.WriteMetadata(ostree.ObjCommit, cb)
}

// reuseOstreeLayers gives missing ostree layers whose diff_id is stored
// their blob ref and record in one transaction, and returns the layers
// still to fetch.
func reuseOstreeLayers(repo *ostree.Repo, missing []*layerState, stored map[digest.Digest]storedLayer) ([]*layerState, error) {
	var reuse, rest []*layerState
	for _, l := range missing {
		if s, ok := stored[l.diffID]; ok && s.kind == recordOstree {
			reuse = append(reuse, l)
		} else {
			rest = append(rest, l)
		}
	}
	if len(reuse) == 0 {
		return missing, nil
	}
	txn, err := repo.Begin()
	if err != nil {
		return nil, err
	}
	defer txn.Abort()
	for _, l := range reuse {
		s := stored[l.diffID]
		rc, err := copyLayerRecord(txn, s.record, l.desc)
		if err != nil {
			return nil, err
		}
		ref, err := TarSplitRefName(l.desc.Digest)
		if err != nil {
			return nil, err
		}
		if err := txn.SetRef(ref, &rc); err != nil {
			return nil, err
		}
		if err := txn.SetRef(l.ref, &s.blob); err != nil {
			return nil, err
		}
	}
	if err := txn.Commit(); err != nil {
		return nil, err
	}
	for _, l := range reuse {
		l.commit, l.have = stored[l.diffID].blob, true
	}
	return rest, nil
}

// withoutStored returns the layers whose diff_id is not stored as an
// ostree layer.
func withoutStored(ls []*layerState, stored map[digest.Digest]storedLayer) []*layerState {
	var out []*layerState
	for _, l := range ls {
		if s, ok := stored[l.diffID]; !ok || s.kind != recordOstree {
			out = append(out, l)
		}
	}
	return out
}

// RefusedError is returned by Pull when PullOptions.VerifyCommit
// refused the image's ostree commit.
type RefusedError struct {
	Commit ostree.Checksum
	// Stored: the commit was in the repository before this pull.
	Stored bool
	Err    error
}

func (e *RefusedError) Error() string {
	if e.Stored {
		return fmt.Sprintf("stored commit layer (commit %s) refused: %v", e.Commit, e.Err)
	}
	return fmt.Sprintf("commit %s refused: %v", e.Commit, e.Err)
}

// Unwrap returns the verifier's error.
func (e *RefusedError) Unwrap() error { return e.Err }

// verifyStoredCommit runs verify (when set) on a commit already in repo.
func verifyStoredCommit(repo *ostree.Repo, c ostree.Checksum, verify func(*ostree.Txn, ostree.Checksum) error) error {
	if verify == nil {
		return nil
	}
	txn, err := repo.Begin()
	if err != nil {
		return err
	}
	defer txn.Abort()
	if err := verify(txn, c); err != nil {
		return &RefusedError{Commit: c, Stored: true, Err: err}
	}
	return nil
}

// layerRefs returns the blob and record refs of ostree layers.
func layerRefs(ls []*layerState) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.ref)
		if r, err := TarSplitRefName(l.desc.Digest); err == nil {
			out = append(out, r)
		}
	}
	return out
}

// undoRefused deletes the refs this pull created when err is a refused
// signature (the objects stay until a prune), and returns err.
func undoRefused(repo *ostree.Repo, err error, created []string) error {
	var refused *RefusedError
	if !errors.As(err, &refused) || len(created) == 0 {
		return err
	}
	txn, terr := repo.Begin()
	if terr != nil {
		return fmt.Errorf("%w (and removing this pull's layer refs failed: %v)", err, terr)
	}
	defer txn.Abort()
	for _, ref := range created {
		if _, ok, rerr := readRefMaybe(repo, ref); rerr == nil && ok {
			if serr := txn.SetRef(ref, nil); serr != nil {
				return fmt.Errorf("%w (and removing this pull's layer refs failed: %v)", err, serr)
			}
		}
	}
	if cerr := txn.Commit(); cerr != nil {
		return fmt.Errorf("%w (and removing this pull's layer refs failed: %v)", err, cerr)
	}
	return err
}
