package deploy

// This file is the only one of package deploy that calls the image store
// (package encap) and the transport (package oci), so that they can be
// re-pointed in one place.

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"time"

	"github.com/ocitree/ocitree/encap/imgstore"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// PulledImage is the result of PullImage.
type PulledImage struct {
	// Ref is the parsed reference; Origin its canonical ostree-ext form,
	// the value of container-image-reference.
	Ref    *oci.Ref
	Origin string
	// Commit is the merge commit (zero with check).
	Commit         ostree.Checksum
	ManifestDigest string
	AlreadyPresent bool
	LayersFetched  int
	BytesFetched   int64
	LayersPresent  int
	// Info is Inspect's result for Commit (nil with check).
	Info *CommitInfo
	// Warnings are the image store's (plain images: a missing
	// containers.bootc label, a truncated history, dropped paths).
	Warnings []string
}

// ParseImageRef parses an image reference in any accepted form.
func ParseImageRef(s string) (*oci.Ref, error) { return oci.ParseRef(s) }

// FetchOptions control how images are fetched.
type FetchOptions struct {
	// InsecureSkipTLSVerify skips registry TLS verification and allows
	// plain HTTP (for test registries).
	InsecureSkipTLSVerify bool
	// EnforceSigPolicy verifies the image against containers-policy.json
	// even when the reference is an unverified one (the reference is then
	// recorded as ostree-image-signed:).
	EnforceSigPolicy bool
}

func (f FetchOptions) ociOptions() []oci.Option {
	if f.InsecureSkipTLSVerify {
		return []oci.Option{oci.WithInsecureSkipTLSVerify(true)}
	}
	return nil
}

// PullImage pulls imgref into repo through the image store and returns
// its merge commit; with check only the manifest and config are fetched
// (imgstore's Prepare; otherwise Prepare then Import).
func PullImage(ctx context.Context, repo *ostree.Repo, imgref string, check bool, fo FetchOptions) (*PulledImage, error) {
	img, p, closeFn, err := prepareImage(ctx, repo, imgref, fo)
	if err != nil {
		return nil, err
	}
	defer closeFn()
	if check {
		n, bytes := p.LayersToFetch()
		img.LayersFetched, img.BytesFetched, img.LayersPresent = n, bytes, p.LayersPresent()
		return img, nil
	}
	// The fetch, layer commits and merge commit have imgstore's pull-*
	// failpoints.
	res, err := imgstore.New(repo).Import(ctx, p, hostPullOptions())
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", imgref, err)
	}
	img.Commit, img.Warnings = res.MergeCommit, res.Warnings
	img.LayersFetched, img.BytesFetched, img.LayersPresent = res.LayersFetched, res.BytesFetched, res.LayersPresent
	if img.Info, err = Inspect(repo, res.MergeCommit); err != nil {
		return nil, refuseImage(repo, imgref, p, err)
	}
	if err := fpImagePulled.Hit(); err != nil {
		return nil, err
	}
	return img, nil
}

// hostPullOptions are a host pull's (bootc's): the image must be bootable
// (plain images: labelled so) and for this architecture.
func hostPullOptions() imgstore.PullOptions {
	return imgstore.PullOptions{Bootable: true, Arch: runtime.GOARCH}
}

// refuseImage undoes the pull of an image deploy refuses (no kernel, two
// kernels, ...): the image ref goes back to what it was, so a refused image
// leaves no ref (its layer refs go with the GC; a crash before this leaves a
// ref no deployment uses, which the next cleanup prunes).
func refuseImage(repo *ostree.Repo, imgref string, p *imgstore.Prepared, err error) error {
	name, nerr := imgstore.ImageRefName(p.ImageRef)
	if nerr != nil {
		return fmt.Errorf("%s: %w", imgref, err)
	}
	var old *ostree.Checksum
	if !p.Previous.IsZero() {
		old = &p.Previous
	}
	if rerr := repo.SetRef(name, old); rerr != nil {
		return fmt.Errorf("%s: %w (and restoring the image ref failed: %v)", imgref, err, rerr)
	}
	if _, gerr := imgstore.GC(repo); gerr != nil {
		return fmt.Errorf("%s: %w (and the layer GC failed: %v)", imgref, err, gerr)
	}
	return fmt.Errorf("%s: %w", imgref, err)
}

