package imgstore

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/encap/tarrules"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// hostileOstreeLayer returns the last (ostree) layer of the layout's image
// as a plain tar, rewritten with extra entries appended before its end.
func hostileOstreeLayer(t *testing.T, dir string, l v1.Descriptor, extra []tar.Header, raw []byte) []byte {
	t.Helper()
	b, err := os.ReadFile(blobFile(dir, l.Digest))
	if err != nil {
		t.Fatal(err)
	}
	var r io.Reader = bytes.NewReader(b)
	if strings.HasSuffix(l.MediaType, "gzip") {
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		r = zr
	} else if l.MediaType != v1.MediaTypeImageLayer {
		t.Fatalf("fixture: layer media type %s", l.MediaType)
	}
	var out bytes.Buffer
	tr := tar.NewReader(r)
	tw := tar.NewWriter(&out)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	for _, h := range extra {
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if h.Size > 0 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
	}
	if raw != nil { // a whole tar, end-of-archive included
		if err := tw.Flush(); err != nil {
			t.Fatal(err)
		}
		return append(out.Bytes(), raw...)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

// TestPullRefusesHostileOstreeLayerEntries: an ostree (chunk or commit)
// layer with an entry of any hostile class is refused with the entry and
// the rule named, even where the importer would ignore the entry (a
// container runtime unpacks the same layer); nothing is kept, both fsck
// tools pass, and the image stored before pulls again (issue 11, class 5).
func TestPullRefusesHostileOstreeLayerEntries(t *testing.T) {
	src := storeRepo(t)
	ca := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img := storeEncap(t, src, ca, dir, "v1", nil)
	var m v1.Manifest
	if err := json.Unmarshal(img.Manifest, &m); err != nil {
		t.Fatal(err)
	}
	last := len(m.Layers) - 1
	long := strings.Repeat("n", 300)
	obj := "sysroot/ostree/repo/objects/ab/" + strings.Repeat("c", 62)
	for _, tc := range []struct {
		name  string
		extra []tar.Header
		want  []string
		raw   string // testdata file appended after extra
	}{
		{"dotdot", []tar.Header{{Name: "usr/../../escape", Typeflag: tar.TypeReg, Size: 1}}, []string{"usr/../../escape", `".." refused`}, ""},
		{"dotdot in the repo", []tar.Header{{Name: "sysroot/ostree/repo/objects/../../../../etc/x", Typeflag: tar.TypeReg}}, []string{"objects/../", `".." refused`}, ""},
		{"absolute", []tar.Header{{Name: "/etc/shadow", Typeflag: tar.TypeReg, Size: 1}}, []string{"/etc/shadow", "absolute path refused"}, ""},
		{"symlinked parent", []tar.Header{{Name: "usr/evil", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, {Name: "usr/evil/passwd", Typeflag: tar.TypeReg, Size: 1}}, []string{"usr/evil/passwd", "parent usr/evil is not a directory"}, ""},
		{"file parent", []tar.Header{{Name: "usr/plain", Typeflag: tar.TypeReg}, {Name: "usr/plain/below", Typeflag: tar.TypeDir, Mode: 0o755}}, []string{"usr/plain/below", "parent usr/plain is not a directory"}, ""},
		{"char device", []tar.Header{{Name: "usr/null", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3}}, []string{"usr/null", "device nodes"}, ""},
		{"block device", []tar.Header{{Name: "etc/sda", Typeflag: tar.TypeBlock, Devmajor: 8}}, []string{"etc/sda", "device nodes"}, ""},
		{"fifo", []tar.Header{{Name: "usr/pipe", Typeflag: tar.TypeFifo}}, []string{"usr/pipe", "FIFOs"}, ""},
		{"bad object path", []tar.Header{{Name: "sysroot/ostree/repo/objects/zz/" + strings.Repeat("0", 62) + ".file", Typeflag: tar.TypeReg, Size: 1}}, []string{"objects/zz/", "bad object path"}, ""},
		{"directory deep in objects", []tar.Header{{Name: obj + ".file/", Typeflag: tar.TypeDir, Mode: 0o755}}, []string{obj + ".file", "bad object path"}, ""},
		{"object as a symlink to outside", []tar.Header{{Name: obj + ".filez", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"}}, []string{obj + ".filez", "unknown object type"}, ""},
		{"hardlink to nowhere", []tar.Header{{Name: "usr/ghost", Typeflag: tar.TypeLink, Linkname: "usr/nothing"}}, []string{"usr/ghost", "not an earlier file of the layer"}, ""},
		{"hardlink out", []tar.Header{{Name: "usr/out", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}}, []string{"usr/out", "hardlink target", `".." refused`}, ""},
		{"hardlink to a directory", []tar.Header{{Name: "usr/d", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "usr/dl", Typeflag: tar.TypeLink, Linkname: "usr/d"}}, []string{"usr/dl", "not an earlier file of the layer"}, ""},
		{"duplicate entry", []tar.Header{{Name: "usr/dup", Typeflag: tar.TypeReg, Size: 1}, {Name: "usr/dup", Typeflag: tar.TypeSymlink, Linkname: "x"}}, []string{"usr/dup", "duplicate entry"}, ""},
		{"file over a directory", []tar.Header{{Name: "usr/dd/", Typeflag: tar.TypeDir, Mode: 0o755}, {Name: "usr/dd", Typeflag: tar.TypeReg}}, []string{"usr/dd", "duplicate entry"}, ""},
		{"long name", []tar.Header{{Name: "usr/" + long, Typeflag: tar.TypeReg}}, []string{long[:40], "300 bytes; the limit is 255"}, ""},
		{"long symlink target", []tar.Header{{Name: "usr/far", Typeflag: tar.TypeSymlink, Linkname: strings.Repeat("a/", 2500)}}, []string{"usr/far", "5000 bytes; the limit is 4095"}, ""},
		{"uid over 32 bits", []tar.Header{{Name: "usr/root", Typeflag: tar.TypeReg, Uid: 1 << 32}}, []string{"usr/root", "4294967296"}, ""},
		{"big xattr", []tar.Header{{Name: "usr/x", Typeflag: tar.TypeReg, PAXRecords: map[string]string{"SCHILY.xattr.user.big": strings.Repeat("x", 100<<10)}}}, []string{"usr/x", "xattr user.big is 102400 bytes; the limit is 65536"}, ""},
		{"sparse terabyte", nil, []string{"usr/sparse", "sparse files are not supported"}, "sparse-pax.tar"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			var raw []byte
			if tc.raw != "" {
				var err error
				if raw, err = os.ReadFile(filepath.Join("testdata", tc.raw)); err != nil {
					t.Fatal(err)
				}
			}
			layer := hostileOstreeLayer(t, dir, m.Layers[last], tc.extra, raw)
			tag := "h-" + strings.ReplaceAll(tc.name, " ", "-")
			craftImage(t, dir, tag, img, [][]byte{layer}, func(m *v1.Manifest, cfg *v1.Image) {
				m.Layers[last] = v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: int64(len(layer)), Annotations: m.Layers[last].Annotations}
				if cfg.Config.Labels["ostree.final-diffid"] == cfg.RootFS.DiffIDs[last].String() {
					cfg.Config.Labels["ostree.final-diffid"] = digest.FromBytes(layer).String()
				}
				cfg.RootFS.DiffIDs[last] = digest.FromBytes(layer)
			})
			repo := storeRepo(t)
			if _, err := pullAs(t, repo, dir, "v1", "v1"); err != nil {
				t.Fatal(err)
			}
			before := refMap(t, repo)
			_, err := pullAs(t, repo, dir, tag, tag)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("pull: %v, want an error with %q", err, w)
				}
			}
			if !errors.Is(err, tarrules.ErrEntryRefused) {
				t.Errorf("%v does not wrap ErrEntryRefused", err)
			}
			after := refMap(t, repo)
			if len(after) != len(before) {
				t.Errorf("refs changed: %d -> %d", len(before), len(after))
			}
			storeSound(t, repo)
			if res, err := pullAs(t, repo, dir, "v1", "again"); err != nil || res.BaseCommit != ca {
				t.Errorf("legitimate pull after the hostile image: %+v, %v", res, err)
			}
		})
	}
}

// TestPullXattrOverFileSystemLimit: an xattr under the entry rules' 64 KiB
// but over what the store's file system holds (about 4 KiB on ext4) is
// refused with the entry, the size and the file system's limit named
// (ostree.ErrXattrTooLarge), not "no space left on device"; the store
// stays sound and the image stored before pulls again (issue 11, class 5).
func TestPullXattrOverFileSystemLimit(t *testing.T) {
	src := storeRepo(t)
	ca := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img := storeEncap(t, src, ca, dir, "v1", nil)
	repo := storeRepo(t)
	limit, err := repo.XattrLimit()
	if err != nil {
		t.Fatal(err)
	}
	size := min(limit+1, tarrules.MaxXattrBytes)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "usr/share/x", Typeflag: tar.TypeReg, Mode: 0o644, PAXRecords: map[string]string{"SCHILY.xattr.user.big": strings.Repeat("x", size)}})
	tw.Close()
	storeDerive(t, dir, img, tb.Bytes(), "h")
	if _, err := pullAs(t, repo, dir, "v1", "v1"); err != nil {
		t.Fatal(err)
	}
	before := refMap(t, repo)
	_, err = pullAs(t, repo, dir, "h", "h")
	if limit >= tarrules.MaxXattrBytes {
		t.Logf("the file system holds %d bytes: accepted (%v)", limit, err)
	} else {
		for _, w := range []string{"usr/share/x", "user.big, is " + strconv.Itoa(size) + " bytes", "the limit of the store's file system is " + strconv.Itoa(limit)} {
			if err == nil || !strings.Contains(err.Error(), w) {
				t.Fatalf("pull: %v, want an error with %q", err, w)
			}
		}
		t.Logf("refused: %v", err)
		if !errors.Is(err, ostree.ErrXattrTooLarge) {
			t.Errorf("%v does not wrap ErrXattrTooLarge", err)
		}
		if after := refMap(t, repo); len(after) != len(before) {
			t.Errorf("refs changed: %d -> %d", len(before), len(after))
		}
	}
	storeSound(t, repo)
	if res, err := pullAs(t, repo, dir, "v1", "again"); err != nil || res.BaseCommit != ca {
		t.Errorf("legitimate pull after the hostile image: %+v, %v", res, err)
	}
}
