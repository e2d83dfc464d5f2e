package encap

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/encap/ostreetar"
	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

const (
	zstdChunkedChecksumKey = "io.github.containers.zstd-chunked.manifest-checksum"
	zstdChunkedManifestKey = "io.github.containers.zstd-chunked.manifest-position"
	zstdChunkedTarSplitKey = "io.github.containers.zstd-chunked.tarsplit-position"
)

// zstdChunkedCommit commits a small tree (one file > 1 MiB, so it is cut
// into several chunks) and a contentmeta file that puts the big file in a
// component layer of its own.
func zstdChunkedCommit(t *testing.T) (*ostree.Repo, ostree.Checksum, string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	big := make([]byte, 3<<20)
	for i := range big {
		big[i] = byte(rng.IntN(256))
	}
	repo, c := commitTree(t, map[string]string{
		"usr/bin/big":      string(big),
		"usr/bin/small":    "#!/bin/sh\necho hi\n",
		"usr/lib/zeros":    strings.Repeat("\x00", 200<<10),
		"usr/share/a.txt":  strings.Repeat("hello zstd:chunked\n", 500),
		"usr/share/link":   "->a.txt",
		"usr/etc/os-relea": "ID=test\n",
	})
	objs, err := ostree.CommitObjects(repo, c)
	if err != nil {
		t.Fatal(err)
	}
	at := map[string]string{}
	for _, o := range objs {
		at[o.Paths[0]] = o.Checksum.String()
	}
	meta := fmt.Sprintf(`{"version": 1, "created": "2024-01-01T00:00:00Z", "layers": {"big": "Big file"},
		"mapping": {%q: "big"}, "ordered": false}`, at["/usr/bin/big"])
	file := filepath.Join(t.TempDir(), "meta.json")
	if err := os.WriteFile(file, []byte(meta), 0o644); err != nil {
		t.Fatal(err)
	}
	return repo, c, file
}

// encapsulateTo writes commit with opts into a fresh oci: layout and
// returns its directory and the result.
func encapsulateTo(t *testing.T, repo *ostree.Repo, c ostree.Checksum, opts Options) (string, *Result) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "layout")
	ref, err := oci.ParseRef("oci:" + dir + ":latest")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w, err := oci.NewWriter(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	res, err := Encapsulate(ctx, repo, c, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	return dir, res
}

func layoutBlob(t *testing.T, dir string, d digest.Digest) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// position parses "offset:length:uncompressedLength[:type]".
func position(t *testing.T, s string) []uint64 {
	t.Helper()
	var out []uint64
	for _, f := range strings.Split(s, ":") {
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			t.Fatalf("position %q: %v", s, err)
		}
		out = append(out, n)
	}
	return out
}

