package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/ocitree/ocitree/ostree/sign"
)

// remoteVerifier checks the ostree commit of an ostree-remote-image: or
// ostree-remote-registry: pull against the keys of the OSTree remote the
// reference names (the container signature is not checked, as in
// ostree-ext).
type remoteVerifier struct {
	src     *oci.Ref
	v       *sign.Verifier
	results []string // descriptions of the accepted signatures
}

// newRemoteVerifier loads the configuration and keys of src.Remote from
// r's config; a missing remote, a remote without verification or without
// keys fail here, before anything is fetched.
func newRemoteVerifier(r *ostree.Repo, src *oci.Ref) (*remoteVerifier, error) {
	v, err := sign.ForRemote(r, src.Remote, sign.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return &remoteVerifier{src: src, v: v}, nil
}

// hook returns the encap.PullOptions.VerifyCommit function for pulling
// what rd reads into r.
//
// PullImage calls the hook only for a commit layer it imports, so a commit
// layer the repository already holds is verified here, before the pull
// writes anything. PullImage commits the component layers before it calls
// the hook; when verification fails, the hook deletes the layer refs
// (blob and tarsplit) that this pull created, so that a refused image
// leaves no ref (its objects stay until a prune). With check nothing is
// imported and only the remote's configuration has been checked.
func (rv *remoteVerifier) hook(ctx context.Context, r *ostree.Repo, rd oci.Reader, check bool) (func(*ostree.Txn, ostree.Checksum) error, error) {
	if check {
		return nil, nil
	}
	mb, _, err := rd.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	cb, err := rd.Config(ctx)
	if err != nil {
		return nil, err
	}
	layout, err := encap.ParseImageLayout(mb, cb)
	if err != nil {
		return nil, err
	}
	var newRefs []string
	for i, l := range layout.Manifest.Layers[:layout.OstreeLayers] {
		blobRef, err := encap.BlobRefName(l.Digest)
		if err != nil {
			return nil, err
		}
		splitRef, err := encap.TarSplitRefName(l.Digest)
		if err != nil {
			return nil, err
		}
		for _, ref := range []string{blobRef, splitRef} {
			c, ok, err := readRef(r, ref)
			if err != nil {
				return nil, err
			}
			if !ok {
				newRefs = append(newRefs, ref)
				continue
			}
			if i == 0 && ref == blobRef {
				text, err := rv.v.VerifyCommit(r, c)
				if err != nil {
					return nil, fmt.Errorf("%s: stored commit layer %s: %w", rv.src, l.Digest, err)
				}
				rv.results = append(rv.results, text)
			}
		}
	}
	return func(txn *ostree.Txn, commit ostree.Checksum) error {
		text, err := rv.v.VerifyCommit(txn, commit)
		if err != nil {
			if rerr := deleteNewRefs(r, newRefs); rerr != nil {
				return fmt.Errorf("%w (and removing the layer refs of this pull failed: %v)", err, rerr)
			}
			return err
		}
		rv.results = append(rv.results, text)
		return nil
	}, nil
}

// report writes one line per accepted signature to w.
func (rv *remoteVerifier) report(w io.Writer) {
	for _, text := range rv.results {
		for _, l := range strings.Split(text, "\n") {
			fmt.Fprintf(w, "OSTree remote %s: %s\n", rv.src.Remote, l)
		}
	}
}

// readRef resolves ref; ok is false when it does not exist.
func readRef(r *ostree.Repo, ref string) (ostree.Checksum, bool, error) {
	c, err := r.ReadRef(ref)
	if errors.Is(err, ostree.ErrRefNotFound) {
		return ostree.Checksum{}, false, nil
	}
	if err != nil {
		return ostree.Checksum{}, false, fmt.Errorf("reading ref %s: %w", ref, err)
	}
	return c, true, nil
}

// deleteNewRefs deletes those of refs that exist, in one transaction.
func deleteNewRefs(r *ostree.Repo, refs []string) error {
	var del []string
	for _, ref := range refs {
		_, ok, err := readRef(r, ref)
		if err != nil {
			return err
		}
		if ok {
			del = append(del, ref)
		}
	}
	if len(del) == 0 {
		return nil
	}
	txn, err := r.Begin()
	if err != nil {
		return err
	}
	defer txn.Abort()
	for _, ref := range del {
		if err := txn.SetRef(ref, nil); err != nil {
			return fmt.Errorf("deleting ref %s: %w", ref, err)
		}
	}
	return txn.Commit()
}
