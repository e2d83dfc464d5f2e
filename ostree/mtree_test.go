package ostree

import (
	"bytes"
	"reflect"
	"testing"
)

// deepTree is a tree with changed and untouched branches at several depths.
func deepTree(f1 string) []tarEnt {
	return []tarEnt{
		dirEnt("a/", 0o755), dirEnt("a/b/", 0o750), dirEnt("a/b/c/", 0o700), dirEnt("a/b/d/", 0o755),
		reg("a/b/c/f1", 0o644, f1),
		reg("a/b/c/keep", 0o644, "kept\n"),
		reg("a/b/d/f2", 0o644, "two\n"),
		dirEnt("x/", 0o755), dirEnt("x/y/", 0o755),
		reg("x/y/f3", 0o600, "three\n"),
		reg("top", 0o644, "top\n"),
	}
}

func TestMutableTreeIncrementalRewrite(t *testing.T) {
	r := newRepo(t, ModeArchive)
	c1 := commitTar(t, r, CommitOptions{Branch: "main"}, deepTree("one\n")...)
	cm, err := r.ReadCommit(c1)
	if err != nil {
		t.Fatal(err)
	}
	txn := beginT(t, r)
	root := NewMutableTreeFrom(r, cm.RootTree, cm.RootMeta)
	if root.loaded {
		t.Fatal("NewMutableTreeFrom read its dirtree before any change")
	}
	cur := root
	for _, p := range []string{"a", "b", "c"} {
		sub, ok, err := cur.Dir(p)
		if err != nil || !ok {
			t.Fatalf("Dir(%s) = %v, %v", p, ok, err)
		}
		cur = sub
	}
	newSum, err := txn.WriteContent(&FileMeta{Mode: 0o100644}, bytes.NewReader([]byte("uno\n")), 4)
	if err != nil {
		t.Fatal(err)
	}
	if err := cur.SetFile("f1", newSum); err != nil {
		t.Fatal(err)
	}
	tree2, err := txn.WriteTree(root)
	if err != nil {
		t.Fatal(err)
	}
	// Untouched siblings were never read.
	x := root.dirs["x"]
	d := root.dirs["a"].dirs["b"].dirs["d"]
	if x == nil || d == nil {
		t.Fatal("subtrees x or a/b/d missing")
	}
	if x.loaded || d.loaded {
		t.Errorf("untouched subtrees were loaded: x=%v a/b/d=%v", x.loaded, d.loaded)
	}
	// Only the content and the four dirtrees on the changed path are new.
	var dirtrees, files, other int
	for _, n := range txn.order {
		switch n.Type {
		case ObjDirTree:
			dirtrees++
		case ObjFile:
			files++
		default:
			other++
		}
	}
	if dirtrees != 4 || files != 1 || other != 0 {
		t.Errorf("staged %d dirtrees, %d files, %d others; want 4, 1, 0", dirtrees, files, other)
	}
	c2, err := txn.WriteCommit(root, CommitOptions{Branch: "main", Subject: "incremental"})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	cm2, err := r.ReadCommit(c2)
	if err != nil {
		t.Fatal(err)
	}
	if cm2.Parent != c1 {
		t.Errorf("parent %s, want the branch's previous commit %s", cm2.Parent, c1)
	}
	if cm2.RootTree != tree2 || cm2.RootMeta != cm.RootMeta {
		t.Errorf("commit root %s/%s, want %s/%s", cm2.RootTree, cm2.RootMeta, tree2, cm.RootMeta)
	}

	// A full import of the same content, into another repository, gives the
	// same root.
	fresh := newRepo(t, ModeBareUser)
	c3 := commitTar(t, fresh, CommitOptions{}, deepTree("uno\n")...)
	cm3, err := fresh.ReadCommit(c3)
	if err != nil {
		t.Fatal(err)
	}
	if cm3.RootTree != tree2 {
		t.Errorf("incremental root %s, full re-import %s", tree2, cm3.RootTree)
	}
	// And the untouched subtree's checksum is the old one.
	oldX, _, _ := lookupPath(t, r, c1, "x")
	newX, _, _ := lookupPath(t, r, c2, "x")
	if oldX != newX {
		t.Errorf("x/ changed from %s to %s", oldX, newX)
	}
	_, _, f1 := lookupPath(t, r, c2, "a/b/c/f1")
	if f1 != handSum(0, 0, 0o100644, []byte("uno\n")) {
		t.Errorf("a/b/c/f1 = %s", f1)
	}
}

