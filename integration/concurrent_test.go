package integration

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// TestConcurrentCommits runs several ocitree commits and one real ostree
// commit into the same repository at the same time (each holds the shared
// repository lock). Every commit must get the checksum ostree gives it in a
// quiet repository, and both fsck implementations must accept the result.
func TestConcurrentCommits(t *testing.T) {
	for _, mode := range []string{"bare-user", "archive"} {
		t.Run(mode, func(t *testing.T) {
			setup(t)
			t.Parallel()
			dir := workDir(t)
			jobs := []struct{ tool, branch, tree string }{
				{"ocitree", "c/edge", "edge"},
				{"ocitree", "c/minios", "minios"},
				{"ocitree", "c/kernel", "kernel"},
				{"ocitree", "c/edge-again", "edge"}, // the same objects as c/edge, concurrently
				{"ostree", "c/by-ostree", "minios"},
			}
			// Reference: ostree commits, one after the other.
			ref := filepath.Join(dir, "reference")
			ostreeInit(t, ref, mode)
			want := map[string]string{}
			for _, j := range jobs {
				want[j.branch] = ostreeCommit(t, ref, j.branch, tree(t, j.tree), commitOpts{subject: j.branch})
			}

			repo := filepath.Join(dir, "shared")
			ocitreeInit(t, repo, mode)
			srcs := make([]string, len(jobs))
			for i, j := range jobs {
				srcs[i] = tree(t, j.tree)
			}
			results := make([]result, len(jobs))
			var wg sync.WaitGroup
			for i, j := range jobs {
				wg.Add(1)
				go func() {
					defer wg.Done()
					o := commitOpts{subject: j.branch}
					if j.tool == "ostree" {
						results[i] = runCmd(t, nil, "ostree", append(o.ostreeArgs(repo, j.branch), srcs[i])...)
					} else {
						results[i] = runCmd(t, nil, ocitreeBin, append(o.ocitreeArgs(repo, j.branch), srcs[i])...)
					}
				}()
			}
			wg.Wait()
			for i, j := range jobs {
				r := results[i]
				if r.code != 0 {
					t.Errorf("%s commit of %s failed while running concurrently:\n%s", j.tool, j.branch, r)
					continue
				}
				if got := strings.TrimSpace(r.stdout); got != want[j.branch] {
					t.Errorf("%s commit of %s: %s, ostree alone: %s", j.tool, j.branch, got, want[j.branch])
				}
			}
			ostreeFsck(t, repo)
			must(t, ocitree(t, "repo", "fsck", "--repo", repo))
			for _, j := range jobs {
				if d := lineDiff(ostreeLs(t, ref, j.branch), ostreeLs(t, repo, j.branch)); d != "" {
					t.Errorf("ostree ls %s differs:\n%s", j.branch, d)
				}
			}
		})
	}
}

// TestConcurrentCommitStress starts many small commits at once, round after
// round, so that transactions begin simultaneously (staging directories
// created, locked and cleaned up by one another). Every commit must succeed.
func TestConcurrentCommitStress(t *testing.T) {
	setup(t)
	t.Parallel()
	dir := workDir(t)
	src := filepath.Join(dir, "src")
	goodFiles(t, src)
	repo := filepath.Join(dir, "repo")
	ocitreeInit(t, repo, "bare-user")
	const rounds, parallel = 20, 12
	failures := 0
	for round := 0; round < rounds && failures < 5; round++ {
		results := make([]result, parallel)
		var wg sync.WaitGroup
		for i := range parallel {
			wg.Add(1)
			go func() {
				defer wg.Done()
				o := commitOpts{subject: "stress"}
				results[i] = runCmd(t, nil, ocitreeBin, append(o.ocitreeArgs(repo, "stress/"+string(rune('a'+i))), src)...)
			}()
		}
		wg.Wait()
		for i, r := range results {
			if r.code != 0 {
				failures++
				t.Errorf("round %d, commit %d of %d running at once failed:\n%s", round, i, parallel, r)
			}
		}
	}
	ostreeFsck(t, repo)
	must(t, ocitree(t, "repo", "fsck", "--repo", repo))
}
