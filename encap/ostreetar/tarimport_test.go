package ostreetar

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/ostree"
)

// ---- building tars by hand ----

type tarEnt struct {
	hdr  tar.Header
	data []byte
}

func regEnt(name, body string) tarEnt {
	return tarEnt{tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}, []byte(body)}
}

func mkTar(t testing.TB, ents ...tarEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// rewrite re-encodes a layer after fn has edited its list of entries.
func rewrite(t testing.TB, layer []byte, fn func([]tarEntry) []tarEntry) []byte {
	t.Helper()
	var out []tarEnt
	for _, e := range fn(readTar(t, layer)) {
		h := *e.Header
		h.Xattrs = nil //nolint:staticcheck // the reader fills it from PAXRecords
		h.Format = tar.FormatGNU
		if len(h.PAXRecords) > 0 {
			h.Format = tar.FormatPAX
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.Data))
		}
		out = append(out, tarEnt{h, e.Data})
	}
	return mkTar(t, out...)
}

func findEntry(t testing.TB, ents []tarEntry, name string) int {
	t.Helper()
	for i, e := range ents {
		if e.Name == name {
			return i
		}
	}
	t.Fatalf("no entry %s", name)
	return -1
}

func insertEntries(ents []tarEntry, at int, es ...tarEntry) []tarEntry {
	out := append([]tarEntry{}, ents[:at]...)
	out = append(out, es...)
	return append(out, ents[at:]...)
}

func fileEntry(name string, typ byte, data string) tarEntry {
	return tarEntry{&tar.Header{Name: name, Typeflag: typ, Mode: 0o644, Size: int64(len(data))}, []byte(data)}
}

// ---- fixture ----

const toolBody = "the unique content of usr/bin/tool\n"

type layerFixture struct {
	r      *ostree.Repo
	c      ostree.Checksum
	cm     *ostree.Commit
	objs   []ostree.ContentObject
	commit []byte // the commit layer with every object
	chunk  []byte // a chunk layer with every object
	big    []byte
	byPath map[string]ostree.Checksum
}

// newLayerFixture commits a small tree from a tar (no root needed): a regular
// file, a >1 MiB file, a symlink, an empty file, user xattrs, /usr/etc.
func newLayerFixture(t testing.TB) *layerFixture {
	t.Helper()
	fx := &layerFixture{big: pseudoRandom(3<<19, 2), byPath: map[string]ostree.Checksum{}}
	x := regEnt("usr/share/x", "has xattrs\n")
	x.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.k": "v", "SCHILY.xattr.user.z": "\x00bin"}
	src := mkTar(t,
		tarEnt{tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755}, nil},
		regEnt("usr/bin/tool", toolBody),
		tarEnt{tar.Header{Name: "usr/lib/big", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(fx.big))}, fx.big},
		tarEnt{tar.Header{Name: "usr/bin/ln", Typeflag: tar.TypeSymlink, Linkname: "tool", Mode: 0o777}, nil},
		regEnt("usr/etc/conf", "key=value\n"),
		regEnt("usr/share/empty", ""),
		x,
	)
	fx.r = newRepo(t, ostree.ModeBareUser)
	var err error
	if fx.c, err = fx.r.CommitTar(bytes.NewReader(src), ostree.CommitOptions{NoParent: true, Subject: "fixture"}); err != nil {
		t.Fatal(err)
	}
	if fx.cm, err = fx.r.ReadCommit(fx.c); err != nil {
		t.Fatal(err)
	}
	fx.objs = allObjects(t, fx.r, fx.c)
	for _, o := range fx.objs {
		for _, p := range o.Paths {
			fx.byPath[p] = o.Checksum
		}
	}
	fx.commit = commitLayer(t, fx.r, fx.c, fx.objs)
	fx.chunk = chunkLayer(t, fx.r, fx.objs)
	return fx
}

func (fx *layerFixture) file(p string) string { return handObjectPath(fx.byPath[p], "file") }
func (fx *layerFixture) link(p string) string {
	return handObjectPath(fx.byPath[p], "file-xattrs-link")
}

