package imgstore

import (
	"archive/tar"
	"bytes"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestImageOps(t *testing.T) {
	src := storeRepo(t)
	c := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img := storeEncap(t, src, c, dir, "v1", nil)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	body := "derived\n"
	if err := tw.WriteHeader(&tar.Header{Name: "usr/share/doc/EXTRA", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	tw.Close()
	md := storeDerive(t, dir, img, tb.Bytes(), "derived")

	repo := storeRepo(t)
	ref1, ref2 := "oci:"+dir+":v1", "oci:"+dir+":derived"
	for _, r := range []string{ref1, ref2} {
		if _, err := storePull(t, repo, r, PullOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// inspect
	si, err := Image(repo, ref1)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(si.Config, img.Config) {
		t.Errorf("stored config differs from the image's")
	}
	if si.ManifestDigest != img.ManifestDigest.String() || digest.FromBytes(si.Manifest) != img.ManifestDigest {
		t.Errorf("stored manifest digest %s (bytes hash to %s), want %s", si.ManifestDigest, digest.FromBytes(si.Manifest), img.ManifestDigest)
	}
	si2, err := Image(repo, ref2)
	if err != nil {
		t.Fatal(err)
	}
	if si2.ManifestDigest != md.String() {
		t.Errorf("derived manifest digest %s, want %s", si2.ManifestDigest, md)
	}
	missing := "oci:" + dir + ":nope"
	if _, err := Image(repo, missing); !errors.Is(err, ErrImageNotStored) || !strings.Contains(err.Error(), missing) {
		t.Errorf("missing image: %v, want ErrImageNotStored naming %s", err, missing)
	}

	// history
	h, err := History(repo, ref2)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(si2.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if len(h) != len(img.Layers)+1 || len(h) != len(m.Layers) {
		t.Fatalf("history has %d entries, want %d", len(h), len(img.Layers)+1)
	}
	for i, e := range h {
		want := LayerComponent
		switch {
		case i == 0:
			want = LayerCommit
		case i == len(h)-1:
			want = LayerDerived
		}
		if e.Index != i || e.Kind != want || e.Digest != m.Layers[i].Digest || e.Size != m.Layers[i].Size {
			t.Errorf("history[%d] = %+v, want kind %s, digest %s, size %d", i, e, want, m.Layers[i].Digest, m.Layers[i].Size)
		}
		if i < len(img.Layers) && e.CreatedBy != img.Layers[i].CreatedBy {
			t.Errorf("history[%d].CreatedBy = %q, want %q", i, e.CreatedBy, img.Layers[i].CreatedBy)
		}
	}
	if last := h[len(h)-1]; last.CreatedBy != "RUN derive" || last.Digest != digest.FromBytes(tb.Bytes()) {
		t.Errorf("derived layer entry %+v", last)
	}

	// remove: the existing image goes even though another is missing; the
	// shared layer refs stay while ref2 needs them.
	before := refMap(t, repo)
	n, err := Remove(repo, []string{ref1, missing})
	if !errors.Is(err, ErrImageNotStored) || !strings.Contains(err.Error(), missing) || strings.Contains(err.Error(), ref1+",") {
		t.Errorf("remove with a missing image: %v", err)
	}
	if n != 0 {
		t.Errorf("GC removed %d layer refs still used by %s", n, ref2)
	}
	after := refMap(t, repo)
	r1name, _ := ImageRefName(ref1)
	if _, ok := after[r1name]; ok || len(after) != len(before)-1 {
		t.Errorf("after remove: %d refs (was %d), %s present: %v", len(after), len(before), r1name, ok)
	}
	if _, err := Image(repo, ref1); !errors.Is(err, ErrImageNotStored) {
		t.Errorf("removed image still readable: %v", err)
	}

	// remove the last image: every layer ref goes.
	n, err = Remove(repo, []string{ref2})
	if err != nil {
		t.Fatal(err)
	}
	if n != len(img.Layers)+1 { // and the derived layer's
		t.Errorf("GC removed %d layer refs, want %d", n, len(img.Layers)+1)
	}
	if refs := refMap(t, repo); len(refs) != 0 {
		t.Errorf("refs left: %v", refs)
	}

	// prune frees the objects.
	objs, err := repo.ListObjects(imageOpsAnyObject)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := Prune(repo)
	if err != nil {
		t.Fatal(err)
	}
	if pr.LayerRefs != 0 || pr.Objects == 0 || pr.Objects > len(objs) || pr.Freed <= 0 {
		t.Errorf("prune: %+v, want all %d objects deleted", pr, len(objs))
	}
	if objs, err := repo.ListObjects(imageOpsAnyObject); err != nil || len(objs) != 0 {
		t.Errorf("objects left after prune: %d (%v)", len(objs), err)
	}
	pr, err = Prune(repo)
	if err != nil || pr.Objects != 0 || pr.LayerRefs != 0 || pr.Freed != 0 {
		t.Errorf("second prune: %+v, %v", pr, err)
	}
	realFsck(t, repo)
}

// TestPruneImagesKeepsStored checks that a prune keeps everything a stored
// image needs: its layer refs and the objects they and the merge commit reach.
func TestPruneImagesKeepsStored(t *testing.T) {
	src := storeRepo(t)
	c := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	storeEncap(t, src, c, dir, "v1", nil)
	repo := storeRepo(t)
	ref := "oci:" + dir + ":v1"
	if _, err := storePull(t, repo, ref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	before := refMap(t, repo)
	pr, err := Prune(repo)
	if err != nil {
		t.Fatal(err)
	}
	if pr.LayerRefs != 0 {
		t.Errorf("prune removed %d layer refs of a stored image", pr.LayerRefs)
	}
	if after := refMap(t, repo); len(after) != len(before) {
		t.Errorf("refs changed: %d -> %d", len(before), len(after))
	}
	if _, err := Image(repo, ref); err != nil {
		t.Fatal(err)
	}
	realFsck(t, repo)
}

func imageOpsAnyObject(ostree.ObjectType) bool { return true }
