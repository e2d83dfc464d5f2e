package imgstore

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// craftImage writes dir:tag from img's manifest and config after mutate
// changed them; extra blobs are written first. Blobs the manifest names
// must already be in the layout or in extra. It is how hostile manifests
// (any digest, any diff_id) are made.
func craftImage(t *testing.T, dir, tag string, img *encap.Result, extra [][]byte, mutate func(m *v1.Manifest, cfg *v1.Image)) {
	t.Helper()
	ctx := context.Background()
	var m v1.Manifest
	var cfg v1.Image
	if err := json.Unmarshal(img.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(img.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	mutate(&m, &cfg)
	ref, err := oci.ParseRef("oci:" + dir + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	w, err := oci.NewWriter(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	put := func(b []byte, mt string) v1.Descriptor {
		d, err := w.PutBlob(ctx, bytes.NewReader(b), v1.Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	for _, b := range extra {
		put(b, v1.MediaTypeImageLayer)
	}
	for _, l := range m.Layers {
		if b, err := os.ReadFile(blobFile(dir, l.Digest)); err == nil {
			put(b, l.MediaType)
		}
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	m.Config = put(cb, v1.MediaTypeImageConfig)
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.PutManifest(ctx, mb, v1.MediaTypeImageManifest); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
}

// pullAs pulls oci:dir:tag into the image ref of name (a fresh name makes
// the pull look every layer up instead of finding the same image stored).
func pullAs(t *testing.T, repo *ostree.Repo, dir, tag, name string) (*PullResult, error) {
	t.Helper()
	ctx := context.Background()
	ref, err := oci.ParseRef("oci:" + dir + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := oci.NewReader(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	return Pull(ctx, repo, rd, name, PullOptions{})
}

// storeSound checks the store with ostree fsck (the CLI) and the store's
// own fsck, and that nothing was written next to the repository.
func storeSound(t *testing.T, repo *ostree.Repo) {
	t.Helper()
	realFsck(t, repo)
	res, err := repo.Fsck()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range res.Problems {
		t.Errorf("repo fsck: %s", p)
	}
	ents, err := os.ReadDir(filepath.Dir(repo.Path()))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if e.Name() != filepath.Base(repo.Path()) {
			t.Errorf("%s written outside the repository", e.Name())
		}
	}
}

// TestPullNoStorePoisoning: hostile manifests that name digests whose bytes
// the pull never sees, or the digest of another kind of layer, mint no ref
// and block no legitimate image; refs poisoned beforehand are fetched again
// (issue 11, class 1).
func TestPullNoStorePoisoning(t *testing.T) {
	src := storeRepo(t)
	ca := storeCommit(t, src, storeFiles(), 1700000000)
	filesC := storeFiles()
	filesC["usr/share/doc/README"] = "version 2\n"
	filesC["usr/bin/tool"] = "#!/bin/sh\necho tool 2\n"
	cc := storeCommit(t, src, filesC, 1700000100)
	dir := filepath.Join(t.TempDir(), "layout")
	imgA := storeEncap(t, src, ca, dir, "a", nil)
	imgC := storeEncap(t, src, cc, dir, "c", imgA)
	layer := derivedRecordLayer(t)
	storeDerive(t, dir, imgA, layer, "e") // A plus one derived layer
	var mA, mC v1.Manifest
	json.Unmarshal(imgA.Manifest, &mA)
	json.Unmarshal(imgC.Manifest, &mC)
	if mA.Layers[0].Digest == mC.Layers[0].Digest {
		t.Fatal("fixture: A and C share their commit layer")
	}
	dC := mC.Layers[0]

	for _, tc := range []struct {
		name string
		// stored are the tags pulled before the hostile image.
		stored []string
		// hostile makes the hostile image (tag "h") or poisons the store.
		hostile func(t *testing.T, repo *ostree.Repo)
		// wantErr: the hostile pull is refused with this; empty: accepted.
		wantErr []string
		// after are the tags a legitimate pull must then succeed for.
		after []string
	}{
		{
			// A's layers (diff_ids) under C's commit-layer digest: reuse
			// by diff_id serves A's content but mints no ref under
			// C's digest, so C still pulls.
			name:   "ostree layer reuse under another image's digest",
			stored: []string{"a"},
			hostile: func(t *testing.T, repo *ostree.Repo) {
				craftImage(t, dir, "h", imgA, nil, func(m *v1.Manifest, _ *v1.Image) { m.Layers[0] = dC })
				if _, err := pullAs(t, repo, dir, "h", "h"); err != nil {
					t.Fatalf("reuse by diff_id: %v", err)
				}
			},
			after: []string{"c", "a"},
		},
		{
			// A derived slot with C's commit-layer digest and the diff_id
			// of a stored derived layer.
			name:   "derived layer reuse under an ostree layer's digest",
			stored: []string{"e"},
			hostile: func(t *testing.T, repo *ostree.Repo) {
				craftImage(t, dir, "h", imgA, nil, func(m *v1.Manifest, cfg *v1.Image) {
					m.Layers = append(m.Layers, dC)
					cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(layer))
					cfg.History = append(cfg.History, v1.History{CreatedBy: "RUN derive"})
				})
				if _, err := pullAs(t, repo, dir, "h", "h"); err != nil {
					t.Fatalf("reuse by diff_id: %v", err)
				}
			},
			after: []string{"c", "a", "e"},
		},
		{
			// A derived slot listing A's own commit layer with a diff_id
			// nothing stored has: the ref is another kind's, so the blob
			// is fetched, and its diff_id is refused.
			name:   "derived slot with the image's own ostree layer",
			stored: []string{"a", "e"},
			hostile: func(t *testing.T, repo *ostree.Repo) {
				craftImage(t, dir, "h", imgA, nil, func(m *v1.Manifest, cfg *v1.Image) {
					m.Layers = append(m.Layers, m.Layers[0])
					cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromString("not this layer"))
					cfg.History = append(cfg.History, v1.History{CreatedBy: "RUN derive"})
				})
				_, err := pullAs(t, repo, dir, "h", "h")
				for _, w := range []string{mA.Layers[0].Digest.String(), "diff"} {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Fatalf("derived slot with an ostree layer: %v, want an error with %q", err, w)
					}
				}
			},
			after: []string{"a", "e", "c"},
		},
		{
			// The same with the layer's true diff_id: the bytes verify and
			// the layer may apply, but the ostree layer's blob ref is
			// another kind's and is left alone.
			name:   "derived slot with the image's own ostree layer and its diff_id",
			stored: []string{"a"},
			hostile: func(t *testing.T, repo *ostree.Repo) {
				before := refMap(t, repo)
				craftImage(t, dir, "h", imgA, nil, func(m *v1.Manifest, cfg *v1.Image) {
					m.Layers = append(m.Layers, m.Layers[0])
					cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, cfg.RootFS.DiffIDs[0])
					cfg.History = append(cfg.History, v1.History{CreatedBy: "RUN derive"})
				})
				_, err := pullAs(t, repo, dir, "h", "h")
				t.Logf("derived slot with an ostree layer and its diff_id: %v", err)
				name := blobRef(t, mA.Layers[0].Digest)
				if after := refMap(t, repo); after[name] != before[name] {
					t.Errorf("%s moved from %s to %s", name, before[name], after[name])
				}
			},
			after: []string{"a", "c"},
		},
		{
			// Refs poisoned beforehand (by an older ocitree or by hand):
			// C's blob and record refs point at A's. They disagree with
			// what C's pull needs and are fetched again.
			name:   "poisoned refs in the store",
			stored: []string{"a", "c"},
			hostile: func(t *testing.T, repo *ostree.Repo) {
				refs := refMap(t, repo)
				txn, err := repo.Begin()
				if err != nil {
					t.Fatal(err)
				}
				defer txn.Abort()
				for _, f := range []func(digest.Digest) (string, error){BlobRefName, TarSplitRefName} {
					from, _ := f(mA.Layers[0].Digest)
					to, _ := f(dC.Digest)
					c := refs[from]
					if err := txn.SetRef(to, &c); err != nil {
						t.Fatal(err)
					}
				}
				if err := txn.Commit(); err != nil {
					t.Fatal(err)
				}
			},
			after: []string{"c", "a"},
		},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			repo := storeRepo(t)
			for _, tag := range tc.stored {
				if _, err := storePull(t, repo, "oci:"+dir+":"+tag, PullOptions{}); err != nil {
					t.Fatalf("pull %s: %v", tag, err)
				}
			}
			tc.hostile(t, repo)
			storeSound(t, repo)
			for _, tag := range tc.after {
				res, err := pullAs(t, repo, dir, tag, "again-"+tag)
				if err != nil {
					t.Fatalf("legitimate pull of %s after the hostile image: %v", tag, err)
				}
				want := ca
				if tag == "c" {
					want = cc
				}
				if res.BaseCommit != want {
					t.Errorf("pull of %s: commit %s, want %s", tag, res.BaseCommit, want)
				}
			}
			storeSound(t, repo)
		})
	}
}