// assertEmpty checks an aborted import left no object, ref or staging
// directory, and that ostree fsck accepts the repository.
func assertEmpty(t *testing.T, r *ostree.Repo) {
	t.Helper()
	objs, err := r.ListObjects(func(ostree.ObjectType) bool { return true })
	if err != nil || len(objs) != 0 {
		t.Errorf("objects left after abort: %v %v", objs, err)
	}
	refs, err := r.ListRefs()
	if err != nil || len(refs) != 0 {
		t.Errorf("refs left after abort: %v %v", refs, err)
	}
	left, _ := os.ReadDir(filepath.Join(r.Path(), "tmp"))
	for _, e := range left {
		if strings.Contains(e.Name(), "staging") {
			t.Errorf("staging left after abort: %s", e.Name())
		}
	}
	if _, err := os.Stat(ostreeBin); err == nil && !testing.Short() {
		fsck(t, r)
	}
}

func TestImportBadInput(t *testing.T) {
	fx := newLayerFixture(t)
	other := ostree.SumBytes([]byte("another commit"))
	cases := []struct {
		name  string
		chunk bool
		layer func(t *testing.T) []byte
		want  []string
	}{
		{"content does not hash to its name", false, func(t *testing.T) []byte {
			return rewrite(t, fx.commit, func(es []tarEntry) []tarEntry {
				es[findEntry(t, es, fx.file("/usr/bin/tool"))].Data[0] ^= 1
				return es
			})
		}, []string{fx.file("/usr/bin/tool"), "expected " + fx.byPath["/usr/bin/tool"].String(), "actual "}},
		{"big content does not hash to its name", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				d := es[findEntry(t, es, fx.file("/usr/lib/big"))].Data
				d[len(d)-1] ^= 1
				return es
			})
		}, []string{fx.file("/usr/lib/big"), "checksum mismatch", "expected " + fx.byPath["/usr/lib/big"].String()}},
		{"uid changed", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				es[findEntry(t, es, fx.file("/usr/bin/tool"))].Uid = 7
				return es
			})
		}, []string{fx.file("/usr/bin/tool"), "checksum mismatch"}},
		{"xattrs changed", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				es[findEntry(t, es, fx.link("/usr/share/x"))].Data = nil
				return es
			})
		}, []string{fx.file("/usr/share/x"), "checksum mismatch"}},
		{"dirtree does not hash to its name", false, func(t *testing.T) []byte {
			return rewrite(t, fx.commit, func(es []tarEntry) []tarEntry {
				es[findEntry(t, es, handObjectPath(fx.cm.RootTree, "dirtree"))].Data[0] ^= 1
				return es
			})
		}, []string{handObjectPath(fx.cm.RootTree, "dirtree"), "expected " + fx.cm.RootTree.String()}},
		{"commit not first", false, func(t *testing.T) []byte {
			return rewrite(t, fx.commit, func(es []tarEntry) []tarEntry {
				i := findEntry(t, es, handObjectPath(fx.c, "commit"))
				ce := es[i]
				es = append(es[:i:i], es[i+1:]...)
				return insertEntries(es, findEntry(t, es, handObjectPath(fx.cm.RootTree, "dirtree"))+1, ce)
			})
		}, []string{handObjectPath(fx.cm.RootMeta, "dirmeta"), "missing .commit"}},
		{"no commit", false, func(t *testing.T) []byte {
			return rewrite(t, fx.commit, func(es []tarEntry) []tarEntry {
				i := findEntry(t, es, handObjectPath(fx.c, "commit"))
				return append(es[:i:i], es[i+1:]...)
			})
		}, []string{"missing .commit"}},
		{"second commit", false, func(t *testing.T) []byte {
			return rewrite(t, fx.commit, func(es []tarEntry) []tarEntry {
				i := findEntry(t, es, handObjectPath(fx.c, "commit"))
				return insertEntries(es, len(es), es[i])
			})
		}, []string{handObjectPath(fx.c, "commit"), "duplicate entry"}},
		{"commitmeta of another commit", false, func(t *testing.T) []byte {
			return rewrite(t, fx.commit, func(es []tarEntry) []tarEntry {
				return insertEntries(es, findEntry(t, es, handObjectPath(fx.c, "commit"))+1, fileEntry(handObjectPath(other, "commitmeta"), tar.TypeReg, ""))
			})
		}, []string{handObjectPath(other, "commitmeta"), "detached metadata of commit"}},
		{"truncated in a file", false, func(t *testing.T) []byte {
			i := bytes.Index(fx.commit, []byte(toolBody))
			return fx.commit[:i+5]
		}, []string{fx.file("/usr/bin/tool"), "truncated"}},
		{"truncated in a big file", true, func(t *testing.T) []byte {
			i := bytes.Index(fx.chunk, fx.big[:512])
			return fx.chunk[:i+1<<20+7]
		}, []string{fx.file("/usr/lib/big"), "truncated"}},
		{"truncated in a header", false, func(t *testing.T) []byte {
			i := bytes.Index(fx.commit, []byte(fx.file("/usr/bin/tool")+"\x00"))
			return fx.commit[:i+50]
		}, []string{fx.link("/usr/bin/tool"), "truncated"}},
		{"truncated at an entry boundary", false, func(t *testing.T) []byte {
			return fx.commit[:len(fx.commit)-1024]
		}, []string{"truncated", "no end-of-archive marker"}},
		{"empty stream", false, func(t *testing.T) []byte { return nil }, []string{"truncated"}},
		{"commit layer as a chunk layer", true, func(t *testing.T) []byte { return fx.commit },
			[]string{handObjectPath(fx.c, "commit"), "metadata object in a chunk layer"}},
		{"dirtree in a chunk layer", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				b, _ := fx.r.LoadMeta(fx.cm.RootTree, ostree.ObjDirTree)
				return insertEntries(es, len(es), fileEntry(handObjectPath(fx.cm.RootTree, "dirtree"), tar.TypeReg, string(b)))
			})
		}, []string{handObjectPath(fx.cm.RootTree, "dirtree"), "metadata object in a chunk layer"}},
		{"xattrs link for a different object", false, func(t *testing.T) []byte {
			return rewrite(t, fx.commit, func(es []tarEntry) []tarEntry {
				es[findEntry(t, es, fx.link("/usr/bin/tool"))].Name = handObjectPath(other, "file-xattrs-link")
				return es
			})
		}, []string{fx.file("/usr/bin/tool"), "object mismatch", other.String()}},
		{"dangling xattrs link", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				i := findEntry(t, es, fx.link("/usr/bin/tool"))
				return insertEntries(es, i, fileEntry(handObjectPath(other, "file-xattrs-link"), tar.TypeReg, string(es[i].Data)))
			})
		}, []string{fx.link("/usr/bin/tool"), "dangling"}},
		{"xattrs link at the end", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				return insertEntries(es, len(es), fileEntry(handObjectPath(other, "file-xattrs-link"), tar.TypeReg, string(es[findEntry(t, es, fx.link("/usr/bin/tool"))].Data)))
			})
		}, []string{handObjectPath(other, "file-xattrs-link"), "no object after it"}},
		{"OLD xattrs link to an unknown .file-xattrs", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				e := &es[findEntry(t, es, fx.link("/usr/bin/tool"))]
				*e = tarEntry{&tar.Header{Name: e.Name, Typeflag: tar.TypeLink, Linkname: handObjectPath(ostree.SumBytes(nil), "file-xattrs"), Mode: 0o644}, nil}
				return es
			})
		}, []string{fx.link("/usr/bin/tool"), "not an earlier file of the layer"}},
		{"OLD xattrs link to a file that is not a .file-xattrs", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				e := &es[findEntry(t, es, fx.link("/usr/bin/tool"))]
				*e = tarEntry{&tar.Header{Name: e.Name, Typeflag: tar.TypeLink, Linkname: "sysroot/ostree/repo/config", Mode: 0o644}, nil}
				return es
			})
		}, []string{fx.link("/usr/bin/tool"), "is not a .file-xattrs object"}},
		{"object path objects/zz", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				return insertEntries(es, len(es), fileEntry("sysroot/ostree/repo/objects/zz/"+strings.Repeat("0", 62)+".file", tar.TypeReg, "x"))
			})
		}, []string{"sysroot/ostree/repo/objects/zz/" + strings.Repeat("0", 62) + ".file", "bad object path"}},
		{"object path objects/zz in a commit layer", false, func(t *testing.T) []byte {
			return rewrite(t, fx.commit, func(es []tarEntry) []tarEntry {
				return insertEntries(es, len(es), fileEntry("sysroot/ostree/repo/objects/zz/"+strings.Repeat("0", 62)+".file", tar.TypeReg, "x"))
			})
		}, []string{"sysroot/ostree/repo/objects/zz/" + strings.Repeat("0", 62) + ".file", "bad object path"}},
		{"uppercase object path", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				return insertEntries(es, len(es), fileEntry("sysroot/ostree/repo/objects/AB/"+strings.Repeat("C", 62)+".file", tar.TypeReg, "x"))
			})
		}, []string{"objects/AB/", "bad object path"}},
		{"short object path", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				return insertEntries(es, len(es), fileEntry("sysroot/ostree/repo/objects/ab/cd.file", tar.TypeReg, "x"))
			})
		}, []string{"objects/ab/cd.file", "bad object path"}},
		{"unknown object type", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				return insertEntries(es, len(es), fileEntry(handObjectPath(other, "filez"), tar.TypeReg, "x"))
			})
		}, []string{handObjectPath(other, "filez"), "unknown object type"}},
		{"tar format v0", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				return insertEntries(es, len(es), fileEntry("sysroot/ostree/repo/xattrs/"+other.String(), tar.TypeReg, ""))
			})
		}, []string{"xattrs/" + other.String(), "v0"}},
		{"object listed twice in a chunk layer", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				i := findEntry(t, es, fx.link("/usr/bin/tool"))
				return insertEntries(es, len(es), es[i], es[i+1])
			})
		}, []string{fx.link("/usr/bin/tool"), "duplicate entry"}},
		{"object written as a hardlink", true, func(t *testing.T) []byte {
			return rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
				e := &es[findEntry(t, es, fx.file("/usr/bin/tool"))]
				*e = tarEntry{&tar.Header{Name: e.Name, Typeflag: tar.TypeLink, Linkname: fx.link("/usr/bin/tool")}, nil}
				return es
			})
		}, []string{fx.file("/usr/bin/tool"), "neither a regular file nor a symlink"}},
		{"not a tar stream", true, func(t *testing.T) []byte { return bytes.Repeat([]byte("garbage!"), 200) }, []string{"tar"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := tc.layer(t)
			dst := newRepo(t, ostree.ModeBareUser)
			txn, err := dst.Begin()
			if err != nil {
				t.Fatal(err)
			}
			if tc.chunk {
				err = ImportChunkLayer(txn, bytes.NewReader(data))
			} else {
				_, err = ImportCommitLayer(txn, bytes.NewReader(data))
			}
			txn.Abort()
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			assertEmpty(t, dst)
		})
	}
}

