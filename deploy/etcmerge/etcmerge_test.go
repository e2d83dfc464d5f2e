package etcmerge

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/internal/ostreetest"
)

// formatted is Format's output as a string.
func formatted(t *testing.T, cs []Change) string {
	t.Helper()
	var b bytes.Buffer
	if err := Format(&b, cs); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

var configDiffLine = regexp.MustCompile(`^[MDA]    [^/].*$`)

// normalizeConfigDiff checks that out has the shape `ostree admin config-diff` prints
// (all M lines, then D, then A; each "K    path") and sorts the lines within each group:
// libostree prints them in readdir order, which depends on the file system, while Diff
// sorts by path.
func normalizeConfigDiff(t *testing.T, out string) string {
	t.Helper()
	if out == "" {
		return ""
	}
	if !strings.HasSuffix(out, "\n") {
		t.Fatalf("config-diff output does not end in a newline: %q", out)
	}
	groups := map[byte][]string{}
	order := "MDA"
	last := 0
	for _, l := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
		if !configDiffLine.MatchString(l) {
			t.Fatalf("unexpected config-diff line %q", l)
		}
		i := strings.IndexByte(order, l[0])
		if i < last {
			t.Fatalf("config-diff groups out of order at %q in %q", l, out)
		}
		last = i
		groups[l[0]] = append(groups[l[0]], l)
	}
	var b strings.Builder
	for i := range order {
		g := groups[order[i]]
		sort.Slice(g, func(a, c int) bool { return g[a][5:] < g[c][5:] })
		for _, l := range g {
			b.WriteString(l + "\n")
		}
	}
	return b.String()
}

// TestMergeCases runs every case on plain directories: orig = v1 defaults,
// modified = v1 defaults + edits, target = v2 defaults.
func TestMergeCases(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root for owner changes (CI=true makes this a failure)")
		}
		t.Skip("needs root for owner changes")
	}
	for _, c := range etcCases() {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			orig, mod, target := dir+"/orig", dir+"/modified", dir+"/target"
			for _, d := range []string{orig, mod, target} {
				mkdir(t, d, 0o755)
			}
			c.v1(t, orig)
			c.v1(t, mod)
			c.edit(t, mod)
			c.v2(t, target)

			cs, err := Diff(orig, mod)
			if err != nil {
				t.Fatal(err)
			}
			if got := formatted(t, cs); got != c.diff {
				t.Errorf("Diff+Format:\n%s\nwant:\n%s", got, c.diff)
			}
			origSnap, modSnap := snapshot(t, orig), snapshot(t, mod)
			before := snapshot(t, target)
			merged, err := Merge(orig, mod, target)
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("Merge: got error %v, want %v", err, c.wantErr)
				}
				if d := diffSnapshots(before, snapshot(t, target), "before", "after"); d != "" {
					t.Errorf("a refused merge changed the target:\n%s", d)
				}
				return
			}
			if err != nil {
				t.Fatalf("Merge: %v", err)
			}
			if got := formatted(t, merged); got != c.diff {
				t.Errorf("Merge returned %q, want %q", got, c.diff)
			}
			c.check(t, target)
			// The inputs are never written.
			if d := diffSnapshots(origSnap, snapshot(t, orig), "before", "after"); d != "" {
				t.Errorf("Merge changed orig:\n%s", d)
			}
			if d := diffSnapshots(modSnap, snapshot(t, mod), "before", "after"); d != "" {
				t.Errorf("Merge changed modified:\n%s", d)
			}
		})
	}
}

