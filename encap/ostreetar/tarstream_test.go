package ostreetar

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/ocitree/ocitree/ostree"
)

// ---- environment ----

// ---- source trees ----

// mkFile creates a file; mode is a raw st_mode permission value (setuid
// 0o4000 included, which os.FileMode would not carry).
func mkFile(t testing.TB, root, rel string, mode uint32, data []byte) string {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func mkDir(t testing.TB, root, rel string, mode uint32) string {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	return p
}

func symlink(t testing.TB, root, rel, target string) {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func setxattr(t testing.TB, p, name string, value []byte) {
	t.Helper()
	if err := unix.Lsetxattr(p, name, value, 0); err != nil {
		t.Fatalf("setxattr %s %s: %v", p, name, err)
	}
}

func chown(t testing.TB, p string, uid, gid int) {
	t.Helper()
	if err := os.Lchown(p, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func pseudoRandom(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

const longDir = "usr/share/a-directory-name-that-is-long-enough/to-make-the-tar-path-longer-than/one-hundred-bytes-in-total"

// buildSource makes a tree with every kind of entry the stream has to carry.
func buildSource(t testing.TB) string {
	t.Helper()
	root := t.TempDir()
	if err := os.Chmod(root, 0o755); err != nil {
		t.Fatal(err)
	}
	mkFile(t, root, "usr/bin/sh", 0o755, []byte("#!/bin/sh\necho hi\n"))
	mkFile(t, root, "usr/bin/big", 0o644, pseudoRandom(1<<20+300<<10, 1))
	mkFile(t, root, "usr/bin/su", 0o4755, []byte("setuid\n"))
	mkFile(t, root, "usr/bin/wall", 0o2755, []byte("setgid\n"))
	mkFile(t, root, "usr/lib/empty1", 0o644, nil)
	mkFile(t, root, "usr/lib/empty2", 0o644, nil)
	chown(t, mkFile(t, root, "usr/share/empty3", 0o600, nil), 1000, 1000)
	h := mkFile(t, root, "usr/lib/hard1", 0o644, []byte("hardlinked\n"))
	if err := os.Link(h, filepath.Join(root, "usr/lib/hard2")); err != nil {
		t.Fatal(err)
	}
	mkFile(t, root, "usr/share/same1", 0o644, []byte("same bytes\n"))
	mkFile(t, root, "usr/share/z/same2", 0o644, []byte("same bytes\n"))
	symlink(t, root, "usr/bin/link", "sh")
	symlink(t, root, "usr/lib/denormal", "../../..//sbin/chkconfig")
	symlink(t, root, "usr/lib/longtarget", strings.Repeat("long/", 30)+"target")
	mkFile(t, root, "usr/etc/passwd", 0o644, []byte("root:x:0:0::/root:/bin/sh\n"))
	mkFile(t, root, "usr/etc/ssh/sshd_config", 0o600, []byte("PermitRootLogin no\n"))
	mkDir(t, root, "usr/etc/empty.d", 0o750)
	mkDir(t, root, "home/user", 0o700)
	chown(t, mkFile(t, root, "home/user/notes", 0o640, []byte("mine\n")), 1000, 1000)
	chown(t, filepath.Join(root, "home/user"), 1000, 1000)
	x := mkFile(t, root, "usr/share/xattr", 0o644, []byte("with xattrs\n"))
	setxattr(t, x, "user.foo", []byte("bar"))
	setxattr(t, x, "user.bin", []byte{0, 1, 2, 0xff})
	d := mkDir(t, root, "usr/share/xdir", 0o755)
	setxattr(t, d, "user.dirattr", []byte("on a directory"))
	mkFile(t, root, longDir+"/file-at-the-end-of-a-long-path", 0o644, []byte("deep\n"))
	mkFile(t, root, "usr/share/ünïcode", 0o644, []byte("utf-8 name\n"))
	mkDir(t, root, "var/lib", 0o755)
	mkDir(t, root, "tmp", 0o1777)
	mkDir(t, root, "sysroot", 0o755)
	return root
}

// ---- tree comparison ----

type fsEntry struct {
	Type     fs.FileMode
	Perm     uint32
	UID, GID uint32
	Data     [32]byte
	Target   string
	Xattrs   string
}

func listXattrs(t testing.TB, p string) string {
	t.Helper()
	sz, err := unix.Llistxattr(p, nil)
	if err != nil || sz == 0 {
		return ""
	}
	buf := make([]byte, sz)
	sz, err = unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range strings.Split(strings.TrimRight(string(buf[:sz]), "\x00"), "\x00") {
		if n != "" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	var out []string
	for _, n := range names {
		vs, err := unix.Lgetxattr(p, n, nil)
		if err != nil {
			t.Fatal(err)
		}
		v := make([]byte, vs)
		if _, err := unix.Lgetxattr(p, n, v); err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s=%q", n, v))
	}
	return strings.Join(out, ",")
}

func scanTree(t testing.TB, root string) map[string]fsEntry {
	t.Helper()
	out := map[string]fsEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		e := fsEntry{Type: d.Type(), Perm: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid, Xattrs: listXattrs(t, p)}
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			e.Data = sha256.Sum256(b)
		}
		out[rel] = e
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func compareTrees(t testing.TB, want, got string) {
	t.Helper()
	w, g := scanTree(t, want), scanTree(t, got)
	var names []string
	for k := range w {
		names = append(names, k)
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	bad := 0
	for _, n := range names {
		we, wok := w[n]
		ge, gok := g[n]
		if we != ge || wok != gok {
			bad++
			if bad <= 10 {
				t.Errorf("%s: source %+v (present %v), checkout %+v (present %v)", n, we, wok, ge, gok)
			}
		}
	}
	if len(w) < 20 {
		t.Fatalf("source scan found only %d entries", len(w))
	}
}

func checkout(t testing.TB, r *ostree.Repo, c ostree.Checksum) string {
	t.Helper()
	requireOstree(t)
	dest := filepath.Join(t.TempDir(), "co")
	runOstree(t, "checkout", "--repo="+r.Path(), c.String(), dest)
	return dest
}

// ---- layers ----

func allObjects(t testing.TB, r *ostree.Repo, c ostree.Checksum) []ostree.ContentObject {
	t.Helper()
	objs, err := ostree.CommitObjects(r, c)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func commitLayer(t testing.TB, r *ostree.Repo, c ostree.Checksum, rest []ostree.ContentObject) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteCommitLayer(&buf, r, c, Chunk{Objects: rest}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func chunkLayer(t testing.TB, r *ostree.Repo, objs []ostree.ContentObject) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := WriteChunkLayer(&buf, r, Chunk{Objects: objs}); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// testLayer is one layer to import: a commit layer or a chunk layer.
type testLayer struct {
	commit bool
	data   []byte
}

// importLayers imports the layers in order into dst in one transaction,
// checks the commit is complete, sets a ref to it and commits.
func importLayers(t testing.TB, dst *ostree.Repo, layers ...testLayer) ostree.Checksum {
	t.Helper()
	txn, err := dst.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	var got ostree.Checksum
	for i, l := range layers {
		if l.commit {
			got, err = ImportCommitLayer(txn, bytes.NewReader(l.data))
		} else {
			err = ImportChunkLayer(txn, bytes.NewReader(l.data))
		}
		if err != nil {
			t.Fatalf("layer %d (commit %v): %v", i, l.commit, err)
		}
	}
	if err := VerifyCommitComplete(txn, got); err != nil {
		t.Fatal(err)
	}
	if err := txn.SetRef("imported", &got); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	return got
}

// tarEntry is one tar entry read back, with its raw header block.
type tarEntry struct {
	*tar.Header
	Data []byte
}

func readTar(t testing.TB, b []byte) []tarEntry {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(b))
	var out []tarEntry
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		d, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, tarEntry{h, d})
	}
}

// ---- tests ----

func TestRoundTrip(t *testing.T) {
	requireRoot(t)
	requireOstree(t)
	src := buildSource(t)
	srcRepo := newRepo(t, ostree.ModeBareUser)
	c := commitDir(t, srcRepo, src)
	// The comparison itself: real ostree's checkout of the source commit.
	compareTrees(t, src, checkout(t, srcRepo, c))
	data := commitLayer(t, srcRepo, c, allObjects(t, srcRepo, c))
	for _, m := range []ostree.Mode{ostree.ModeBareUser, ostree.ModeArchive, ostree.ModeBare} {
		t.Run(m.String(), func(t *testing.T) {
			dst := newRepo(t, m)
			got := importLayers(t, dst, testLayer{true, data})
			if got != c {
				t.Fatalf("imported commit %s, want %s", got, c)
			}
			if refs, err := dst.ListRefs(); err != nil || len(refs) != 1 || refs[0].Checksum != c {
				t.Fatalf("refs %v, %v", refs, err)
			}
			fsck(t, dst)
			compareTrees(t, src, checkout(t, dst, got))
		})
	}
}

// ---- hand-written expectations (from the spec, not from the code) ----

func handObjectPath(c ostree.Checksum, suffix string) string {
	h := c.String()
	return "sysroot/ostree/repo/objects/" + h[:2] + "/" + h[2:] + "." + suffix
}

func handSkeleton() []string {
	s := []string{"sysroot", "sysroot/ostree", "sysroot/ostree/repo", "sysroot/ostree/repo/objects"}
	const hex = "0123456789abcdef"
	for i := 0; i < 16; i++ {
		for j := 0; j < 16; j++ {
			s = append(s, "sysroot/ostree/repo/objects/"+string(hex[i])+string(hex[j]))
		}
	}
	return append(s,
		"sysroot/ostree/repo/extensions",
		"sysroot/ostree/repo/refs",
		"sysroot/ostree/repo/refs/heads",
		"sysroot/ostree/repo/refs/mirrors",
		"sysroot/ostree/repo/refs/remotes",
		"sysroot/ostree/repo/state",
		"sysroot/ostree/repo/tmp",
		"sysroot/ostree/repo/tmp/cache")
}

func handCheckoutName(abs string) string {
	rel := strings.TrimPrefix(abs, "/")
	if rel == "usr/etc" || strings.HasPrefix(rel, "usr/etc/") {
		return "etc" + strings.TrimPrefix(rel, "usr/etc")
	}
	return rel
}

// checkSkeleton checks ents start with the skeleton and the config file and
// returns the index after them.
func checkSkeleton(t *testing.T, ents []tarEntry, at int) int {
	t.Helper()
	for _, want := range handSkeleton() {
		e := ents[at]
		if e.Name != want || e.Typeflag != tar.TypeDir || e.Mode != 0o755 || e.Uid != 0 || e.Gid != 0 {
			t.Fatalf("entry %d: %s type %c mode %o %d/%d, want skeleton dir %s 0755 0/0", at, e.Name, e.Typeflag, e.Mode, e.Uid, e.Gid, want)
		}
		at++
	}
	cfg := ents[at]
	if cfg.Name != "sysroot/ostree/repo/config" || cfg.Typeflag != tar.TypeReg || cfg.Mode != 0o644 ||
		string(cfg.Data) != "[core]\nrepo_version=1\nmode=bare-split-xattrs\n" {
		t.Fatalf("entry %d: %s %o %q, want the repo config", at, cfg.Name, cfg.Mode, cfg.Data)
	}
	return at + 1
}

// checkConventions checks the header rules every entry follows, that no
// name repeats, and the content-object rules of §3.5.
func checkConventions(t *testing.T, ents []tarEntry) map[string]int {
	t.Helper()
	index := map[string]int{}
	for i, e := range ents {
		if _, dup := index[e.Name]; dup {
			t.Errorf("entry %d: %s appears twice", i, e.Name)
		}
		index[e.Name] = i
		if e.ModTime.Unix() != 0 || e.Uname != "" || e.Gname != "" || e.Mode&^0o7777 != 0 {
			t.Errorf("%s: mtime %d uname %q gname %q mode %o", e.Name, e.ModTime.Unix(), e.Uname, e.Gname, e.Mode)
		}
		if strings.HasPrefix(e.Name, "./") && e.Name != "./" || strings.HasPrefix(e.Name, "/") ||
			e.Typeflag == tar.TypeDir && e.Name != "./" && strings.HasSuffix(e.Name, "/") {
			t.Errorf("%s: badly spelled name", e.Name)
		}
		if strings.HasPrefix(e.Name, "usr/etc") {
			t.Errorf("%s: /usr/etc not mapped to etc", e.Name)
		}
		isFile := strings.HasSuffix(e.Name, ".file") && strings.HasPrefix(e.Name, "sysroot/ostree/repo/objects/")
		if len(e.PAXRecords) > 0 && !isFile {
			t.Errorf("%s: PAX records on a non-object entry", e.Name)
		}
		if e.Format != tar.FormatGNU && len(e.PAXRecords) == 0 {
			t.Errorf("%s: format %v, want GNU", e.Name, e.Format)
		}
		if isFile {
			prev := ents[i-1]
			if prev.Name != strings.TrimSuffix(e.Name, ".file")+".file-xattrs-link" || prev.Typeflag != tar.TypeReg {
				t.Errorf("%s: preceded by %s, not its xattrs link", e.Name, prev.Name)
			}
		}
	}
	return index
}

// checkContent checks each object of objs is in the layer once, after its
// xattrs link, followed by an entry for each checkout path.
func checkContent(t *testing.T, r *ostree.Repo, ents []tarEntry, index map[string]int, objs []ostree.ContentObject) {
	t.Helper()
	for _, o := range objs {
		op := handObjectPath(o.Checksum, "file")
		oi, ok := index[op]
		if !ok {
			t.Errorf("object %s missing", op)
			continue
		}
		oe := ents[oi]
		c, err := r.OpenContent(o.Checksum)
		if err != nil {
			t.Fatal(err)
		}
		c.Payload.Close()
		m := c.Meta
		if oe.Uid != int(m.UID) || oe.Gid != int(m.GID) || oe.Mode != int64(m.Mode&0o7777) {
			t.Errorf("%s: %d/%d %o, want %d/%d %o", op, oe.Uid, oe.Gid, oe.Mode, m.UID, m.GID, m.Mode)
		}
		link := ents[oi-1]
		wantX, _ := encodeXattrsByHand(m.Xattrs)
		if !bytes.Equal(link.Data, wantX) {
			t.Errorf("%s: xattrs link holds %x, want %x", link.Name, link.Data, wantX)
		}
		if m.IsSymlink() {
			if oe.Typeflag != tar.TypeSymlink || oe.Linkname != m.Target {
				t.Errorf("%s: type %c target %q, want symlink to %q", op, oe.Typeflag, oe.Linkname, m.Target)
			}
		} else if oe.Typeflag != tar.TypeReg || oe.Size != c.Size {
			t.Errorf("%s: type %c size %d, want regular %d", op, oe.Typeflag, oe.Size, c.Size)
		}
		for _, p := range o.Paths {
			name := handCheckoutName(p)
			pi, ok := index[name]
			if !ok {
				t.Errorf("checkout path %s (%s) missing", name, p)
				continue
			}
			pe := ents[pi]
			if pi < oi {
				t.Errorf("%s comes before its object", name)
			}
			if pe.Uid != oe.Uid || pe.Gid != oe.Gid || pe.Mode != oe.Mode {
				t.Errorf("%s: %d/%d %o, object %d/%d %o", name, pe.Uid, pe.Gid, pe.Mode, oe.Uid, oe.Gid, oe.Mode)
			}
			if !m.IsSymlink() && c.Size == 0 {
				if pe.Typeflag != tar.TypeReg || pe.Size != 0 || len(pe.PAXRecords) != 0 {
					t.Errorf("%s: empty file written as type %c size %d", name, pe.Typeflag, pe.Size)
				}
			} else if pe.Typeflag != tar.TypeLink || pe.Linkname != op {
				t.Errorf("%s: type %c -> %q, want hardlink to %s", name, pe.Typeflag, pe.Linkname, op)
			}
		}
	}
}

// encodeXattrsByHand builds ostree's a(ayay) from the GVariant rules, for
// small values: each (ayay) element is name+NUL, value, then one byte
// framing the end of the name; the array packs the elements (alignment 1)
// and ends with one byte per element framing its end.
func encodeXattrsByHand(xs []ostree.Xattr) ([]byte, error) {
	var body, ends []byte
	for _, x := range xs {
		body = append(body, x.Name...)
		body = append(body, 0)
		body = append(body, x.Value...)
		body = append(body, byte(len(x.Name)+1))
		ends = append(ends, byte(len(body)))
	}
	if len(body)+len(ends) > 255 {
		return nil, fmt.Errorf("test helper handles only small xattrs")
	}
	return append(body, ends...), nil
}

func TestCommitLayerLayout(t *testing.T) {
	requireRoot(t)
	src := buildSource(t)
	r := newRepo(t, ostree.ModeBareUser)
	c := commitDir(t, r, src)
	if err := r.WriteDetachedMetadata(c, ostree.Metadata{{Key: "test.signature", Value: ostree.StringVariant("signed")}}); err != nil {
		t.Fatal(err)
	}
	objs := allObjects(t, r, c)
	data := commitLayer(t, r, c, objs)
	ents := readTar(t, data)
	index := checkConventions(t, ents)

	if e := ents[0]; e.Name != "./" || e.Typeflag != tar.TypeDir || e.Mode != 0o755 || e.Uid != 0 {
		t.Fatalf("first entry %s %c %o, want ./ directory 0755", e.Name, e.Typeflag, e.Mode)
	}
	at := checkSkeleton(t, ents, 1)
	cm, err := r.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	commitBytes, _ := r.LoadMeta(c, ostree.ObjCommit)
	metaBytes, _ := r.LoadMeta(c, ostree.ObjCommitMeta)
	rootMeta, _ := r.LoadMeta(cm.RootMeta, ostree.ObjDirMeta)
	rootTree, _ := r.LoadMeta(cm.RootTree, ostree.ObjDirTree)
	for i, want := range []struct {
		name string
		data []byte
	}{
		{handObjectPath(c, "commit"), commitBytes},
		{handObjectPath(c, "commitmeta"), metaBytes},
		{handObjectPath(cm.RootMeta, "dirmeta"), rootMeta},
		{handObjectPath(cm.RootTree, "dirtree"), rootTree},
	} {
		e := ents[at+i]
		if e.Name != want.name || e.Typeflag != tar.TypeReg || e.Mode != 0o644 || !bytes.Equal(e.Data, want.data) {
			t.Errorf("entry %d: %s, want %s with the object's bytes", at+i, e.Name, want.name)
		}
	}
	if len(handObjectPath(c, "commit")) != 100 || len(handObjectPath(c, "file")) != 98 {
		t.Fatal("object path lengths")
	}

	// Directory entries: the structure walk, in order, /usr/etc as etc,
	// sysroot only from the skeleton, then the synthetic var/tmp.
	var dirs []string
	for _, e := range ents[at:] {
		if e.Typeflag == tar.TypeDir {
			dirs = append(dirs, fmt.Sprintf("%s %o %d", e.Name, e.Mode, e.Uid))
		}
	}
	wantDirs := []string{
		"home 755 0", "home/user 700 1000", "tmp 1777 0",
		"usr 755 0", "usr/bin 755 0", "etc 755 0", "etc/empty.d 750 0", "etc/ssh 755 0",
		"usr/lib 755 0", "usr/share 755 0",
		"usr/share/a-directory-name-that-is-long-enough 755 0",
		"usr/share/a-directory-name-that-is-long-enough/to-make-the-tar-path-longer-than 755 0",
		longDir + " 755 0",
		"usr/share/xdir 755 0", "usr/share/z 755 0",
		"var 755 0", "var/lib 755 0", "var/tmp 1777 0",
	}
	if !slices.Equal(dirs, wantDirs) {
		t.Errorf("directories:\n%s\nwant:\n%s", strings.Join(dirs, "\n"), strings.Join(wantDirs, "\n"))
	}
	if i := index["var/tmp"]; i != len(ents)-1 && strings.HasPrefix(ents[i+1].Name, "sysroot/ostree/repo/objects/") &&
		!strings.HasSuffix(ents[i+1].Name, ".file-xattrs-link") {
		t.Errorf("var/tmp is followed by %s", ents[i+1].Name)
	}

	// Every dirtree and dirmeta the commit reaches, exactly once (names are
	// unique, checked above), and nothing else.
	seen := map[ostree.ObjectName]struct{}{}
	if err := r.Reachable(c, false, seen, nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for n := range seen {
		switch n.Type {
		case ostree.ObjDirTree:
			want[handObjectPath(n.Checksum, "dirtree")] = true
		case ostree.ObjDirMeta:
			want[handObjectPath(n.Checksum, "dirmeta")] = true
		}
	}
	for _, e := range ents {
		if strings.HasSuffix(e.Name, ".dirtree") || strings.HasSuffix(e.Name, ".dirmeta") {
			if !want[e.Name] {
				t.Errorf("unexpected %s", e.Name)
			}
			delete(want, e.Name)
		}
	}
	if len(want) > 0 {
		t.Errorf("missing metadata objects: %v", want)
	}

	checkContent(t, r, ents, index, objs)
	var files []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name, ".file") && strings.HasPrefix(e.Name, "sysroot/") {
			files = append(files, e.Name)
		}
	}
	if !slices.IsSorted(files) || len(files) != len(objs) {
		t.Errorf("%d objects, not in checksum order: %v", len(files), files)
	}

	// Specific paths.
	for _, p := range []string{"etc/passwd", "etc/ssh/sshd_config", "usr/bin/sh", "usr/lib/hard1", "usr/lib/hard2",
		"usr/share/same1", "usr/share/z/same2", "usr/bin/link", "usr/lib/denormal", longDir + "/file-at-the-end-of-a-long-path"} {
		if e := ents[index[p]]; e.Typeflag != tar.TypeLink {
			t.Errorf("%s: type %c, want a hardlink", p, e.Typeflag)
		}
	}
	for _, p := range []string{"usr/lib/empty1", "usr/lib/empty2", "usr/share/empty3"} {
		if e := ents[index[p]]; e.Typeflag != tar.TypeReg || e.Size != 0 {
			t.Errorf("%s: type %c, want an empty regular file", p, e.Typeflag)
		}
	}
	if e := ents[index["usr/share/empty3"]]; e.Uid != 1000 || e.Mode != 0o600 {
		t.Errorf("usr/share/empty3: %d %o", e.Uid, e.Mode)
	}
	for p, want := range map[string]int64{"usr/bin/su": 0o4755, "usr/bin/wall": 0o2755, "home/user/notes": 0o640} {
		if e := ents[index[p]]; e.Mode != want {
			t.Errorf("%s: mode %o, want %o", p, e.Mode, want)
		}
	}
	xo := ents[index[ents[index["usr/share/xattr"]].Linkname]]
	if xo.PAXRecords["SCHILY.xattr.user.foo"] != "bar" || xo.PAXRecords["SCHILY.xattr.user.bin"] != "\x00\x01\x02\xff" || len(xo.PAXRecords) != 2 {
		t.Errorf("%s: PAX records %q", xo.Name, xo.PAXRecords)
	}
	for _, e := range ents {
		if len(e.PAXRecords) > 0 && e.Name != xo.Name {
			t.Errorf("%s: unexpected PAX records %q", e.Name, e.PAXRecords)
		}
	}
	if e := ents[index[ents[index["usr/lib/denormal"]].Linkname]]; e.Linkname != "../../..//sbin/chkconfig" {
		t.Errorf("denormal symlink target %q", e.Linkname)
	}
	// Raw bytes: GNU headers, GNU long names.
	if string(data[257:265]) != "ustar  \x00" {
		t.Errorf("first header magic %q, want GNU", data[257:265])
	}
	if !bytes.Contains(data, []byte("././@LongLink")) {
		t.Error("no GNU long-name entry")
	}
	if !bytes.Equal(data[len(data)-1024:], make([]byte, 1024)) {
		t.Error("no end-of-archive marker")
	}
}

func TestChunkLayerLayout(t *testing.T) {
	requireRoot(t)
	src := buildSource(t)
	r := newRepo(t, ostree.ModeBareUser)
	c := commitDir(t, r, src)
	objs := allObjects(t, r, c)
	data := chunkLayer(t, r, objs[:len(objs)/2])
	ents := readTar(t, data)
	index := checkConventions(t, ents)
	at := checkSkeleton(t, ents, 0)
	var files []string
	for _, e := range ents[at:] {
		switch {
		case e.Typeflag == tar.TypeDir:
			t.Errorf("directory %s in a chunk layer", e.Name)
		case strings.HasSuffix(e.Name, ".commit"), strings.HasSuffix(e.Name, ".dirtree"), strings.HasSuffix(e.Name, ".dirmeta"):
			t.Errorf("metadata object %s in a chunk layer", e.Name)
		case strings.HasSuffix(e.Name, ".file"):
			files = append(files, e.Name)
		}
	}
	if len(files) != len(objs)/2 || !slices.IsSorted(files) {
		t.Errorf("objects %v", files)
	}
	checkContent(t, r, ents, index, objs[:len(objs)/2])
}

// TestPAXXattrs checks which xattrs become PAX records: all but
// security.selinux, and only on the object entry.
func TestPAXXattrs(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		pax  map[string]string
	}{
		{"selinux-only", map[string]string{"SCHILY.xattr.security.selinux": "system_u:object_r:bin_t:s0"}},
		{"both", map[string]string{"SCHILY.xattr.security.selinux": "system_u:object_r:bin_t:s0", "SCHILY.xattr.user.a": "1"}},
		{"none", nil},
	} {
		body := "file " + f.name
		if err := tw.WriteHeader(&tar.Header{Name: "usr/" + f.name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), PAXRecords: f.pax}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	r := newRepo(t, ostree.ModeBareUser)
	c, err := r.CommitTar(&buf, ostree.CommitOptions{NoParent: true})
	if err != nil {
		t.Fatal(err)
	}
	objs := allObjects(t, r, c)
	ents := readTar(t, chunkLayer(t, r, objs))
	index := checkConventions(t, ents)
	checkContent(t, r, ents, index, objs)
	for _, o := range objs {
		e := ents[index[handObjectPath(o.Checksum, "file")]]
		var want map[string]string
		switch o.Paths[0] {
		case "/usr/both":
			want = map[string]string{"SCHILY.xattr.user.a": "1"}
		case "/usr/selinux-only", "/usr/none":
		default:
			t.Fatalf("path %v", o.Paths)
		}
		if len(e.PAXRecords) != len(want) || e.PAXRecords["SCHILY.xattr.user.a"] != want["SCHILY.xattr.user.a"] {
			t.Errorf("%s: PAX %q, want %q", o.Paths[0], e.PAXRecords, want)
		}
		if link := ents[index[handObjectPath(o.Checksum, "file-xattrs-link")]]; o.Paths[0] != "/usr/none" && !bytes.Contains(link.Data, []byte("security.selinux\x00")) {
			t.Errorf("%s: xattrs link %q lacks security.selinux", o.Paths[0], link.Data)
		}
	}
	// And it imports back to the same commit.
	var cl bytes.Buffer
	if err := WriteCommitLayer(&cl, r, c, Chunk{Objects: objs}); err != nil {
		t.Fatal(err)
	}
	if got := importLayers(t, newRepo(t, ostree.ModeBareUser), testLayer{true, cl.Bytes()}); got != c {
		t.Fatalf("imported %s, want %s", got, c)
	}
}

func TestCommitObjects(t *testing.T) {
	requireRoot(t)
	src := buildSource(t)
	r := newRepo(t, ostree.ModeBareUser)
	c := commitDir(t, r, src)
	objs := allObjects(t, r, c)
	byPath := map[string]ostree.ContentObject{}
	seen := map[ostree.Checksum]bool{}
	total := 0
	for _, o := range objs {
		if seen[o.Checksum] {
			t.Errorf("object %s listed twice", o.Checksum)
		}
		seen[o.Checksum] = true
		for _, p := range o.Paths {
			byPath[p] = o
			total++
		}
	}
	if !slices.Equal(objs[0].Paths, []string{"/home/user/notes"}) {
		t.Errorf("first object %v, want /home/user/notes (walk: root files, then home, ...)", objs[0].Paths)
	}
	for p, want := range map[string][]string{
		"/usr/share/same1":  {"/usr/share/same1", "/usr/share/z/same2"},
		"/usr/lib/hard1":    {"/usr/lib/hard1", "/usr/lib/hard2"},
		"/usr/lib/empty1":   {"/usr/lib/empty1", "/usr/lib/empty2"},
		"/usr/etc/passwd":   {"/usr/etc/passwd"},
		"/usr/share/empty3": {"/usr/share/empty3"},
	} {
		if got := byPath[p].Paths; !slices.Equal(got, want) {
			t.Errorf("%s: paths %v, want %v", p, got, want)
		}
	}
	if byPath["/usr/bin/big"].Size != 1<<20+300<<10 || byPath["/usr/bin/link"].Size != 0 || byPath["/usr/bin/sh"].Size != 18 {
		t.Errorf("sizes: big %d link %d sh %d", byPath["/usr/bin/big"].Size, byPath["/usr/bin/link"].Size, byPath["/usr/bin/sh"].Size)
	}
	// Every file of the commit, once.
	n := 0
	if err := r.List(c, "/", true, func(e ostree.ListEntry) error {
		if !e.IsDir {
			n++
			if byPath[e.Path].Checksum != e.Checksum {
				t.Errorf("%s: %s, want %s", e.Path, byPath[e.Path].Checksum, e.Checksum)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != total {
		t.Errorf("%d paths, the commit has %d files", total, n)
	}
}

func TestSplitLayers(t *testing.T) {
	requireRoot(t)
	src := buildSource(t)
	r := newRepo(t, ostree.ModeBareUser)
	c := commitDir(t, r, src)
	objs := allObjects(t, r, c)
	var a, b, rest []ostree.ContentObject
	for i, o := range objs {
		switch i % 3 {
		case 0:
			a = append(a, o)
		case 1:
			b = append(b, o)
		default:
			rest = append(rest, o)
		}
	}
	commit := testLayer{true, commitLayer(t, r, c, rest)}
	ca, cb := testLayer{false, chunkLayer(t, r, a)}, testLayer{false, chunkLayer(t, r, b)}
	for name, order := range map[string][]testLayer{
		"chunks then commit": {ca, cb, commit},
		"commit then chunks": {commit, ca, cb},
		"commit between":     {cb, commit, ca},
	} {
		t.Run(name, func(t *testing.T) {
			dst := newRepo(t, ostree.ModeBareUser)
			if got := importLayers(t, dst, order...); got != c {
				t.Fatalf("imported %s, want %s", got, c)
			}
			fsck(t, dst)
		})
	}
}

func TestDeterministic(t *testing.T) {
	requireRoot(t)
	src := buildSource(t)
	r := newRepo(t, ostree.ModeBareUser)
	c := commitDir(t, r, src)
	objs := allObjects(t, r, c)
	first := commitLayer(t, r, c, objs)
	if second := commitLayer(t, r, c, objs); !bytes.Equal(first, second) {
		t.Fatal("two writes of the same commit layer differ")
	}
	shuffled := slices.Clone(objs)
	rand.New(rand.NewPCG(7, 7)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	if !bytes.Equal(chunkLayer(t, r, objs), chunkLayer(t, r, shuffled)) {
		t.Fatal("chunk layer depends on the order of the chunk's objects")
	}
	// The same commit exported from a repository of another mode that
	// imported it gives the same bytes.
	dst := newRepo(t, ostree.ModeArchive)
	importLayers(t, dst, testLayer{true, first})
	if again := commitLayer(t, dst, c, allObjects(t, dst, c)); !bytes.Equal(first, again) {
		t.Fatal("the layer re-exported from an archive repository differs")
	}
}

func TestWriteRefusals(t *testing.T) {
	r := newRepo(t, ostree.ModeBareUser)
	c, err := r.CommitTar(bytes.NewReader(mkTar(t, regEnt("a", "x"))), ostree.CommitOptions{NoParent: true})
	if err != nil {
		t.Fatal(err)
	}
	objs := allObjects(t, r, c)
	for name, ch := range map[string]Chunk{
		"relative path": {Objects: []ostree.ContentObject{{Checksum: objs[0].Checksum, Paths: []string{"a"}}}},
		"dotdot path":   {Objects: []ostree.ContentObject{{Checksum: objs[0].Checksum, Paths: []string{"/x/../a"}}}},
		"twice":         {Objects: []ostree.ContentObject{objs[0], objs[0]}},
		"missing":       {Objects: []ostree.ContentObject{{Paths: []string{"/a"}}}},
	} {
		if err := WriteChunkLayer(io.Discard, r, ch); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
