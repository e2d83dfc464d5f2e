package tarrules

import (
	"archive/tar"
	"errors"
	"strings"
	"testing"
)

// TestLayerEntry: each sequence of entries is accepted up to its last,
// which is refused with the rule named (or accepted when want is empty).
func TestLayerEntry(t *testing.T) {
	reg := func(n string) tar.Header { return tar.Header{Name: n, Typeflag: tar.TypeReg} }
	dir := func(n string) tar.Header { return tar.Header{Name: n, Typeflag: tar.TypeDir} }
	lnk := func(n, to string) tar.Header { return tar.Header{Name: n, Typeflag: tar.TypeLink, Linkname: to} }
	sym := func(n, to string) tar.Header { return tar.Header{Name: n, Typeflag: tar.TypeSymlink, Linkname: to} }
	for _, tc := range []struct {
		name string
		ents []tar.Header
		want string
	}{
		{"plain", []tar.Header{dir("./"), dir("usr/"), reg("usr/a"), lnk("usr/b", "usr/a"), sym("usr/c", "a")}, ""},
		{"directory twice", []tar.Header{dir("usr/"), dir("usr")}, ""},
		{"dot prefix and double slash are the same path", []tar.Header{reg("./usr//a"), lnk("usr/b", "usr/./a")}, ""},
		{"hardlink to a symlink", []tar.Header{sym("usr/s", "x"), lnk("usr/t", "usr/s")}, ""},
		{"dotdot", []tar.Header{reg("usr/../../x")}, `".." refused`},
		{"absolute", []tar.Header{reg("/x")}, "absolute path refused"},
		{"symlinked parent", []tar.Header{sym("usr/s", "/etc"), reg("usr/s/passwd")}, "parent usr/s is not a directory"},
		{"hardlinked parent", []tar.Header{reg("usr/a"), lnk("usr/h", "usr/a"), dir("usr/h/d")}, "parent usr/h is not a directory"},
		{"deep below a file", []tar.Header{reg("a"), reg("a/b/c/d")}, "parent a is not a directory"},
		{"duplicate file", []tar.Header{reg("a"), reg("a")}, "duplicate entry"},
		{"directory over a file", []tar.Header{reg("a"), dir("a")}, "duplicate entry"},
		{"root as a file", []tar.Header{reg("./")}, "non-directory entry for the root"},
		{"hardlink to nowhere", []tar.Header{lnk("a", "b")}, "not an earlier file"},
		{"hardlink to itself", []tar.Header{lnk("a", "a")}, "not an earlier file"},
		{"hardlink to a directory", []tar.Header{dir("d"), lnk("a", "d")}, "not an earlier file"},
		{"hardlink out", []tar.Header{lnk("a", "../b")}, "hardlink target"},
		{"hardlink absolute", []tar.Header{reg("b"), lnk("a", "/b")}, "absolute path refused"},
		{"char device", []tar.Header{{Name: "null", Typeflag: tar.TypeChar}}, "device nodes"},
		{"fifo", []tar.Header{{Name: "p", Typeflag: tar.TypeFifo}}, "FIFOs"},
		{"unknown type", []tar.Header{{Name: "p", Typeflag: 'Z'}}, "unsupported tar entry type"},
		{"sparse", []tar.Header{{Name: "s", Typeflag: tar.TypeGNUSparse}}, "sparse"},
		{"pax sparse", []tar.Header{{Name: "s", Typeflag: tar.TypeReg, PAXRecords: map[string]string{"GNU.sparse.major": "1"}}}, "sparse"},
		{"long component", []tar.Header{reg("usr/" + strings.Repeat("n", 256))}, "256 bytes; the limit is 255"},
		{"long target", []tar.Header{sym("s", strings.Repeat("t", 4096))}, "4096 bytes; the limit is 4095"},
		{"uid", []tar.Header{{Name: "u", Typeflag: tar.TypeReg, Uid: 1 << 32}}, "outside"},
		{"xattr", []tar.Header{{Name: "x", Typeflag: tar.TypeReg, PAXRecords: map[string]string{"SCHILY.xattr.user.a": strings.Repeat("v", 65537)}}}, "65537 bytes; the limit is 65536"},
		{"xattrs together", []tar.Header{{Name: "x", Typeflag: tar.TypeReg, PAXRecords: map[string]string{"SCHILY.xattr.user.a": strings.Repeat("v", 40000), "SCHILY.xattr.user.b": strings.Repeat("v", 40000)}}}, "together; the limit is 65536"},
		{"bad UTF-8", []tar.Header{reg("a\xff")}, "UTF-8"},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			l := NewLayer()
			var err error
			for i := range tc.ents {
				_, err = l.Entry(&tc.ents[i])
				if err != nil && i < len(tc.ents)-1 {
					t.Fatalf("entry %d (%s): %v", i, tc.ents[i].Name, err)
				}
			}
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an error with %q", err, tc.want)
			}
			if !errors.Is(err, ErrEntryRefused) {
				t.Errorf("%v does not wrap ErrEntryRefused", err)
			}
		})
	}
}