// TestMergeAgainstLibostree runs every case through the real `ostree admin deploy` and
// through Merge on the same inputs, and compares the results entry by entry (type,
// content, mode, owner, xattrs, symlink target). For each case:
//
//  1. commit v1 and deploy it (d1); make the local edits in d1/etc;
//  2. compare Format(Diff(d1/usr/etc, d1/etc)) with `ostree admin config-diff --os`;
//  3. commit v2 and deploy it with the merge (libostree's result, d2/etc);
//  4. deploy v2 again with --no-merge: its etc is libostree's own copy of v2's usr/etc,
//     the input of the merge; run Merge(d1/usr/etc, d1/etc, that etc);
//  5. compare, and run the case's check on both results. Error cases: both must refuse.
func TestMergeAgainstLibostree(t *testing.T) {
	ostreetest.Require(t)
	for _, c := range etcCases() {
		t.Run(c.name, func(t *testing.T) {
			s := ostreetest.NewSysroot(t, "test")
			t1 := filepath.Join(t.TempDir(), "v1")
			ostreetest.WriteBootableTree(t, t1)
			c.v1(t, t1+"/usr/etc")
			s.Commit(t, "v1", t1)
			d1, err := s.Deploy("v1")
			if err != nil {
				t.Fatal(err)
			}
			c.edit(t, d1+"/etc")

			ours, err := Diff(d1+"/usr/etc", d1+"/etc")
			if err != nil {
				t.Fatal(err)
			}
			lib := s.ConfigDiff(t)
			if got, want := formatted(t, ours), normalizeConfigDiff(t, lib); got != want {
				t.Errorf("Diff+Format differs from ostree admin config-diff:\nours:\n%s\nostree (sorted within groups):\n%s", got, want)
			}
			if got := formatted(t, ours); got != c.diff {
				t.Errorf("Diff+Format = %q, want %q", got, c.diff)
			}

			t2 := filepath.Join(t.TempDir(), "v2")
			ostreetest.WriteBootableTree(t, t2)
			c.v2(t, t2+"/usr/etc")
			s.Commit(t, "v2", t2)
			d2, libErr := s.Deploy("v2")
			if want := Summary(ours) + "\n"; !strings.HasPrefix(s.DeployOutput, want) {
				t.Errorf("ostree admin deploy printed %q, want it to start with %q", s.DeployOutput, want)
			}

			// libostree's unmerged copy of v2's usr/etc, made by a --no-merge deploy.
			n2, err := s.Deploy("v2", "--no-merge")
			if err != nil {
				t.Fatal(err)
			}
			target := n2 + "/etc"
			before := snapshot(t, target)
			_, err = Merge(d1+"/usr/etc", d1+"/etc", target)

			if c.wantErr != nil {
				if libErr == nil {
					t.Errorf("libostree merged, want it to refuse with %q", c.libErr)
				} else if !strings.Contains(libErr.Error(), c.libErr) {
					t.Errorf("libostree failed with %v, want %q", libErr, c.libErr)
				} else {
					t.Logf("libostree refused: %v", libErr)
				}
				if !errors.Is(err, c.wantErr) {
					t.Errorf("Merge: got error %v, want %v", err, c.wantErr)
				}
				if d := diffSnapshots(before, snapshot(t, target), "before", "after"); d != "" {
					t.Errorf("a refused merge changed the target:\n%s", d)
				}
				return
			}
			if libErr != nil {
				t.Fatalf("libostree's deploy with merge failed: %v", libErr)
			}
			if err != nil {
				t.Fatalf("Merge: %v", err)
			}
			if d := diffSnapshots(snapshot(t, d2+"/etc"), snapshot(t, target), "libostree", "ours"); d != "" {
				t.Errorf("merged /etc differs from libostree's:\n%s", d)
			}
			t.Run("libostree", func(t *testing.T) { c.check(t, d2+"/etc") })
			t.Run("ours", func(t *testing.T) { c.check(t, target) })
		})
	}
}

// TestMergeSymlinkedParentInTarget: the new defaults turned a directory into a symlink
// pointing out of the deployment, and a file below it was edited or deleted locally.
// libostree follows the symlink and writes (or deletes) the file outside, and gives the
// outside directory sub's mode (pinned here); Merge refuses and changes nothing, neither
// in the target nor outside.
func TestMergeSymlinkedParentInTarget(t *testing.T) {
	ostreetest.Require(t)
	v1 := func(t *testing.T, e string) {
		mkdir(t, e+"/sub", 0o755)
		wfile(t, e+"/sub/f.conf", "f\n", 0o644)
	}
	v2 := func(t *testing.T, e, outside string) { symlink(t, outside, e+"/sub") }
	// prepare fills the outside directory: mode 0711 and a victim file.
	prepare := func(t *testing.T) string {
		outside := t.TempDir()
		chmod(t, outside, 0o711)
		wfile(t, outside+"/f.conf", "victim\n", 0o644)
		return outside
	}
	for _, sc := range []struct {
		name string
		// Only the file changes: had sub's own mode changed too, sub would be a
		// modified directory and both would replace the symlink by a copy of it.
		edit func(t *testing.T, e string)
		// libostree's effect outside.
		libOutside func(t *testing.T, outside string)
	}{
		{
			name: "edited",
			edit: func(t *testing.T, e string) { wfile(t, e+"/sub/f.conf", "local\n", 0o644) },
			libOutside: func(t *testing.T, outside string) {
				has(t, outside, "f.conf", `"local\n" 0644`)
				has(t, outside, ".", "dir 0755") // sub's mode
			},
		},
		{
			name: "deleted",
			edit: func(t *testing.T, e string) { rmrf(t, e+"/sub/f.conf") },
			libOutside: func(t *testing.T, outside string) {
				absent(t, outside, "f.conf")
			},
		},
	} {
		t.Run(sc.name+"/ours", func(t *testing.T) {
			outside := prepare(t)
			want := snapshot(t, outside)
			dir := t.TempDir()
			orig, mod, target := dir+"/orig", dir+"/modified", dir+"/target"
			for _, d := range []string{orig, mod, target} {
				mkdir(t, d, 0o755)
			}
			v1(t, orig)
			v1(t, mod)
			sc.edit(t, mod)
			v2(t, target, outside)
			before := snapshot(t, target)
			_, err := Merge(orig, mod, target)
			if !errors.Is(err, ErrNotDirectory) {
				t.Fatalf("Merge: got %v, want ErrNotDirectory", err)
			}
			t.Logf("refused: %v", err)
			if d := diffSnapshots(want, snapshot(t, outside), "before", "after"); d != "" {
				t.Errorf("Merge changed the directory outside:\n%s", d)
			}
			has(t, outside, ".", "dir 0711")
			if d := diffSnapshots(before, snapshot(t, target), "before", "after"); d != "" {
				t.Errorf("a refused merge changed the target:\n%s", d)
			}
		})
		t.Run(sc.name+"/libostree", func(t *testing.T) {
			outside := prepare(t)
			s := ostreetest.NewSysroot(t, "test")
			t1 := filepath.Join(t.TempDir(), "v1")
			ostreetest.WriteBootableTree(t, t1)
			v1(t, t1+"/usr/etc")
			s.Commit(t, "v1", t1)
			d1, err := s.Deploy("v1")
			if err != nil {
				t.Fatal(err)
			}
			sc.edit(t, d1+"/etc")
			t2 := filepath.Join(t.TempDir(), "v2")
			ostreetest.WriteBootableTree(t, t2)
			v2(t, t2+"/usr/etc", outside)
			s.Commit(t, "v2", t2)
			d2, err := s.Deploy("v2")
			if err != nil {
				t.Fatalf("libostree refused (the pinned behaviour is that it follows the symlink): %v", err)
			}
			has(t, d2+"/etc", "sub", "symlink -> "+outside)
			sc.libOutside(t, outside)
		})
	}
}

