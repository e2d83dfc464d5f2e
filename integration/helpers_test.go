package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocitree/ocitree/fixtures"
)

var modes = []string{"bare", "bare-user", "archive"}

// defaultTimestamp is the commit time used by every parity test.
var defaultTimestamp = time.Date(2024, time.January, 1, 0, 0, 0, 0, time.UTC)

// commitOpts are the inputs of one commit, rendered for either tool.
type commitOpts struct {
	subject   string
	body      string
	timestamp time.Time // zero: defaultTimestamp
	metadata  []string  // KEY=VALUE, in order
	bootable  bool
	parent    string
	// sourceDateEpoch: pass no --timestamp; set SOURCE_DATE_EPOCH to the
	// timestamp instead.
	sourceDateEpoch bool
}

func (o commitOpts) env() []string {
	if o.sourceDateEpoch {
		return []string{fmt.Sprintf("SOURCE_DATE_EPOCH=%d", o.ts().Unix())}
	}
	return nil
}

func (o commitOpts) ts() time.Time {
	if o.timestamp.IsZero() {
		return defaultTimestamp
	}
	return o.timestamp
}

func (o commitOpts) ostreeArgs(repo, branch string) []string {
	args := []string{"commit", "--repo=" + repo, "--branch=" + branch, "--subject=" + o.subject}
	if !o.sourceDateEpoch {
		args = append(args, "--timestamp="+o.ts().UTC().Format("2006-01-02 15:04:05 -0700"))
	}
	if o.body != "" {
		args = append(args, "--body="+o.body)
	}
	for _, kv := range o.metadata {
		args = append(args, "--add-metadata-string="+kv)
	}
	if o.bootable {
		args = append(args, "--bootable")
	}
	if o.parent != "" {
		args = append(args, "--parent="+o.parent)
	}
	return args
}

func (o commitOpts) ocitreeArgs(repo, branch string) []string {
	args := []string{"repo", "commit", "--repo", repo, "--branch", branch, "--subject", o.subject}
	if !o.sourceDateEpoch {
		args = append(args, "--timestamp", o.ts().UTC().Format(time.RFC3339))
	}
	if o.body != "" {
		args = append(args, "--body", o.body)
	}
	for _, kv := range o.metadata {
		args = append(args, "--add-metadata-string", kv)
	}
	if o.bootable {
		args = append(args, "--bootable")
	}
	if o.parent != "" {
		args = append(args, "--parent", o.parent)
	}
	return args
}

func ostreeInit(t *testing.T, repo, mode string) {
	t.Helper()
	must(t, ostree(t, "init", "--repo="+repo, "--mode="+mode))
}

func ocitreeInit(t *testing.T, repo, mode string) {
	t.Helper()
	must(t, ocitree(t, "repo", "init", "--repo", repo, "--mode", mode))
}

// ostreeCommit commits src with the real ostree and returns the checksum.
func ostreeCommit(t *testing.T, repo, branch, src string, o commitOpts) string {
	t.Helper()
	out := strings.TrimSpace(must(t, runCmdEnv(t, o.env(), nil, "ostree", append(o.ostreeArgs(repo, branch), src)...)))
	if !hex64.MatchString(out) {
		t.Fatalf("ostree commit printed %q", out)
	}
	return out
}

// ocitreeCommit commits src (a directory) with ocitree and returns the
// checksum; stdout must be exactly the checksum and a newline.
func ocitreeCommit(t *testing.T, repo, branch, src string, o commitOpts) string {
	t.Helper()
	return checkCommitOutput(t, runCmdEnv(t, o.env(), nil, ocitreeBin, append(o.ocitreeArgs(repo, branch), src)...))
}

// ocitreeCommitTar commits a tar file (or "-" with stdin) with ocitree.
func ocitreeCommitTar(t *testing.T, repo, branch, tarFile string, stdin []byte, o commitOpts) string {
	t.Helper()
	return checkCommitOutput(t, runCmdEnv(t, o.env(), stdin, ocitreeBin, append(o.ocitreeArgs(repo, branch), "--tar", tarFile)...))
}

func checkCommitOutput(t *testing.T, r result) string {
	t.Helper()
	out := must(t, r)
	if !strings.HasSuffix(out, "\n") || !hex64.MatchString(strings.TrimSuffix(out, "\n")) {
		t.Fatalf("ocitree repo commit must print the checksum (64 hex) and a newline on stdout, got %q\n%s", out, r)
	}
	return strings.TrimSuffix(out, "\n")
}