// TestImportVerifiesPresentObjects: an object already in the repository is
// not rewritten, but a bad entry for it is still refused.
func TestImportVerifiesPresentObjects(t *testing.T) {
	fx := newLayerFixture(t)
	bad := rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
		es[findEntry(t, es, fx.file("/usr/bin/tool"))].Data[0] ^= 1
		return es
	})
	txn, err := fx.r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	if err := ImportChunkLayer(txn, bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), "checksum mismatch") {
		t.Fatalf("error %v, want a checksum mismatch", err)
	}
	txn.Abort()
	// The good layers import into the repository that has it all, writing
	// nothing new.
	txn, err = fx.r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	if err := ImportChunkLayer(txn, bytes.NewReader(fx.chunk)); err != nil {
		t.Fatal(err)
	}
	if c, err := ImportCommitLayer(txn, bytes.NewReader(fx.commit)); err != nil || c != fx.c {
		t.Fatalf("%s %v", c, err)
	}
	if n, _ := txn.Stats(); n != 0 {
		t.Errorf("%d objects written again", n)
	}
	if err := VerifyCommitComplete(txn, fx.c); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyCommitComplete(t *testing.T) {
	fx := newLayerFixture(t)
	for _, tc := range []struct {
		name    string
		rest    int // objects in the commit layer
		missing int
	}{
		{"no content", 0, len(fx.objs)},
		{"one missing", len(fx.objs) - 1, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := commitLayer(t, fx.r, fx.c, fx.objs[:tc.rest])
			dst := newRepo(t, ostree.ModeArchive)
			txn, err := dst.Begin()
			if err != nil {
				t.Fatal(err)
			}
			c, err := ImportCommitLayer(txn, bytes.NewReader(data))
			if err != nil || c != fx.c {
				t.Fatalf("%s %v", c, err)
			}
			err = VerifyCommitComplete(txn, c)
			txn.Abort()
			if err == nil {
				t.Fatal("no error for an incomplete commit")
			}
			first := fx.objs[tc.rest] // the first one the walk misses
			for _, w := range []string{c.String(), "incomplete", first.Checksum.String() + ".file", first.Paths[0], fmt.Sprintf(": %d objects missing", tc.missing)} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			assertEmpty(t, dst)
		})
	}
	// A commit the transaction does not have at all.
	dst := newRepo(t, ostree.ModeBareUser)
	txn, err := dst.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	var missing *ostree.MissingObjectError
	if err := VerifyCommitComplete(txn, fx.c); !errors.As(err, &missing) {
		t.Fatalf("error %v, want a missing commit", err)
	}
}

