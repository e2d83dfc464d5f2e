package oci

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// testLayer is a compressed layer built in the test.
type testLayer struct {
	blob   []byte
	diffID digest.Digest
	desc   Descriptor
}

// makeLayer builds a tar holding size random bytes, compressed with gzip or zstd.
func makeLayer(t *testing.T, seed uint64, size int, compression string) testLayer {
	t.Helper()
	rnd := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(rnd.Uint32())
	}
	var tarBuf bytes.Buffer
	tw := tar.NewWriter(&tarBuf)
	if err := tw.WriteHeader(&tar.Header{Name: "usr/share/random.bin", Mode: 0o644, Size: int64(size), Typeflag: tar.TypeReg, Format: tar.FormatPAX}); err != nil {
		t.Fatal(err)
	}
	if _, err := tw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	mt := imgspecv1.MediaTypeImageLayerGzip
	switch compression {
	case "gzip":
		zw, _ := gzip.NewWriterLevel(&out, gzip.BestSpeed)
		zw.Write(tarBuf.Bytes())
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	case "zstd":
		mt = imgspecv1.MediaTypeImageLayerZstd
		zw, err := zstd.NewWriter(&out, zstd.WithEncoderLevel(zstd.SpeedFastest))
		if err != nil {
			t.Fatal(err)
		}
		zw.Write(tarBuf.Bytes())
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("compression %q", compression)
	}
	b := out.Bytes()
	return testLayer{blob: b, diffID: digest.FromBytes(tarBuf.Bytes()), desc: Descriptor{MediaType: mt, Digest: digest.FromBytes(b), Size: int64(len(b))}}
}

// testImage is an OCI image made of bytes.
type testImage struct {
	layers   []testLayer
	config   []byte
	manifest []byte
}

func (ti testImage) configDesc() Descriptor {
	return Descriptor{MediaType: imgspecv1.MediaTypeImageConfig, Digest: digest.FromBytes(ti.config), Size: int64(len(ti.config))}
}

func makeImage(t *testing.T, arch string, layers ...testLayer) testImage {
	t.Helper()
	cfg := imgspecv1.Image{
		Platform: imgspecv1.Platform{OS: "linux", Architecture: arch},
		RootFS:   imgspecv1.RootFS{Type: "layers"},
		Config:   imgspecv1.ImageConfig{Labels: map[string]string{"containers.bootc": "1"}},
	}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.diffID)
	}
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ti := testImage{layers: layers, config: cb}
	m := imgspecv1.Manifest{
		Versioned:   specs.Versioned{SchemaVersion: 2},
		MediaType:   imgspecv1.MediaTypeImageManifest,
		Config:      ti.configDesc(),
		Annotations: map[string]string{"org.opencontainers.image.version": "42"},
	}
	for _, l := range layers {
		m.Layers = append(m.Layers, l.desc)
	}
	ti.manifest, err = json.MarshalIndent(m, "", "   ") // not c/image's formatting: bytes must survive
	if err != nil {
		t.Fatal(err)
	}
	return ti
}