// golden returns an ostree repository of the given mode holding the named
// shared tree committed by the real ostree on branch "test/main" with opts
// (shared and read-only), and the commit checksum.
func golden(t *testing.T, mode, treeName string, o commitOpts) (repo, csum string) {
	t.Helper()
	src := tree(t, treeName)
	key := fmt.Sprintf("golden:%s:%s:%+v", mode, treeName, o)
	val := cached(t, key, func() (string, error) {
		dir, err := os.MkdirTemp(cacheDir, "golden-"+mode+"-"+treeName+"-")
		if err != nil {
			return "", err
		}
		r := ostree(t, "init", "--repo="+dir, "--mode="+mode)
		if r.code != 0 {
			return "", fmt.Errorf("%s", r)
		}
		r = runCmdEnv(t, o.env(), nil, "ostree", append(o.ostreeArgs(dir, "test/main"), src)...)
		if r.code != 0 {
			return "", fmt.Errorf("%s", r)
		}
		return dir + "\x00" + strings.TrimSpace(r.stdout), nil
	})
	repo, csum, _ = strings.Cut(val, "\x00")
	return repo, csum
}

// ostreeLs returns `ostree ls -R -C -X` of rev in repo.
func ostreeLs(t *testing.T, repo, rev string) string {
	t.Helper()
	return must(t, ostree(t, "ls", "--repo="+repo, "-R", "-C", "-X", rev))
}

// ostreeFsck runs the real `ostree fsck` and fails the test unless it
// accepts the repository.
func ostreeFsck(t *testing.T, repo string) {
	t.Helper()
	r := ostree(t, "fsck", "--repo="+repo)
	out := r.stdout + r.stderr
	if r.code != 0 || strings.Contains(out, "Corrupted") || strings.Contains(out, "missing") || strings.Contains(out, "partial") {
		t.Errorf("ostree fsck rejects the repository:\n%s", r)
	}
}

// lineDiff shows the lines only in a ("-") and only in b ("+"), in order.
func lineDiff(a, b string) string {
	al, bl := strings.Split(strings.TrimRight(a, "\n"), "\n"), strings.Split(strings.TrimRight(b, "\n"), "\n")
	am, bm := map[string]int{}, map[string]int{}
	for _, l := range al {
		am[l]++
	}
	for _, l := range bl {
		bm[l]++
	}
	var out []string
	for _, l := range al {
		if bm[l] == 0 {
			out = append(out, "- "+l)
		}
	}
	for _, l := range bl {
		if am[l] == 0 {
			out = append(out, "+ "+l)
		}
	}
	if len(out) == 0 && a != b {
		out = append(out, "(same lines, different order or multiplicity)")
	}
	if len(out) > 60 {
		out = append(out[:60], fmt.Sprintf("... %d more differing lines", len(out)-60))
	}
	return strings.Join(out, "\n")
}

// explainMismatch describes why two commits of the same tree differ, using
// the real ostree to read both repositories.
func explainMismatch(t *testing.T, ourRepo, ourRev, theirRepo, theirRev string) string {
	t.Helper()
	var b strings.Builder
	ours := ostree(t, "ls", "--repo="+ourRepo, "-R", "-C", "-X", ourRev)
	theirs := ostree(t, "ls", "--repo="+theirRepo, "-R", "-C", "-X", theirRev)
	if ours.code != 0 {
		fmt.Fprintf(&b, "ostree cannot list ocitree's commit:\n%s\n", ours)
	} else if d := lineDiff(theirs.stdout, ours.stdout); d != "" {
		fmt.Fprintf(&b, "`ostree ls -R -C -X` differences (- ostree's commit, + ocitree's):\n%s\n", d)
	} else {
		b.WriteString("trees are identical per `ostree ls -R -C -X`; the commit object itself differs\n")
	}
	so := ostree(t, "show", "--repo="+ourRepo, "--raw", ourRev)
	st := ostree(t, "show", "--repo="+theirRepo, "--raw", theirRev)
	fmt.Fprintf(&b, "ostree show --raw (ostree's):\n%s%s\nostree show --raw (ocitree's):\n%s%s", st.stdout, st.stderr, so.stdout, so.stderr)
	return b.String()
}

// cmpOpts tunes compareTrees.
type cmpOpts struct {
	ignoreXattrs []string // attribute names not compared (besides security.selinux)
	ignoreOwner  bool
}