// TestMergeNeverWritesSharedInodes: every file of the target is a hardlink of a file
// elsewhere (as a careless checkout of a repository would make); after the merge the
// other names still have their old content, mode, owner and xattrs.
func TestMergeNeverWritesSharedInodes(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (CI=true makes this a failure)")
		}
		t.Skip("needs root")
	}
	dir := t.TempDir()
	orig, mod, target, repo := dir+"/orig", dir+"/modified", dir+"/target", dir+"/repo"
	for _, d := range []string{orig, mod, target, repo} {
		mkdir(t, d, 0o755)
	}
	for _, e := range []string{orig, mod} {
		wfile(t, e+"/a.conf", "a\n", 0o644)
		wfile(t, e+"/d/b.conf", "b\n", 0o644)
	}
	wfile(t, mod+"/a.conf", "local a\n", 0o600)
	setxattr(t, mod+"/a.conf", "user.x", "1")
	lchown(t, mod+"/d/b.conf", 1000, 1000)
	wfile(t, repo+"/a", "repo a\n", 0o644)
	wfile(t, repo+"/b", "repo b\n", 0o644)
	mkdir(t, target+"/d", 0o755)
	for from, to := range map[string]string{repo + "/a": target + "/a.conf", repo + "/b": target + "/d/b.conf"} {
		if err := os.Link(from, to); err != nil {
			t.Fatal(err)
		}
	}
	want := snapshot(t, repo)
	if _, err := Merge(orig, mod, target); err != nil {
		t.Fatal(err)
	}
	if d := diffSnapshots(want, snapshot(t, repo), "before", "after"); d != "" {
		t.Errorf("the merge wrote into inodes shared with the repository:\n%s", d)
	}
	has(t, target, "a.conf", `"local a\n" 0600 0:0 [user.x="1"]`)
	has(t, target, "d/b.conf", `"b\n" 0644 1000:1000`)
}

// TestRootsAreNotFollowed: the three directories given to Merge and Diff must not be
// symlinks themselves.
func TestRootsAreNotFollowed(t *testing.T) {
	dir := t.TempDir()
	mkdir(t, dir+"/real", 0o755)
	symlink(t, "real", dir+"/link")
	if _, err := Diff(dir+"/link", dir+"/real"); err == nil {
		t.Error("Diff followed a symlinked orig")
	}
	if _, err := Diff(dir+"/real", dir+"/link"); err == nil {
		t.Error("Diff followed a symlinked modified")
	}
	if _, err := Merge(dir+"/real", dir+"/real", dir+"/link"); err == nil || !strings.Contains(err.Error(), dir+"/link") {
		t.Errorf("Merge into a symlinked target: got %v, want an error naming it", err)
	}
}

// TestFormat pins the line format of `ostree admin config-diff` (letter, four spaces,
// path; M, then D, then A) independently of the sysroot tests.
func TestFormat(t *testing.T) {
	got := formatted(t, []Change{{Added, "a"}, {Modified, "b/c"}, {Removed, "c"}, {Added, "d"}, {Modified, "e"}})
	want := "M    b/c\nM    e\nD    c\nA    a\nA    d\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
