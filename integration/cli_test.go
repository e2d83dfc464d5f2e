package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCLIErrors checks the exit-status contract of the store commands (0
// success, 1 error, 2 bad usage), that errors name what is at fault, and
// that a failed commit writes no ref and prints nothing on stdout.
func TestCLIErrors(t *testing.T) {
	setup(t)
	t.Parallel()
	dir := workDir(t)
	repo := filepath.Join(dir, "repo")
	ocitreeInit(t, repo, "bare-user")
	src := tree(t, "kernel")
	ts := []string{"--timestamp", "2024-01-01T00:00:00Z"}
	cases := []struct {
		name     string
		args     []string
		wantCode int
		mention  string // the error must contain this
	}{
		{"commit without --branch", append([]string{"repo", "commit", "--repo", repo, src}, ts...), 2, "branch"},
		{"commit without a source", append([]string{"repo", "commit", "--repo", repo, "--branch", "b"}, ts...), 2, ""},
		{"commit with a directory and --tar", append([]string{"repo", "commit", "--repo", repo, "--branch", "b", "--tar", filepath.Join(dir, "x.tar"), src}, ts...), 2, ""},
		{"commit with a bad --timestamp", []string{"repo", "commit", "--repo", repo, "--branch", "b", "--timestamp", "notatime", src}, 2, "notatime"},
		{"commit with an unknown flag", []string{"repo", "commit", "--repo", repo, "--branch", "b", "--no-such-flag", src}, 2, "no-such-flag"},
		{"commit with an invalid ref name", append([]string{"repo", "commit", "--repo", repo, "--branch", "a//b", src}, ts...), 1, "a//b"},
		{"commit of a missing directory", append([]string{"repo", "commit", "--repo", repo, "--branch", "b", filepath.Join(dir, "no-such-src")}, ts...), 1, "no-such-src"},
		{"commit of a missing tar file", append([]string{"repo", "commit", "--repo", repo, "--branch", "b", "--tar", filepath.Join(dir, "no-such.tar")}, ts...), 1, "no-such.tar"},
		{"commit with an unknown --parent", append([]string{"repo", "commit", "--repo", repo, "--branch", "b", "--parent", "no-such-parent", src}, ts...), 1, "no-such-parent"},
		{"init with a bad mode", []string{"repo", "init", "--repo", filepath.Join(dir, "r2"), "--mode", "bogus"}, 2, "bogus"},
		{"checkout of an unknown ref", []string{"repo", "checkout", "--repo", repo, "no-such-ref", filepath.Join(dir, "co")}, 1, "no-such-ref"},
		{"show in a missing repo", []string{"repo", "show", "--repo", filepath.Join(dir, "no-such-repo"), "x"}, 1, "no-such-repo"},
		{"unknown repo sub-command", []string{"repo", "no-such-command"}, 2, "no-such-command"},
	}
	for _, tc := range cases {
		r := ocitree(t, tc.args...)
		if r.code != tc.wantCode {
			t.Errorf("%s: exit %d, want %d\n%s", tc.name, r.code, tc.wantCode, r)
			continue
		}
		if tc.mention != "" && !strings.Contains(r.stderr, tc.mention) {
			t.Errorf("%s: the error does not mention %q:\n%s", tc.name, tc.mention, r)
		}
		if strings.TrimSpace(r.stdout) != "" && strings.Contains(strings.Join(tc.args, " "), " commit ") {
			t.Errorf("%s: a failed commit printed on stdout: %q", tc.name, r.stdout)
		}
	}
	if ents, err := os.ReadDir(filepath.Join(repo, "refs", "heads")); err != nil || len(ents) != 0 {
		t.Errorf("failed commands left refs: %v %v", ents, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "co")); !os.IsNotExist(err) {
		t.Errorf("a failed checkout left its destination behind (%v)", err)
	}
	ostreeFsck(t, repo)
}
