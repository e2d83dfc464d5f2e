package imgstore

import (
	"archive/tar"
	"bytes"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/encap/derived"
)

// TestPullRefusesEntriesTheStoreCannotHold: derived-layer entries with a
// name component over 255 bytes, a symlink target of 4,096 bytes or more, a
// uid outside 32 bits or an oversized xattr are refused with the entry and
// the limit named (issue 11, class 5); the store stays sound and the image
// stored before pulls again.
func TestPullRefusesEntriesTheStoreCannotHold(t *testing.T) {
	src := storeRepo(t)
	ca := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img := storeEncap(t, src, ca, dir, "v1", nil)
	long := strings.Repeat("n", 300)
	for _, tc := range []struct {
		name string
		hdr  tar.Header
		want []string
	}{
		{"long name", tar.Header{Name: "usr/share/" + long, Typeflag: tar.TypeReg}, []string{long[:20], "300 bytes; the limit is 255"}},
		{"long symlink target", tar.Header{Name: "usr/share/far", Typeflag: tar.TypeSymlink, Linkname: strings.Repeat("a/", 2500)}, []string{"usr/share/far", "5000 bytes; the limit is 4095"}},
		{"uid over 32 bits", tar.Header{Name: "usr/share/root", Typeflag: tar.TypeReg, Uid: 1 << 32}, []string{"usr/share/root", "4294967296"}},
		{"gid negative", tar.Header{Name: "usr/share/neg", Typeflag: tar.TypeReg, Gid: -1, Format: tar.FormatPAX, PAXRecords: map[string]string{"gid": "-1"}}, []string{"usr/share/neg", "outside"}},
		{"big xattr", tar.Header{Name: "usr/share/x", Typeflag: tar.TypeReg, PAXRecords: map[string]string{"SCHILY.xattr.user.big": strings.Repeat("x", 100<<10)}}, []string{"usr/share/x", "xattr user.big is 102400 bytes; the limit is 65536"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			var tb bytes.Buffer
			tw := tar.NewWriter(&tb)
			h := tc.hdr
			h.Mode = 0o644
			if err := tw.WriteHeader(&h); err != nil {
				t.Fatal(err)
			}
			tw.Close()
			tag := "h-" + strings.ReplaceAll(tc.name, " ", "-")
			storeDerive(t, dir, img, tb.Bytes(), tag)
			repo := storeRepo(t)
			if _, err := storePull(t, repo, "oci:"+dir+":v1", PullOptions{}); err != nil {
				t.Fatal(err)
			}
			before := refMap(t, repo)
			_, err := pullAs(t, repo, dir, tag, tag)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("pull: %v, want an error with %q", err, w)
				}
			}
			if !errors.Is(err, derived.ErrEntryRefused) && !strings.Contains(tc.name, "gid") {
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