// compareTrees compares two trees entry by entry: the set of paths, type,
// full mode (setuid etc. included), uid, gid, content (sha256), symlink
// target and the sorted non-empty xattrs. mtimes and hard-link groups are not
// compared (ostree does not record them). It returns every difference.
func compareTrees(t *testing.T, want, got string, o cmpOpts) []string {
	t.Helper()
	we, err := fixtures.Scan(want)
	if err != nil {
		t.Fatal(err)
	}
	ge, err := fixtures.Scan(got)
	if err != nil {
		t.Fatal(err)
	}
	norm := func(es []fixtures.Entry) map[string]fixtures.Entry {
		m := map[string]fixtures.Entry{}
		for _, e := range es {
			var xs []fixtures.Xattr
			for _, x := range e.Xattrs {
				if len(x.Value) == 0 || x.Name == "security.selinux" || slices.Contains(o.ignoreXattrs, x.Name) {
					continue
				}
				xs = append(xs, x)
			}
			e.Xattrs = xs
			if o.ignoreOwner {
				e.Uid, e.Gid = 0, 0
			}
			m[e.Path] = e
		}
		return m
	}
	wm, gm := norm(we), norm(ge)
	var diffs []string
	for _, e := range we {
		w := wm[e.Path]
		g, ok := gm[e.Path]
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%s: missing (want %s)", e.Path, w))
			continue
		}
		var d []string
		if w.Type != g.Type {
			d = append(d, fmt.Sprintf("type %c != %c", g.Type, w.Type))
		}
		if w.Mode != g.Mode {
			d = append(d, fmt.Sprintf("mode %07o != %07o", g.Mode, w.Mode))
		}
		if w.Uid != g.Uid || w.Gid != g.Gid {
			d = append(d, fmt.Sprintf("owner %d:%d != %d:%d", g.Uid, g.Gid, w.Uid, w.Gid))
		}
		if w.Type == 'f' && (w.SHA256 != g.SHA256 || w.Size != g.Size) {
			d = append(d, fmt.Sprintf("content differs (size %d, want %d)", g.Size, w.Size))
		}
		if w.Target != g.Target {
			d = append(d, fmt.Sprintf("symlink target %q != %q", g.Target, w.Target))
		}
		if !xattrsEqual(w.Xattrs, g.Xattrs) {
			d = append(d, fmt.Sprintf("xattrs %s != %s", fmtXattrs(g.Xattrs), fmtXattrs(w.Xattrs)))
		}
		if len(d) > 0 {
			diffs = append(diffs, fmt.Sprintf("%s: %s (got != want)", e.Path, strings.Join(d, "; ")))
		}
	}
	for _, e := range ge {
		if _, ok := wm[e.Path]; !ok {
			diffs = append(diffs, fmt.Sprintf("%s: unexpected entry %s", e.Path, gm[e.Path]))
		}
	}
	return diffs
}

func xattrsEqual(a, b []fixtures.Xattr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func fmtXattrs(xs []fixtures.Xattr) string {
	var parts []string
	for _, x := range xs {
		parts = append(parts, fmt.Sprintf("%s=%q", x.Name, x.Value))
	}
	return "{" + strings.Join(parts, ",") + "}"
}

// assertSameTree reports every difference between want and got.
func assertSameTree(t *testing.T, what, want, got string, o cmpOpts) {
	t.Helper()
	diffs := compareTrees(t, want, got, o)
	for i, d := range diffs {
		if i == 50 {
			t.Errorf("%s: ... %d more differences", what, len(diffs)-50)
			break
		}
		t.Errorf("%s: %s", what, d)
	}
}

// refFile is the path of a local branch's ref file.
func refFile(repo, branch string) string {
	return filepath.Join(repo, "refs", "heads", filepath.FromSlash(branch))
}

// objectPath is the loose-object path of checksum csum with extension ext.
func objectPath(repo, csum, ext string) string {
	return filepath.Join(repo, "objects", csum[:2], csum[2:]+"."+ext)
}

// contentExt is the content-object extension for a repository mode.
func contentExt(mode string) string {
	if mode == "archive" {
		return "filez"
	}
	return "file"
}

// lsChecksum finds the content checksum of path in `ostree ls -R -C` output.
func lsChecksum(t *testing.T, ls, path string) string {
	t.Helper()
	for _, line := range strings.Split(ls, "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && f[len(f)-1] == path && hex64.MatchString(f[4]) {
			return f[4]
		}
	}
	t.Fatalf("%s not found in ostree ls output", path)
	return ""
}

// listObjects returns the relative paths of every file under repo/objects.
func listObjects(t *testing.T, repo string) []string {
	t.Helper()
	var out []string
	root := filepath.Join(repo, "objects")
	err := filepath.Walk(root, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if !info.IsDir() {
			rel, _ := filepath.Rel(root, p)
			out = append(out, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}
