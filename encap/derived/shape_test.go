package derived

import (
	"archive/tar"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ocitree/ocitree/ostree"
)

// writeDeepChainLayer writes a derived layer listing every directory of a
// chain depth deep under usr/ (usr/d, usr/d/d, ...) with one file at the
// bottom: the shape that made the applier quadratic per entry (issue 11,
// class 2). The names grow with the depth, so the tar does too (depth²).
func writeDeepChainLayer(w io.Writer, depth int) error {
	tw := tar.NewWriter(w)
	var p strings.Builder
	p.WriteString("usr")
	for i := 0; i < depth; i++ {
		p.WriteString("/d")
		if err := tw.WriteHeader(&tar.Header{Name: p.String() + "/", Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX}); err != nil {
			return err
		}
	}
	body := "bottom\n"
	if err := tw.WriteHeader(&tar.Header{Name: p.String() + "/f", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), Format: tar.FormatPAX}); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, body); err != nil {
		return err
	}
	return tw.Close()
}

// writeManyEntriesLayer writes a derived layer of n small files spread over
// n/1000 directories, with a whiteout every 100 files.
func writeManyEntriesLayer(w io.Writer, n int) error {
	tw := tar.NewWriter(w)
	for i := 0; i < n; i++ {
		dir := fmt.Sprintf("usr/share/many/%04d", i/1000)
		if i%1000 == 0 {
			if err := tw.WriteHeader(&tar.Header{Name: dir + "/", Typeflag: tar.TypeDir, Mode: 0o755}); err != nil {
				return err
			}
		}
		name, body := fmt.Sprintf("%s/f%06d", dir, i), fmt.Sprintf("%d\n", i)
		if i%100 == 99 {
			name, body = fmt.Sprintf("%s/.wh.f%06d", dir, i-1), ""
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, body); err != nil {
			return err
		}
	}
	return tw.Close()
}

// applyStream applies the layer gen writes, streamed, onto a small base and
// writes the merged tree; it returns the commit and the time taken.
func applyStream(t testing.TB, r *ostree.Repo, base ostree.Checksum, gen func(io.Writer) error) (ostree.Checksum, time.Duration) {
	t.Helper()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(gen(pw)) }()
	defer pr.Close()
	start := time.Now()
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	tree := dlTreeOf(t, r, base)
	if _, err := Apply(txn, tree, pr, Options{}); err != nil {
		t.Fatal(err)
	}
	c, err := txn.WriteCommit(tree, ostree.CommitOptions{Parent: &base, Timestamp: time.Unix(2, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	return c, time.Since(start)
}

// allocatedBy returns the bytes the process allocates while f runs (the
// layer's generator included): a measure of work that, unlike time, does not
// depend on how fast or loaded the machine is.
func allocatedBy(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// TestApplyShapeBounded: the applier's work grows with the layer's size, not
// its shape (issue 11, class 2). A chain listing every directory n deep is a
// tar of O(n²) bytes (the names grow); rebuilding every ancestor path per
// entry, as before the fix, made the work O(n³): doubling n then multiplies
// it by 8, where the input grows 4×. Likewise n entries must cost O(n).
// The work is counted in bytes allocated, not in seconds, so the test does
// not depend on the machine; the times of the 10,000-deep chain and the
// 200,000-entry layer are `make bench` (BenchmarkApplyDeepChain,
// BenchmarkApplyManyEntries).
func TestApplyShapeBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	r := dlRepo(t)
	base := dlCommitTar(t, r, dlBaseTar(t))
	chain := func(depth int) uint64 {
		var c ostree.Checksum
		n := allocatedBy(func() {
			c, _ = applyStream(t, r, base, func(w io.Writer) error { return writeDeepChainLayer(w, depth) })
		})
		if err := r.List(c, "/usr/d", false, func(ostree.ListEntry) error { return nil }); err != nil {
			t.Fatalf("merged tree of the %d-deep chain: %v", depth, err)
		}
		return n
	}
	small, big := chain(1500), chain(3000)
	t.Logf("deep chain: 1500 levels %d bytes allocated, 3000 levels %d (×%.2f)", small, big, float64(big)/float64(small))
	if float64(big) > 6*float64(small) {
		t.Errorf("doubling the chain's depth multiplied the work by %.2f (the input grows ×4; quadratic per entry would be ×8)", float64(big)/float64(small))
	}
	many := func(n int) uint64 {
		return allocatedBy(func() {
			applyStream(t, r, base, func(w io.Writer) error { return writeManyEntriesLayer(w, n) })
		})
	}
	small, big = many(5000), many(10000)
	t.Logf("many entries: 5000 %d bytes allocated, 10000 %d (×%.2f)", small, big, float64(big)/float64(small))
	if float64(big) > 3*float64(small) {
		t.Errorf("doubling the entries multiplied the work by %.2f (linear would be ×2)", float64(big)/float64(small))
	}
}

// BenchmarkApplyDeepChain applies a 10,000-deep chain listing every
// directory.
func BenchmarkApplyDeepChain(b *testing.B) {
	r := dlRepo(b)
	base := dlCommitTar(b, r, dlBaseTar(b))
	for i := 0; i < b.N; i++ {
		applyStream(b, r, base, func(w io.Writer) error { return writeDeepChainLayer(w, 10000) })
	}
}

// BenchmarkApplyManyEntries applies a 200,000-entry layer.
func BenchmarkApplyManyEntries(b *testing.B) {
	r := dlRepo(b)
	base := dlCommitTar(b, r, dlBaseTar(b))
	for i := 0; i < b.N; i++ {
		applyStream(b, r, base, func(w io.Writer) error { return writeManyEntriesLayer(w, 200000) })
	}
}
