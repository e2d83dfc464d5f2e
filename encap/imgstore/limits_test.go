package imgstore

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/encap/blob"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// bombLayer returns a gzip layer (best compression) of a tar with files files of
// size zero bytes each, followed by trailer zero bytes after the end of the archive,
// and the digest of the uncompressed stream.
func bombLayer(t *testing.T, files int, size, trailer int64) ([]byte, digest.Digest) {
	t.Helper()
	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	dg := digest.Canonical.Digester()
	tw := tar.NewWriter(io.MultiWriter(zw, dg.Hash()))
	zeros := make([]byte, 1<<20)
	for i := range files {
		if err := tw.WriteHeader(&tar.Header{Name: "usr/share/zeros" + strconv.Itoa(i), Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		for left := size; left > 0; {
			n := min(left, int64(len(zeros)))
			if _, err := tw.Write(zeros[:n]); err != nil {
				t.Fatal(err)
			}
			left -= n
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	for left := trailer; left > 0; {
		n := min(left, int64(len(zeros)))
		zw.Write(zeros[:n])
		dg.Hash().Write(zeros[:n])
		left -= n
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), dg.Digest()
}

// limitDerive writes the image img of the layout dir plus one derived layer blob
// (media type mt, uncompressed digest diffID) as dir:tag, and returns the layer's
// descriptor.
func limitDerive(t *testing.T, dir string, img *encap.Result, blob []byte, mt string, diffID digest.Digest, tag string) v1.Descriptor {
	t.Helper()
	ld, _ := deriveImage(t, dir, img, blob, mt, diffID, tag)
	return ld
}

// tmpEntries lists what a repository's tmp/ holds besides its cache.
func tmpEntries(t *testing.T, repo string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(repo, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.Name() != "cache" {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestLayerLimitBomb pulls images whose derived layer is a gzip bomb (50 MB of
// zeros in about 50 KB) under lowered limits: each is refused with ErrLayerTooLarge
// naming the layer and the limit, and leaves no image ref, no ref of the layer and
// nothing staged. The same image passes with the limits off, and a normal layer
// passes under the lowered limits.
func TestLayerLimitBomb(t *testing.T) {
	src := storeRepo(t)
	c := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img := storeEncap(t, src, c, dir, "v1", nil)

	oneFile, oneDiff := bombLayer(t, 1, 50<<20, 0)     // declares its size in one header
	manyFiles, manyDiff := bombLayer(t, 50, 1<<20, 0)  // 50 headers of 1 MiB each
	trailing, trailDiff := bombLayer(t, 1, 10, 50<<20) // zeros after the end of the tar
	t.Logf("bombs: %d, %d and %d bytes of gzip for 50 MiB", len(oneFile), len(manyFiles), len(trailing))
	oneDesc := limitDerive(t, dir, img, oneFile, v1.MediaTypeImageLayerGzip, oneDiff, "one")
	manyDesc := limitDerive(t, dir, img, manyFiles, v1.MediaTypeImageLayerGzip, manyDiff, "many")
	trailDesc := limitDerive(t, dir, img, trailing, v1.MediaTypeImageLayerGzip, trailDiff, "trailing")
	normal, normalDiff := bombLayer(t, 3, 100<<10, 0)
	limitDerive(t, dir, img, normal, v1.MediaTypeImageLayerGzip, normalDiff, "normal")

	for _, tc := range []struct {
		name                   string
		tag                    string
		desc                   v1.Descriptor
		maxLayer, ratio, floor int64
		wantMsg                []string
	}{
		{"declared size over MaxLayerUncompressed", "one", oneDesc, 10 << 20, 1000, 1 << 30,
			[]string{`tar entry "usr/share/zeros0" declaring 52428800 bytes`, "limit of 10485760", "MaxLayerUncompressed"}},
		{"entries adding up over MaxLayerUncompressed", "many", manyDesc, 10 << 20, 1000, 1 << 30,
			[]string{`tar entry "usr/share/zeros9" declaring 1048576 bytes`, "limit of 10485760", "MaxLayerUncompressed"}},
		// Under tarsplit.MaxTrailing: trailing bytes count towards the layer.
		{"zeros after the tar over MaxLayerUncompressed", "trailing", trailDesc, 512 << 10, 1000, 1 << 30,
			[]string{"uncompressed stream exceeds the limit of 524288", "MaxLayerUncompressed"}},
		{"compression ratio", "many", manyDesc, 64 << 30, 100, 1 << 20,
			[]string{"exceeds the limit of " + strconv.FormatInt(100*manyDesc.Size, 10), "100× its compressed size of " + strconv.FormatInt(manyDesc.Size, 10)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limits := &blob.Limits{MaxLayerUncompressed: tc.maxLayer, MaxCompressionRatio: tc.ratio, RatioFloor: tc.floor}
			repo := storeRepo(t)
			_, err := storePull(t, repo, "oci:"+dir+":"+tc.tag, PullOptions{Limits: limits})
			if err == nil {
				t.Fatal("bomb pulled")
			}
			t.Logf("error: %v", err)
			if !errors.Is(err, blob.ErrLayerTooLarge) {
				t.Fatalf("err = %v, want blob.ErrLayerTooLarge", err)
			}
			for _, want := range append(tc.wantMsg, tc.desc.Digest.String()) {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("err = %v, want it to contain %q", err, want)
				}
			}
			refs := refMap(t, repo)
			for name := range refs {
				if strings.HasPrefix(name, ImageRefPrefix) {
					t.Errorf("image ref %s written", name)
				}
			}
			if _, ok := refs[blobRef(t, tc.desc.Digest)]; ok {
				t.Error("the bomb's blob ref was written")
			}
			if left := tmpEntries(t, repo.Path()); len(left) > 0 {
				t.Errorf("left in tmp/: %v", left)
			}
			realFsck(t, repo)
		})
	}
	t.Run("normal layer under lowered limits", func(t *testing.T) {
		limits := &blob.Limits{MaxLayerUncompressed: 10 << 20, MaxCompressionRatio: 1000, RatioFloor: 1 << 20}
		repo := storeRepo(t)
		res, err := storePull(t, repo, "oci:"+dir+":normal", PullOptions{Limits: limits})
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := storeLookup(t, repo, res.MergeCommit, "usr/share/zeros2"); !ok {
			t.Error("merge commit lacks the derived layer's file")
		}
	})
	t.Run("bomb passes with default limits", func(t *testing.T) {
		repo := storeRepo(t)
		if _, err := storePull(t, repo, "oci:"+dir+":many", PullOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}
