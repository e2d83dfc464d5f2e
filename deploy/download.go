package deploy

import (
	"context"
	"fmt"

	"github.com/ocitree/ocitree/encap/imgstore"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
)

// DownloadUpdate is `upgrade --download-only`: it pulls the image the merge
// deployment tracks into the store (layers, merge commit, image ref) and
// deploys nothing. The stored image stays while a deployment tracks its
// reference (prune keeps it), so that UpgradeFromDownloaded can deploy it
// later without the network. Result's Deployment is always nil.
func (s *Sysroot) DownloadUpdate(ctx context.Context, opts UpdateOptions) (*UpdateResult, error) {
	if err := s.Lock(); err != nil {
		return nil, err
	}
	merge, imgref, err := s.trackedImage()
	if err != nil {
		return nil, err
	}
	logf(opts.Log, "pulling %s", imgref)
	img, err := PullImage(ctx, s.Repo, imgref, false, opts.Fetch)
	if err != nil {
		return nil, err
	}
	if img.Commit != merge.Checksum {
		// Checked now, not at deploy time: a download that cannot be
		// deployed says so while the network is still there.
		if _, err := Inspect(s.Repo, img.Commit); err != nil {
			return nil, fmt.Errorf("%s: %w", imgref, err)
		}
	}
	return &UpdateResult{Image: img}, nil
}

// UpgradeFromDownloaded is `upgrade --from-downloaded`: it deploys the
// image of the tracked reference that the store holds (pulled by
// DownloadUpdate, or by an earlier pull), as Upgrade does, without fetching
// anything. Result's Deployment is nil when the stored image is the
// deployed one.
func (s *Sysroot) UpgradeFromDownloaded(opts UpdateOptions) (*UpdateResult, error) {
	if err := s.Lock(); err != nil {
		return nil, err
	}
	merge, imgref, err := s.trackedImage()
	if err != nil {
		return nil, err
	}
	ref, err := oci.ParseRef(imgref)
	if err != nil {
		return nil, err
	}
	images, err := imgstore.List(s.Repo)
	if err != nil {
		return nil, err
	}
	for _, im := range images {
		if im.ImageRef != ref.ImageString() {
			continue
		}
		img := &PulledImage{Ref: ref, Origin: ref.String(), Commit: im.MergeCommit, ManifestDigest: im.ManifestDigest, AlreadyPresent: true}
		// deployPulled deploys what Inspect found (PullImage sets it on a
		// pull; here nothing was pulled).
		if img.Info, err = Inspect(s.Repo, im.MergeCommit); err != nil {
			return nil, fmt.Errorf("downloaded %s: %w", imgref, err)
		}
		logf(opts.Log, "deploying the downloaded %s (%s)", imgref, im.ManifestDigest)
		return s.deployPulled(merge, imgref, img, opts)
	}
	return nil, fmt.Errorf("no downloaded image of %s in %s/ostree/repo; run `ocitree upgrade --download-only` first", imgref, s.Path)
}

// trackedImage is the merge deployment and the image its origin tracks.
func (s *Sysroot) trackedImage() (*Deployment, string, error) {
	merge := s.defaultMerge()
	if merge == nil {
		return nil, "", fmt.Errorf("%s has no deployment to upgrade; use `ocitree install`", s.Path)
	}
	imgref := merge.ImageRef()
	if imgref == "" {
		return nil, "", fmt.Errorf("deployment %s has no container-image-reference in its origin; use `ocitree switch IMGREF` once", merge.Dir())
	}
	return merge, imgref, nil
}

// keepCommits are the merge commits whose images prune keeps: the deployed
// ones, and the stored image of every reference a deployment tracks (a
// downloaded update not deployed yet).
func (s *Sysroot) keepCommits() (map[ostree.Checksum]bool, error) {
	keep := map[ostree.Checksum]bool{}
	tracked := map[string]bool{}
	for _, d := range s.Deployments {
		keep[d.Checksum] = true
		if r := d.ImageRef(); r != "" {
			if ref, err := oci.ParseRef(r); err == nil {
				tracked[ref.ImageString()] = true
			}
		}
	}
	images, err := imgstore.List(s.Repo)
	if err != nil {
		return nil, err
	}
	for _, im := range images {
		if tracked[im.ImageRef] {
			keep[im.MergeCommit] = true
		}
	}
	return keep, nil
}