// TestImportOldXattrsForm imports a layer in ostree-ext's OLD form: one
// .file-xattrs object per distinct xattr set, and each .file-xattrs-link a
// hardlink to it.
func TestImportOldXattrsForm(t *testing.T) {
	fx := newLayerFixture(t)
	emptySet := handObjectPath(ostree.Checksum(sha256.Sum256(nil)), "file-xattrs")
	if !strings.HasPrefix(emptySet, "sysroot/ostree/repo/objects/e3/b0c442") {
		t.Fatal(emptySet)
	}
	old := rewrite(t, fx.commit, func(es []tarEntry) []tarEntry {
		var out []tarEntry
		wrote := map[string]bool{}
		for _, e := range es {
			if !strings.HasSuffix(e.Name, ".file-xattrs-link") {
				out = append(out, e)
				continue
			}
			sum := sha256.Sum256(e.Data)
			target := "sysroot/ostree/repo/objects/" + hex.EncodeToString(sum[:1]) + "/" + hex.EncodeToString(sum[1:]) + ".file-xattrs"
			if !wrote[target] {
				wrote[target] = true
				out = append(out, fileEntry(target, tar.TypeReg, string(e.Data)))
			}
			out = append(out, tarEntry{&tar.Header{Name: e.Name, Typeflag: tar.TypeLink, Linkname: target, Mode: 0o644}, nil})
		}
		if !wrote[emptySet] || len(wrote) != 2 {
			t.Fatalf("xattr sets %v", wrote)
		}
		return out
	})
	if !bytes.Contains(old, []byte("././@LongLink\x00")) || bytes.Count(old, []byte(".file-xattrs\x00")) < 2 {
		t.Fatal("the OLD layer has no long link targets")
	}
	dst := newRepo(t, ostree.ModeBareUser)
	if got := importLayers(t, dst, testLayer{true, old}); got != fx.c {
		t.Fatalf("imported %s, want %s", got, fx.c)
	}
	if _, err := os.Stat(ostreeBin); err == nil && !testing.Short() {
		fsck(t, dst)
	}
	// A .file-xattrs whose bytes do not hash to its name is refused.
	bad := rewrite(t, old, func(es []tarEntry) []tarEntry {
		es[findEntry(t, es, emptySet)].Data = []byte("x")
		return es
	})
	txn, err := newRepo(t, ostree.ModeBareUser).Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	if _, err := ImportCommitLayer(txn, bytes.NewReader(bad)); err == nil || !strings.Contains(err.Error(), emptySet) {
		t.Fatalf("error %v, want one naming %s", err, emptySet)
	}
}

