package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommitParity commits the same tree (EdgeTree, MiniOS, and a tree with
// trusted.*, security.capability and POSIX ACL xattrs) with ostree and
// ocitree in every repository mode and checks: same commit checksum; `ostree fsck` accepts
// ocitree's repository; `ostree ls -R -C -X` and `ostree refs` agree;
// `ocitree repo fsck` accepts both repositories; `ostree checkout` of
// ocitree's commit and `ocitree repo checkout` of ostree's commit (and of its
// own) reproduce the source tree exactly.
func TestCommitParity(t *testing.T) {
	for _, treeName := range []string{"edge", "minios", "privileged-xattrs", "wide"} {
		for _, mode := range modes {
			t.Run(treeName+"/"+mode, func(t *testing.T) {
				setup(t)
				t.Parallel()
				parityCheck(t, treeName, mode)
			})
		}
	}
}

func parityCheck(t *testing.T, treeName, mode string) {
	src := tree(t, treeName)
	opts := commitOpts{subject: "parity " + treeName}
	theirRepo, want := golden(t, mode, treeName, opts)

	dir := workDir(t)
	ours := filepath.Join(dir, "repo")
	ocitreeInit(t, ours, mode)
	got := ocitreeCommit(t, ours, "test/main", src, opts)
	if got != want {
		t.Errorf("commit checksum: ocitree %s, ostree %s\n%s", got, want, explainMismatch(t, ours, got, theirRepo, want))
	}

	t.Run("ostree-fsck", func(t *testing.T) { ostreeFsck(t, ours) })
	t.Run("ostree-ls", func(t *testing.T) {
		if d := lineDiff(ostreeLs(t, theirRepo, "test/main"), ostreeLs(t, ours, "test/main")); d != "" {
			t.Errorf("`ostree ls -R -C -X test/main` differs (- ostree's repo, + ocitree's):\n%s", d)
		}
	})
	t.Run("ostree-refs", func(t *testing.T) {
		a := must(t, ostree(t, "refs", "--repo="+theirRepo))
		b := must(t, ostree(t, "refs", "--repo="+ours))
		if a != b {
			t.Errorf("ostree refs: ostree's repo %q, ocitree's %q", a, b)
		}
		if ref, err := os.ReadFile(refFile(ours, "test/main")); err != nil || string(ref) != got+"\n" {
			t.Errorf("ref file refs/heads/test/main = %q (%v), want %q", ref, err, got+"\n")
		}
	})
	t.Run("ocitree-fsck", func(t *testing.T) {
		must(t, ocitree(t, "repo", "fsck", "--repo", ours))
		must(t, ocitree(t, "repo", "fsck", "--repo", theirRepo))
	})
	t.Run("ostree-checkout-of-ocitree-commit", func(t *testing.T) {
		co := filepath.Join(dir, "co-ostree")
		must(t, ostree(t, "checkout", "--repo="+ours, got, co))
		assertSameTree(t, "ostree checkout of ocitree's commit", src, co, cmpOpts{})
	})
	t.Run("ocitree-checkout-of-ostree-commit", func(t *testing.T) {
		co := filepath.Join(dir, "co-from-ostree-repo")
		must(t, ocitree(t, "repo", "checkout", "--repo", theirRepo, want, co))
		assertSameTree(t, "ocitree checkout of ostree's commit", src, co, cmpOpts{})
	})
	t.Run("ocitree-checkout-of-own-commit", func(t *testing.T) {
		co := filepath.Join(dir, "co-ocitree")
		must(t, ocitree(t, "repo", "checkout", "--repo", ours, "test/main", co))
		assertSameTree(t, "ocitree checkout of its own commit", src, co, cmpOpts{})
	})
}

// TestCommitCrossInit commits with each tool into a repository initialized
// by the other one.
func TestCommitCrossInit(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			setup(t)
			t.Parallel()
			src := tree(t, "edge")
			opts := commitOpts{subject: "parity edge"}
			_, want := golden(t, mode, "edge", opts)
			dir := workDir(t)

			// ocitree writes into a repo made by `ostree init`.
			a := filepath.Join(dir, "ostree-init")
			ostreeInit(t, a, mode)
			if got := ocitreeCommit(t, a, "test/main", src, opts); got != want {
				t.Errorf("ocitree commit into an ostree-initialized %s repo: %s, ostree %s", mode, got, want)
			}
			ostreeFsck(t, a)

			// ostree writes into a repo made by `ocitree repo init`.
			b := filepath.Join(dir, "ocitree-init")
			ocitreeInit(t, b, mode)
			if got := ostreeCommit(t, b, "test/main", src, opts); got != want {
				t.Errorf("ostree commit into an ocitree-initialized %s repo: %s, expected %s", mode, got, want)
			}
			ostreeFsck(t, b)
			must(t, ocitree(t, "repo", "fsck", "--repo", b))
			cfg, err := os.ReadFile(filepath.Join(b, "config"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(cfg), "repo_version=1") {
				t.Errorf("config of `ocitree repo init` lacks repo_version=1:\n%s", cfg)
			}
		})
	}
}

