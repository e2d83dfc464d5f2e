package ostree

import (
	"bytes"
	"compress/flate"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// fsckTree has files and directories that are all distinct objects.
func fsckTree() []tarEnt {
	return []tarEnt{
		reg("corrupt-me", 0o644, "payload to corrupt\n"),
		reg("chmod-me", 0o644, "mode to change\n"),
		reg("fine", 0o644, "fine\n"),
		symEnt("link", "fine"),
		dirEnt("keep/", 0o755), reg("keep/x", 0o644, "x\n"),
		dirEnt("drop/", 0o750), reg("drop/y", 0o644, "y\n"),
	}
}

func findProblem(res *FsckResult, path string) *FsckProblem {
	for i := range res.Problems {
		if res.Problems[i].Path == path {
			return &res.Problems[i]
		}
	}
	return nil
}

func TestFsck(t *testing.T) {
	forModes(t, func(t *testing.T, m Mode) {
		r := newRepo(t, m)
		c := commitTar(t, r, CommitOptions{Branch: "main"}, fsckTree()...)
		res, err := r.Fsck()
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Problems) != 0 {
			t.Fatalf("clean repository: problems %v", res.Problems)
		}
		// 1 commit, 3 dirtrees (root, keep, drop), 2 dirmetas (0755 for root
		// and keep, 0750 for drop), 6 content objects.
		if res.Commits != 1 || res.Objects != 1+3+2+6 {
			t.Errorf("clean fsck counted %d commits, %d objects", res.Commits, res.Objects)
		}

		ext := fileExt(m)
		var wantProblems []string

		// 1. Corrupt the payload of one content object.
		payload := []byte("payload to corrupt\n")
		corruptSum := handSum(0, 0, 0o100644, payload)
		corrupted := append([]byte(nil), payload...)
		corrupted[0] ^= 0x20 // "Payload to corrupt\n"
		corruptRel := handObjectPath(corruptSum, ext)
		corruptPath := filepath.Join(r.Path(), corruptRel)
		if m == ModeArchive {
			// Same header (same size), different deflate payload.
			var buf bytes.Buffer
			buf.Write(handZHeaderPrefixed(uint64(len(payload)), 0, 0, 0o100644))
			zw, _ := flate.NewWriter(&buf, 6)
			zw.Write(corrupted)
			zw.Close()
			if err := os.WriteFile(corruptPath, buf.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		} else {
			f, err := os.OpenFile(corruptPath, os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.WriteAt(corrupted[:1], 0); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
		wantProblems = append(wantProblems, corruptRel)

		// 2. Delete a dirtree.
		dropTree, _, _ := lookupPath(t, r, c, "drop")
		dropRel := handObjectPath(dropTree, "dirtree")
		if err := os.Remove(filepath.Join(r.Path(), dropRel)); err != nil {
			t.Fatal(err)
		}
		wantProblems = append(wantProblems, dropRel)

		// 3. Change a content object's recorded mode: bare-user in
		// user.ostreemeta, bare on the inode.
		chmodPayload := []byte("mode to change\n")
		chmodSum := handSum(0, 0, 0o100644, chmodPayload)
		chmodRel := handObjectPath(chmodSum, ext)
		switch m {
		case ModeBareUser:
			if err := unix.Lsetxattr(filepath.Join(r.Path(), chmodRel), "user.ostreemeta", handUserMeta(0, 0, 0o100600), 0); err != nil {
				t.Fatal(err)
			}
			wantProblems = append(wantProblems, chmodRel)
		case ModeBare:
			if err := os.Chmod(filepath.Join(r.Path(), chmodRel), 0o600); err != nil {
				t.Fatal(err)
			}
			wantProblems = append(wantProblems, chmodRel)
		}

		res, err = r.Fsck()
		if err != nil {
			t.Fatal(err)
		}
		if len(res.Problems) != len(wantProblems) {
			t.Errorf("got %d problems, want %d:", len(res.Problems), len(wantProblems))
			for _, p := range res.Problems {
				t.Logf("  %s", p)
			}
		}
		if p := findProblem(res, corruptRel); p == nil {
			t.Errorf("corrupted %s not reported", corruptRel)
		} else {
			if !p.Corrupt || p.Object != (ObjectName{corruptSum, ObjFile}) {
				t.Errorf("corruption reported as %+v", p)
			}
			if want := handSum(0, 0, 0o100644, corrupted); p.Actual != want {
				t.Errorf("corrupted object: Actual %s, want %s (the checksum of what is stored)", p.Actual, want)
			}
			if p.Actual == corruptSum {
				t.Error("Actual equals the expected checksum")
			}
		}
		if p := findProblem(res, dropRel); p == nil {
			t.Errorf("missing %s not reported", dropRel)
		} else if !p.Missing || p.Object != (ObjectName{dropTree, ObjDirTree}) || p.Commit != c {
			t.Errorf("missing dirtree reported as %+v", p)
		}
		if m != ModeArchive {
			if p := findProblem(res, chmodRel); p == nil {
				t.Errorf("changed mode of %s not reported", chmodRel)
			} else if want := handSum(0, 0, 0o100600, chmodPayload); !p.Corrupt || p.Actual != want {
				t.Errorf("mode change reported as %+v, want Actual %s", p, want)
			}
		}
		for _, p := range res.Problems {
			if p.String() == "" {
				t.Error("empty problem description")
			}
		}
	})
}

func TestFsckMissingAndBrokenObjects(t *testing.T) {
	r := newRepo(t, ModeArchive)
	c := commitTar(t, r, CommitOptions{Branch: "main"}, fsckTree()...)
	// A content object deleted, a dirmeta replaced by garbage with the same
	// name, and a ref to a commit that does not exist.
	_, _, fine := lookupPath(t, r, c, "fine")
	fineRel := handObjectPath(fine, "filez")
	os.Remove(filepath.Join(r.Path(), fineRel))
	_, dropMeta, _ := lookupPath(t, r, c, "drop")
	metaRel := handObjectPath(dropMeta, "dirmeta")
	os.Chmod(filepath.Join(r.Path(), metaRel), 0o644)
	if err := os.WriteFile(filepath.Join(r.Path(), metaRel), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	ghost := mustChecksum(t, sumHello)
	os.WriteFile(filepath.Join(r.Path(), "refs", "heads", "ghost"), []byte(ghost.String()+"\n"), 0o644)

	res, err := r.Fsck()
	if err != nil {
		t.Fatal(err)
	}
	if p := findProblem(res, fineRel); p == nil || !p.Missing {
		t.Errorf("missing content object: %+v", p)
	}
	if p := findProblem(res, metaRel); p == nil || !p.Corrupt || p.Actual != SumBytes([]byte("garbage")) {
		t.Errorf("garbage dirmeta: %+v", p)
	}
	if p := findProblem(res, handObjectPath(ghost, "commit")); p == nil || !p.Missing {
		t.Errorf("ref to a missing commit: %+v", p)
	}
	if len(res.Problems) != 3 {
		t.Errorf("%d problems, want 3: %v", len(res.Problems), res.Problems)
	}
}

// TestFsckInvalidMetadata: an object whose checksum matches but whose
// content is not a valid object of its type is reported.
func TestFsckInvalidMetadata(t *testing.T) {
	r := newRepo(t, ModeArchive)
	txn := beginT(t, r)
	// A "dirmeta" with a regular-file mode, referenced by a commit.
	bad := handUserMeta(0, 0, 0o100644)
	badMeta := writeMetaT(t, txn, ObjDirMeta, bad)
	tree := writeMetaT(t, txn, ObjDirTree, []byte{0})
	cb, _ := (&Commit{Subject: "bad", RootTree: tree, RootMeta: badMeta}).Encode()
	writeMetaT(t, txn, ObjCommit, cb)
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	res, err := r.Fsck()
	if err != nil {
		t.Fatal(err)
	}
	p := findProblem(res, handObjectPath(badMeta, "dirmeta"))
	if p == nil || p.Err == nil || p.Corrupt || p.Missing {
		t.Errorf("invalid dirmeta reported as %+v (all: %v)", p, res.Problems)
	}
}