// prepareImage opens imgref (with the signature policy its reference
// asks for) and runs the image store's Prepare: the manifest and config
// are fetched, nothing else. closeFn closes the reader, which Import of the
// prepared image needs open.
func prepareImage(ctx context.Context, repo *ostree.Repo, imgref string, fo FetchOptions) (img *PulledImage, p *imgstore.Prepared, closeFn func(), err error) {
	ref, err := oci.ParseRef(imgref)
	if err != nil {
		return nil, nil, nil, err
	}
	if fo.EnforceSigPolicy && ref.Signature == oci.Unverified {
		ref.Signature = oci.ContainerPolicy
	}
	if ref.Signature == oci.OstreeRemote {
		return nil, nil, nil, fmt.Errorf("%s: ostree-remote-image references are not supported by host commands yet; use ostree-unverified-registry: or ostree-image-signed:", imgref)
	}
	rd, err := oci.NewReader(ctx, ref, fo.ociOptions()...)
	if err != nil {
		return nil, nil, nil, err
	}
	p, err = imgstore.New(repo).Prepare(ctx, rd, ref.ImageString(), hostPullOptions())
	if err != nil {
		rd.Close()
		return nil, nil, nil, fmt.Errorf("pulling %s: %w", imgref, err)
	}
	img = &PulledImage{Ref: ref, Origin: ref.String(), ManifestDigest: string(p.ManifestDigest), AlreadyPresent: p.AlreadyPresent,
		Warnings: p.Warnings}
	return img, p, func() { rd.Close() }, nil
}

// ImageInfo describes the image a deployment was made from, as the merge
// commit records it.
type ImageInfo struct {
	ManifestDigest string
	Version        string
	// Timestamp is the image config's created time (nil when unknown).
	Timestamp    *time.Time
	Architecture string
}

// DeployedImage reads the image metadata of commit c (a merge commit);
// nil when c is not one.
func DeployedImage(repo *ostree.Repo, c ostree.Checksum) (*ImageInfo, error) {
	cm, err := repo.ReadCommit(c)
	if err != nil {
		return nil, err
	}
	d := cm.Metadata.String("ostree.manifest-digest")
	if d == "" {
		return nil, nil
	}
	info := &ImageInfo{ManifestDigest: d, Version: cm.Metadata.String("version")}
	var cfg struct {
		Created      string `json:"created"`
		Architecture string `json:"architecture"`
		Config       struct {
			Labels map[string]string `json:"Labels"`
		} `json:"config"`
	}
	if s := cm.Metadata.String("ostree.container.image-config"); s != "" {
		if err := json.Unmarshal([]byte(s), &cfg); err == nil {
			info.Architecture = cfg.Architecture
			if t, err := time.Parse(time.RFC3339Nano, cfg.Created); err == nil {
				t = t.UTC()
				info.Timestamp = &t
			}
			if info.Version == "" {
				info.Version = cfg.Config.Labels["org.opencontainers.image.version"]
			}
		}
	}
	return info, nil
}

// ImageTransport splits an origin's container-image-reference into the
// image name and transport as bootc's status shows them (image
// "quay.io/x/y:tag", transport "registry"; "oci" and a path), plus the
// signature kind ("insecure", "containerPolicy" or "ostreeRemote").
func ImageTransport(origin string) (image, transport, sig, remote string, err error) {
	ref, err := oci.ParseRef(origin)
	if err != nil {
		return "", "", "", "", err
	}
	switch ref.Signature {
	case oci.ContainerPolicy:
		sig = "containerPolicy"
	case oci.OstreeRemote:
		sig, remote = "ostreeRemote", ref.Remote
	default:
		sig = "insecure"
	}
	return ref.Name, string(ref.Transport), sig, remote, nil
}

// PruneImages deletes the image refs of images no deployment uses (their
// merge commit is not in keep), then the layer refs no stored image lists
// (bootc's image GC after a deployment change). Objects stay until
// PruneRepo. It returns the image refs removed.
func PruneImages(repo *ostree.Repo, keep map[ostree.Checksum]bool) ([]string, error) {
	refs, err := repo.ListRefs()
	if err != nil {
		return nil, err
	}
	var removed []string
	for _, r := range refs {
		if !strings.HasPrefix(r.Name, imgstore.ImageRefPrefix) || keep[r.Checksum] {
			continue
		}
		if err := repo.SetRef(r.Name, nil); err != nil {
			return removed, err
		}
		removed = append(removed, r.Name)
	}
	if _, err := imgstore.GC(repo); err != nil {
		return removed, err
	}
	return removed, nil
}

