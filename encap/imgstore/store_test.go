package imgstore

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// storeFiles is a small tree whose default path grouping gives several
// component layers.
func storeFiles() map[string]string {
	return map[string]string{
		"usr/bin/tool":               "#!/bin/sh\necho tool\n",
		"usr/bin/other":              strings.Repeat("binary ", 3000),
		"usr/bin/sh":                 "->tool",
		"usr/lib/libfoo/libfoo.so.1": strings.Repeat("\x7fELF foo", 4000),
		"usr/lib/libbar/libbar.so.2": strings.Repeat("\x7fELF bar", 5000),
		"usr/share/doc/README":       "version 1\n",
		"usr/share/man/tool.1":       strings.Repeat(".TH tool\n", 100),
		"usr/etc/os-release":         "ID=test\n",
		"usr/etc/empty":              "",
	}
}

// storeCommit writes files into a fresh directory and commits it into repo.
func storeCommit(t *testing.T, repo *ostree.Repo, files map[string]string, ts int64) ostree.Checksum {
	t.Helper()
	src := filepath.Join(t.TempDir(), "tree")
	for p, content := range files {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := repo.CommitDir(src, ostree.CommitOptions{Subject: "build", NoParent: true, Timestamp: time.Unix(ts, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// storeEncap encapsulates c into the oci: layout dir under tag, keeping the
// layer layout of prior (an image reference) when set.
func storeEncap(t *testing.T, repo *ostree.Repo, c ostree.Checksum, dir, tag string, prior *encap.Result) *encap.Result {
	t.Helper()
	ctx := context.Background()
	ref, err := oci.ParseRef("oci:" + dir + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	opts := encap.Options{}
	if prior != nil {
		layout, err := encap.ParseImageLayout(prior.Manifest, prior.Config)
		if err != nil {
			t.Fatal(err)
		}
		ann, err := layout.ComponentAnnotations()
		if err != nil {
			t.Fatal(err)
		}
		opts.Prior = pack.PriorLayers(ann)
	}
	w, err := oci.NewWriter(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	res, err := encap.Encapsulate(ctx, repo, c, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func storeRepo(t *testing.T) *ostree.Repo {
	t.Helper()
	r, err := ostree.Init(filepath.Join(t.TempDir(), "repo"), ostree.ModeBareUser)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func storePull(t *testing.T, repo *ostree.Repo, imgref string, opts PullOptions) (*PullResult, error) {
	t.Helper()
	ctx := context.Background()
	ref, err := oci.ParseRef(imgref)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := oci.NewReader(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	return Pull(ctx, repo, rd, ref.ImageString(), opts)
}

func blobRef(t *testing.T, d digest.Digest) string {
	t.Helper()
	n, err := BlobRefName(d)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func refMap(t *testing.T, repo *ostree.Repo) map[string]ostree.Checksum {
	t.Helper()
	refs, err := repo.ListRefs()
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]ostree.Checksum{}
	for _, r := range refs {
		m[r.Name] = r.Checksum
	}
	return m
}

func realFsck(t *testing.T, repo *ostree.Repo) {
	t.Helper()
	if testing.Short() {
		return // -short: no peers
	}
	if _, err := exec.LookPath("ostree"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ostree not on PATH (CI=true)")
		}
		t.Log("ostree not on PATH: fsck skipped")
		return
	}
	out, err := exec.Command("ostree", "fsck", "--repo="+repo.Path()).CombinedOutput()
	if err != nil || strings.Contains(string(out), "Corrupted") || strings.Contains(string(out), "missing") {
		t.Errorf("ostree fsck: %v\n%s", err, out)
	}
}

func TestPullImage(t *testing.T) {
	src := storeRepo(t)
	files := storeFiles()
	c1 := storeCommit(t, src, files, 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img1 := storeEncap(t, src, c1, dir, "v1", nil)
	if len(img1.Layers) < 4 {
		t.Fatalf("want several component layers, got %d layers", len(img1.Layers))
	}
	files["usr/share/doc/README"] = "version 2\n"
	c2 := storeCommit(t, src, files, 1700000100)
	img2 := storeEncap(t, src, c2, dir, "v2", img1)

	repo := storeRepo(t)
	ref1 := "oci:" + dir + ":v1"

	// --check: nothing written, every layer needed.
	chk, err := storePull(t, repo, ref1, PullOptions{Check: true})
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, l := range img1.Layers {
		total += l.Descriptor.Size
	}
	if chk.LayersFetched != len(img1.Layers) || chk.BytesFetched != total || chk.LayersPresent != 0 {
		t.Errorf("check: %+v, want %d layers, %d bytes", chk, len(img1.Layers), total)
	}
	if refs := refMap(t, repo); len(refs) != 0 {
		t.Errorf("check wrote refs: %v", refs)
	}

	// First pull.
	res, err := storePull(t, repo, ref1, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.LayersFetched != len(img1.Layers) || res.LayersPresent != 0 || res.BaseCommit != c1 {
		t.Errorf("first pull: %+v, want %d layers fetched, base %s", res, len(img1.Layers), c1)
	}
	if res.ManifestDigest != img1.ManifestDigest {
		t.Errorf("manifest digest %s, want %s", res.ManifestDigest, img1.ManifestDigest)
	}
	orig, err := src.ReadCommit(c1)
	if err != nil {
		t.Fatal(err)
	}
	merge, err := repo.ReadCommit(res.MergeCommit)
	if err != nil {
		t.Fatal(err)
	}
	if merge.RootTree != orig.RootTree || merge.RootMeta != orig.RootMeta {
		t.Errorf("merge commit tree %s/%s, original %s/%s", merge.RootTree, merge.RootMeta, orig.RootTree, orig.RootMeta)
	}
	if merge.Parent != c1 {
		t.Errorf("merge commit parent %s, want %s", merge.Parent, c1)
	}
	imgRefName, _ := ImageRefName("oci:" + dir + ":v1")
	refs := refMap(t, repo)
	if refs[imgRefName] != res.MergeCommit {
		t.Errorf("image ref %s = %s, want %s (refs %v)", imgRefName, refs[imgRefName], res.MergeCommit, refs)
	}
	for i, l := range img1.Layers {
		c, ok := refs[blobRef(t, l.Descriptor.Digest)]
		if !ok {
			t.Errorf("layer %d: no blob ref", i)
			continue
		}
		if i == 0 && c != c1 {
			t.Errorf("commit layer ref = %s, want %s", c, c1)
		}
		if i > 0 {
			// The object-set commit: one file per object named by it.
			cm, err := repo.ReadCommit(c)
			if err != nil {
				t.Fatal(err)
			}
			if cm.Timestamp != 0 || len(cm.Metadata) != 0 || !cm.Parent.IsZero() {
				t.Errorf("layer %d: object-set commit %+v", i, cm)
			}
			dt, err := repo.ReadDirTree(cm.RootTree)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range dt.Files {
				if f.Name != f.Checksum.String() {
					t.Errorf("layer %d: entry %s names object %s", i, f.Name, f.Checksum)
				}
			}
			dm, err := repo.ReadDirMeta(cm.RootMeta)
			if err != nil {
				t.Fatal(err)
			}
			if dm.UID != 0 || dm.GID != 0 || dm.Mode != 0o40755 || len(dm.Xattrs) != 0 {
				t.Errorf("layer %d: root dirmeta %+v", i, dm)
			}
		}
	}
	realFsck(t, repo)

	// The same image again: nothing fetched.
	again, err := storePull(t, repo, ref1, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if again.LayersFetched != 0 || again.BytesFetched != 0 || !again.AlreadyPresent || again.MergeCommit != res.MergeCommit {
		t.Errorf("second pull: %+v", again)
	}

	// The rebuilt image: only the changed layers.
	old := map[digest.Digest]bool{}
	for _, l := range img1.Layers {
		old[l.Descriptor.Digest] = true
	}
	var changed int
	var changedBytes int64
	for _, l := range img2.Layers {
		if !old[l.Descriptor.Digest] {
			changed++
			changedBytes += l.Descriptor.Size
		}
	}
	if changed != 2 {
		t.Errorf("the rebuild changed %d layers, want 2 (commit layer and the doc layer)", changed)
	}
	before := refMap(t, repo)
	chk2, err := storePull(t, repo, "oci:"+dir+":v2", PullOptions{Check: true})
	if err != nil {
		t.Fatal(err)
	}
	if chk2.LayersFetched != changed || chk2.BytesFetched != changedBytes || chk2.LayersPresent != len(img2.Layers)-changed {
		t.Errorf("check of v2: %+v, want %d layers (%d bytes)", chk2, changed, changedBytes)
	}
	res2, err := storePull(t, repo, "oci:"+dir+":v2", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.LayersFetched != changed || res2.BytesFetched != changedBytes || res2.LayersPresent != len(img2.Layers)-changed {
		t.Errorf("pull of v2: %+v, want %d layers fetched (%d bytes)", res2, changed, changedBytes)
	}
	after := refMap(t, repo)
	for _, l := range img2.Layers {
		n := blobRef(t, l.Descriptor.Digest)
		if old[l.Descriptor.Digest] && after[n] != before[n] {
			t.Errorf("unchanged layer %s: ref moved from %s to %s", l.Descriptor.Digest, before[n], after[n])
		}
		if _, ok := after[n]; !ok {
			t.Errorf("layer %s: no blob ref", l.Descriptor.Digest)
		}
	}
	orig2, _ := src.ReadCommit(c2)
	merge2, err := repo.ReadCommit(res2.MergeCommit)
	if err != nil {
		t.Fatal(err)
	}
	if merge2.RootTree != orig2.RootTree || res2.BaseCommit != c2 {
		t.Errorf("v2 merge tree %s base %s, want %s base %s", merge2.RootTree, res2.BaseCommit, orig2.RootTree, c2)
	}
	// Both images are stored: the v1-only layers are still referenced.
	if res2.GCRemoved != 0 {
		t.Errorf("GC removed %d refs while both images are stored", res2.GCRemoved)
	}

	list, err := List(repo)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 2 || list[0].ImageRef != "oci:"+dir+":v1" || list[1].ImageRef != "oci:"+dir+":v2" ||
		list[0].MergeCommit != res.MergeCommit || list[1].ManifestDigest != img2.ManifestDigest.String() {
		t.Errorf("List = %+v", list)
	}

	// Dropping v1 makes its own layers garbage.
	if err := repo.SetRef(imgRefName, nil); err != nil {
		t.Fatal(err)
	}
	n, err := GC(repo)
	if err != nil {
		t.Fatal(err)
	}
	if n != changed {
		t.Errorf("GC removed %d layer refs, want %d", n, changed)
	}
	final := refMap(t, repo)
	for _, l := range img1.Layers {
		_, ok := final[blobRef(t, l.Descriptor.Digest)]
		if want := !old[l.Descriptor.Digest] || func() bool {
			for _, l2 := range img2.Layers {
				if l2.Descriptor.Digest == l.Descriptor.Digest {
					return true
				}
			}
			return false
		}(); ok != want {
			t.Errorf("after GC, ref of v1 layer %s present=%v, want %v", l.Descriptor.Digest, ok, want)
		}
	}
	realFsck(t, repo)
}

func TestPullImageCorruptBlob(t *testing.T) {
	src := storeRepo(t)
	c := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img := storeEncap(t, src, c, dir, "v1", nil)
	for _, bad := range []int{1, 0} {
		d := img.Layers[bad].Descriptor.Digest
		blob := filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
		b, err := os.ReadFile(blob)
		if err != nil {
			t.Fatal(err)
		}
		saved := append([]byte(nil), b...)
		b[len(b)/2] ^= 0x55
		if err := os.WriteFile(blob, b, 0o644); err != nil {
			t.Fatal(err)
		}
		repo := storeRepo(t)
		_, err = storePull(t, repo, "oci:"+dir+":v1", PullOptions{})
		if err == nil {
			t.Fatalf("layer %d corrupted: pull succeeded", bad)
		}
		t.Logf("layer %d corrupted: %v", bad, err)
		refs := refMap(t, repo)
		for name := range refs {
			if strings.HasPrefix(name, ImageRefPrefix) {
				t.Errorf("layer %d corrupted: image ref %s written", bad, name)
			}
		}
		if _, ok := refs[blobRef(t, d)]; ok {
			t.Errorf("layer %d corrupted: its blob ref was written", bad)
		}
		realFsck(t, repo)
		if err := os.WriteFile(blob, saved, 0o644); err != nil {
			t.Fatal(err)
		}
		// Repaired, the pull completes, reusing what the failed one kept.
		res, err := storePull(t, repo, "oci:"+dir+":v1", PullOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.BaseCommit != c || res.LayersFetched+res.LayersPresent != len(img.Layers) {
			t.Errorf("pull after repair: %+v", res)
		}
		realFsck(t, repo)
	}
}

func TestPullImageCancelled(t *testing.T) {
	// A pull cancelled before it starts leaves nothing.
	src := storeRepo(t)
	c := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	storeEncap(t, src, c, dir, "v1", nil)
	repo := storeRepo(t)
	ref, _ := oci.ParseRef("oci:" + dir + ":v1")
	rd, err := oci.NewReader(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if _, _, err := rd.Manifest(context.Background()); err != nil {
		t.Fatal(err)
	}
	if _, err := rd.Config(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = Pull(ctx, repo, rd, ref.ImageString(), PullOptions{})
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled pull: %v, want context.Canceled", err)
	}
	for name := range refMap(t, repo) {
		if strings.HasPrefix(name, ImageRefPrefix) {
			t.Errorf("cancelled pull wrote %s", name)
		}
	}
}

// storeDerive writes the image img of the layout dir plus one uncompressed
// derived layer (the tar layer) as dir:tag and returns the manifest digest.
func storeDerive(t *testing.T, dir string, img *encap.Result, layer []byte, tag string) digest.Digest {
	_, md := deriveImage(t, dir, img, layer, v1.MediaTypeImageLayer, digest.FromBytes(layer), tag)
	return md
}

// deriveImage writes the image img of the layout dir plus one derived layer
// blob (media type mt, uncompressed digest diffID) as dir:tag, and returns
// the layer's descriptor and the manifest digest.
func deriveImage(t *testing.T, dir string, img *encap.Result, blob []byte, mt string, diffID digest.Digest, tag string) (v1.Descriptor, digest.Digest) {
	t.Helper()
	ctx := context.Background()
	ref, err := oci.ParseRef("oci:" + dir + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	var cfg v1.Image
	if err := json.Unmarshal(img.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(img.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	w, err := oci.NewWriter(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	for _, l := range m.Layers {
		b, err := os.ReadFile(filepath.Join(dir, "blobs", l.Digest.Algorithm().String(), l.Digest.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.PutBlob(ctx, bytes.NewReader(b), l); err != nil {
			t.Fatal(err)
		}
	}
	ld, err := w.PutBlob(ctx, bytes.NewReader(blob), v1.Descriptor{MediaType: mt, Digest: digest.FromBytes(blob), Size: int64(len(blob))})
	if err != nil {
		t.Fatal(err)
	}
	m.Layers = append(m.Layers, ld)
	cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, diffID)
	cfg.History = append(cfg.History, v1.History{CreatedBy: "RUN derive"})
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config, err = w.PutBlob(ctx, bytes.NewReader(cb), v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}); err != nil {
		t.Fatal(err)
	}
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
	return ld, digest.FromBytes(mb)
}

// storeLookup returns the checksum of the file at p in commit c.
func storeLookup(t *testing.T, repo *ostree.Repo, c ostree.Checksum, p string) (ostree.Checksum, bool) {
	t.Helper()
	cm, err := repo.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := ostree.NewMutableTreeFrom(repo, cm.RootTree, cm.RootMeta)
	parts := strings.Split(p, "/")
	for _, name := range parts[:len(parts)-1] {
		sub, ok, err := dir.Dir(name)
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return ostree.Checksum{}, false
		}
		dir = sub
	}
	f, ok, err := dir.File(parts[len(parts)-1])
	if err != nil {
		t.Fatal(err)
	}
	return f, ok
}

func TestPullImageDerived(t *testing.T) {
	src := storeRepo(t)
	c := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img := storeEncap(t, src, c, dir, "v1", nil)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, e := range []struct{ name, body string }{
		{"usr/share/doc/EXTRA", "added by a derived layer\n"},
		{"usr/share/man/.wh.tool.1", ""},
		{"etc/derived.conf", "x=1\n"},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	md := storeDerive(t, dir, img, tb.Bytes(), "derived")

	repo := storeRepo(t)
	// The plain image first: then the derived one needs only its own layer.
	if _, err := storePull(t, repo, "oci:"+dir+":v1", PullOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := storePull(t, repo, "oci:"+dir+":derived", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.LayersFetched != 1 || res.LayersPresent != len(img.Layers) || res.BaseCommit != c || res.ManifestDigest != md {
		t.Errorf("derived pull: %+v, want 1 layer fetched, %d present, base %s", res, len(img.Layers), c)
	}
	if _, ok := storeLookup(t, repo, res.MergeCommit, "usr/share/doc/EXTRA"); !ok {
		t.Error("merge commit lacks usr/share/doc/EXTRA")
	}
	if _, ok := storeLookup(t, repo, res.MergeCommit, "usr/etc/derived.conf"); !ok {
		t.Error("merge commit lacks usr/etc/derived.conf (etc -> usr/etc)")
	}
	if _, ok := storeLookup(t, repo, res.MergeCommit, "usr/share/man/tool.1"); ok {
		t.Error("the whiteout did not remove usr/share/man/tool.1")
	}
	if _, ok := storeLookup(t, repo, res.MergeCommit, "usr/bin/tool"); !ok {
		t.Error("merge commit lacks base file usr/bin/tool")
	}
	cm, err := repo.ReadCommit(res.MergeCommit)
	if err != nil {
		t.Fatal(err)
	}
	if cm.Parent != c || cm.Metadata.String("ostree.manifest-digest") != md.String() {
		t.Errorf("merge commit parent %s digest %q", cm.Parent, cm.Metadata.String("ostree.manifest-digest"))
	}
	again, err := storePull(t, repo, "oci:"+dir+":derived", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !again.AlreadyPresent || again.LayersFetched != 0 || again.MergeCommit != res.MergeCommit {
		t.Errorf("second derived pull: %+v", again)
	}
	realFsck(t, repo)
}

// TestPullImageRecompressedBlob replaces a layer blob by another gzip of the
// same tar: every object checks out and the diff_id matches, but the blob
// digest does not, so the layer is refused.
func TestPullImageRecompressedBlob(t *testing.T) {
	src := storeRepo(t)
	c := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img := storeEncap(t, src, c, dir, "v1", nil)
	d := img.Layers[1].Descriptor.Digest
	blob := filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
	f, err := os.Open(blob)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	size := int(img.Layers[1].Descriptor.Size)
	gz := func(extra []byte) []byte {
		var out bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&out, gzip.BestCompression)
		zw.Header.Extra = extra
		zw.Write(plain)
		zw.Close()
		return out.Bytes()
	}
	// Same size (the gzip header's extra field pads it), so only the
	// digest can tell.
	b := gz(nil)
	if len(b)+2 > size {
		t.Skipf("recompressed blob is too large (%d, original %d)", len(b), size)
	}
	b = gz(make([]byte, size-len(b)-2))
	if len(b) != size {
		t.Fatalf("padded blob has %d bytes, want %d", len(b), size)
	}
	if err := os.WriteFile(blob, b, 0o644); err != nil {
		t.Fatal(err)
	}
	repo := storeRepo(t)
	_, err = storePull(t, repo, "oci:"+dir+":v1", PullOptions{})
	if !errors.Is(err, oci.ErrDigestMismatch) {
		t.Fatalf("pull of a recompressed blob: %v, want a digest mismatch", err)
	}
	refs := refMap(t, repo)
	if _, ok := refs[blobRef(t, d)]; ok {
		t.Error("the bad layer's blob ref was written")
	}
	for name := range refs {
		if strings.HasPrefix(name, ImageRefPrefix) {
			t.Errorf("image ref %s written", name)
		}
	}
	realFsck(t, repo)
}

// derivedRecordLayer is a derived layer with what its record must keep:
// a dropped /tmp file with content, a duplicate path, a whiteout and an
// xattr, in PAX format.
func derivedRecordLayer(t *testing.T) []byte {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, e := range []struct {
		name, body string
		pax        map[string]string
	}{
		{"usr/share/doc/EXTRA", "first copy\n", nil},
		{"tmp/build.log", "dropped by the store, kept by the record\n", nil},
		{"usr/share/man/.wh.tool.1", "", nil},
		{"etc/derived.conf", "x=1\n", map[string]string{"SCHILY.xattr.user.note": "derived"}},
		{"usr/share/doc/EXTRA", "second copy wins\n", nil},
	} {
		h := &tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), Typeflag: tar.TypeReg, PAXRecords: e.pax}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e.body))
	}
	tw.Close()
	return tb.Bytes()
}

// rebuiltLayer rebuilds a stored layer's tar from its record.
func rebuiltLayer(t *testing.T, repo *ostree.Repo, d digest.Digest, derived bool) []byte {
	t.Helper()
	name, _ := TarSplitRefName(d)
	if derived {
		name, _ = BlobRefName(d)
	}
	c, err := repo.ReadRef(name)
	if err != nil {
		t.Fatalf("layer %s has no record: %v", d, err)
	}
	rec, err := readLayerRecord(repo, c)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := withAssembledTar(repo, rec, func(r io.Reader) error { _, err := io.Copy(&out, r); return err }); err != nil {
		t.Fatalf("layer %s: %v", d, err)
	}
	return out.Bytes()
}

// TestPullImageLayerRecords: every pulled layer is recorded so that its
// exact tar comes back from the store, and a derived layer already stored
// is applied onto a new base without being fetched again.
func TestPullImageLayerRecords(t *testing.T) {
	src := storeRepo(t)
	c1 := storeCommit(t, src, storeFiles(), 1700000000)
	files := storeFiles()
	files["usr/bin/tool"] = "tool, version 2\n"
	c2 := storeCommit(t, src, files, 1700000100)
	dir := filepath.Join(t.TempDir(), "layout")
	img1 := storeEncap(t, src, c1, dir, "v1", nil)
	img2 := storeEncap(t, src, c2, dir, "v2", img1)
	layer := derivedRecordLayer(t)
	storeDerive(t, dir, img1, layer, "d1")
	storeDerive(t, dir, img2, layer, "d2")

	repo := storeRepo(t)
	res1, err := storePull(t, repo, "oci:"+dir+":d1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal([]byte(mustMergeMeta(t, repo, res1.MergeCommit, "ostree.manifest")), &m); err != nil {
		t.Fatal(err)
	}
	for i, l := range m.Layers {
		blob, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", l.Digest.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		want := blob
		if i < len(m.Layers)-1 {
			want = gunzip(t, blob)
		}
		if got := rebuiltLayer(t, repo, l.Digest, i == len(m.Layers)-1); !bytes.Equal(got, want) {
			t.Errorf("layer %d: rebuilt tar (%d bytes) differs from the pulled one (%d bytes)", i, len(got), len(want))
		}
	}

	// The derived layer's blob is gone from the layout: the second image
	// can only be built from the record.
	derivedDigest := m.Layers[len(m.Layers)-1].Digest
	if err := os.Remove(filepath.Join(dir, "blobs", "sha256", derivedDigest.Encoded())); err != nil {
		t.Fatal(err)
	}
	res2, err := storePull(t, repo, "oci:"+dir+":d2", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res2.LayersFetched == 0 || res2.LayersPresent < 2 {
		t.Errorf("second pull: %+v", res2)
	}
	want := map[string]bool{"usr/share/doc/EXTRA": true, "usr/etc/derived.conf": true, "usr/share/man/tool.1": false, "tmp/build.log": false}
	for p, present := range want {
		if _, ok := storeLookup(t, repo, res2.MergeCommit, p); ok != present {
			t.Errorf("merge commit of d2: %s present = %v, want %v", p, ok, present)
		}
	}
	f1, _ := storeLookup(t, repo, res1.MergeCommit, "usr/share/doc/EXTRA")
	f2, _ := storeLookup(t, repo, res2.MergeCommit, "usr/share/doc/EXTRA")
	ct, err := repo.OpenContent(f2)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(ct.Payload)
	ct.Payload.Close()
	if f1 != f2 || string(body) != "second copy wins\n" {
		t.Errorf("EXTRA in d2 = %q (%s), d1 has %s", body, f2, f1)
	}
	if tool, _ := storeLookup(t, repo, res2.MergeCommit, "usr/bin/tool"); tool == (ostree.Checksum{}) {
		t.Error("d2 lacks usr/bin/tool")
	}
	realFsck(t, repo)

	// Removing the images removes the records with the layers.
	if _, err := Remove(repo, []string{"oci:" + dir + ":d1", "oci:" + dir + ":d2"}); err != nil {
		t.Fatal(err)
	}
	if refs := refMap(t, repo); len(refs) != 0 {
		t.Errorf("refs left after removing every image: %v", refs)
	}
}

func mustMergeMeta(t *testing.T, repo *ostree.Repo, c ostree.Checksum, key string) string {
	t.Helper()
	cm, err := repo.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	return cm.Metadata.String(key)
}

func gunzip(t *testing.T, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPullCheckCachedUpdate: a check of a stored image whose tag moved
// records the new manifest as the image's cached update (and nothing else);
// pulling it clears the update.
func TestPullCheckCachedUpdate(t *testing.T) {
	src := storeRepo(t)
	c1 := storeCommit(t, src, storeFiles(), 1700000000)
	files := storeFiles()
	files["usr/share/doc/README"] = "version 2\n"
	c2 := storeCommit(t, src, files, 1700000100)
	dir := filepath.Join(t.TempDir(), "layout")
	img1 := storeEncap(t, src, c1, dir, "stable", nil)
	repo := storeRepo(t)
	imgref := "oci:" + dir + ":stable"
	if _, err := storePull(t, repo, imgref, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	listed := func() ImageInfo {
		t.Helper()
		imgs, err := List(repo)
		if err != nil || len(imgs) != 1 {
			t.Fatalf("List = %v, %v", imgs, err)
		}
		return imgs[0]
	}
	if u := listed().CachedUpdate; u != nil {
		t.Fatalf("fresh image has a cached update %+v", u)
	}
	// A check while the tag is unchanged records nothing.
	if _, err := storePull(t, repo, imgref, PullOptions{Check: true}); err != nil {
		t.Fatal(err)
	}
	if u := listed().CachedUpdate; u != nil {
		t.Errorf("check of an unchanged image cached %+v", u)
	}
	img2 := storeEncap(t, src, c2, dir, "stable", img1)
	md2 := digest.FromBytes(img2.Manifest)
	before := refMap(t, repo)
	chk, err := storePull(t, repo, imgref, PullOptions{Check: true})
	if err != nil {
		t.Fatal(err)
	}
	if chk.AlreadyPresent || chk.ManifestDigest != md2 || chk.LayersFetched == 0 {
		t.Errorf("check after the tag moved: %+v", chk)
	}
	u := listed().CachedUpdate
	if u == nil || u.ManifestDigest != md2.String() || digest.FromBytes(u.Manifest) != md2 || digest.FromBytes(u.Config) != digest.FromBytes(img2.Config) {
		t.Fatalf("cached update %+v, want manifest %s", u, md2)
	}
	if after := refMap(t, repo); len(after) != len(before) {
		t.Errorf("check changed the refs: %d -> %d", len(before), len(after))
	}
	res, err := storePull(t, repo, imgref, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if info := listed(); info.CachedUpdate != nil || info.ManifestDigest != md2.String() || info.MergeCommit != res.MergeCommit {
		t.Errorf("after pulling the update: %+v", info)
	}
}

// TestPullImageHostileDerived: hostile derived layers are refused by a pull
// with the entry named; no ref moves, the store passes ostree fsck, and
// nothing appears outside the repository.
func TestPullImageHostileDerived(t *testing.T) {
	src := storeRepo(t)
	c := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img := storeEncap(t, src, c, dir, "v1", nil)
	type ent struct {
		name, link string
		typ        byte
	}
	for _, tc := range []struct {
		name    string
		ents    []ent
		wantErr string
	}{
		{"dotdot", []ent{{name: "usr/../../../escaped"}}, `"usr/../../../escaped"`},
		{"absolute dotdot", []ent{{name: "/../escaped"}}, `"/../escaped"`},
		{"symlinked parent", []ent{{name: "usr/lib/up", link: "../../..", typ: tar.TypeSymlink}, {name: "usr/lib/up/escaped"}}, "not a directory"},
		{"hardlink out", []ent{{name: "usr/x", link: "../../../etc/shadow", typ: tar.TypeLink}}, ".."},
		{"device", []ent{{name: "usr/lib/sda", typ: tar.TypeBlock}}, "device"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var tb bytes.Buffer
			tw := tar.NewWriter(&tb)
			for _, e := range tc.ents {
				h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: 0o644}
				body := ""
				if e.typ == 0 {
					h.Typeflag, body = tar.TypeReg, "payload\n"
					h.Size = int64(len(body))
				}
				if err := tw.WriteHeader(h); err != nil {
					t.Fatal(err)
				}
				io.WriteString(tw, body)
			}
			tw.Close()
			tag := strings.ReplaceAll(tc.name, " ", "-")
			storeDerive(t, dir, img, tb.Bytes(), tag)
			repo := storeRepo(t)
			if _, err := storePull(t, repo, "oci:"+dir+":v1", PullOptions{}); err != nil {
				t.Fatal(err)
			}
			before := refMap(t, repo)
			_, err := storePull(t, repo, "oci:"+dir+":"+tag, PullOptions{})
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("pull of a hostile layer: %v, want an error with %s", err, tc.wantErr)
			}
			after := refMap(t, repo)
			if len(after) != len(before) {
				t.Errorf("refs changed: %d -> %d", len(before), len(after))
			}
			for n, c := range before {
				if after[n] != c {
					t.Errorf("ref %s moved", n)
				}
			}
			realFsck(t, repo)
			root := filepath.Dir(repo.Path())
			for _, p := range []string{"escaped", "../escaped", "../../escaped"} {
				if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
					t.Errorf("%s written outside the repository", p)
				}
			}
		})
	}
}
