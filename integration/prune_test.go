package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestPrune builds the same history with both tools (two commits on "keep",
// one on "drop"), deletes the "drop" ref with `ostree refs --delete`, and
// prunes: `ocitree repo prune --refs-only` must leave exactly the objects
// that `ostree prune --refs-only` leaves. A plain prune after deleting a
// commit object must match `ostree prune` too. `ostree fsck` must accept the
// result.
func TestPrune(t *testing.T) {
	cases := []struct {
		name             string
		refsOnly         bool
		deleteDropCommit bool
	}{
		{"refs-only", true, false},
		{"all-commits", false, true},
		{"all-commits-nothing-to-do", false, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setup(t)
			t.Parallel()
			dir := workDir(t)
			var repos [2]string
			var dropCommit string
			for i, tool := range []string{"ostree", "ocitree"} {
				repo := filepath.Join(dir, tool)
				repos[i] = repo
				commit := ostreeCommit
				if tool == "ocitree" {
					ocitreeInit(t, repo, "bare-user")
					commit = ocitreeCommit
				} else {
					ostreeInit(t, repo, "bare-user")
				}
				commit(t, repo, "keep", tree(t, "kernel"), commitOpts{subject: "keep 1"})
				c := commit(t, repo, "drop", tree(t, "minios"), commitOpts{subject: "drop"})
				if dropCommit != "" && c != dropCommit {
					t.Fatalf("checksums differ between the tools (%s vs %s); see TestCommitParity", dropCommit, c)
				}
				dropCommit = c
				commit(t, repo, "keep", tree(t, "edge"), commitOpts{subject: "keep 2", timestamp: defaultTimestamp.Add(60e9)})
				must(t, ostree(t, "refs", "--repo="+repo, "--delete", "drop"))
				if tc.deleteDropCommit {
					if err := os.Remove(objectPath(repo, dropCommit, "commit")); err != nil {
						t.Fatal(err)
					}
				}
			}
			before := [2][]string{listObjects(t, repos[0]), listObjects(t, repos[1])}
			if !slices.Equal(before[0], before[1]) {
				t.Errorf("before pruning, the object sets differ (- ostree, + ocitree):\n%s",
					lineDiff(strings.Join(before[0], "\n"), strings.Join(before[1], "\n")))
			}

			oargs := []string{"prune", "--repo=" + repos[0]}
			cargs := []string{"repo", "prune", "--repo", repos[1]}
			if tc.refsOnly {
				oargs = append(oargs, "--refs-only")
				cargs = append(cargs, "--refs-only")
			}
			must(t, ostree(t, oargs...))
			must(t, ocitree(t, cargs...))
			after := [2][]string{listObjects(t, repos[0]), listObjects(t, repos[1])}
			if !slices.Equal(after[0], after[1]) {
				t.Errorf("after pruning, the object sets differ (- kept by ostree prune, + kept by ocitree prune):\n%s",
					lineDiff(strings.Join(after[0], "\n"), strings.Join(after[1], "\n")))
			}
			if tc.refsOnly || tc.deleteDropCommit {
				if len(after[1]) >= len(before[1]) {
					t.Errorf("ocitree prune removed nothing (%d objects before, %d after)", len(before[1]), len(after[1]))
				}
			}
			ostreeFsck(t, repos[1])
			must(t, ocitree(t, "repo", "fsck", "--repo", repos[1]))
			// The kept history is intact.
			a := must(t, ostree(t, "log", "--repo="+repos[0], "keep"))
			if b := ostree(t, "log", "--repo="+repos[1], "keep"); b.stdout != a {
				t.Errorf("ostree log keep after prune differs:\n%s\nvs ostree's:\n%s", b, a)
			}
		})
	}
}
