package integration

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/encap/imgstore"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestImagePushReproducesUmociLayer: a derived image built with the real
// umoci (unpack, change the rootfs, repack: a new layer with added files, a
// whiteout and a chmod, compressed by umoci) is pushed to a real registry,
// pulled into a store, and pushed from the store to another repository
// with `ocitree image push`: the manifest digest and every layer digest are
// the same, though the store never kept the blobs.
func TestImagePushReproducesUmociLayer(t *testing.T) {
	setup(t, "skopeo", "umoci", "docker-registry")
	reg := startRegistry(t)
	dir := workDir(t)

	src := filepath.Join(dir, "src")
	writeRegTree(t, src, map[string]string{
		"usr/bin/tool":         "#!/bin/sh\necho tool\n",
		"usr/bin/big":          strings.Repeat("some binary content ", 20000),
		"usr/share/doc/README": "version 1\n",
		"usr/share/doc/OLD":    "to be deleted\n",
		"usr/etc/os-release":   "ID=test\nVERSION_ID=1\n",
	})
	build := filepath.Join(dir, "build")
	ocitreeInit(t, build, "bare")
	ocitreeCommit(t, build, "os/main", src, commitOpts{subject: "v1"})
	layout := filepath.Join(dir, "oci")
	encapsulate(t, build, "os/main", "oci:"+layout+":v1")

	// The Containerfile-like step, done by umoci.
	bundle := filepath.Join(dir, "bundle")
	must(t, runCmd(t, nil, "umoci", "unpack", "--image", layout+":v1", bundle))
	rootfs := filepath.Join(bundle, "rootfs")
	for p, body := range map[string]string{
		"usr/bin/hello":        "#!/bin/sh\necho hello\n",
		"usr/share/hello/data": strings.Repeat("hello data ", 5000),
		"etc/hello.conf":       "greeting=hi\n",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(rootfs, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(rootfs, p), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(filepath.Join(rootfs, "usr/share/doc/OLD")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(rootfs, "usr/share/doc"), 0o700); err != nil {
		t.Fatal(err)
	}
	must(t, runCmd(t, nil, "umoci", "repack", "--image", layout+":derived", bundle))

	// The same layer as Go's compress/gzip writes it (docker, BuildKit).
	regzipLastLayer(t, layout, "derived", "docker")

	store := filepath.Join(dir, "store")
	ocitreeInit(t, store, "bare-user")
	for _, tc := range []struct {
		tag       string
		identical bool
	}{
		{"docker", true},
		// umoci's pgzip predates the klauspost/compress we build with:
		// its deflate bytes cannot be reproduced, the layer is recompressed.
		{"derived", false},
	} {
		a := "docker://" + reg.addr + "/os:" + tc.tag
		must(t, runCmd(t, nil, "skopeo", "copy", "--dest-tls-verify=false", "oci:"+layout+":"+tc.tag, a))
		want := registryDigest(t, a)
		wantLayers := registryLayers(t, a)
		must(t, ocitree(t, "image", "pull", "--tls-verify=false", "--repo", store, a))

		b := "docker://" + reg.addr + "/mirror:" + tc.tag
		strict := ocitree(t, "image", "push", "--tls-verify=false", "--require-identical", "--repo", store, a, b)
		if !tc.identical {
			if strict.code == 0 || !strings.Contains(strict.stderr, "cannot be reproduced") {
				t.Errorf("%s: --require-identical push of an unreproducible layer: want a clear error\n%s", tc.tag, strict)
			}
			strict = ocitree(t, "image", "push", "--tls-verify=false", "--repo", store, a, b)
			if !strings.Contains(strict.stderr, "recompressed") {
				t.Errorf("%s: push did not say it recompressed a layer\n%s", tc.tag, strict)
			}
		}
		out := strings.TrimSpace(must(t, strict))
		got, gotLayers := registryDigest(t, b), registryLayers(t, b)
		if out != got {
			t.Errorf("%s: push printed %s, the registry has %s", tc.tag, out, got)
		}
		n := len(wantLayers)
		if tc.identical && (got != want || strings.Join(gotLayers, " ") != strings.Join(wantLayers, " ")) {
			t.Errorf("%s: pushed %s %v, pulled %s %v", tc.tag, got, gotLayers, want, wantLayers)
		}
		if !tc.identical && (got == want || len(gotLayers) != n || strings.Join(gotLayers[:n-1], " ") != strings.Join(wantLayers[:n-1], " ") || gotLayers[n-1] == wantLayers[n-1]) {
			t.Errorf("%s: want the ostree layers kept and only the derived one new: pushed %v, pulled %v", tc.tag, gotLayers, wantLayers)
		}
		// What was pushed pulls into a fresh store as the same tree.
		store2 := filepath.Join(dir, "store2-"+tc.tag)
		ocitreeInit(t, store2, "bare-user")
		must(t, ocitree(t, "image", "pull", "--tls-verify=false", "--repo", store2, b))
		ostreeFsck(t, store2)
		if l1, l2 := ostreeLs(t, store, imageRefOf(t, a)), ostreeLs(t, store2, imageRefOf(t, b)); l1 != l2 {
			t.Errorf("%s: the re-pulled tree differs:\n%s", tc.tag, lineDiff(l1, l2))
		}
	}
}

// imageRefOf is the store ref of an image as image pull names it.
func imageRefOf(t *testing.T, imgref string) string {
	t.Helper()
	ref, err := imgstore.ImageRefName(imgref)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// regzipLastLayer adds tag to to an oci: layout: the image of tag from with
// its last layer recompressed by Go's compress/gzip (same tar, new blob).
func regzipLastLayer(t *testing.T, layout, from, to string) {
	t.Helper()
	var idx v1.Index
	readJSON(t, filepath.Join(layout, "index.json"), &idx)
	var md v1.Descriptor
	for _, d := range idx.Manifests {
		if d.Annotations[v1.AnnotationRefName] == from {
			md = d
		}
	}
	var m v1.Manifest
	readJSON(t, blobPath(layout, md.Digest), &m)
	last := &m.Layers[len(m.Layers)-1]
	f, err := os.Open(blobPath(layout, last.Digest))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	zw := gzip.NewWriter(&out)
	if _, err := io.Copy(zw, zr); err != nil {
		t.Fatal(err)
	}
	zw.Close()
	last.Digest, last.Size = putBlob(t, layout, out.Bytes())
	mb, _ := json.Marshal(m)
	md.Digest, md.Size = putBlob(t, layout, mb)
	md.Annotations = map[string]string{v1.AnnotationRefName: to}
	idx.Manifests = append(idx.Manifests, md)
	ib, _ := json.Marshal(idx)
	if err := os.WriteFile(filepath.Join(layout, "index.json"), ib, 0o644); err != nil {
		t.Fatal(err)
	}
}

func blobPath(layout string, d digest.Digest) string {
	return filepath.Join(layout, "blobs", d.Algorithm().String(), d.Encoded())
}

func putBlob(t *testing.T, layout string, b []byte) (digest.Digest, int64) {
	t.Helper()
	d := digest.FromBytes(b)
	if err := os.WriteFile(blobPath(layout, d), b, 0o644); err != nil {
		t.Fatal(err)
	}
	return d, int64(len(b))
}

func readJSON(t *testing.T, p string, v any) {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", p, err)
	}
}

// registryLayers returns the layer digests skopeo sees for a registry image.
func registryLayers(t *testing.T, imgref string) []string {
	t.Helper()
	out := must(t, runCmd(t, nil, "skopeo", "inspect", "--tls-verify=false", "--format", "{{range .Layers}}{{.}} {{end}}", imgref))
	return strings.Fields(out)
}
