package oci

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/signature"
)

// Copy copies the image src points to into dst with every instance of a manifest list
// or image index, keeping digests (no recompression, no manifest conversion: the copy
// fails instead of changing a digest). The signature policy is the one a Reader applies
// to src (policyFor): accept anything for the unverified forms, policy.json for
// ostree-image-signed:. Blobs already at dst are not sent again. When src and dst are
// repositories of the same registry, the config and layer blobs of every instance are
// mounted from src's repository into dst's (POST .../blobs/uploads/?mount=&from=)
// once the policy allows src, so they are neither downloaded nor uploaded; a blob that
// cannot be mounted is copied. Parent directories of path-based destinations are
// created. It returns the digest of the top-level manifest written to dst.
func Copy(ctx context.Context, src, dst *Ref, opts ...Option) (digest.Digest, error) {
	sys := systemContext(opts)
	srcRef, err := src.ImageReference()
	if err != nil {
		return "", err
	}
	if p, isPath := dst.pathOf(); isPath {
		if err := os.MkdirAll(filepath.Dir(filepath.Clean(p)), 0o755); err != nil {
			return "", fmt.Errorf("image reference %s: %w", dst.ImageString(), err)
		}
	}
	dstRef, err := dst.ImageReference()
	if err != nil {
		return "", err
	}
	policy, err := policyFor(src, sys)
	if err != nil {
		return "", err
	}
	pc, err := signature.NewPolicyContext(policy)
	if err != nil {
		return "", fmt.Errorf("signature policy: %w", err)
	}
	defer pc.Destroy() //nolint:errcheck // only releases state
	// Only an optimisation: copy.Image copies whatever was not mounted, and reports
	// the errors (unreachable registry, policy) that matter.
	if _, err := mountBlobs(ctx, sys, pc, srcRef, dstRef); err != nil && ctx.Err() != nil {
		return "", fmt.Errorf("copying %s to %s: %w", src.ImageString(), dst.ImageString(), ctx.Err())
	}
	out, err := copy.Image(ctx, pc, dstRef, srcRef, &copy.Options{
		SourceCtx:          sys,
		DestinationCtx:     sys,
		ImageListSelection: copy.CopyAllImages,
		PreserveDigests:    true,
	})
	if err != nil {
		return "", fmt.Errorf("copying %s to %s: %w", src.ImageString(), dst.ImageString(), err)
	}
	d, err := manifest.Digest(out)
	if err != nil {
		return "", fmt.Errorf("copying %s to %s: manifest digest: %w", src.ImageString(), dst.ImageString(), err)
	}
	return d, nil
}