func TestImportDetachedMetadata(t *testing.T) {
	fx := newLayerFixture(t)
	md := ostree.Metadata{{Key: "ostree.gpgsigs", Value: ostree.StringVariant("sig")}}
	if err := fx.r.WriteDetachedMetadata(fx.c, md); err != nil {
		t.Fatal(err)
	}
	data := commitLayer(t, fx.r, fx.c, fx.objs)
	dst := newRepo(t, ostree.ModeBareUser)
	txn, err := dst.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	c, err := ImportCommitLayer(txn, bytes.NewReader(data))
	if err != nil || c != fx.c {
		t.Fatalf("%s %v", c, err)
	}
	if err := VerifyCommitComplete(txn, c); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := dst.ReadDetachedMetadata(c)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := md.Encode()
	if gb, _ := got.Encode(); !bytes.Equal(gb, want) {
		t.Fatalf("detached metadata %v, want %v", got, md)
	}
	// Without a .commitmeta there is none.
	dst2 := newRepo(t, ostree.ModeBareUser)
	if err := fx.r.WriteDetachedMetadata(fx.c, nil); err != nil {
		t.Fatal(err)
	}
	txn2, err := dst2.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn2.Abort()
	if _, err := ImportCommitLayer(txn2, bytes.NewReader(commitLayer(t, fx.r, fx.c, nil))); err != nil {
		t.Fatal(err)
	}
	if err := txn2.Commit(); err != nil {
		t.Fatal(err)
	}
	if got, err := dst2.ReadDetachedMetadata(fx.c); err != nil || got != nil {
		t.Fatalf("%v %v", got, err)
	}
}

