package ostreetar

import (
	"archive/tar"
	"bytes"
	"testing"

	"github.com/ocitree/ocitree/encap/internal/enctest"
)

// FuzzImportChunkLayer feeds arbitrary tar streams to the ostree-layer
// importer, as a chunk or a commit layer (issue 11, class 7): no panic, nothing written outside the
// repository. `go test` runs the seed corpus only; `make fuzz` runs it for
// minutes.
func FuzzImportChunkLayer(f *testing.F) {
	mk := func(ents ...tar.Header) []byte {
		var b bytes.Buffer
		tw := tar.NewWriter(&b)
		for _, h := range ents {
			tw.WriteHeader(&h)
			if h.Size > 0 {
				tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
			}
		}
		tw.Close()
		return b.Bytes()
	}
	obj := "sysroot/ostree/repo/objects/ab/" + string(bytes.Repeat([]byte("c"), 62)) + ".file"
	f.Add(mk(tar.Header{Name: "sysroot/", Typeflag: tar.TypeDir, Mode: 0o755}, tar.Header{Name: obj, Typeflag: tar.TypeReg, Mode: 0o644, Size: 3}), false)
	f.Add(mk(tar.Header{Name: "../escape", Typeflag: tar.TypeReg, Size: 1}), false)
	f.Add(mk(tar.Header{Name: obj, Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"}), true)
	f.Add(mk(tar.Header{Name: "usr/s", Typeflag: tar.TypeSymlink, Linkname: "/etc"}, tar.Header{Name: "usr/s/x", Typeflag: tar.TypeReg, Size: 1}), false)
	f.Add(mk(tar.Header{Name: obj, Typeflag: tar.TypeReg, Size: 1}, tar.Header{Name: "usr/a", Typeflag: tar.TypeLink, Linkname: obj}, tar.Header{Name: "usr/a", Typeflag: tar.TypeLink, Linkname: "usr/b"}), false)
	f.Add(mk(tar.Header{Name: "sysroot/ostree/repo/objects/ab/" + string(bytes.Repeat([]byte("c"), 62)) + ".commit", Typeflag: tar.TypeReg, Size: 8}), true)
	f.Add([]byte("garbage"), true)
	// One repository per fuzzing process: an exec is one transaction,
	// aborted (creating and removing a repository per exec was most of the
	// time on a slow disk).
	top, r := enctest.FuzzRepo(f)
	f.Fuzz(func(t *testing.T, layer []byte, commit bool) {
		txn, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if commit {
			_, _ = ImportCommitLayer(txn, bytes.NewReader(layer))
		} else {
			_, _ = ImportChunkLayerObjects(txn, bytes.NewReader(layer))
		}
		txn.Abort()
		enctest.Contained(t, top)
	})
}
