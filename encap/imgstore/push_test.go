package imgstore

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/klauspost/pgzip"
	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// pushTo pushes the stored image imgref to the oci: layout dir:tag.
func pushTo(t *testing.T, repo *ostree.Repo, imgref, dir, tag string, opts PushOptions) (*PushResult, error) {
	t.Helper()
	ctx := context.Background()
	ref, err := oci.ParseRef("oci:" + dir + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	w, err := oci.NewWriter(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return Push(ctx, repo, imgref, w, opts)
}

// compressWith gzips b with a writer made by mk.
func compressWith(t *testing.T, b []byte, mk func(*bytes.Buffer) interface {
	Write([]byte) (int, error)
	Close() error
}) []byte {
	t.Helper()
	var out bytes.Buffer
	zw := mk(&out)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func blobFile(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// TestPushImageReproduces: images pulled into the store are pushed back
// with the same layer blobs and manifest digest, without the original
// blobs, whatever common compressor made the derived layer.
func TestPushImageReproduces(t *testing.T) {
	src := storeRepo(t)
	c := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img := storeEncap(t, src, c, dir, "v1", nil)
	layer := derivedRecordLayer(t)
	type wc = interface {
		Write([]byte) (int, error)
		Close() error
	}
	for _, tc := range []struct {
		tag  string
		blob []byte
		mt   string
	}{
		{"stdlib", compressWith(t, layer, func(b *bytes.Buffer) wc { return gzip.NewWriter(b) }), v1.MediaTypeImageLayerGzip},
		{"stdlib-fast", compressWith(t, layer, func(b *bytes.Buffer) wc { w, _ := gzip.NewWriterLevel(b, gzip.BestSpeed); return w }), v1.MediaTypeImageLayerGzip},
		{"pgzip", compressWith(t, layer, func(b *bytes.Buffer) wc { return pgzip.NewWriter(b) }), v1.MediaTypeImageLayerGzip},
		{"plain", layer, v1.MediaTypeImageLayer},
	} {
		t.Run(tc.tag, func(t *testing.T) {
			_, md := deriveImage(t, dir, img, tc.blob, tc.mt, digest.FromBytes(layer), tc.tag)
			repo := storeRepo(t)
			imgref := "oci:" + dir + ":" + tc.tag
			if _, err := storePull(t, repo, imgref, PullOptions{}); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out")
			res, err := pushTo(t, repo, imgref, out, "pushed", PushOptions{RequireIdentical: true})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Identical || res.ManifestDigest != md {
				t.Fatalf("pushed manifest %s (identical %v), pulled %s", res.ManifestDigest, res.Identical, md)
			}
			for _, l := range res.Layers {
				want, err := os.ReadFile(blobFile(dir, l.Digest))
				if err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(blobFile(out, l.Digest))
				if err != nil || !bytes.Equal(got, want) {
					t.Errorf("layer %s (%s) not reproduced: %v", l.Digest, l.Compressor, err)
				}
			}
			t.Logf("compressors: %v", res.Layers)
			if _, err := os.Stat(blobFile(out, md)); err != nil {
				t.Errorf("manifest %s not in the pushed layout: %v", md, err)
			}
		})
	}
}

// TestPushImageUnknownCompressor: a blob no known compressor reproduces
// (here: a gzip header with a file name) is recompressed, which changes
// its digest and the manifest's but keeps the diff_ids; with
// RequireIdentical the push is refused.
func TestPushImageUnknownCompressor(t *testing.T) {
	src := storeRepo(t)
	c := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img := storeEncap(t, src, c, dir, "v1", nil)
	layer := derivedRecordLayer(t)
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Name = "layer.tar"
	zw.Write(layer)
	zw.Close()
	ld, md := deriveImage(t, dir, img, b.Bytes(), v1.MediaTypeImageLayerGzip, digest.FromBytes(layer), "odd")
	repo := storeRepo(t)
	imgref := "oci:" + dir + ":odd"
	if _, err := storePull(t, repo, imgref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if _, err := pushTo(t, repo, imgref, out, "strict", PushOptions{RequireIdentical: true}); !errors.Is(err, ErrNotReproducible) {
		t.Fatalf("strict push of an unreproducible layer: %v", err)
	}
	res, err := pushTo(t, repo, imgref, out, "loose", PushOptions{})
	if err != nil {
		t.Fatal(err)
	}
	last := res.Layers[len(res.Layers)-1]
	if res.Identical || res.ManifestDigest == md || !last.Recompressed || last.Digest == ld.Digest {
		t.Fatalf("push result %+v", res)
	}
	for _, l := range res.Layers[:len(res.Layers)-1] {
		if l.Recompressed {
			t.Errorf("ostree layer %s recompressed", l.Digest)
		}
	}
	// The pushed image pulls into a fresh store to the same tree.
	orig, err := Image(repo, imgref)
	if err != nil {
		t.Fatal(err)
	}
	repo2 := storeRepo(t)
	res2, err := storePull(t, repo2, "oci:"+out+":loose", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := repo.ReadCommit(orig.MergeCommit)
	b2, _ := repo2.ReadCommit(res2.MergeCommit)
	if a.RootTree != b2.RootTree {
		t.Errorf("re-pulled tree %s, original %s", b2.RootTree, a.RootTree)
	}
}

// TestPushImageZstd: ocitree's own zstd images come back identical too.
func TestPushImageZstd(t *testing.T) {
	src := storeRepo(t)
	c := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	ctx := context.Background()
	ref, _ := oci.ParseRef("oci:" + dir + ":z")
	w, err := oci.NewWriter(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	img, err := encap.Encapsulate(ctx, src, c, w, encap.Options{Compression: blob.Zstd})
	w.Close()
	if err != nil {
		t.Fatal(err)
	}
	repo := storeRepo(t)
	if _, err := storePull(t, repo, "oci:"+dir+":z", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := pushTo(t, repo, "oci:"+dir+":z", filepath.Join(t.TempDir(), "out"), "z", PushOptions{RequireIdentical: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.ManifestDigest != digest.FromBytes(img.Manifest) {
		t.Errorf("zstd image pushed as %s, was %s", res.ManifestDigest, digest.FromBytes(img.Manifest))
	}
}

// recompressImage writes the image of dir:from as dir:to with every layer
// recompressed by compress/gzip at level (same tars, new blobs), and returns
// the new manifest's layer descriptors.
func recompressImage(t *testing.T, dir, from, to string, level int) []v1.Descriptor {
	t.Helper()
	ctx := context.Background()
	src, _ := oci.ParseRef("oci:" + dir + ":" + from)
	rd, err := oci.NewReader(ctx, src)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	mb, _, err := rd.Manifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := rd.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		t.Fatal(err)
	}
	dst, _ := oci.ParseRef("oci:" + dir + ":" + to)
	w, err := oci.NewWriter(ctx, dst)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for i, l := range m.Layers {
		b, err := os.ReadFile(blobFile(dir, l.Digest))
		if err != nil {
			t.Fatal(err)
		}
		if l.MediaType == v1.MediaTypeImageLayerGzip {
			b = compressWith(t, gunzip(t, b), func(o *bytes.Buffer) interface {
				Write([]byte) (int, error)
				Close() error
			} {
				zw, _ := gzip.NewWriterLevel(o, level)
				return zw
			})
		}
		d := v1.Descriptor{MediaType: l.MediaType, Digest: digest.FromBytes(b), Size: int64(len(b)), Annotations: l.Annotations}
		if _, err := w.PutBlob(ctx, bytes.NewReader(b), d); err != nil {
			t.Fatal(err)
		}
		m.Layers[i] = d
	}
	if _, err := w.PutBlob(ctx, bytes.NewReader(cb), m.Config); err != nil {
		t.Fatal(err)
	}
	nb, _ := json.Marshal(m)
	if err := w.PutManifest(ctx, nb, v1.MediaTypeImageManifest); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return m.Layers
}

// TestPullReuseByDiffID: an image whose layers were recompressed (same
// diff_ids, new blobs) pulls without fetching a layer, gets no blob refs
// under digests it never saw (issue 11, class 1), and pushes back identical
// (the record found by diff_id, the compressor on whole blobs).
func TestPullReuseByDiffID(t *testing.T) {
	src := storeRepo(t)
	c := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img := storeEncap(t, src, c, dir, "v1", nil)
	layer := derivedRecordLayer(t)
	gz := compressWith(t, layer, func(b *bytes.Buffer) interface {
		Write([]byte) (int, error)
		Close() error
	} {
		return gzip.NewWriter(b)
	})
	deriveImage(t, dir, img, gz, v1.MediaTypeImageLayerGzip, digest.FromBytes(layer), "d")
	repo := storeRepo(t)
	res1, err := storePull(t, repo, "oci:"+dir+":d", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	layers := recompressImage(t, dir, "d", "d1", gzip.BestSpeed)
	// The recompressed blobs are not there to fetch: the pull must reuse.
	for _, l := range layers {
		if err := os.Remove(blobFile(dir, l.Digest)); err != nil {
			t.Fatal(err)
		}
	}
	chk, err := storePull(t, repo, "oci:"+dir+":d1", PullOptions{Check: true})
	if err != nil {
		t.Fatal(err)
	}
	if chk.LayersFetched != 0 || chk.LayersPresent != len(layers) {
		t.Errorf("check of the recompressed image: %+v, want every layer present", chk)
	}
	res2, err := storePull(t, repo, "oci:"+dir+":d1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.LayersFetched != 0 || res2.BaseCommit != res1.BaseCommit {
		t.Errorf("pull of the recompressed image: %+v", res2)
	}
	a, _ := repo.ReadCommit(res1.MergeCommit)
	b, _ := repo.ReadCommit(res2.MergeCommit)
	if a.RootTree != b.RootTree {
		t.Errorf("merge trees differ: %s vs %s", a.RootTree, b.RootTree)
	}
	refs := refMap(t, repo)
	for _, l := range layers {
		if _, ok := refs[blobRef(t, l.Digest)]; ok {
			t.Errorf("blob ref minted for reused layer %s, whose bytes were never seen", l.Digest)
		}
	}
	realFsck(t, repo)
	out := filepath.Join(t.TempDir(), "out")
	pr, err := pushTo(t, repo, "oci:"+dir+":d1", out, "x", PushOptions{RequireIdentical: true})
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range pr.Layers {
		if l.Digest != layers[i].Digest || l.Compressor != "compress/gzip level 1" {
			t.Errorf("layer %d pushed as %+v, want %s by compress/gzip level 1", i, l, layers[i].Digest)
		}
	}
}

// TestPullVerifyReusedCommit: a commit layer reused by diff_id (stored by an
// unverified pull) is verified all the same; refused, the refs the pull
// wrote for the reused layers are gone again.
func TestPullVerifyReusedCommit(t *testing.T) {
	src := storeRepo(t)
	c := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	storeEncap(t, src, c, dir, "v1", nil)
	repo := storeRepo(t)
	if _, err := storePull(t, repo, "oci:"+dir+":v1", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	recompressImage(t, dir, "v1", "v1z", gzip.BestSpeed)
	before := refMap(t, repo)
	var seen []ostree.Checksum
	refuse := func(_ *ostree.Txn, commit ostree.Checksum) error {
		seen = append(seen, commit)
		return errors.New("no signature")
	}
	_, err := storePull(t, repo, "oci:"+dir+":v1z", PullOptions{VerifyCommit: refuse})
	var refused *RefusedError
	if !errors.As(err, &refused) || !refused.Stored || refused.Commit != c || len(seen) != 1 || seen[0] != c {
		t.Fatalf("pull with a refusing verifier: %v (seen %v)", err, seen)
	}
	if after := refMap(t, repo); len(after) != len(before) {
		t.Errorf("a refused pull left refs: %d before, %d after", len(before), len(after))
	}
	res, err := storePull(t, repo, "oci:"+dir+":v1z", PullOptions{VerifyCommit: func(*ostree.Txn, ostree.Checksum) error { return nil }})
	if err != nil || res.LayersFetched != 0 || res.BaseCommit != c {
		t.Fatalf("pull with an accepting verifier: %+v, %v", res, err)
	}
	// Stored as is: the same image again is verified too.
	seen = nil
	if _, err := storePull(t, repo, "oci:"+dir+":v1z", PullOptions{VerifyCommit: refuse}); !errors.As(err, &refused) || len(seen) != 1 {
		t.Errorf("already-present image with a refusing verifier: %v", err)
	}
}
