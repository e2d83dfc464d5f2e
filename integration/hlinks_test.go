package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ocitree/ocitree/fixtures"
)

// hlinksLayer returns the uncompressed tar of testdata/hlinks.tar.gz (a real
// derived layer of a Fedora build, see testdata/README.md) and what it holds:
// hard links (name → target), symlinks (name → target), and owners other
// than root (name → uid, gid).
func hlinksLayer(t *testing.T) (data []byte, hardlinks, symlinks map[string]string, foreign map[string][2]int) {
	t.Helper()
	f, err := os.Open("../testdata/hlinks.tar.gz")
	if err != nil {
		t.Fatalf("%v (the fixture is in the repository; see testdata/README.md)", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	if data, err = io.ReadAll(zr); err != nil {
		t.Fatal(err)
	}
	hardlinks, symlinks, foreign = map[string]string{}, map[string]string{}, map[string][2]int{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(hdr.Name, "/")
		switch hdr.Typeflag {
		case tar.TypeLink:
			hardlinks[name] = hdr.Linkname
		case tar.TypeSymlink:
			symlinks[name] = hdr.Linkname
		}
		if hdr.Uid != 0 || hdr.Gid != 0 {
			foreign[name] = [2]int{hdr.Uid, hdr.Gid}
		}
	}
	return data, hardlinks, symlinks, foreign
}

// TestHlinksDerivedLayer imports the real Fedora derived layer
// testdata/hlinks.tar.gz on top of encapsulated MiniOS (appended to the
// oci: layout as a new image, fixtures.AppendLayer) and compares what
// `ocitree image pull` stores with what the real umoci unpacks (as root, so
// that it keeps owners): the checkout of the merge commit equals umoci's
// rootfs (etc at usr/etc, tmp emptied) in types, modes, owners (the layer's
// uid/gid 1000), contents and symlink targets; every hard link of the layer
// is one content object in the store and one inode in a bare checkout, as
// in umoci's rootfs; the merge commit's tree lists every symlink with its
// target; ostree fsck accepts the store.
func TestHlinksDerivedLayer(t *testing.T) {
	setup(t, "umoci")
	t.Parallel()
	layer, hardlinks, symlinks, foreign := hlinksLayer(t)
	if len(hardlinks) == 0 || len(symlinks) == 0 || len(foreign) == 0 {
		t.Fatalf("testdata/hlinks.tar.gz: %d hard links, %d symlinks, %d entries not root-owned; want some of each", len(hardlinks), len(symlinks), len(foreign))
	}
	img := sharedImage(t, "minios")
	dir := workDir(t)
	layout := filepath.Join(dir, "oci")
	copyDir(t, img.layout, layout)
	if err := fixtures.AppendLayer(layout, "latest", "hlinks", layer); err != nil {
		t.Fatal(err)
	}

	// The reference: umoci applies the layers, owners included.
	bundle := filepath.Join(dir, "bundle")
	must(t, runCmd(t, nil, "umoci", "unpack", "--image", layout+":hlinks", bundle))
	rootfs := filepath.Join(bundle, "rootfs")
	normalizeUmociRootfs(t, rootfs, img.src)

	repo := filepath.Join(dir, "repo")
	ocitreeInit(t, repo, "bare")
	merge := imagePull(t, repo, "oci:"+layout+":hlinks", "--progress=never")
	co := filepath.Join(dir, "co")
	must(t, ocitree(t, "repo", "checkout", "--repo", repo, merge, co))
	assertSameTree(t, "checkout of MiniOS + hlinks.tar.gz vs umoci's rootfs", rootfs, co, cmpOpts{})

	ino := func(root, p string) uint64 {
		fi, err := os.Lstat(filepath.Join(root, filepath.FromSlash(p)))
		if err != nil {
			t.Fatal(err)
		}
		return fi.Sys().(*syscall.Stat_t).Ino
	}
	objOf := func(p string) string {
		f := strings.Fields(must(t, ocitree(t, "repo", "ls", "--repo", repo, "-C", merge, "/"+p)))
		if len(f) < 6 {
			t.Fatalf("repo ls -C /%s: %q", p, f)
		}
		return f[4]
	}
	for name, target := range hardlinks {
		if ino(rootfs, name) != ino(rootfs, target) {
			t.Errorf("sanity: umoci did not unpack %s as a hard link of %s", name, target)
		}
		if a, b := objOf(name), objOf(target); a != b {
			t.Errorf("hard link %s is object %s, its target %s is %s", name, a, target, b)
		}
		if ino(co, name) != ino(co, target) {
			t.Errorf("in the bare checkout %s and %s are different inodes", name, target)
		}
	}
	for name, owner := range foreign {
		fi, err := os.Lstat(filepath.Join(co, filepath.FromSlash(name)))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if st := fi.Sys().(*syscall.Stat_t); int(st.Uid) != owner[0] || int(st.Gid) != owner[1] {
			t.Errorf("%s is owned by %d:%d in the checkout, the layer says %d:%d", name, st.Uid, st.Gid, owner[0], owner[1])
		}
	}
	for name, target := range symlinks {
		got, err := os.Readlink(filepath.Join(co, filepath.FromSlash(name)))
		if err != nil || got != target {
			t.Errorf("symlink %s: %q (%v), want %q", name, got, err, target)
		}
	}
	ostreeFsck(t, repo)
}
