package ostree

import (
	"archive/tar"
	"bytes"
	"strconv"
	"strings"
	"testing"
)

func TestImportTarRefusals(t *testing.T) {
	gnu := func(e tarEnt) tarEnt { e.hdr.Format = tar.FormatGNU; return e }
	tests := []struct {
		name  string
		entry string // the entry the error must name
		ents  []tarEnt
	}{
		{"dotdot", "../x", []tarEnt{reg("../x", 0o644, "x")}},
		{"absolute", "/abs", []tarEnt{reg("/abs", 0o644, "x")}},
		{"escaping dotdot", "a/../../b", []tarEnt{dirEnt("a/", 0o755), reg("a/../../b", 0o644, "x")}},
		{"inner dotdot", "a/../b", []tarEnt{reg("a/../b", 0o644, "x")}},
		{"char device", "dev/null", []tarEnt{{hdr: tar.Header{Name: "dev/null", Typeflag: tar.TypeChar, Mode: 0o666, Devmajor: 1, Devminor: 3}}}},
		{"block device", "dev/sda", []tarEnt{{hdr: tar.Header{Name: "dev/sda", Typeflag: tar.TypeBlock, Mode: 0o660, Devmajor: 8}}}},
		{"fifo", "run/fifo", []tarEnt{{hdr: tar.Header{Name: "run/fifo", Typeflag: tar.TypeFifo, Mode: 0o644}}}},
		{"hardlink to missing", "l", []tarEnt{reg("f", 0o644, "x"), linkEnt("l", "missing")}},
		{"hardlink to later file", "l", []tarEnt{linkEnt("l", "f"), reg("f", 0o644, "x")}},
		{"hardlink to directory", "l", []tarEnt{dirEnt("d/", 0o755), linkEnt("l", "d")}},
		{"hardlink escaping", "l", []tarEnt{linkEnt("l", "../etc/passwd")}},
		{"non-UTF-8 name", "bad\xff", []tarEnt{gnu(reg("bad\xff", 0o644, "x"))}},
		{"non-UTF-8 dir name", "d\xfe/f", []tarEnt{gnu(reg("d\xfe/f", 0o644, "x"))}},
		{"non-UTF-8 symlink target", "s", []tarEnt{gnu(symEnt("s", "t\xff"))}},
		{"file as root", ".", []tarEnt{reg(".", 0o644, "x")}},
	}
	r := newRepo(t, ModeArchive)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := r.CommitTar(bytes.NewReader(mkTar(t, tc.ents...)), CommitOptions{Branch: "main"})
			if err == nil {
				t.Fatal("CommitTar succeeded")
			}
			t.Log(err)
			if msg := err.Error(); !strings.Contains(msg, tc.entry) && !strings.Contains(msg, strconv.Quote(tc.entry)) {
				t.Errorf("error %q does not name the entry %q", msg, tc.entry)
			}
			assertPristine(t, r)
		})
	}
}

func TestImportTarTruncated(t *testing.T) {
	r := newRepo(t, ModeArchive)
	b := mkTar(t, reg("f", 0o644, strings.Repeat("x", 5000)))
	if _, err := r.CommitTar(bytes.NewReader(b[:2048]), CommitOptions{Branch: "main"}); err == nil {
		t.Fatal("CommitTar of a truncated stream succeeded")
	}
	assertPristine(t, r)
}