// TestImportIgnoresNonRepoEntries: entries outside the repository's
// objects (checkout paths, directories, config, refs) do not matter.
func TestImportIgnoresNonRepoEntries(t *testing.T) {
	fx := newLayerFixture(t)
	data := rewrite(t, fx.chunk, func(es []tarEntry) []tarEntry {
		return insertEntries(es, 0,
			fileEntry("etc/whatever", tar.TypeReg, "x"),
			fileEntry("sysroot/ostree/repo/refs/heads/x", tar.TypeReg, someHex()),
			fileEntry("./sysroot/ostree/repo/objects/00/"+strings.Repeat("0", 62)+".commit", tar.TypeReg, "not read"),
		)
	})
	dst := newRepo(t, ostree.ModeBareUser)
	txn, err := dst.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	if err := ImportChunkLayer(txn, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	for _, o := range fx.objs {
		if ok, _ := txn.Has(o.Checksum, ostree.ObjFile); !ok {
			t.Errorf("%s not imported", o.Paths[0])
		}
	}
}

func someHex() string { return strings.Repeat("ab", 32) }

func TestObjectOfTarName(t *testing.T) {
	h := strings.Repeat("ab", 32)
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"sysroot/ostree/repo/objects/ab/" + h[2:] + ".file", true},
		{"./sysroot/ostree/repo/objects/ab/" + h[2:] + ".dirtree", true},
		{"sysroot/ostree/repo/objects/ab/" + h[2:] + ".commitmeta", true},
		{"sysroot/ostree/repo/objects/ab/" + h[2:] + ".file-xattrs", false},
		{"sysroot/ostree/repo/xattrs/" + h, false},
		{"sysroot/ostree/repo/objects/ab/" + h[4:] + ".file", false},
		{"usr/bin/sh", false},
	} {
		c, _, ok := ObjectOfTarName(tc.name)
		if ok != tc.ok || (ok && c.String() != h) {
			t.Errorf("ObjectOfTarName(%q) = %s, %v; want ok=%v", tc.name, c, ok, tc.ok)
		}
	}
}
