package deploy

// This file is the only one of package deploy that calls the image store
// (package encap) and the transport (package oci), so that they can be
// re-pointed in one place.

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
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
}

// ParseImageRef parses an image reference in any accepted form.
func ParseImageRef(s string) (*oci.Ref, error) { return oci.ParseRef(s) }

// PullImage pulls imgref into repo through the image store and returns
// its merge commit; with check only the manifest and config are fetched.
func PullImage(ctx context.Context, repo *ostree.Repo, imgref string, check bool) (*PulledImage, error) {
	ref, err := oci.ParseRef(imgref)
	if err != nil {
		return nil, err
	}
	if ref.Signature == oci.OstreeRemote {
		return nil, fmt.Errorf("%s: ostree-remote-image references are not supported by host commands yet; use ostree-unverified-registry: or ostree-image-signed:", imgref)
	}
	rd, err := oci.NewReader(ctx, ref)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	// failpoint: fetch
	// failpoint: layer-commit
	// failpoint: merge-commit
	res, err := encap.PullImage(ctx, repo, rd, ref.ImageString(), encap.PullOptions{Check: check})
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", imgref, err)
	}
	return &PulledImage{Ref: ref, Origin: ref.String(), Commit: res.MergeCommit, ManifestDigest: string(res.ManifestDigest),
		AlreadyPresent: res.AlreadyPresent, LayersFetched: res.LayersFetched, BytesFetched: res.BytesFetched, LayersPresent: res.LayersPresent}, nil
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
		if !strings.HasPrefix(r.Name, encap.ImageRefPrefix) || keep[r.Checksum] {
			continue
		}
		if err := repo.SetRef(r.Name, nil); err != nil {
			return removed, err
		}
		removed = append(removed, r.Name)
	}
	if _, err := encap.GCImageLayers(repo); err != nil {
		return removed, err
	}
	return removed, nil
}