// TestTarCommit commits the tar stream of a tree (fixtures.TarOf: PAX
// xattrs, owners, modes, hard links as TypeLink) and expects the checksum of
// `ostree commit` of the directory.
func TestTarCommit(t *testing.T) {
	cases := []struct {
		name, tree, mode string
		stdin            bool
		gnuTar           bool // made by GNU tar: "./" names, root entry, readdir order
	}{
		{"edge/bare", "edge", "bare", false, false},
		{"edge/bare-user", "edge", "bare-user", false, false},
		{"edge/archive", "edge", "archive", false, false},
		{"edge/stdin", "edge", "bare-user", true, false},
		{"edge/gnu-tar", "edge", "bare", false, true},
		{"minios/archive", "minios", "archive", false, false},
		{"privileged-xattrs/bare", "privileged-xattrs", "bare", false, false},
		{"privileged-xattrs/bare-user", "privileged-xattrs", "bare-user", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.gnuTar {
				setup(t, "tar")
			} else {
				setup(t)
			}
			t.Parallel()
			src := tree(t, tc.tree)
			opts := commitOpts{subject: "parity " + tc.tree}
			theirRepo, want := golden(t, tc.mode, tc.tree, opts)
			var tarFile string
			if tc.gnuTar {
				tarFile = filepath.Join(workDir(t), "gnu.tar")
				must(t, runCmd(t, nil, "tar", "--format=pax", "--xattrs", "--xattrs-include=user.*", "--numeric-owner", "-C", src, "-cf", tarFile, "."))
			} else {
				tarFile = tarOf(t, src)
			}
			ours := filepath.Join(workDir(t), "repo")
			ocitreeInit(t, ours, tc.mode)
			var got string
			if tc.stdin {
				data, err := os.ReadFile(tarFile)
				if err != nil {
					t.Fatal(err)
				}
				got = ocitreeCommitTar(t, ours, "test/main", "-", data, opts)
			} else {
				got = ocitreeCommitTar(t, ours, "test/main", tarFile, nil, opts)
			}
			if got != want {
				t.Errorf("commit --tar: ocitree %s, ostree (directory) %s\n%s", got, want, explainMismatch(t, ours, got, theirRepo, want))
			}
			ostreeFsck(t, ours)
		})
	}
}

