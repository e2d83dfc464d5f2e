package etcmerge

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Small tree builders for the cases; all fail the test on error.

func wfile(t *testing.T, path, body string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(path)
	if err := os.WriteFile(path, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func mkdir(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, path string) {
	t.Helper()
	_ = os.Remove(path)
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
}

func rmrf(t *testing.T, path string) {
	t.Helper()
	if err := os.RemoveAll(path); err != nil {
		t.Fatal(err)
	}
}

func lchown(t *testing.T, path string, uid, gid int) {
	t.Helper()
	if err := os.Lchown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func chmod(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func setxattr(t *testing.T, path, name, value string) {
	t.Helper()
	if err := unix.Lsetxattr(path, name, []byte(value), 0); err != nil {
		t.Fatalf("setxattr %s %s: %v", path, name, err)
	}
}

func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := unix.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}

// snapshot describes every entry below root (not root itself): type, permission bits,
// owner, content digest or symlink target, and all xattrs. Timestamps are left out.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = describe(t, p)
		return nil
	})
	if err != nil {
		t.Fatalf("walking %s: %v", root, err)
	}
	return out
}

func describe(t *testing.T, p string) string {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	var what string
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		what = "file " + hex.EncodeToString(sum[:8])
		if len(b) < 40 {
			what += fmt.Sprintf(" %q", b)
		}
	case unix.S_IFDIR:
		what = "dir"
	case unix.S_IFLNK:
		target, err := os.Readlink(p)
		if err != nil {
			t.Fatal(err)
		}
		what = "symlink -> " + target
	case unix.S_IFIFO:
		what = "fifo"
	default:
		what = fmt.Sprintf("type %o", st.Mode&unix.S_IFMT)
	}
	xs, err := listXattrs(linkXattr(p))
	if err != nil {
		t.Fatal(err)
	}
	var xl []string
	for _, x := range xs {
		xl = append(xl, fmt.Sprintf("%s=%q", x.name, x.value))
	}
	return fmt.Sprintf("%s %04o %d:%d [%s]", what, st.Mode&0o7777, st.Uid, st.Gid, strings.Join(xl, " "))
}

// diffSnapshots returns a readable list of differences ("" when equal).
func diffSnapshots(a, b map[string]string, aname, bname string) string {
	keys := map[string]bool{}
	for k := range a {
		keys[k] = true
	}
	for k := range b {
		keys[k] = true
	}
	var sorted []string
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	var sb strings.Builder
	for _, k := range sorted {
		av, aok := a[k]
		bv, bok := b[k]
		switch {
		case !aok:
			fmt.Fprintf(&sb, "  %s: only in %s: %s\n", k, bname, bv)
		case !bok:
			fmt.Fprintf(&sb, "  %s: only in %s: %s\n", k, aname, av)
		case av != bv:
			fmt.Fprintf(&sb, "  %s:\n    %s: %s\n    %s: %s\n", k, aname, av, bname, bv)
		}
	}
	return sb.String()
}