// checkZstdChunkedBlob checks a layer blob against its zstd-chunked
// annotations: the TOC is where manifest-position says, hashes to
// manifest-checksum, decodes to a TOC listing the big file's chunks, and
// the blob ends with the footer.
func checkZstdChunkedBlob(t *testing.T, blob []byte, ann map[string]string) (chunks int) {
	t.Helper()
	mp := position(t, ann[zstdChunkedManifestKey])
	if len(mp) != 4 || mp[3] != 1 || mp[0]+mp[1] > uint64(len(blob)) {
		t.Fatalf("manifest-position %q for a %d byte blob", ann[zstdChunkedManifestKey], len(blob))
	}
	tocZ := blob[mp[0] : mp[0]+mp[1]]
	if got := digest.FromBytes(tocZ).String(); got != ann[zstdChunkedChecksumKey] {
		t.Errorf("TOC digest %s, manifest-checksum annotation %s", got, ann[zstdChunkedChecksumKey])
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	tocJSON, err := dec.DecodeAll(tocZ, nil)
	if err != nil || uint64(len(tocJSON)) != mp[2] {
		t.Fatalf("TOC: %d bytes (want %d), %v", len(tocJSON), mp[2], err)
	}
	var toc struct {
		Version int `json:"version"`
		Entries []struct {
			Type, Name, Digest string
			Offset, EndOffset  int64
		} `json:"entries"`
	}
	if err := json.Unmarshal(tocJSON, &toc); err != nil || toc.Version != 1 || len(toc.Entries) == 0 {
		t.Fatalf("TOC %.200s: %v", tocJSON, err)
	}
	for _, e := range toc.Entries {
		if e.Type == "chunk" {
			chunks++
		}
		if e.Type == "reg" && e.Digest != "" && e.EndOffset > e.Offset {
			// A file's frames decode on their own to its content.
			content, err := dec.DecodeAll(blob[e.Offset:e.EndOffset], nil)
			if err != nil || digest.FromBytes(content).String() != e.Digest {
				t.Errorf("TOC entry %s: frames [%d,%d) decode to %s (%v), TOC says %s", e.Name, e.Offset, e.EndOffset, digest.FromBytes(content), err, e.Digest)
			}
		}
	}
	tp := position(t, ann[zstdChunkedTarSplitKey])
	if len(tp) != 3 || tp[0]+tp[1] > uint64(len(blob)) {
		t.Errorf("tarsplit-position %q for a %d byte blob", ann[zstdChunkedTarSplitKey], len(blob))
	}
	footer := blob[len(blob)-72:]
	if !bytes.Equal(footer[:4], []byte{0x50, 0x2a, 0x4d, 0x18}) || binary.LittleEndian.Uint32(footer[4:8]) != 64 ||
		string(footer[64:]) != "GNUlInUx" || binary.LittleEndian.Uint64(footer[8:]) != mp[0] {
		t.Errorf("blob does not end with a zstd:chunked footer: % x", footer)
	}
	return chunks
}

func TestEncapsulateZstdChunked(t *testing.T) {
	repo, c, meta := zstdChunkedCommit(t)
	opts := Options{Compression: blob.ZstdChunked, ContentMeta: meta}
	dir, res := encapsulateTo(t, repo, c, opts)
	if len(res.Layers) < 2 {
		t.Fatalf("%d layers, want the commit layer and a component layer", len(res.Layers))
	}
	var m v1.Manifest
	if err := json.Unmarshal(layoutBlob(t, dir, res.ManifestDigest), &m); err != nil {
		t.Fatal(err)
	}
	chunks, components := 0, 0
	for i, l := range m.Layers {
		if l.MediaType != v1.MediaTypeImageLayerZstd {
			t.Errorf("layer %d: media type %s", i, l.MediaType)
		}
		for _, k := range []string{zstdChunkedChecksumKey, zstdChunkedManifestKey, zstdChunkedTarSplitKey} {
			if l.Annotations[k] == "" {
				t.Errorf("layer %d: no %s annotation: %v", i, k, l.Annotations)
			}
		}
		if _, ok := l.Annotations[pack.ComponentsAnnotation]; ok {
			components++
		} else if i > 0 {
			t.Errorf("component layer %d lost its %s annotation: %v", i, pack.ComponentsAnnotation, l.Annotations)
		}
		chunks += checkZstdChunkedBlob(t, layoutBlob(t, dir, l.Digest), l.Annotations)
	}
	if components == 0 {
		t.Errorf("no layer carries %s", pack.ComponentsAnnotation)
	}
	if chunks == 0 {
		t.Error("the 3 MiB file was not cut into chunks")
	}

	// Deterministic: the same commit gives the same image.
	_, res2 := encapsulateTo(t, repo, c, opts)
	if res2.ManifestDigest != res.ManifestDigest {
		t.Errorf("second run: manifest %s, first %s\n%s\n%s", res2.ManifestDigest, res.ManifestDigest, res.Manifest, res2.Manifest)
	}

	// The layers are plain zstd to other readers: unencapsulate gives the
	// same commit (it checks every diff_id).
	for _, src := range []string{dir, skopeoChecks(t, dir)} {
		if src == "" {
			continue
		}
		ref, err := oci.ParseRef("oci:" + src + ":latest")
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		rd, err := oci.NewReader(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Unencapsulate(ctx, newRepo(t, ostree.ModeBareUser), rd, "test")
		rd.Close()
		if err != nil || got != c {
			t.Errorf("Unencapsulate %s: %s, %v; want %s", src, got, err, c)
		}
	}
}

// skopeoChecks has skopeo inspect and copy the layout; it returns the
// copy's directory ("" when skopeo is missing outside CI).
func skopeoChecks(t *testing.T, dir string) string {
	t.Helper()
	skopeo, err := exec.LookPath("skopeo")
	if testing.Short() {
		return "" // -short: no peers
	}
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("skopeo not found")
		}
		t.Log("skopeo not found; skipping the skopeo checks")
		return ""
	}
	raw, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+dir+":latest").Output()
	if err != nil {
		t.Fatalf("skopeo inspect --raw: %v", err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil || len(m.Layers) == 0 || m.Layers[0].Annotations[zstdChunkedChecksumKey] == "" {
		t.Errorf("skopeo inspect --raw: %v\n%s", err, raw)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	if out, err := exec.Command(skopeo, "copy", "oci:"+dir+":latest", "oci:"+dst+":latest").CombinedOutput(); err != nil {
		t.Fatalf("skopeo copy: %v\n%s", err, out)
	}
	return dst
}

// TestZstdChunkedDecodesAsTar checks a zstd:chunked stream decodes, through
// Unencapsulate's decompressor, to the exact tar written.
func TestZstdChunkedDecodesAsTar(t *testing.T) {
	repo, c := commitTree(t, map[string]string{"usr/bin/x": strings.Repeat("x", 5000), "usr/lib/y": "y"})
	var tarBuf, out bytes.Buffer
	if err := ostreetar.WriteCommitLayer(&tarBuf, repo, c, ostreetar.Chunk{}); err != nil {
		t.Fatal(err)
	}
	cw, err := blob.NewCompressor(&out, blob.ZstdChunked)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cw.Write(tarBuf.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := cw.Close(); err != nil {
		t.Fatal(err)
	}
	if blob.LayerAnnotations(cw)[zstdChunkedChecksumKey] == "" {
		t.Errorf("no annotations after Close: %v", blob.LayerAnnotations(cw))
	}
	if !bytes.Contains(out.Bytes(), []byte{0x50, 0x2a, 0x4d, 0x18}) {
		t.Error("no skippable frame in the blob")
	}
	dr, err := blob.Decompress(bytes.NewReader(out.Bytes()), v1.MediaTypeImageLayerZstd)
	if err != nil {
		t.Fatal(err)
	}
	defer dr.Close()
	var got bytes.Buffer
	if _, err := got.ReadFrom(dr); err != nil {
		t.Fatal(err)
	}
	if sha256.Sum256(got.Bytes()) != sha256.Sum256(tarBuf.Bytes()) {
		t.Errorf("decoded %d bytes, tar was %d", got.Len(), tarBuf.Len())
	}
}