// TestCommitMetadata covers --subject/--body, --add-metadata-string (order
// preserved) and --bootable against the real ostree.
func TestCommitMetadata(t *testing.T) {
	cases := []struct {
		name, tree string
		opts       commitOpts
	}{
		{"subject-body", "edge", commitOpts{subject: "Subject line", body: "Body\nwith two lines"}},
		{"empty-subject", "kernel", commitOpts{}},
		{"metadata-strings", "kernel", commitOpts{subject: "md", metadata: []string{"version=1.0", "zzz=last", "aaa=first", "unicode=héllo wörld", "empty="}}},
		{"bootable", "kernel", commitOpts{subject: "bootable", bootable: true}},
		{"bootable-metadata", "kernel", commitOpts{subject: "bootable", bootable: true, metadata: []string{"version=42"}}},
		{"bootable-minios", "minios", commitOpts{subject: "MiniOS", bootable: true, metadata: []string{"version=1"}}},
		{"other-timestamp", "kernel", commitOpts{subject: "ts", timestamp: defaultTimestamp.AddDate(3, 2, 1).Add(12345e9)}},
		{"source-date-epoch", "kernel", commitOpts{subject: "sde", timestamp: defaultTimestamp.Add(-86400e9), sourceDateEpoch: true}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setup(t)
			t.Parallel()
			src := tree(t, tc.tree)
			dir := workDir(t)
			theirs, ours := filepath.Join(dir, "ostree"), filepath.Join(dir, "ocitree")
			ostreeInit(t, theirs, "bare-user")
			ocitreeInit(t, ours, "bare-user")
			want := ostreeCommit(t, theirs, "test/main", src, tc.opts)
			got := ocitreeCommit(t, ours, "test/main", src, tc.opts)
			if got != want {
				t.Errorf("checksum: ocitree %s, ostree %s\n%s", got, want, explainMismatch(t, ours, got, theirs, want))
			}
			ostreeFsck(t, ours)
			a := must(t, ostree(t, "show", "--repo="+theirs, want))
			b := ostree(t, "show", "--repo="+ours, got)
			if b.code != 0 || strings.ReplaceAll(b.stdout, got, want) != a {
				t.Errorf("`ostree show` differs:\nostree's commit:\n%s\nocitree's commit:\n%s", a, b)
			}
			// `ocitree repo show` prints what `ostree show` prints.
			t.Run("show-text-as-ostree", func(t *testing.T) {
				if c := ocitree(t, "repo", "show", "--repo", theirs, want); c.code != 0 || c.stdout != a {
					t.Errorf("`ocitree repo show` text differs from `ostree show`:\nostree:  %q\nocitree: %q\n%s", a, c.stdout, c.cmdline)
				}
			})
		})
	}
}

// TestCommitParent commits twice to one branch (the second commit's parent is
// the branch head) and once with an explicit --parent, with both tools; the
// checksums and `ostree log` must match.
func TestCommitParent(t *testing.T) {
	setup(t)
	t.Parallel()
	dir := workDir(t)
	v1 := filepath.Join(dir, "v1")
	v2 := filepath.Join(dir, "v2")
	for i, d := range []string{v1, v2} {
		if err := os.MkdirAll(filepath.Join(d, "usr/share"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "usr/share/version"), []byte{byte('1' + i), '\n'}, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	theirs, ours := filepath.Join(dir, "ostree"), filepath.Join(dir, "ocitree")
	ostreeInit(t, theirs, "archive")
	ocitreeInit(t, ours, "archive")
	o1 := commitOpts{subject: "first"}
	o2 := commitOpts{subject: "second", timestamp: defaultTimestamp.Add(3600e9)}
	steps := []struct {
		what, branch, src string
		opts              func(prev string) commitOpts
	}{
		{"first commit", "os/main", v1, func(string) commitOpts { return o1 }},
		{"second commit on the same branch", "os/main", v2, func(string) commitOpts { return o2 }},
		{"explicit --parent on a new branch", "os/other", v2, func(prev string) commitOpts {
			o := o2
			o.subject, o.parent = "explicit parent", prev
			return o
		}},
	}
	var prev string
	for _, s := range steps {
		want := ostreeCommit(t, theirs, s.branch, s.src, s.opts(prev))
		got := ocitreeCommit(t, ours, s.branch, s.src, s.opts(prev))
		if got != want {
			t.Fatalf("%s: ocitree %s, ostree %s\n%s", s.what, got, want, explainMismatch(t, ours, got, theirs, want))
		}
		prev = want
	}
	// --parent takes a REV: a ref name resolves to its commit (ostree's
	// --parent only takes a checksum, so it gets the resolved value).
	po := o2
	po.subject, po.parent = "parent by ref", "os/main"
	got := ocitreeCommit(t, ours, "os/third", v1, po)
	po.parent = strings.TrimSpace(must(t, ostree(t, "rev-parse", "--repo="+theirs, "os/main")))
	if want := ostreeCommit(t, theirs, "os/third", v1, po); got != want {
		t.Errorf("--parent os/main: ocitree %s, ostree with --parent=%s: %s", got, po.parent, want)
	}
	for _, branch := range []string{"os/main", "os/other", "os/third"} {
		a := must(t, ostree(t, "log", "--repo="+theirs, branch))
		b := ostree(t, "log", "--repo="+ours, branch)
		if b.code != 0 || a != b.stdout {
			t.Errorf("ostree log %s differs:\nostree's repo:\n%s\nocitree's repo:\n%s", branch, a, b)
		}
	}
	ostreeFsck(t, ours)
}
