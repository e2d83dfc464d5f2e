package main

import (
	"fmt"
	"io"
	"strings"

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

// verify is the encap.PullOptions.VerifyCommit function.
func (rv *remoteVerifier) verify(txn *ostree.Txn, commit ostree.Checksum) error {
	text, err := rv.v.VerifyCommit(txn, commit)
	if err != nil {
		return fmt.Errorf("%s: %w", rv.src, err)
	}
	rv.results = append(rv.results, text)
	return nil
}

// report writes one line per accepted signature to w.
func (rv *remoteVerifier) report(w io.Writer) {
	for _, text := range rv.results {
		for _, l := range strings.Split(text, "\n") {
			fmt.Fprintf(w, "OSTree remote %s: %s\n", rv.src.Remote, l)
		}
	}
}
