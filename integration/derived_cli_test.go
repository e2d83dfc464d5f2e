package integration

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/fixtures"
	digest "github.com/opencontainers/go-digest"
)

// normalizeUmociRootfs turns a rootfs unpacked by umoci from an encapsulated
// image into what the store keeps (spec §3.3-3.4, §5.8): the embedded
// repository (sysroot/ostree) and the synthetic var/tmp go when the source
// tree has neither, etc moves to usr/etc, and the children of tmp go.
func normalizeUmociRootfs(t *testing.T, rootfs, src string) {
	t.Helper()
	for _, p := range []string{"sysroot/ostree", "var/tmp"} {
		if _, err := os.Lstat(filepath.Join(src, p)); err == nil {
			continue
		}
		if err := os.RemoveAll(filepath.Join(rootfs, p)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Lstat(filepath.Join(rootfs, "usr", "etc")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("umoci's rootfs has usr/etc (%v); the image must carry /etc at etc", err)
	}
	if err := os.Rename(filepath.Join(rootfs, "etc"), filepath.Join(rootfs, "usr", "etc")); err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(rootfs, "tmp")
	ents, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			t.Fatal(err)
		}
	}
}

// checkDerivedTree checks, in a checkout of the derived image, each change
// fixtures.DerivedLayer makes to MiniOS (src is the MiniOS tree).
func checkDerivedTree(t *testing.T, co, src string) {
	t.Helper()
	at := func(root, p string) string { return filepath.Join(root, filepath.FromSlash(p)) }
	if b, err := os.ReadFile(at(co, fixtures.DerivedConfig)); err != nil || !bytes.Contains(b, []byte("greeting=")) {
		t.Errorf("%s: %q, %v", fixtures.DerivedConfig, b, err)
	}
	old, err := os.ReadFile(at(src, fixtures.DerivedModified))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(at(co, fixtures.DerivedModified)); err != nil || !bytes.HasPrefix(b, old) || !bytes.Contains(b, []byte("\nhello:")) {
		t.Errorf("%s was not modified by the layer: %q, %v", fixtures.DerivedModified, b, err)
	}
	if _, err := os.Lstat(at(co, fixtures.DerivedRemoved)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s was whited out but is there (%v)", fixtures.DerivedRemoved, err)
	}
	var names []string
	ents, err := os.ReadDir(at(co, fixtures.DerivedOpaqueDir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if strings.Join(names, ",") != "hello.service" {
		t.Errorf("opaque %s holds %v, want only the layer's hello.service", fixtures.DerivedOpaqueDir, names)
	}
	want, err := os.ReadFile(at(src, fixtures.DerivedHardlinkTarget))
	if err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(at(co, fixtures.DerivedHardlink)); err != nil || !bytes.Equal(b, want) {
		t.Errorf("hard link %s does not have the content of the base's %s (%v)", fixtures.DerivedHardlink, fixtures.DerivedHardlinkTarget, err)
	}
	if fi, err := os.Lstat(at(co, fixtures.DerivedChmodDir)); err != nil || fi.Mode().Perm() != fixtures.DerivedChmodMode {
		t.Errorf("%s: %v %v, want mode %#o", fixtures.DerivedChmodDir, fi.Mode(), err, fixtures.DerivedChmodMode)
	}
	if ents, err := os.ReadDir(at(co, "tmp")); err != nil || len(ents) != 0 {
		t.Errorf("tmp must be kept empty: %d entries, %v", len(ents), err)
	}
}

// TestDerivedImageCLI derives an image from encapsulated MiniOS with
// fixtures.DerivedLayer (a Containerfile-like `RUN` layer: new files, /etc
// changes, a whiteout, an opaque directory, a hard link into the base, a
// chmod, a /tmp file) and compares, through the CLI, what `ocitree image pull`
// stores with what the real umoci unpacks: the checkout of the merge commit
// is umoci's rootfs with etc at usr/etc and tmp emptied. Through a real
// registry (fed by `ocitree image copy`), pulling the derived tag after the
// base tag downloads the derived layer's blob and nothing else, and gives
// the same merge commit as the pull from the oci: layout.
func TestDerivedImageCLI(t *testing.T) {
	setup(t, "umoci", "docker-registry")
	dir := workDir(t)
	src := tree(t, "minios")

	build := filepath.Join(dir, "build")
	ocitreeInit(t, build, "bare")
	ocitreeCommit(t, build, "os/main", src, commitOpts{subject: "MiniOS 1.0", bootable: true, metadata: []string{"version=1.0"}})
	layout := filepath.Join(dir, "oci")
	encapsulate(t, build, "os/main", "oci:"+layout+":1.0")
	layer := fixtures.DerivedLayer()
	if err := fixtures.AppendLayer(layout, "1.0", "1.0-hello", layer); err != nil {
		t.Fatal(err)
	}
	blob, err := fixtures.GzipLayer(layer)
	if err != nil {
		t.Fatal(err)
	}
	derivedBlob := digest.FromBytes(blob)
	base := layoutManifest(t, "oci:"+layout+":1.0")
	derived := layoutManifest(t, "oci:"+layout+":1.0-hello")
	if n := len(derived.Layers); n != len(base.Layers)+1 || derived.Layers[n-1].Digest != derivedBlob {
		t.Fatalf("the derived image has %d layers (base %d), last %v; want the base's plus %s", n, len(base.Layers), derived.Layers[n-1].Digest, derivedBlob)
	}

	// The reference: umoci applies the layers (whiteouts and all).
	bundle := filepath.Join(dir, "bundle")
	must(t, runCmd(t, nil, "umoci", "unpack", "--rootless", "--image", layout+":1.0-hello", bundle))
	rootfs := filepath.Join(bundle, "rootfs")
	normalizeUmociRootfs(t, rootfs, src)
	checkDerivedTree(t, rootfs, src)

	// The store, from the oci: layout.
	repo := filepath.Join(dir, "repo")
	ocitreeInit(t, repo, "bare-user")
	merge := imagePull(t, repo, "oci:"+layout+":1.0-hello")
	co := filepath.Join(dir, "co")
	must(t, ocitree(t, "repo", "checkout", "--repo", repo, merge, co))
	assertSameTree(t, "checkout of the pulled derived image vs umoci's rootfs", rootfs, co, cmpOpts{})
	checkDerivedTree(t, co, src)
	hist := strings.Split(strings.TrimSuffix(must(t, ocitree(t, "image", "history", "--repo", repo, "oci:"+layout+":1.0-hello")), "\n"), "\n")
	if last := hist[len(hist)-1]; len(hist) != len(derived.Layers)+1 || !strings.Contains(last, " derived ") || !strings.HasSuffix(last, fixtures.DerivedCreatedBy) {
		t.Errorf("image history: %d lines, last %q; want %d layers, the last derived by %q", len(hist), last, len(derived.Layers), fixtures.DerivedCreatedBy)
	}
	ostreeFsck(t, repo)

	// Through a registry: the base first, then the derived image.
	reg := startRegistry(t)
	for _, tag := range []string{"1.0", "1.0-hello"} {
		must(t, ocitree(t, "image", "copy", "--tls-verify=false", "oci:"+layout+":"+tag, "docker://"+reg.addr+"/demo/os:"+tag))
	}
	repo2 := filepath.Join(dir, "repo2")
	ocitreeInit(t, repo2, "bare-user")
	layerBlobs := func() []string {
		var out []string
		for d, n := range reg.served() {
			if d != base.Config.Digest.String() && d != derived.Config.Digest.String() {
				out = append(out, fmt.Sprintf("%s %d", d, n))
			}
		}
		sort.Strings(out)
		return out
	}
	reg.served()
	imagePull(t, repo2, "docker://"+reg.proxyAddr+"/demo/os:1.0")
	if got := layerBlobs(); len(got) != len(base.Layers) {
		t.Errorf("pull of the base fetched %d layer blobs, want %d:\n%s", len(got), len(base.Layers), strings.Join(got, "\n"))
	}
	r := ocitree(t, "image", "pull", "--tls-verify=false", "--progress=never", "--repo", repo2, "docker://"+reg.proxyAddr+"/demo/os:1.0-hello")
	merge2 := strings.TrimSpace(must(t, r))
	got := layerBlobs()
	if want := fmt.Sprintf("%s %d", derivedBlob, len(blob)); strings.Join(got, "\n") != want {
		t.Errorf("pull of the derived image after the base fetched layer blobs:\n%s\nwant only the derived layer:\n%s", strings.Join(got, "\n"), want)
	}
	if want := fmt.Sprintf("layers already present: %d; layers needed: 1 (%d bytes)\n", len(base.Layers), len(blob)); r.stderr != want {
		t.Errorf("pull of the derived image printed %q on stderr, want %q", r.stderr, want)
	}
	if merge2 != merge {
		t.Errorf("the registry pull gave merge commit %s, the oci: pull %s", merge2, merge)
	}
	co2 := filepath.Join(dir, "co2")
	must(t, ocitree(t, "repo", "checkout", "--repo", repo2, merge2, co2))
	assertSameTree(t, "checkout of the derived image pulled from the registry vs umoci's rootfs", rootfs, co2, cmpOpts{})
	ostreeFsck(t, repo2)
}
