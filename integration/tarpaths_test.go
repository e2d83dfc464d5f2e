package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTarCommitHostilePaths commits tars made by the real GNU tar with -P
// (names kept as given) whose entries leave the root: "../esc", an absolute
// path, and "sub/../../esc". The real `ostree commit --tree=tar=` refuses
// each; so must `ocitree repo commit --tar`, with exit status 1, the entry
// named, no ref written, nothing outside the repository, and a repository
// ostree fsck accepts.
func TestTarCommitHostilePaths(t *testing.T) {
	cases := []struct {
		name  string
		cwd   string // relative to the work dir, where tar runs
		entry string // the name given to tar -P
	}{
		{"dotdot", "w/sub", "../esc"},
		{"absolute", "w", ""}, // entry: the absolute path of w/esc
		{"inner dotdot", "w", "sub/../../w/esc"},
	}
	for _, tc := range cases {
		t.Run(nameSanitizer.ReplaceAllString(tc.name, "_"), func(t *testing.T) {
			setup(t, "tar")
			t.Parallel()
			dir := workDir(t)
			if err := os.MkdirAll(filepath.Join(dir, "w", "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "w", "esc"), []byte("outside\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			entry := tc.entry
			if entry == "" {
				entry = filepath.Join(dir, "w", "esc")
			}
			tarFile := filepath.Join(dir, "hostile.tar")
			r := runCmd(t, nil, "tar", "-P", "-C", filepath.Join(dir, tc.cwd), "-cf", tarFile, entry)
			must(t, r)
			if list := must(t, runCmd(t, nil, "tar", "-P", "-tf", tarFile)); strings.TrimSpace(list) != entry {
				t.Fatalf("the tar lists %q, want %q", list, entry)
			}

			theirs := filepath.Join(dir, "ostree-repo")
			ostreeInit(t, theirs, "archive")
			if r := ostree(t, append(commitOpts{subject: "hostile"}.ostreeArgs(theirs, "test/bad"), "--tree=tar="+tarFile)...); r.code == 0 {
				t.Fatalf("sanity: the real ostree accepts %q:\n%s", entry, r)
			}

			for _, mode := range []string{"archive", "bare-user"} {
				repo := filepath.Join(dir, "repo-"+mode)
				ocitreeInit(t, repo, mode)
				r := ocitree(t, append(commitOpts{subject: "hostile"}.ocitreeArgs(repo, "test/bad"), "--tar", tarFile)...)
				if r.code != 1 {
					t.Errorf("%s: commit of %q: exit %d, want 1:\n%s", mode, entry, r.code, r)
				}
				if !strings.Contains(r.stderr, entry) {
					t.Errorf("%s: the error does not name the entry %q:\n%s", mode, entry, r.stderr)
				}
				if strings.TrimSpace(r.stdout) != "" {
					t.Errorf("%s: a refused commit printed on stdout: %q", mode, r.stdout)
				}
				assertNoRef(t, repo, "test/bad")
				ostreeFsck(t, repo)
			}
			// Nothing was written beside the repositories.
			ents, err := os.ReadDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if got := strings.Join(names, " "); got != "hostile.tar ostree-repo repo-archive repo-bare-user w" {
				t.Errorf("the work dir holds %s", got)
			}
			if ents, err := os.ReadDir(filepath.Join(dir, "w", "sub")); err != nil || len(ents) != 0 {
				t.Errorf("w/sub holds %d entries (%v)", len(ents), err)
			}
		})
	}
}
