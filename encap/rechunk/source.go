package rechunk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/encap/derived"
	"github.com/ocitree/ocitree/encap/imgstore"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Source is a tree to rechunk: a commit in a repository and, when it came
// from an image, that image's config. A Source made from an image or a
// directory lives in a scratch repository that Close removes.
type Source struct {
	Repo   *ostree.Repo
	Commit ostree.Checksum
	// Config is the input image's config (nil for a commit or directory).
	Config *v1.Image
	// Labels are the labels the input stands for: the image's, or those of
	// the commit (see InputLabels).
	Labels map[string]string
	// Created is the input's creation time (zero when unknown).
	Created time.Time
	scratch string
}

// Close releases the scratch repository, if any.
func (s *Source) Close() error {
	if s.scratch == "" {
		return nil
	}
	s.Repo.Close()
	return os.RemoveAll(s.scratch)
}

// scratchRepo makes an empty bare-user repository under $TMPDIR (default
// /var/tmp, on disk like ostree-ext's scratch space).
func scratchRepo() (*ostree.Repo, string, error) {
	base := os.Getenv("TMPDIR")
	if base == "" {
		base = "/var/tmp"
	}
	dir, err := os.MkdirTemp(base, "ocitree-rechunk-*")
	if err != nil {
		return nil, "", fmt.Errorf("scratch repository: %w", err)
	}
	r, err := ostree.Init(dir+"/repo", ostree.ModeBareUser)
	if err != nil {
		os.RemoveAll(dir)
		return nil, "", fmt.Errorf("scratch repository: %w", err)
	}
	// Thrown away after the build: no syncfs at commit (ostree's
	// core.fsync=false, for this process only).
	r.Config().Set("core", "fsync", "false")
	return r, dir, nil
}

// CommitSource is a commit of repo.
func CommitSource(repo *ostree.Repo, commit ostree.Checksum) (*Source, error) {
	cm, err := repo.ReadCommit(commit)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit, err)
	}
	labels, err := InputLabels(repo, commit)
	if err != nil {
		return nil, err
	}
	return &Source{Repo: repo, Commit: commit, Labels: labels, Created: time.Unix(int64(cm.Timestamp), 0).UTC()}, nil
}

// RootfsSource commits the directory dir into a scratch repository. A tree
// with a kernel (usr/lib/modules/*/vmlinuz) is labelled bootable.
func RootfsSource(dir string) (*Source, error) {
	repo, scratch, err := scratchRepo()
	if err != nil {
		return nil, err
	}
	kernels, _ := filepath.Glob(filepath.Join(dir, "usr/lib/modules/*/vmlinuz"))
	c, err := repo.CommitDir(dir, ostree.CommitOptions{NoParent: true, Timestamp: time.Unix(0, 0), Bootable: len(kernels) > 0})
	if err != nil {
		repo.Close()
		os.RemoveAll(scratch)
		return nil, fmt.Errorf("committing %s: %w", dir, err)
	}
	s, err := CommitSource(repo, c)
	if err != nil {
		repo.Close()
		os.RemoveAll(scratch)
		return nil, err
	}
	s.Created, s.scratch = time.Time{}, scratch
	return s, nil
}

// ImageSource reads the image rd serves into a scratch repository: an
// ostree image (config label ostree.final-diffid) through the image store's
// pull (derived layers included), any other image by applying its layers in
// order onto an empty tree with the derived-layer rules (etc → usr/etc,
// whiteouts, opaque directories, hardlinks; the content of run, tmp, proc,
// sys and dev dropped), every blob digest and diff_id verified.
func ImageSource(ctx context.Context, rd oci.Reader, imgref string) (*Source, error) {
	mb, _, err := rd.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	cb, err := rd.Config(ctx)
	if err != nil {
		return nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	var cfg v1.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return nil, fmt.Errorf("parsing image config: %w", err)
	}
	if len(m.Layers) == 0 {
		return nil, errors.New("image has no layers")
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		return nil, fmt.Errorf("image config lists %d diff_ids for %d layers", len(cfg.RootFS.DiffIDs), len(m.Layers))
	}
	repo, scratch, err := scratchRepo()
	if err != nil {
		return nil, err
	}
	s := &Source{Repo: repo, Config: &cfg, Labels: cfg.Config.Labels, scratch: scratch}
	if cfg.Created != nil {
		s.Created = *cfg.Created
	}
	if _, ok := cfg.Config.Labels["ostree.final-diffid"]; ok {
		res, err := imgstore.Pull(ctx, repo, rd, imgref, imgstore.PullOptions{NoGC: true})
		if err != nil {
			s.Close()
			return nil, err
		}
		s.Commit = res.MergeCommit
		return s, nil
	}
	if s.Commit, err = flatten(ctx, repo, rd, m, cfg); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// flatten applies every layer onto an empty tree and commits the result.
func flatten(ctx context.Context, repo *ostree.Repo, rd oci.Reader, m v1.Manifest, cfg v1.Image) (ostree.Checksum, error) {
	txn, err := repo.Begin()
	if err != nil {
		return ostree.Checksum{}, err
	}
	defer txn.Abort()
	b, err := (&ostree.DirMeta{Mode: 0o040755}).Encode()
	if err != nil {
		return ostree.Checksum{}, err
	}
	rootMeta, err := txn.WriteMetadata(ostree.ObjDirMeta, b)
	if err != nil {
		return ostree.Checksum{}, err
	}
	tree := ostree.NewMutableTree()
	tree.SetMeta(rootMeta)
	for i, desc := range m.Layers {
		_, err := blob.Fetch(ctx, rd, desc, cfg.RootFS.DiffIDs[i], blob.FetchOptions{}, func(tr io.Reader) error {
			_, err := derived.Apply(txn, tree, tr, derived.Options{AllowNonUsr: true})
			return err
		})
		if err != nil {
			return ostree.Checksum{}, fmt.Errorf("layer %d (%s): %w", i, desc.Digest, err)
		}
	}
	c, err := txn.WriteCommit(tree, ostree.CommitOptions{NoParent: true, NoBindings: true, Timestamp: time.Unix(0, 0)})
	if err != nil {
		return ostree.Checksum{}, err
	}
	return c, txn.Commit()
}
