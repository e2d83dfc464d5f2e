package derived

import (
	"bytes"
	"testing"
	"time"

	"github.com/ocitree/ocitree/encap/internal/enctest"
	"github.com/ocitree/ocitree/ostree"
)

// FuzzApply feeds arbitrary tar streams to the derived-layer applier over a
// small base (issue 11, class 7): no panic, and nothing written outside the
// repository. `go test` runs the seed corpus only; `make fuzz` runs it for
// minutes.
func FuzzApply(f *testing.F) {
	seeds := [][]byte{
		dlBaseTar(f),
		dlTar(f, dlDir("usr/a/", 0o755), dlFile("usr/a/f", "x"), dlSym("usr/a/s", "../../etc"), dlLink("usr/a/h", "usr/a/f")),
		dlTar(f, dlFile("etc/.wh..wh..opq", ""), dlFile("usr/share/.wh.doc", ""), dlFile("var/lib/y", "y")),
		dlTar(f, dlFile("usr/../../escape", "x")),
		dlTar(f, dlSym("usr/up", "../.."), dlFile("usr/up/escape", "x")),
	}
	var deep bytes.Buffer
	writeDeepChainLayer(&deep, 50)
	seeds = append(seeds, deep.Bytes(), []byte("not a tar"), nil)
	for _, s := range seeds {
		f.Add(s)
	}
	// One repository and base per fuzzing process: an exec is then one
	// transaction, aborted, not a repository created and removed (which on
	// a slow disk made each exec cost tens of milliseconds).
	top, r := enctest.FuzzRepo(f)
	base := dlCommitTar(f, r, dlBaseTar(f))
	f.Fuzz(func(t *testing.T, layer []byte) {
		txn, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		tree := dlTreeOf(t, r, base)
		if _, err := Apply(txn, tree, bytes.NewReader(layer), Options{}); err == nil {
			if _, err := txn.WriteCommit(tree, ostree.CommitOptions{Parent: &base, Timestamp: time.Unix(2, 0)}); err != nil {
				txn.Abort()
				t.Fatalf("applied, but the tree does not write: %v", err)
			}
		}
		txn.Abort()
		enctest.Contained(t, top)
	})
}
