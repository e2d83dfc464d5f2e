package integration

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sparseTree writes a tree with a sparse file (holes at the start, between
// two data runs and at the end) and a plain file, owned by root, as GNU tar
// will read it.
func sparseTree(t *testing.T, dir string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Join(dir, "usr", "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, filepath.Join(dir, "usr"), filepath.Join(dir, "usr", "lib")} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.OpenFile(filepath.Join(dir, "usr", "lib", "holes.img"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	// 4 MiB with data at 1 MiB and 3 MiB; the rest never written.
	for _, at := range []int64{1 << 20, 3 << 20} {
		if _, err := f.WriteAt(bytes.Repeat([]byte("data run "), 1000), at); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Truncate(4 << 20); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "usr", "lib", "plain"), []byte("plain\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sparseMarker returns how the tar stream marks holes.img as sparse: "S"
// for the old GNU type, "pax GNU.sparse.M.m" for PAX records, "" when it is
// a plain file.
func sparseMarker(t *testing.T, data []byte) string {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			t.Fatal("no holes.img entry in the tar")
		}
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasSuffix(hdr.Name, "holes.img") {
			continue
		}
		if hdr.Typeflag == tar.TypeGNUSparse {
			return "S"
		}
		major, minor := hdr.PAXRecords["GNU.sparse.major"], hdr.PAXRecords["GNU.sparse.minor"]
		if major == "" && hdr.PAXRecords["GNU.sparse.numblocks"] != "" {
			major, minor = "0", "0/0.1" // 0.0 and 0.1 carry no version record
		}
		if major != "" {
			return "pax GNU.sparse." + major + "." + minor
		}
		return ""
	}
}

// TestTarCommitSparse commits tars of a sparse file made by the real GNU
// tar (-S, in the old GNU format and in each PAX sparse version) with the
// real `ostree commit --tree=tar=` and with `ocitree repo commit --tar`:
// ostree stores the file with its holes as zeros, and so must ocitree
// (same commit checksum in every mode, checkout equal to the source, ostree
// fsck clean).
func TestTarCommitSparse(t *testing.T) {
	cases := []struct {
		name string
		args []string // tar format options
	}{
		{"gnu", []string{"--format=gnu"}},
		{"pax-0.0", []string{"--format=pax", "--sparse-version=0.0"}},
		{"pax-0.1", []string{"--format=pax", "--sparse-version=0.1"}},
		{"pax-1.0", []string{"--format=pax", "--sparse-version=1.0"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setup(t, "tar")
			t.Parallel()
			dir := workDir(t)
			src := filepath.Join(dir, "src")
			sparseTree(t, src)
			tarFile := filepath.Join(dir, "sparse.tar")
			args := append(append([]string{}, tc.args...), "-S", "--numeric-owner", "--owner=0", "--group=0", "-C", src, "-cf", tarFile, ".")
			must(t, runCmd(t, nil, "tar", args...))
			data, err := os.ReadFile(tarFile)
			if err != nil {
				t.Fatal(err)
			}
			marker := sparseMarker(t, data)
			if marker == "" {
				t.Fatalf("tar %s -S did not mark holes.img as sparse (does %s support holes?)", strings.Join(tc.args, " "), dir)
			}
			t.Logf("sparse entry: %s, tar of %d bytes for a 4 MiB file", marker, len(data))
			if len(data) >= 4<<20 {
				t.Fatalf("the tar holds %d bytes: the holes were written out", len(data))
			}

			mode := modes[i%len(modes)]
			opts := commitOpts{subject: "sparse " + tc.name}
			theirs := filepath.Join(dir, "ostree-repo")
			ostreeInit(t, theirs, mode)
			want := strings.TrimSpace(must(t, ostree(t, append(opts.ostreeArgs(theirs, "test/main"), "--tree=tar="+tarFile)...)))
			if !hex64.MatchString(want) {
				t.Fatalf("ostree commit printed %q", want)
			}
			ours := filepath.Join(dir, "repo")
			ocitreeInit(t, ours, mode)
			got := ocitreeCommitTar(t, ours, "test/main", tarFile, nil, opts)
			if got != want {
				t.Errorf("%s: ocitree %s, ostree %s\n%s", mode, got, want, explainMismatch(t, ours, got, theirs, want))
			}
			ostreeFsck(t, ours)

			// The real tool's checkout has the holes as zeros; so has ours.
			for _, r := range []struct{ name, repo, rev string }{{"ostree", theirs, want}, {"ocitree", ours, got}} {
				co := filepath.Join(dir, "co-"+r.name)
				must(t, ostree(t, "checkout", "--repo="+r.repo, "-U", "--force-copy", r.rev, co))
				assertSameTree(t, r.name+" checkout of the sparse tar vs the source", src, co, cmpOpts{ignoreOwner: true})
			}
		})
	}
}
