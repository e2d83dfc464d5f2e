package integration

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestPullProgressFlags pins, through the CLI (stderr is a pipe here, not a
// terminal), what docs/images.md says of image pull's output: the default
// and --quiet show no progress line; --progress=always shows it, also with
// --quiet (an explicit request wins, as git's --progress does over -q);
// --quiet drops the summary line; stdout is only the merge commit.
func TestPullProgressFlags(t *testing.T) {
	setup(t)
	t.Parallel()
	img := sharedImage(t, "minios")
	layers := len(readOCI(t, img.layout).manifest.Layers)
	fetched := fmt.Sprintf("Fetched %d layers ", layers)
	summary := fmt.Sprintf("layers already present: 0; layers needed: %d (", layers)
	cases := []struct {
		name                  string
		flags                 []string
		wantProgress, wantSum bool
	}{
		{"default", nil, false, true},
		{"quiet", []string{"--quiet"}, false, false},
		{"always", []string{"--progress=always"}, true, true},
		{"always and quiet", []string{"--quiet", "--progress=always"}, true, false},
		{"never", []string{"--progress=never"}, false, true},
	}
	var merge string
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			repo := filepath.Join(workDir(t), "repo")
			ocitreeInit(t, repo, "bare-user")
			r := ocitree(t, append(append([]string{"image", "pull", "--repo", repo}, tc.flags...), img.ref())...)
			out := strings.TrimSpace(must(t, r))
			if !hex64.MatchString(out) {
				t.Fatalf("stdout %q, want only the merge commit", r.stdout)
			}
			if merge == "" {
				merge = out
			} else if out != merge {
				t.Errorf("merge commit %s, the first case gave %s", out, merge)
			}
			if got := strings.Contains(r.stderr, fetched); got != tc.wantProgress {
				t.Errorf("progress shown: %v, want %v; stderr:\n%s", got, tc.wantProgress, r.stderr)
			}
			if got := strings.Contains(r.stderr, summary); got != tc.wantSum {
				t.Errorf("summary line shown: %v, want %v; stderr:\n%s", got, tc.wantSum, r.stderr)
			}
			if !tc.wantProgress && !tc.wantSum && r.stderr != "" {
				t.Errorf("--quiet printed on stderr:\n%s", r.stderr)
			}
		})
	}
}
