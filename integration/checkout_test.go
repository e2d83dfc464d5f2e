package integration

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/ocitree/ocitree/fixtures"
)

// TestCheckoutSubpath checks out parts of a commit made by ostree with
// `ocitree repo checkout --subpath` and compares them with `ostree checkout
// --subpath` and with the source subtree.
func TestCheckoutSubpath(t *testing.T) {
	subpaths := []string{"/deep/d01/d02", "/names", "/home/user", "/xattr-dir", "/sticky", "/empty-dir"}
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			setup(t)
			t.Parallel()
			src := tree(t, "edge")
			repo, csum := golden(t, mode, "edge", commitOpts{subject: "parity edge"})
			dir := workDir(t)
			for _, d := range []string{"ostree", "ocitree"} {
				if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for i, sub := range subpaths {
				theirs := filepath.Join(dir, "ostree", string(rune('a'+i)))
				ours := filepath.Join(dir, "ocitree", string(rune('a'+i)))
				must(t, ostree(t, "checkout", "--repo="+repo, "--subpath="+sub, csum, theirs))
				r := ocitree(t, "repo", "checkout", "--repo", repo, "--subpath", sub, "test/main", ours)
				if r.code != 0 {
					t.Errorf("--subpath %s:\n%s", sub, r)
					continue
				}
				assertSameTree(t, "--subpath "+sub+" vs ostree checkout --subpath", theirs, ours, cmpOpts{})
				assertSameTree(t, "--subpath "+sub+" vs source", filepath.Join(src, sub), ours, cmpOpts{})
			}
		})
	}
}

// TestCheckoutUserMode compares `ocitree repo checkout --user-mode` with
// `ostree checkout --user-mode` (no ownership, no xattrs, no setuid/setgid).
func TestCheckoutUserMode(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			setup(t)
			t.Parallel()
			repo, csum := golden(t, mode, "edge", commitOpts{subject: "parity edge"})
			dir := workDir(t)
			theirs, ours := filepath.Join(dir, "ostree"), filepath.Join(dir, "ocitree")
			must(t, ostree(t, "checkout", "--repo="+repo, "--user-mode", csum, theirs))
			must(t, ocitree(t, "repo", "checkout", "--repo", repo, "--user-mode", csum, ours))
			// ostree hardlinks bare-user objects into user-mode checkouts, so
			// their user.ostreemeta shows up there; it is not file content.
			assertSameTree(t, "--user-mode vs ostree checkout -U", theirs, ours, cmpOpts{ignoreXattrs: []string{"user.ostreemeta"}})
			entries, err := fixtures.Scan(ours)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range entries {
				if e.Type == 'f' && e.Mode&0o6000 != 0 {
					t.Errorf("%s: user-mode checkout kept setuid/setgid: %07o", e.Path, e.Mode)
				}
				if e.Uid != uint32(os.Geteuid()) {
					t.Errorf("%s: user-mode checkout owned by %d, want the caller %d", e.Path, e.Uid, os.Geteuid())
				}
			}
		})
	}
}
