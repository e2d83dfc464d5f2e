package derived

import (
	"archive/tar"
	"fmt"
	"io"
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

// TestApplyShapeBounded: a 10,000-deep chain listing every directory and a
// 20,000-entry layer apply in seconds (issue 11, class 2). The bound is
// very generous (a loaded 2-core machine); the 5 s and the
// 200,000-entry layer are `make bench` (BenchmarkApplyDeepChain,
// BenchmarkApplyManyEntries). Before the fix 5,000 levels took over 120 s.
func TestApplyShapeBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	r := dlRepo(t)
	base := dlCommitTar(t, r, dlBaseTar(t))
	const depth = 10000
	c, d := applyStream(t, r, base, func(w io.Writer) error { return writeDeepChainLayer(w, depth) })
	t.Logf("10,000-deep chain: %v", d)
	if d > 60*time.Second {
		t.Errorf("10,000-deep chain took %v", d)
	}
	if err := r.List(c, "/usr/d", false, func(ostree.ListEntry) error { return nil }); err != nil {
		t.Errorf("merged tree: %v", err)
	}
	_, d = applyStream(t, r, base, func(w io.Writer) error { return writeManyEntriesLayer(w, 20000) })
	t.Logf("20,000 entries: %v", d)
	if d > 60*time.Second {
		t.Errorf("20,000 entries took %v", d)
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
