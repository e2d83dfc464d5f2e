package ostree

import (
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func mkfile(t testing.TB, p string, mode os.FileMode, body string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	// chmod explicitly: the umask must not decide the committed mode.
	if err := unix.Chmod(p, uint32(mode)); err != nil {
		t.Fatal(err)
	}
}

func mkdirMode(t testing.TB, p string, mode uint32) {
	t.Helper()
	if err := os.MkdirAll(p, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func setxattr(t testing.TB, p, name, value string) {
	t.Helper()
	if err := unix.Lsetxattr(p, name, []byte(value), 0); err != nil {
		skipOrFail(t, "cannot set xattr %s on %s: %v", name, p, err)
	}
}

func TestCommitDirRefusals(t *testing.T) {
	tests := []struct {
		name string
		root bool
		make func(t *testing.T, p string) // p is the path to create
		leaf string
	}{
		{"fifo", false, func(t *testing.T, p string) {
			if err := unix.Mkfifo(p, 0o644); err != nil {
				t.Fatal(err)
			}
		}, "fifo"},
		{"char device", true, func(t *testing.T, p string) {
			if err := unix.Mknod(p, unix.S_IFCHR|0o644, int(unix.Mkdev(1, 3))); err != nil {
				t.Fatal(err)
			}
		}, "null"},
		{"socket", false, func(t *testing.T, p string) {
			l, err := net.Listen("unix", p)
			if err != nil {
				t.Skipf("unix socket: %v", err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			l.Close()
		}, "sock"},
		{"non-UTF-8 name", false, func(t *testing.T, p string) {
			mkfile(t, p, 0o644, "x")
		}, "bad\xff"},
		{"non-UTF-8 dir name", false, func(t *testing.T, p string) {
			mkdirMode(t, p, 0o755)
		}, "dir\xfe"},
		{"non-UTF-8 symlink target", false, func(t *testing.T, p string) {
			if err := os.Symlink("target\xff", p); err != nil {
				t.Fatal(err)
			}
		}, "link"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.root {
				requireRoot(t)
			}
			r := newRepo(t, ModeArchive)
			src := filepath.Join(t.TempDir(), "src")
			mkfile(t, filepath.Join(src, "ok.txt"), 0o644, "fine\n")
			mkfile(t, filepath.Join(src, "sub", "also-ok"), 0o644, "fine\n")
			bad := filepath.Join(src, "sub", tc.leaf)
			tc.make(t, bad)
			_, err := r.CommitDir(src, CommitOptions{Branch: "main"})
			if err == nil {
				t.Fatal("CommitDir succeeded")
			}
			if !strings.Contains(err.Error(), bad) {
				t.Errorf("error %q does not name %q", err, bad)
			}
			assertPristine(t, r)
		})
	}
}

func TestCommitDirMissingSource(t *testing.T) {
	r := newRepo(t, ModeArchive)
	if _, err := r.CommitDir(filepath.Join(t.TempDir(), "nope"), CommitOptions{Branch: "main"}); err == nil {
		t.Fatal("CommitDir of a missing directory succeeded")
	}
	assertPristine(t, r)
}

// TestCommitDirVector: a directory holding a = "hello\n" and b -> a,
// committed like the CLI did, gives the "Two entries" commit vector.
func TestCommitDirVector(t *testing.T) {
	forModes(t, func(t *testing.T, m Mode) {
		r := newRepo(t, m)
		src := filepath.Join(t.TempDir(), "src")
		mkdirMode(t, src, 0o755)
		mkfile(t, filepath.Join(src, "a"), 0o644, "hello\n")
		if err := os.Symlink("a", filepath.Join(src, "b")); err != nil {
			t.Fatal(err)
		}
		c, err := r.CommitDir(src, twoEntriesOpts("two"))
		if err != nil {
			t.Fatal(err)
		}
		if c.String() != sumCommitTwoEntries {
			t.Errorf("commit %s, want %s", c, sumCommitTwoEntries)
		}
	})
}

// TestCommitDirMetadata checks ownership, modes, xattrs and hardlinks read
// from the filesystem against the spec's file vectors.
func TestCommitDirMetadata(t *testing.T) {
	requireRoot(t)
	r := newRepo(t, ModeBareUser)
	src := filepath.Join(t.TempDir(), "src")
	mkdirMode(t, src, 0o755)
	mkfile(t, filepath.Join(src, "hello.txt"), 0o644, "hello\n")
	mkfile(t, filepath.Join(src, "xattr.txt"), 0o644, "xattr file\n")
	setxattr(t, filepath.Join(src, "xattr.txt"), "user.zeta", "last")
	setxattr(t, filepath.Join(src, "xattr.txt"), "user.alpha", "first")
	setxattr(t, filepath.Join(src, "xattr.txt"), "user.empty", "") // dropped
	mkfile(t, filepath.Join(src, "owned.txt"), 0o644, "owned\n")
	if err := os.Lchown(filepath.Join(src, "owned.txt"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	mkfile(t, filepath.Join(src, "suid.bin"), 0o4755, "suid\n")
	mkfile(t, filepath.Join(src, "hard1"), 0o644, "linked\n")
	if err := os.Link(filepath.Join(src, "hard1"), filepath.Join(src, "hard2")); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(filepath.Join(src, "hard1"), filepath.Join(src, "hard3")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("hello.txt", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	mkdirMode(t, filepath.Join(src, "sub"), 0o755)
	setxattr(t, filepath.Join(src, "sub"), "user.dir", "d")
	mkfile(t, filepath.Join(src, "sub", "exec.sh"), 0o755, "#!/bin/sh\necho hi\n")
	mkdirMode(t, filepath.Join(src, "priv"), 0o700)
	mkdirMode(t, filepath.Join(src, "deep", "er", "est"), 0o755)
	mkdirMode(t, filepath.Join(src, "deep"), 0o755)
	mkdirMode(t, filepath.Join(src, "deep", "er"), 0o755)
	mkfile(t, filepath.Join(src, "deep", "er", "est", "big"), 0o644, string(bigPayload()))

	c, err := r.CommitDir(src, CommitOptions{Branch: "main"})
	if err != nil {
		t.Fatal(err)
	}
	linked := handSum(0, 0, 0o100644, []byte("linked\n")).String()
	files := []struct{ path, want string }{
		{"hello.txt", sumHello},
		{"xattr.txt", sumXattrFile},
		{"owned.txt", sumOwned},
		{"suid.bin", sumSuid},
		{"hard1", linked},
		{"hard2", linked},
		{"hard3", linked},
		{"link", sumLinkHello},
		{"sub/exec.sh", sumExecSh},
		{"deep/er/est/big", handSum(0, 0, 0o100644, bigPayload()).String()},
	}
	for _, f := range files {
		if _, _, got := lookupPath(t, r, c, f.path); got.String() != f.want {
			t.Errorf("%s = %s, want %s", f.path, got, f.want)
		}
	}
	if tree, meta, _ := lookupPath(t, r, c, "sub"); tree.String() != sumTreeExecSh || meta.String() != sumDirMetaUserDir {
		t.Errorf("sub = %s/%s, want %s/%s", tree, meta, sumTreeExecSh, sumDirMetaUserDir)
	}
	if tree, meta, _ := lookupPath(t, r, c, "priv"); tree.String() != sumEmptyDirTree || meta.String() != sumDirMeta0700 {
		t.Errorf("priv = %s/%s", tree, meta)
	}
	if _, meta, _ := lookupPath(t, r, c, ""); meta.String() != sumDirMeta0755 {
		t.Errorf("root dirmeta %s, want %s", meta, sumDirMeta0755)
	}
	if fr, err := r.Fsck(); err != nil || len(fr.Problems) != 0 {
		t.Errorf("Fsck = %+v, %v", fr, err)
	}
}
