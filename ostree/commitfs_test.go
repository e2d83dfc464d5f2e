package ostree

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

func TestCommitFS(t *testing.T) {
	src := t.TempDir()
	for p, data := range map[string]string{"usr/bin/sh": "#!", "usr/lib/os-release": "ID=x\n", "etc/empty": "", "top": "t"} {
		if err := os.MkdirAll(filepath.Join(src, filepath.Dir(p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(src, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("sh", filepath.Join(src, "usr/bin/bash")); err != nil {
		t.Fatal(err)
	}
	r, err := Init(filepath.Join(t.TempDir(), "repo"), ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := r.CommitDir(src, CommitOptions{Branch: "x"})
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := r.CommitFS(c)
	if err != nil {
		t.Fatal(err)
	}
	// (fstest.TestFS expects Open to follow symlinks, which CommitFS
	// deliberately does not: test the parts without one.)
	for dir, want := range map[string]string{"usr/lib": "os-release", "etc": "empty"} {
		sub, err := fs.Sub(fsys, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := fstest.TestFS(sub, want); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
	}
	b, err := fs.ReadFile(fsys, "usr/lib/os-release")
	if err != nil || string(b) != "ID=x\n" {
		t.Errorf("ReadFile: %q, %v", b, err)
	}
	fi, err := fs.Stat(fsys, "usr/bin/bash")
	if err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("symlink stat: %v, %v", fi, err)
	}
	if _, err := fsys.Open("usr/bin/bash"); err == nil {
		t.Error("opening a symlink followed it")
	}
	if _, err := fs.Stat(fsys, "nope/x"); !os.IsNotExist(err) {
		t.Errorf("missing path: %v", err)
	}
}