func TestMutableTreeUnchangedWritesNothing(t *testing.T) {
	r := newRepo(t, ModeArchive)
	c1 := commitTar(t, r, CommitOptions{}, deepTree("one\n")...)
	cm, _ := r.ReadCommit(c1)
	txn := beginT(t, r)
	root := NewMutableTreeFrom(r, cm.RootTree, cm.RootMeta)
	got, err := txn.WriteTree(root)
	if err != nil {
		t.Fatal(err)
	}
	if got != cm.RootTree {
		t.Errorf("WriteTree of an unmodified base = %s, want %s", got, cm.RootTree)
	}
	if n, _ := txn.Stats(); n != 0 {
		t.Errorf("unmodified tree staged %d objects", n)
	}
	// Reading a name loads one level, and rewrites to the same checksum.
	if _, _, err := root.File("top"); err != nil {
		t.Fatal(err)
	}
	if got, err = txn.WriteTree(root); err != nil || got != cm.RootTree {
		t.Errorf("WriteTree after a read = %s, %v; want %s", got, err, cm.RootTree)
	}
}

func TestMutableTreeOperations(t *testing.T) {
	a := mustChecksum(t, sumHello)
	b := mustChecksum(t, sumLinkA)
	m := NewMutableTree()
	if err := m.SetFile("f", a); err != nil {
		t.Fatal(err)
	}
	d, err := m.EnsureDir("d")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := m.EnsureDir("d"); again != d {
		t.Error("EnsureDir of an existing dir returned a new node")
	}
	if err := d.SetFile("in", b); err != nil {
		t.Fatal(err)
	}
	names, _ := m.Names()
	if !reflect.DeepEqual(names, []string{"d", "f"}) {
		t.Errorf("Names = %v", names)
	}
	// A directory replaces a file of the same name and the other way round.
	if _, err := m.EnsureDir("f"); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := m.File("f"); ok {
		t.Error("file f survived EnsureDir(f)")
	}
	if err := m.SetFile("d", b); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := m.Dir("d"); ok {
		t.Error("dir d survived SetFile(d)")
	}
	if c, ok, _ := m.File("d"); !ok || c != b {
		t.Errorf("File(d) = %s, %v", c, ok)
	}
	if ok, _ := m.Remove("d"); !ok {
		t.Error("Remove(d) found nothing")
	}
	if ok, _ := m.Remove("d"); ok {
		t.Error("second Remove(d) found something")
	}
	for _, bad := range []string{"", ".", "..", "a/b", "x\x00y", "bad\xff"} {
		if err := m.SetFile(bad, a); err == nil {
			t.Errorf("SetFile(%q) accepted", bad)
		}
		if _, err := m.EnsureDir(bad); err == nil {
			t.Errorf("EnsureDir(%q) accepted", bad)
		}
	}
}

func TestWriteTreeNeedsDirMeta(t *testing.T) {
	r := newRepo(t, ModeArchive)
	txn := beginT(t, r)
	root := NewMutableTree()
	if _, err := txn.WriteCommit(root, CommitOptions{}); err == nil {
		t.Error("WriteCommit accepted a root without dirmeta")
	}
	root.SetMeta(mustChecksum(t, sumDirMeta0755))
	if _, err := root.EnsureDir("nometa"); err != nil {
		t.Fatal(err)
	}
	if _, err := txn.WriteTree(root); err == nil {
		t.Error("WriteTree accepted a subdirectory without dirmeta")
	}
}

// TestWriteTreeVectors builds the spec's dirtrees through MutableTree.
func TestWriteTreeVectors(t *testing.T) {
	r := newRepo(t, ModeArchive)
	txn := beginT(t, r)
	dm := mustChecksum(t, sumDirMeta0755)

	empty := NewMutableTree()
	if c, err := txn.WriteTree(empty); err != nil || c.String() != sumEmptyDirTree {
		t.Errorf("empty tree = %s, %v", c, err)
	}
	ab := NewMutableTree()
	ab.SetFile("b", mustChecksum(t, sumLinkA))
	ab.SetFile("a", mustChecksum(t, sumHello))
	if c, err := txn.WriteTree(ab); err != nil || c.String() != sumTreeAB {
		t.Errorf("a+b tree = %s, %v; want %s", c, err, sumTreeAB)
	}
	// "dirtree with one file and two subdirectories": f, d (empty), usr.
	var v vector
	for _, x := range vectorsOf(t, "dirtree") {
		if len(x.Inputs.Dirs) == 2 && len(x.Inputs.Files) == 1 {
			v = x
		}
	}
	if v.Checksum == nil {
		t.Fatal("no dirtree vector with two dirs and one file")
	}
	// Its "usr" subtree is stored as-is and used as an unloaded base.
	root := NewMutableTree()
	root.SetMeta(dm)
	root.SetFile(v.Inputs.Files[0].Name, mustChecksum(t, v.Inputs.Files[0].Checksum))
	for _, d := range v.Inputs.Dirs {
		if d.TreeChecksum == sumEmptyDirTree {
			sub, _ := root.EnsureDir(d.Name)
			sub.SetMeta(mustChecksum(t, d.MetaChecksum))
		} else {
			root.dirs[d.Name] = NewMutableTreeFrom(r, mustChecksum(t, d.TreeChecksum), mustChecksum(t, d.MetaChecksum))
		}
	}
	if c, err := txn.WriteTree(root); err != nil || c.String() != *v.Checksum {
		t.Errorf("tree = %s, %v; want %s", c, err, *v.Checksum)
	}
}
