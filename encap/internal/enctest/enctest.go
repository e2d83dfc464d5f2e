// Package enctest holds the test helpers the encap packages share: skipping
// (or failing under CI=true) when a peer is missing, scratch repositories,
// commits of small trees and runs of the ostree CLI and other tools. Only
// tests import it.
package enctest

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ocitree/ocitree/ostree"
)

// SkipOrFail skips the test, or fails it when CI=true (where every peer must be installed).
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot skips (fails with CI=true) unless the test runs as root; under
// -short it skips.
func RequireRoot(t testing.TB) {
	t.Helper()
	skipShort(t, "needs root")
	if os.Geteuid() != 0 {
		SkipOrFail(t, "needs root (chown, setuid bits, bare repositories)")
	}
}

// OstreeBin is the ostree CLI the tests compare against.
const OstreeBin = "/usr/bin/ostree"

// RequireOstree skips (fails with CI=true) when the ostree CLI is missing;
// under -short it skips.
func RequireOstree(t testing.TB) {
	t.Helper()
	skipShort(t, "needs the ostree CLI")
	if _, err := os.Stat(OstreeBin); err != nil {
		SkipOrFail(t, "%s not installed: %v", OstreeBin, err)
	}
}

// RunOstree runs the ostree CLI and returns its combined output; it fails the test on error.
func RunOstree(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(OstreeBin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ostree %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Fsck checks r with the ostree CLI.
func Fsck(t testing.TB, r *ostree.Repo) {
	t.Helper()
	RequireOstree(t)
	RunOstree(t, "fsck", "--repo="+r.Path())
}

// NewRepo initialises a repository of mode m in a temporary directory.
func NewRepo(t testing.TB, m ostree.Mode) *ostree.Repo {
	t.Helper()
	r, err := ostree.Init(filepath.Join(t.TempDir(), "repo"), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// FuzzRepo initialises the one repository a fuzz target's process uses,
// at top/repo: bare as root, else bare-user-only. Each exec then runs one
// transaction and aborts it, and checks with Contained.
func FuzzRepo(f *testing.F) (top string, r *ostree.Repo) {
	f.Helper()
	top = f.TempDir()
	mode := ostree.ModeBareUserOnly
	if os.Geteuid() == 0 {
		mode = ostree.ModeBare
	}
	r, err := ostree.Init(filepath.Join(top, "repo"), mode)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { r.Close() })
	return top, r
}

// Contained fails t when anything besides the repository was written in
// top, or an aborted transaction left its staging directory.
func Contained(t testing.TB, top string) {
	t.Helper()
	ents, err := os.ReadDir(top)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Fatalf("written outside the repository: %v", ents)
	}
	if left, _ := filepath.Glob(filepath.Join(top, "repo", "tmp", "ocitree-staging-*")); len(left) != 0 {
		t.Fatalf("the aborted transaction left %v", left)
	}
}

// CommitDir commits the directory src into r without a parent.
func CommitDir(t testing.TB, r *ostree.Repo, src string) ostree.Checksum {
	t.Helper()
	c, err := r.CommitDir(src, ostree.CommitOptions{Subject: "test", NoParent: true})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// RequireTool skips (fails with CI=true) when a program is missing;
// scripts/test-deps.sh installs them.
func RequireTool(t testing.TB, names ...string) {
	t.Helper()
	skipShort(t, "needs %v", names)
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			SkipOrFail(t, "%s not installed (scripts/test-deps.sh installs it)", n)
		}
	}
}

// RunTool runs a program with env added to the environment and returns its
// combined output; it fails the test on error.
func RunTool(t testing.TB, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

// CommitTree writes files (path -> content; "->target" makes a symlink) to a
// temp directory and commits it into a fresh bare-user repository.
func CommitTree(t *testing.T, files map[string]string) (*ostree.Repo, ostree.Checksum) {
	t.Helper()
	src := filepath.Join(t.TempDir(), "tree")
	for p, content := range files {
		full := filepath.Join(src, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if target, ok := strings.CutPrefix(content, "->"); ok {
			if err := os.Symlink(target, full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo, err := ostree.Init(filepath.Join(t.TempDir(), "repo"), ostree.ModeBareUser)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	c, err := repo.CommitDir(src, ostree.CommitOptions{Subject: "test", Timestamp: time.Unix(1700000000, 0)})
	if err != nil {
		t.Fatal(err)
	}
	return repo, c
}

// skipShort skips a test that needs root or a peer under -short (make unit),
// whatever the machine has.
func skipShort(t testing.TB, format string, args ...any) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: "+format, args...)
	}
}