func TestImportTarValid(t *testing.T) {
	r := newRepo(t, ModeArchive)
	xattrFile := reg("x.txt", 0o644, "xattr file\n")
	xattrFile.hdr.PAXRecords = map[string]string{
		"SCHILY.xattr.user.zeta":  "last",
		"SCHILY.xattr.user.alpha": "first",
		"SCHILY.xattr.user.empty": "", // dropped, as libglnx drops empty values
	}
	subDir := dirEnt("sub/", 0o755)
	subDir.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.dir": "d"}
	owned := reg("owned.txt", 0o644, "owned\n")
	owned.hdr.Uid, owned.hdr.Gid = 1000, 1000
	c := commitTar(t, r, CommitOptions{Branch: "main"},
		reg("dup", 0o644, "one\n"),
		reg("dup", 0o600, "two\n"), // a later entry replaces an earlier one
		reg("impl/icit/hello.txt", 0o644, "hello\n"),
		xattrFile,
		subDir,
		reg("sub/exec.sh", 0o755, "#!/bin/sh\necho hi\n"),
		reg("suid.bin", 0o4755, "suid\n"),
		owned,
		reg("hard1", 0o644, "linked\n"),
		linkEnt("hard2", "hard1"),
		linkEnt("impl/hard3", "./hard1"),
		symEnt("link", "hello.txt"),
		dirEnt("priv", 0o700),
		reg("gone/f", 0o644, "x"),
		reg("gone", 0o644, "now a file\n"), // a file replaces a directory
	)
	if got, err := r.ReadRef("main"); err != nil || got != c {
		t.Fatalf("ReadRef = %s, %v", got, err)
	}
	files := []struct{ path, want string }{
		{"dup", handSum(0, 0, 0o100600, []byte("two\n")).String()},
		{"impl/icit/hello.txt", sumHello},
		{"x.txt", sumXattrFile},
		{"sub/exec.sh", sumExecSh},
		{"suid.bin", sumSuid},
		{"owned.txt", sumOwned},
		{"hard1", handSum(0, 0, 0o100644, []byte("linked\n")).String()},
		{"hard2", handSum(0, 0, 0o100644, []byte("linked\n")).String()},
		{"impl/hard3", handSum(0, 0, 0o100644, []byte("linked\n")).String()},
		{"link", sumLinkHello},
		{"gone", handSum(0, 0, 0o100644, []byte("now a file\n")).String()},
	}
	for _, f := range files {
		if _, _, got := lookupPath(t, r, c, f.path); got.String() != f.want {
			t.Errorf("%s = %s, want %s", f.path, got, f.want)
		}
	}
	dirs := []struct{ path, tree, meta string }{
		{"", "", sumDirMeta0755},     // implied root: 0755 root
		{"impl", "", sumDirMeta0755}, // implied parents too
		{"impl/icit", "", sumDirMeta0755},
		{"sub", sumTreeExecSh, sumDirMetaUserDir},
		{"priv", sumEmptyDirTree, sumDirMeta0700},
	}
	for _, d := range dirs {
		tree, meta, _ := lookupPath(t, r, c, d.path)
		if meta.String() != d.meta {
			t.Errorf("/%s dirmeta %s, want %s", d.path, meta, d.meta)
		}
		if d.tree != "" && tree.String() != d.tree {
			t.Errorf("/%s dirtree %s, want %s", d.path, tree, d.tree)
		}
	}
	// A "./" entry sets the root's metadata.
	c3 := commitTar(t, r, CommitOptions{}, dirEnt("./", 0o700), reg("f", 0o644, "x"))
	if _, meta, _ := lookupPath(t, r, c3, ""); meta.String() != sumDirMeta0700 {
		t.Errorf("root dirmeta %s, want %s", meta, sumDirMeta0700)
	}
	// A later directory entry for an implied directory sets its metadata.
	c2 := commitTar(t, r, CommitOptions{}, reg("late/f", 0o644, "x"), dirEnt("late/", 0o700))
	if _, meta, _ := lookupPath(t, r, c2, "late"); meta.String() != sumDirMeta0700 {
		t.Errorf("late/ dirmeta %s, want %s", meta, sumDirMeta0700)
	}
}

// TestCommitTarVectorAllModes: the tree {a, b -> a} committed with the CLI's
// options of the "Two entries" vector gives that commit, in every mode.
func TestCommitTarVectorAllModes(t *testing.T) {
	forModes(t, func(t *testing.T, m Mode) {
		r := newRepo(t, m)
		c := commitTar(t, r, twoEntriesOpts("two"), reg("a", 0o644, "hello\n"), symEnt("b", "a"))
		if c.String() != sumCommitTwoEntries {
			t.Errorf("commit %s, want %s", c, sumCommitTwoEntries)
		}
		if got, err := r.ReadRef("two"); err != nil || got != c {
			t.Errorf("ReadRef = %s, %v", got, err)
		}
		if fr, err := r.Fsck(); err != nil || len(fr.Problems) != 0 {
			t.Errorf("Fsck = %+v, %v", fr, err)
		}
	})
}

func TestTarXattrs(t *testing.T) {
	h := &tar.Header{PAXRecords: map[string]string{
		"SCHILY.xattr.user.b":        "2",
		"SCHILY.xattr.security.a":    "1",
		"SCHILY.xattr.user.empty":    "",
		"LIBARCHIVE.xattr.user.skip": "x",
		"path":                       "ignored",
	}}
	xs, err := TarXattrs(h)
	if err != nil {
		t.Fatal(err)
	}
	want := []Xattr{{"security.a", []byte("1")}, {"user.b", []byte("2")}}
	if !xattrsEqual(xs, want) {
		t.Errorf("TarXattrs = %v, want %v", xs, want)
	}
	if _, err := TarXattrs(&tar.Header{PAXRecords: map[string]string{"SCHILY.xattr.": "x"}}); err == nil {
		t.Error("empty xattr name accepted")
	}
}

func TestCleanTarPath(t *testing.T) {
	tests := []struct {
		in   string
		want []string
		ok   bool
	}{
		{"a/b/c", []string{"a", "b", "c"}, true},
		{"./a//b/", []string{"a", "b"}, true},
		{".", nil, true},
		{"./", nil, true},
		{"a/./b", []string{"a", "b"}, true},
		{"..", nil, false},
		{"a/..", nil, false},
		{"/a", nil, false},
		{"a\xff", nil, false},
		{"a/b\x00c", nil, false},
	}
	for _, tc := range tests {
		got, err := CleanTarPath(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("CleanTarPath(%q) error %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if tc.ok && strings.Join(got, "/") != strings.Join(tc.want, "/") {
			t.Errorf("CleanTarPath(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestImportTarGlobalHeader: a pax global header (as `git archive` writes)
// carries no file and must not make the import fail.
func TestImportTarGlobalHeader(t *testing.T) {
	r := newRepo(t, ModeArchive)
	glob := tarEnt{hdr: tar.Header{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "0123456789abcdef"}}}
	c, err := r.CommitTar(bytes.NewReader(mkTar(t, glob, reg("a", 0o644, "hello\n"), symEnt("b", "a"))), twoEntriesOpts("main"))
	if err != nil {
		t.Fatalf("CommitTar with a pax global header: %v", err)
	}
	if c.String() != sumCommitTwoEntries {
		t.Errorf("commit %s, want %s (the global header must add nothing)", c, sumCommitTwoEntries)
	}
}
