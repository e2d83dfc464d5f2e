package integration

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocitree/ocitree/fixtures"
)

// TestReadOstreeRepo reads repositories written by the real ostree with
// `ocitree repo refs`, `repo ls` (which lists as `ostree ls` does) and
// `repo show` (text and JSON), and compares with ostree's own view.
func TestReadOstreeRepo(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			setup(t)
			t.Parallel()
			repo, csum := golden(t, mode, "edge", commitOpts{subject: "parity edge"})

			t.Run("refs", func(t *testing.T) {
				a := sortedLines(must(t, ostree(t, "refs", "--repo="+repo)))
				b := sortedLines(must(t, ocitree(t, "repo", "refs", "--repo", repo)))
				if !slices.Equal(a, b) {
					t.Errorf("refs: ostree %q, ocitree %q", a, b)
				}
			})

			t.Run("ls", func(t *testing.T) {
				for _, args := range [][]string{
					{"-R"},
					{"-R", "-C"},
					{"/names"},
					{"-C", "/links"},
					{"/hello.txt"},
					{"-R", "/deep/d01/d02/d03"},
					{"/names/" + fixtures.EdgeTreeUnicodeName},
					{"/links/relative"},
				} {
					var pathArgs, flags []string
					for _, a := range args {
						if strings.HasPrefix(a, "/") {
							pathArgs = append(pathArgs, a)
						} else {
							flags = append(flags, a)
						}
					}
					want := must(t, ostree(t, append(append(append([]string{"ls", "--repo=" + repo}, flags...), csum), pathArgs...)...))
					r := ocitree(t, append(append(append([]string{"repo", "ls", "--repo", repo}, flags...), "test/main"), pathArgs...)...)
					if r.code != 0 {
						t.Errorf("ocitree repo ls %v:\n%s", args, r)
						continue
					}
					if d := lineDiff(want, r.stdout); d != "" {
						t.Errorf("repo ls %v differs from ostree ls (- ostree, + ocitree):\n%s", args, d)
					}
				}
			})

			t.Run("show", func(t *testing.T) {
				want := must(t, ostree(t, "show", "--repo="+repo, csum))
				text := must(t, ocitree(t, "repo", "show", "--repo", repo, "test/main"))
				for _, re := range []string{`(?m)^commit [0-9a-f]{64}$`, `(?m)^ContentChecksum:\s+[0-9a-f]{64}$`, `(?m)^Date:\s+.*$`} {
					w := regexp.MustCompile(re).FindString(want)
					if !strings.Contains(text, w) {
						t.Errorf("repo show lacks %q (from ostree show):\n%s", w, text)
					}
				}
				var j struct {
					Checksum        string         `json:"checksum"`
					Subject         string         `json:"subject"`
					Body            string         `json:"body"`
					Timestamp       string         `json:"timestamp"`
					ContentChecksum string         `json:"contentChecksum"`
					Metadata        map[string]any `json:"metadata"`
				}
				out := must(t, ocitree(t, "repo", "show", "--repo", repo, "test/main", "--format", "json"))
				if err := json.Unmarshal([]byte(out), &j); err != nil {
					t.Fatalf("repo show --format json is not JSON: %v\n%s", err, out)
				}
				cc := regexp.MustCompile(`ContentChecksum:\s+([0-9a-f]{64})`).FindStringSubmatch(want)
				if j.Checksum != csum || j.Subject != "parity edge" || j.Body != "" || (cc != nil && j.ContentChecksum != cc[1]) {
					t.Errorf("repo show --format json: %+v; want checksum %s, subject %q, contentChecksum %v", j, csum, "parity edge", cc)
				}
				if ts, err := time.Parse(time.RFC3339, j.Timestamp); err != nil || !ts.Equal(defaultTimestamp) {
					t.Errorf("repo show --format json: timestamp %q, want %s", j.Timestamp, defaultTimestamp.Format(time.RFC3339))
				}
				if rb, _ := j.Metadata["ostree.ref-binding"].([]any); len(rb) != 1 || rb[0] != "test/main" {
					t.Errorf("repo show --format json: metadata %v lacks ostree.ref-binding [test/main]", j.Metadata)
				}
			})
		})
	}
}

func sortedLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}
