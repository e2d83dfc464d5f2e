package imgstore

import (
	"fmt"

	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/ocitree/ocitree/ostree/sign"
)

// RemoteVerifier checks the ostree commit of an ostree-remote-image: or
// ostree-remote-registry: pull against the keys of the OSTree remote the
// reference names (the container signature is not checked, as in
// ostree-ext).
type RemoteVerifier struct {
	src     *oci.Ref
	v       *sign.Verifier
	results []string // descriptions of the accepted signatures
}

// NewRemoteVerifier returns the verifier a pull of src needs: nil when src
// is not an ostree-remote-* reference (its signature, if any, is checked by
// the containers policy when it is read); else one with the configuration
// and keys of src.Remote from r's config. A missing remote, a remote without
// verification or without keys fail here, before anything is fetched.
func NewRemoteVerifier(r *ostree.Repo, src *oci.Ref) (*RemoteVerifier, error) {
	if src.Signature != oci.OstreeRemote {
		return nil, nil
	}
	v, err := sign.ForRemote(r, src.Remote, sign.Options{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", src, err)
	}
	return &RemoteVerifier{src: src, v: v}, nil
}

// Verify is a PullOptions.VerifyCommit function.
func (rv *RemoteVerifier) Verify(txn *ostree.Txn, commit ostree.Checksum) error {
	text, err := rv.v.VerifyCommit(txn, commit)
	if err != nil {
		return fmt.Errorf("%s: %w", rv.src, err)
	}
	rv.results = append(rv.results, text)
	return nil
}

// Accepted returns the descriptions of the signatures Verify accepted, in
// order (each may span several lines).
func (rv *RemoteVerifier) Accepted() []string { return rv.results }