// writeImage writes ti with NewWriter; layers go with unknown digest and size when
// unknownDigests, so the writer computes them.
func writeImage(t *testing.T, ref string, ti testImage, unknownDigests bool, opts ...Option) {
	t.Helper()
	ctx := context.Background()
	r, err := ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(ctx, r, opts...)
	if err != nil {
		t.Fatalf("NewWriter(%s): %v", ref, err)
	}
	defer w.Close()
	putImageBlobs(t, w, ti, unknownDigests)
	if err := w.PutManifest(ctx, ti.manifest, imgspecv1.MediaTypeImageManifest); err != nil {
		t.Fatalf("PutManifest: %v", err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatalf("Commit: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

func putImageBlobs(t *testing.T, w Writer, ti testImage, unknownDigests bool) {
	t.Helper()
	ctx := context.Background()
	for _, l := range ti.layers {
		in := l.desc
		if unknownDigests {
			in.Digest, in.Size = "", -1
		}
		got, err := w.PutBlob(ctx, onlyReader{bytes.NewReader(l.blob)}, in)
		if err != nil {
			t.Fatalf("PutBlob(layer): %v", err)
		}
		if got.Digest != l.desc.Digest || got.Size != l.desc.Size || got.MediaType != l.desc.MediaType {
			t.Fatalf("PutBlob returned %+v, want %+v", got, l.desc)
		}
	}
	if _, err := w.PutBlob(ctx, bytes.NewReader(ti.config), ti.configDesc()); err != nil {
		t.Fatalf("PutBlob(config): %v", err)
	}
}

// onlyReader hides WriterTo/Seeker so the writer sees a plain stream.
type onlyReader struct{ io.Reader }

// readImage reads ref back and compares everything with ti.
func readImage(t *testing.T, ref string, ti testImage, opts ...Option) {
	t.Helper()
	ctx := context.Background()
	r, err := ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := NewReader(ctx, r, opts...)
	if err != nil {
		t.Fatalf("NewReader(%s): %v", ref, err)
	}
	defer rd.Close()
	m, mt, err := rd.Manifest(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if mt != imgspecv1.MediaTypeImageManifest {
		t.Errorf("media type %q", mt)
	}
	if !bytes.Equal(m, ti.manifest) {
		t.Fatalf("manifest bytes differ:\n%s\nwant\n%s", m, ti.manifest)
	}
	cfg, err := rd.Config(ctx)
	if err != nil {
		t.Fatalf("Config: %v", err)
	}
	if !bytes.Equal(cfg, ti.config) {
		t.Fatalf("config differs")
	}
	for i, l := range ti.layers {
		rc, err := rd.Blob(ctx, l.desc)
		if err != nil {
			t.Fatalf("Blob(%d): %v", i, err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatalf("reading layer %d: %v", i, err)
		}
		if !bytes.Equal(b, l.blob) {
			t.Fatalf("layer %d bytes differ", i)
		}
	}
}

// needTool returns the path of a peer tool; missing fails under CI=true, else skips.
func needTool(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: needs %s", name)
	}
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not installed (CI=true)", name)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

// skopeoInspect returns what `skopeo inspect` reports for ref.
func skopeoInspect(t *testing.T, ref string, extra ...string) (dgst digest.Digest, layers []digest.Digest) {
	t.Helper()
	skopeo := needTool(t, "skopeo")
	args := append([]string{"inspect"}, extra...)
	out, err := exec.Command(skopeo, append(args, ref)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("skopeo inspect %s: %v\n%s", ref, err, ee.Stderr)
		}
		t.Fatal(err)
	}
	var info struct {
		Digest digest.Digest
		Layers []digest.Digest
	}
	if err := json.Unmarshal(out, &info); err != nil {
		t.Fatalf("skopeo output %s: %v", out, err)
	}
	return info.Digest, info.Layers
}

func TestWriteReadLocal(t *testing.T) {
	gz := makeLayer(t, 1, 3<<20, "gzip")
	zs := makeLayer(t, 2, 1<<20, "zstd")
	ti := makeImage(t, runtime.GOARCH, gz, zs)
	wantDigest := digest.FromBytes(ti.manifest)
	tmp := t.TempDir()
	tests := []struct {
		name, ref, skopeoRef string
		unknown              bool
	}{
		{"oci new dir", "oci:" + tmp + "/layout:tag", "oci:" + tmp + "/layout:tag", false},
		{"oci nested new dir, computed digests", "oci:" + tmp + "/a/b/layout:v1", "oci:" + tmp + "/a/b/layout:v1", true},
		{"ostree-unverified-image oci", "ostree-unverified-image:oci:" + tmp + "/u:latest", "oci:" + tmp + "/u:latest", false},
		{"oci-archive", "oci-archive:" + tmp + "/img.tar:tag", "oci-archive:" + tmp + "/img.tar:tag", true},
		{"oci-archive new dir", "oci-archive:" + tmp + "/new/img.tar:tag", "oci-archive:" + tmp + "/new/img.tar:tag", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			writeImage(t, tc.ref, ti, tc.unknown)
			readImage(t, tc.ref, ti)
			d, layers := skopeoInspect(t, tc.skopeoRef)
			if d != wantDigest {
				t.Errorf("skopeo digest %s, want %s", d, wantDigest)
			}
			if len(layers) != 2 || layers[0] != gz.desc.Digest || layers[1] != zs.desc.Digest {
				t.Errorf("skopeo layers %v, want %s %s", layers, gz.desc.Digest, zs.desc.Digest)
			}
		})
	}
	// A second image under another tag of the same layout keeps the first one.
	t.Run("second tag", func(t *testing.T) {
		ti2 := makeImage(t, runtime.GOARCH, gz)
		writeImage(t, "oci:"+tmp+"/layout:other", ti2, false)
		readImage(t, "oci:"+tmp+"/layout:tag", ti)
		readImage(t, "oci:"+tmp+"/layout:other", ti2)
	})
}

// blobPath is where an OCI layout keeps a blob.
func blobPath(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func TestCorruptBlob(t *testing.T) {
	gz := makeLayer(t, 3, 2<<20, "gzip")
	ti := makeImage(t, runtime.GOARCH, gz)
	ctx := context.Background()
	tests := []struct {
		name    string
		corrupt func(t *testing.T, p string)
		want    error
	}{
		{"flipped byte", func(t *testing.T, p string) {
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 0x01
			os.WriteFile(p, b, 0o644)
		}, ErrDigestMismatch},
		{"truncated", func(t *testing.T, p string) { os.Truncate(p, 1000) }, ErrSizeMismatch},
		{"appended", func(t *testing.T, p string) {
			f, _ := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
			f.Write([]byte("x"))
			f.Close()
		}, ErrSizeMismatch},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layout")
			writeImage(t, "oci:"+dir+":t", ti, false)
			tc.corrupt(t, blobPath(dir, gz.desc.Digest))
			r, _ := ParseRef("oci:" + dir + ":t")
			rd, err := NewReader(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			defer rd.Close()
			rc, err := rd.Blob(ctx, gz.desc)
			if err != nil {
				t.Fatal(err)
			}
			n, err := io.Copy(io.Discard, rc)
			rc.Close()
			t.Logf("error: %v", err)
			if !errors.Is(err, tc.want) {
				t.Fatalf("read %d bytes, err = %v, want %v", n, err, tc.want)
			}
			if !strings.Contains(err.Error(), gz.desc.Digest.String()) {
				t.Errorf("error %q does not name the digest", err)
			}
			if n > gz.desc.Size {
				t.Errorf("reader handed out %d bytes, more than the %d declared", n, gz.desc.Size)
			}
		})
	}
	// A corrupt config is caught by Config.
	t.Run("config", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "layout")
		writeImage(t, "oci:"+dir+":t", ti, false)
		p := blobPath(dir, ti.configDesc().Digest)
		b, _ := os.ReadFile(p)
		b[0] ^= 0x20
		os.WriteFile(p, b, 0o644)
		r, _ := ParseRef("oci:" + dir + ":t")
		rd, err := NewReader(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		if _, err := rd.Config(ctx); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("Config err = %v, want digest mismatch", err)
		}
	})
}

// PutBlob refuses a stream that does not match the descriptor and stores nothing.
func TestPutBlobMismatch(t *testing.T) {
	ctx := context.Background()
	data := []byte("hello layer")
	good := Descriptor{MediaType: imgspecv1.MediaTypeImageLayerGzip, Digest: digest.FromBytes(data), Size: int64(len(data))}
	tests := []struct {
		name string
		desc Descriptor
		want error
	}{
		{"wrong digest", Descriptor{Digest: digest.FromString("other"), Size: good.Size}, ErrDigestMismatch},
		{"size too small", Descriptor{Digest: good.Digest, Size: good.Size - 1}, ErrSizeMismatch},
		{"size too large", Descriptor{Digest: good.Digest, Size: good.Size + 1}, ErrSizeMismatch},
		{"wrong digest, unknown size", Descriptor{Digest: digest.FromString("other"), Size: -1}, ErrDigestMismatch},
		{"ok", good, nil},
		{"unknown both", Descriptor{Size: -1}, nil},
		{"zero size means unknown", Descriptor{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "layout")
			r, _ := ParseRef("oci:" + dir)
			w, err := NewWriter(ctx, r)
			if err != nil {
				t.Fatal(err)
			}
			defer w.Close()
			got, err := w.PutBlob(ctx, bytes.NewReader(data), tc.desc)
			if err != nil {
				t.Logf("error: %v", err)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("PutBlob err = %v, want %v", err, tc.want)
			}
			if tc.want != nil {
				if tc.desc.Digest != "" && !strings.Contains(err.Error(), tc.desc.Digest.String()) {
					t.Errorf("error %q does not name %s", err, tc.desc.Digest)
				}
				for _, d := range []digest.Digest{tc.desc.Digest, good.Digest} {
					if _, err := os.Stat(blobPath(dir, d)); err == nil {
						t.Errorf("blob %s stored despite the mismatch", d)
					}
				}
				if left, _ := filepath.Glob(filepath.Join(dir, "oci-put-blob*")); len(left) > 0 {
					t.Errorf("temporary files left: %v", left)
				}
				return
			}
			if got.Digest != good.Digest || got.Size != good.Size {
				t.Fatalf("PutBlob = %+v, want %s/%d", got, good.Digest, good.Size)
			}
			if b, err := os.ReadFile(blobPath(dir, good.Digest)); err != nil || !bytes.Equal(b, data) {
				t.Fatalf("stored blob: %q %v", b, err)
			}
		})
	}
}

func TestPutManifestChecks(t *testing.T) {
	ctx := context.Background()
	ti := makeImage(t, runtime.GOARCH)
	r, _ := ParseRef("oci:" + filepath.Join(t.TempDir(), "l"))
	w, err := NewWriter(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.PutManifest(ctx, ti.manifest, "application/vnd.docker.distribution.manifest.v2+json"); err == nil {
		t.Error("PutManifest accepted an OCI manifest labelled as docker schema2")
	}
	if err := w.PutManifest(ctx, []byte("not json"), ""); err == nil {
		t.Error("PutManifest accepted garbage")
	}
	if err := w.Commit(ctx); err == nil {
		t.Error("Commit without a manifest succeeded")
	}
}

// An index is resolved to the running platform's image.
func TestIndexChoosesPlatform(t *testing.T) {
	ctx := context.Background()
	l := makeLayer(t, 4, 64<<10, "gzip")
	native := makeImage(t, runtime.GOARCH, l)
	otherArch := "arm64"
	if runtime.GOARCH == "arm64" {
		otherArch = "amd64"
	}
	other := makeImage(t, otherArch, makeLayer(t, 5, 64<<10, "gzip"))
	idx := imgspecv1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex}
	for _, im := range []struct {
		ti   testImage
		arch string
	}{{other, otherArch}, {native, runtime.GOARCH}} {
		idx.Manifests = append(idx.Manifests, Descriptor{
			MediaType: imgspecv1.MediaTypeImageManifest, Digest: digest.FromBytes(im.ti.manifest), Size: int64(len(im.ti.manifest)),
			Platform: &imgspecv1.Platform{OS: "linux", Architecture: im.arch},
		})
	}
	ib, _ := json.Marshal(idx)
	ref := "oci:" + filepath.Join(t.TempDir(), "multi") + ":v"
	r, _ := ParseRef(ref)
	w, err := NewWriter(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	putImageBlobs(t, w, other, false)
	putImageBlobs(t, w, native, false)
	for _, ti := range []testImage{other, native} {
		if err := w.PutManifest(ctx, ti.manifest, ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.PutManifest(ctx, ib, imgspecv1.MediaTypeImageIndex); err != nil {
		t.Fatalf("PutManifest(index): %v", err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	w.Close()
	readImage(t, ref, native)
	// WithPlatform picks the other one.
	rd, err := NewReader(ctx, r, WithPlatform("linux", otherArch, ""))
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	if m, _, _ := rd.Manifest(ctx); !bytes.Equal(m, other.manifest) {
		t.Fatalf("WithPlatform(%s) got the wrong manifest", otherArch)
	}
	// skopeo inspect reports the top-level (index) digest and the chosen image's layers.
	if d, layers := skopeoInspect(t, ref); d != digest.FromBytes(ib) || len(layers) != 1 || layers[0] != l.desc.Digest {
		t.Errorf("skopeo: %s %v, want %s [%s]", d, layers, digest.FromBytes(ib), l.desc.Digest)
	}
}

// PutBlob may be called from several goroutines.
func TestPutBlobConcurrent(t *testing.T) {
	ctx := context.Background()
	layers := make([]testLayer, 4)
	for i := range layers {
		layers[i] = makeLayer(t, uint64(30+i), 256<<10, []string{"gzip", "zstd"}[i%2])
	}
	ti := makeImage(t, runtime.GOARCH, layers...)
	ref := "oci:" + filepath.Join(t.TempDir(), "c") + ":t"
	r, _ := ParseRef(ref)
	w, err := NewWriter(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	errs := make(chan error, len(layers))
	for _, l := range layers {
		go func() {
			_, err := w.PutBlob(ctx, onlyReader{bytes.NewReader(l.blob)}, Descriptor{MediaType: l.desc.MediaType, Size: -1})
			errs <- err
		}()
	}
	for range layers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.PutBlob(ctx, bytes.NewReader(ti.config), ti.configDesc()); err != nil {
		t.Fatal(err)
	}
	if err := w.PutManifest(ctx, ti.manifest, ""); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	readImage(t, ref, ti)
}
