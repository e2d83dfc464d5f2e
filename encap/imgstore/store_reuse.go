package imgstore

// Reuse by diff_id (§5.3 step 6, ostree-ext's newer behaviour): a layer
// whose blob is not stored but whose uncompressed tar (diff_id) is — the
// same layer recompressed, or pushed through a registry that recompresses
// — is not fetched. The stored content is served by its diff_id, but no
// blob ref or record is written under the new blob digest: those bytes
// were never seen, and a manifest can name any digest (issue 11, class 1).
// A push finds the record by diff_id instead (layerRecordFor).
//
// The other half of the rule: a blob ref or record found under a digest
// is checked against what the pull needs (kind, diff_id, the ostree.commit
// label) before it is used; one that disagrees is fetched again and
// replaced, so one bad ref never blocks another image.

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
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
	recorded := map[string]bool{} // ostree layers with a record ref
	for _, ref := range refs {
		if esc, ok := strings.CutPrefix(ref.Name, BlobRefPrefix); ok {
			blobs[esc] = ref.Checksum
		} else if esc, ok := strings.CutPrefix(ref.Name, TarSplitRefPrefix); ok {
			recorded[esc] = true
		}
	}
	out := map[digest.Digest]storedLayer{}
	for _, ref := range refs {
		esc, isOstree := strings.CutPrefix(ref.Name, TarSplitRefPrefix)
		if !isOstree {
			var isBlob bool
			if esc, isBlob = strings.CutPrefix(ref.Name, BlobRefPrefix); !isBlob || recorded[esc] {
				continue // not a layer ref, or an ostree layer's blob ref (its record is read)
			}
		}
		blob, ok := blobs[esc]
		if !ok {
			continue // a record whose layer is gone
		}
		rec, err := readLayerRecord(repo, ref.Checksum)
		if err != nil {
			if !isOstree {
				continue // an ostree layer's blob ref stored without a record (by an older ocitree)
			}
			return nil, fmt.Errorf("ref %s: %w", ref.Name, err)
		}
		out[rec.DiffID] = storedLayer{kind: rec.Kind, blob: blob, record: ref.Checksum}
	}
	return out, nil
}

// reuseOstreeLayers serves missing ostree layers whose diff_id is stored
// from the stored layer, without writing any ref, and returns the layers
// still to fetch.
func reuseOstreeLayers(missing []*layerState, stored map[digest.Digest]storedLayer) []*layerState {
	var rest []*layerState
	for _, l := range missing {
		if s, ok := stored[l.diffID]; ok && s.kind == recordOstree {
			l.commit, l.have, l.reused = s.blob, true, true
		} else {
			rest = append(rest, l)
		}
	}
	return rest
}

// ostreeRefAgrees reports whether the blob ref of the ostree layer l,
// found at l.commit, is usable for this pull: its record (when there is
// one) is an ostree layer's of l's diff_id, the ref does not point at a
// derived layer's record, and a commit layer's ref carries the commit the
// ostree.commit label names (label empty: not checked).
func ostreeRefAgrees(repo *ostree.Repo, l *layerState, label string) (bool, error) {
	if l.index == 0 && label != "" && l.commit.String() != label {
		return false, nil
	}
	if rec, err := readLayerRecord(repo, l.commit); err == nil && rec.Kind == recordDerived {
		return false, nil // a derived layer's record under this digest
	}
	name, err := TarSplitRefName(l.desc.Digest)
	if err != nil {
		return false, err
	}
	c, ok, err := readRefMaybe(repo, name)
	if err != nil || !ok {
		return ok || err == nil, err // no record: stored by an older ocitree
	}
	rec, err := readLayerRecord(repo, c)
	if err != nil {
		return false, nil
	}
	return rec.Kind == recordOstree && rec.DiffID == l.diffID, nil
}

// derivedRefAgrees reports whether the blob ref of the derived layer d,
// found at d.record, points at a derived layer's record of d's diff_id.
func derivedRefAgrees(repo *ostree.Repo, d *derivedState) bool {
	rec, err := readLayerRecord(repo, d.record)
	return err == nil && rec.Kind == recordDerived && rec.DiffID == d.diffID
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
