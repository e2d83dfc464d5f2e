package ostree

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// objectSet lists the loose content, dirtree, dirmeta and commit objects.
func objectSet(t *testing.T, r *Repo) map[ObjectName]bool {
	t.Helper()
	objs, err := r.ListObjects(func(t ObjectType) bool { return t <= ObjCommit })
	if err != nil {
		t.Fatal(err)
	}
	out := map[ObjectName]bool{}
	for _, o := range objs {
		out[o] = true
	}
	return out
}

func TestPrune(t *testing.T) {
	forModes(t, func(t *testing.T, m Mode) {
		r := newRepo(t, m)
		// main: c1 <- c3. c2 is a commit no ref reaches.
		c1 := commitTar(t, r, CommitOptions{Branch: "main"}, reg("shared", 0o644, "shared\n"), reg("v", 0o644, "1\n"))
		c2 := commitTar(t, r, CommitOptions{}, reg("shared", 0o644, "shared\n"), reg("only-c2", 0o644, "c2\n"))
		c3 := commitTar(t, r, CommitOptions{Branch: "main"}, reg("shared", 0o644, "shared\n"), reg("v", 0o644, "3\n"))
		if cm, _ := r.ReadCommit(c3); cm.Parent != c1 {
			t.Fatalf("c3's parent %s, want %s", cm.Parent, c1)
		}
		if err := r.WriteDetachedMetadata(c2, Metadata{{Key: "note", Value: StringVariant("detached")}}); err != nil {
			t.Fatal(err)
		}

		// Unreachable objects: a content object and a dirtree no commit uses.
		txn := beginT(t, r)
		orphan, err := txn.WriteContent(&FileMeta{Mode: 0o100644}, bytes.NewReader([]byte("orphan\n")), 7)
		if err != nil {
			t.Fatal(err)
		}
		ob, _ := (&DirTree{Files: []TreeFile{{Name: "orphan", Checksum: orphan}}}).Encode()
		orphanTree := writeMetaT(t, txn, ObjDirTree, ob)
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		before := objectSet(t, r)

		// A dry run deletes nothing.
		res, err := r.Prune(PruneOptions{DryRun: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Deleted != 2 || res.Total != len(before) || res.Freed <= 0 {
			t.Errorf("dry run: %+v, want 2 of %d deleted", res, len(before))
		}
		if after := objectSet(t, r); len(after) != len(before) {
			t.Errorf("dry run deleted %d objects", len(before)-len(after))
		}

		res, err = r.Prune(PruneOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if res.Deleted != 2 {
			t.Errorf("Prune deleted %d objects, want the 2 unreachable ones", res.Deleted)
		}
		for _, n := range []ObjectName{{orphan, ObjFile}, {orphanTree, ObjDirTree}} {
			if ok, _ := r.HasObject(n.Checksum, n.Type); ok {
				t.Errorf("unreachable %s kept", n)
			}
		}
		// Every commit is a root without RefsOnly: c2 stays.
		for _, c := range []Checksum{c1, c2, c3} {
			if ok, _ := r.HasObject(c, ObjCommit); !ok {
				t.Errorf("commit %s pruned without RefsOnly", c)
			}
		}
		if after := objectSet(t, r); len(after) != len(before)-2 {
			t.Errorf("%d objects left, want %d", len(after), len(before)-2)
		}

		// RefsOnly: c2 (commit, its root dirtree and only-c2) goes, with its
		// detached metadata; c1 stays as c3's parent.
		_, _, onlyC2 := lookupPath(t, r, c2, "only-c2")
		c2Root, _, _ := lookupPath(t, r, c2, "")
		before = objectSet(t, r)
		res, err = r.Prune(PruneOptions{RefsOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		if res.Deleted != 3 {
			t.Errorf("RefsOnly deleted %d objects, want 3", res.Deleted)
		}
		gone := []ObjectName{{c2, ObjCommit}, {c2Root, ObjDirTree}, {onlyC2, ObjFile}}
		for _, n := range gone {
			if ok, _ := r.HasObject(n.Checksum, n.Type); ok {
				t.Errorf("%s kept by RefsOnly", n)
			}
		}
		if _, err := os.Stat(filepath.Join(r.Path(), handObjectPath(c2, "commitmeta"))); !os.IsNotExist(err) {
			t.Errorf("detached metadata of a pruned commit kept: %v", err)
		}
		after := objectSet(t, r)
		for n := range before {
			isGone := false
			for _, g := range gone {
				isGone = isGone || g == n
			}
			if !isGone && !after[n] {
				t.Errorf("reachable %s deleted", n)
			}
		}
		if fr, err := r.Fsck(); err != nil || len(fr.Problems) != 0 {
			t.Errorf("Fsck after prune: %+v, %v", fr, err)
		}
		if _, err := r.ReadCommit(c1); err != nil {
			t.Errorf("parent commit c1 pruned: %v", err)
		}
		// Nothing left to prune.
		if res, err := r.Prune(PruneOptions{RefsOnly: true}); err != nil || res.Deleted != 0 {
			t.Errorf("second prune: %+v, %v", res, err)
		}
	})
}

func TestDetachedMetadataVector(t *testing.T) {
	v := vectorsOf(t, "commitmeta")[0]
	r := newRepo(t, ModeArchive)
	c := commitTar(t, r, CommitOptions{Branch: "main"}, reg("f", 0o644, "x"))
	md := metaFromVector(t, v.Inputs.Metadata)
	if err := r.WriteDetachedMetadata(c, md); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(r.Path(), handObjectPath(c, "commitmeta")))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, unhex(t, *v.Hex)) {
		t.Errorf(".commitmeta = %x, want %s", b, *v.Hex)
	}
	got, err := r.ReadDetachedMetadata(c)
	if err != nil || got.String("note") != "detached" {
		t.Errorf("ReadDetachedMetadata = %v, %v", got, err)
	}
	if err := r.WriteDetachedMetadata(c, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ReadDetachedMetadata(c); err != nil || got != nil {
		t.Errorf("after removal: %v, %v", got, err)
	}
	if err := r.WriteDetachedMetadata(mustChecksum(t, sumHello), md); err == nil {
		t.Error("detached metadata written for a missing commit")
	}
}