// UpdateCheck is what `upgrade --check` reports.
type UpdateCheck struct {
	// Image is the tracked reference (ostree-ext form).
	Image string `json:"image"`
	// DeployedDigest is the manifest digest of the deployed image; Digest
	// and Version are those of the registry's image now.
	DeployedDigest string `json:"deployedDigest"`
	Digest         string `json:"digest"`
	Version        string `json:"version,omitempty"`
	// UpdateAvailable is false when the digests are equal.
	UpdateAvailable bool `json:"updateAvailable"`
	// LayersNeeded and BytesNeeded are the layers (compressed bytes) the
	// store lacks.
	LayersNeeded int   `json:"layersNeeded"`
	BytesNeeded  int64 `json:"bytesNeeded"`
	// Changed, Added and Removed are the components (packages) of the
	// ostree.components annotations: in new layers and also in the old
	// image, only in the new one, only in the old one.
	Changed []string `json:"changed"`
	Added   []string `json:"added"`
	Removed []string `json:"removed"`
	// Layers is the layer diff against the deployed image by blob digest
	// (bootc's upgrade --check: total, added and removed layers and bytes).
	Layers imgstore.ManifestDiff `json:"layers"`
}

// CheckImageUpdate fetches only the manifest and config of imgref (the
// image store's Prepare; the config not even that when the image is
// stored) and compares them with the image of the deployed merge commit.
// The image store records them as the image's cached update.
func CheckImageUpdate(ctx context.Context, repo *ostree.Repo, imgref string, deployed ostree.Checksum, fo FetchOptions) (*UpdateCheck, error) {
	img, p, closeFn, err := prepareImage(ctx, repo, imgref, fo)
	if err != nil {
		return nil, err
	}
	closeFn()
	n, bytes := p.LayersToFetch()
	uc := &UpdateCheck{Image: img.Origin, Digest: img.ManifestDigest, LayersNeeded: n, BytesNeeded: bytes,
		Changed: []string{}, Added: []string{}, Removed: []string{}}
	cm, err := repo.ReadCommit(deployed)
	if err != nil {
		return nil, err
	}
	uc.DeployedDigest = cm.Metadata.String("ostree.manifest-digest")
	uc.UpdateAvailable = uc.DeployedDigest != uc.Digest
	newManifest, newConfig := p.Manifest, p.Config
	if !uc.UpdateAvailable {
		uc.Version = cm.Metadata.String("version")
		return uc, nil
	}
	var cfg struct {
		Config struct {
			Labels map[string]string `json:"Labels"`
		} `json:"config"`
	}
	if json.Unmarshal(newConfig, &cfg) == nil {
		uc.Version = cfg.Config.Labels["org.opencontainers.image.version"]
	}
	var oldM, newM *v1.Manifest // a deployed commit of no image compares with nothing
	if raw := cm.Metadata.String("ostree.manifest"); raw != "" {
		if err := json.Unmarshal([]byte(raw), &oldM); err != nil {
			return nil, fmt.Errorf("deployed commit %s: its image manifest: %w", deployed, err)
		}
	}
	if err := json.Unmarshal(newManifest, &newM); err != nil {
		return nil, fmt.Errorf("image %s: manifest: %w", imgref, err)
	}
	uc.Changed, uc.Added, uc.Removed = imgstore.ComponentChanges(oldM, newM)
	uc.Layers = imgstore.DiffManifests(oldM, newM)
	return uc, nil
}

// CachedUpdateOf returns the newer image a check or pull saw for the image
// deployed as commit c from origin (nil when there is none).
func CachedUpdateOf(repo *ostree.Repo, origin string, c ostree.Checksum) (*ImageInfo, error) {
	ref, err := oci.ParseRef(origin)
	if err != nil {
		return nil, err
	}
	images, err := imgstore.List(repo)
	if err != nil {
		return nil, err
	}
	for _, im := range images {
		if im.ImageRef != ref.ImageString() || im.MergeCommit != c || im.CachedUpdate == nil {
			continue
		}
		info := &ImageInfo{ManifestDigest: im.CachedUpdate.ManifestDigest, Version: im.CachedUpdate.Version}
		var cfg struct {
			Created      string `json:"created"`
			Architecture string `json:"architecture"`
		}
		if json.Unmarshal(im.CachedUpdate.Config, &cfg) == nil {
			info.Architecture = cfg.Architecture
			if t, err := time.Parse(time.RFC3339Nano, cfg.Created); err == nil {
				t = t.UTC()
				info.Timestamp = &t
			}
		}
		return info, nil
	}
	return nil, nil
}
