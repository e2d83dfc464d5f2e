package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// The crash matrix: every failpoint the ocitree binary lists
// (OCITREE_FAILPOINTS=list) is reached by at least one command below, in
// every repository mode. A case runs the real binary with name=kill and
// checks that it died by SIGKILL (so the point was reached), that `ostree
// fsck` and `ocitree repo fsck` accept what is left, that each ref is either
// where it was or where a complete run puts it (and the command's own ref
// only as the point allows), that `repo prune --refs-only` leaves no commit
// object that no ref reaches, that running the command again gives the
// result of an uninterrupted run, and that the next transaction removes the
// killed one's staging directory. A few cases use name=error instead: the
// command fails with the injected error and, before anything was
// published, leaves the store as it was.

// crashModes are the repository modes of the matrix (bare needs root, which
// the integration tests require).
var crashModes = []string{"archive", "bare-user", "bare"}

// crashCommand is one write command of the matrix.
type crashCommand struct {
	name string
	// prepare builds the store the command starts from in an empty
	// directory repo (the result is cached per mode and copied).
	prepare func(t *testing.T, repo, mode string)
	// args are the command's arguments for the store at repo.
	args func(t *testing.T, repo string) []string
	// mainRefs are the refs that are the command's point (a commit's
	// branch, a pull's image ref): see crashCase.main.
	mainRefs func(t *testing.T) []string
	// rerunOK accepts the result of a rerun after a kill (nil: exit 0).
	rerunOK func(r result) bool
	// rerunSays: the stdout of a rerun after a kill says what that run
	// did (how much a prune freed), not the result; it is not compared.
	rerunSays bool
	// check compares a complete run's stdout with an independent
	// expectation (ostree's checksum for a commit); nil: none.
	check func(t *testing.T, mode, stdout string)
}

// Whether a case's main refs may have moved when the process dies.
const (
	mainOld = iota // still at their old value (or absent)
	mainNew        // at the value a complete run gives
	mainAny        // each at one or the other
)

// crashCase is one point of one command in every mode.
type crashCase struct {
	point  string
	cmd    *crashCommand
	action string // "kill" or "error"
	main   int    // mainOld, mainNew or mainAny
	// unpublished: the point comes before any object is published, so an
	// error there leaves the objects as they were.
	unpublished bool
	// locked: the test holds the repository lock while the command runs.
	locked bool
	// orphan: the new commit object is published but no ref names it
	// (commit command only; elsewhere it must not be there yet).
	orphan bool
}

var commitOptsCrash = commitOpts{subject: "crash"}

// crashCommit commits the MiniOS tree to a new branch of a store that has
// another branch.
var crashCommit = &crashCommand{
	name: "commit",
	prepare: func(t *testing.T, repo, mode string) {
		ocitreeInit(t, repo, mode)
		ocitreeCommit(t, repo, "test/other", tree(t, "kernel"), commitOpts{subject: "other"})
	},
	args: func(t *testing.T, repo string) []string {
		return append(commitOptsCrash.ocitreeArgs(repo, "test/main"), tree(t, "minios"))
	},
	mainRefs: func(t *testing.T) []string { return []string{"heads/test/main"} },
	check: func(t *testing.T, mode, stdout string) {
		if _, want := golden(t, mode, "minios", commitOptsCrash); strings.TrimSpace(stdout) != want {
			t.Errorf("ocitree commit %s, ostree commit of the same tree %s", strings.TrimSpace(stdout), want)
		}
	},
}

// crashPull pulls the MiniOS image (32 layers) into an empty store.
var crashPull = &crashCommand{
	name:    "pull",
	prepare: func(t *testing.T, repo, mode string) { ocitreeInit(t, repo, mode) },
	args: func(t *testing.T, repo string) []string {
		return []string{"image", "pull", "--progress=never", "--repo", repo, sharedImage(t, "minios").ref()}
	},
	mainRefs: func(t *testing.T) []string { return []string{imageRef(t, sharedImage(t, "minios").ref())} },
}

// crashRemove removes both stored images, MiniOS and the kernel tree's.
var crashRemove = &crashCommand{
	name: "remove",
	prepare: func(t *testing.T, repo, mode string) {
		ocitreeInit(t, repo, mode)
		imagePull(t, repo, sharedImage(t, "minios").ref())
		imagePull(t, repo, sharedImage(t, "kernel").ref())
	},
	args: func(t *testing.T, repo string) []string {
		return []string{"image", "remove", "--repo", repo, sharedImage(t, "minios").ref(), sharedImage(t, "kernel").ref()}
	},
	mainRefs: func(t *testing.T) []string {
		return []string{imageRef(t, sharedImage(t, "minios").ref()), imageRef(t, sharedImage(t, "kernel").ref())}
	},
	// A rerun names the images a killed run removed already.
	rerunOK: func(r result) bool {
		return r.code == 0 || r.code == 1 && strings.Contains(r.stderr, "not stored")
	},
}

// crashPrune prunes the objects of a removed image (MiniOS) from a store
// that keeps another (the kernel tree's).
var crashPrune = &crashCommand{
	name: "prune",
	prepare: func(t *testing.T, repo, mode string) {
		ocitreeInit(t, repo, mode)
		imagePull(t, repo, sharedImage(t, "minios").ref())
		imagePull(t, repo, sharedImage(t, "kernel").ref())
		must(t, ocitree(t, "image", "remove", "--repo", repo, sharedImage(t, "minios").ref()))
	},
	args:      func(t *testing.T, repo string) []string { return []string{"image", "prune", "--repo", repo} },
	mainRefs:  func(t *testing.T) []string { return nil },
	rerunSays: true,
}

// crashCases is the matrix. TestCrashMatrixCoversEveryPoint fails when a
// point the binary lists has no kill case here.
var crashCases = []crashCase{
	{point: "txn-first-object-staged", cmd: crashCommit, action: "kill"},
	{point: "txn-all-objects-staged", cmd: crashCommit, action: "kill"},
	{point: "txn-synced", cmd: crashCommit, action: "kill"},
	{point: "txn-renames-halfway", cmd: crashCommit, action: "kill"},
	{point: "txn-commit-object-published", cmd: crashCommit, action: "kill", orphan: true},
	{point: "txn-before-refs", cmd: crashCommit, action: "kill", orphan: true},
	{point: "repo-lock-busy", cmd: crashCommit, action: "kill", locked: true},
	{point: "txn-all-objects-staged", cmd: crashCommit, action: "error", unpublished: true},
	{point: "txn-synced", cmd: crashCommit, action: "error", unpublished: true},
	{point: "txn-commit-object-published", cmd: crashCommit, action: "error", orphan: true},

	{point: "pull-layer-mid", cmd: crashPull, action: "kill"},
	{point: "pull-layer-before-blob-ref", cmd: crashPull, action: "kill"},
	{point: "pull-layer-committed", cmd: crashPull, action: "kill"},
	{point: "pull-before-merge", cmd: crashPull, action: "kill"},
	{point: "pull-before-image-ref", cmd: crashPull, action: "kill"},
	{point: "pull-before-layer-gc", cmd: crashPull, action: "kill", main: mainNew},
	{point: "txn-between-refs", cmd: crashPull, action: "kill"},
	{point: "pull-layer-mid", cmd: crashPull, action: "error", unpublished: true},
	{point: "pull-before-image-ref", cmd: crashPull, action: "error"},

	{point: "txn-between-refs", cmd: crashRemove, action: "kill", main: mainAny},
	{point: "image-remove-before-layer-gc", cmd: crashRemove, action: "kill", main: mainNew},
	{point: "txn-before-refs", cmd: crashRemove, action: "error", unpublished: true},

	{point: "prune-halfway", cmd: crashPrune, action: "kill"},
	{point: "prune-halfway", cmd: crashPrune, action: "error"},
}

// failpointNames runs `OCITREE_FAILPOINTS=list ocitree` and returns the
// names it prints.
func failpointNames(t *testing.T) []string {
	t.Helper()
	r := runCmdEnv(t, []string{"OCITREE_FAILPOINTS=list"}, nil, ocitreeBin, "repo", "init", "--repo", filepath.Join(workDir(t), "never"))
	out := must(t, r)
	names := strings.Fields(out)
	if len(names) == 0 || strings.Join(names, "\n")+"\n" != out {
		t.Fatalf("OCITREE_FAILPOINTS=list printed %q, want one name a line", out)
	}
	return names
}

// TestFailpointsList: `OCITREE_FAILPOINTS=list` prints the points and does
// nothing else; an unknown point or action fails before anything is done.
func TestFailpointsList(t *testing.T) {
	setup(t)
	t.Parallel()
	dir := workDir(t)
	names := failpointNames(t)
	if _, err := os.Lstat(filepath.Join(dir, "never")); !os.IsNotExist(err) {
		t.Errorf("OCITREE_FAILPOINTS=list ran the command too: %v", err)
	}
	for _, spec := range []string{"bogus=kill", names[0] + "=kill,txn-synced-typo=kill", names[0] + "=explode"} {
		repo := filepath.Join(dir, "repo")
		r := runCmdEnv(t, []string{"OCITREE_FAILPOINTS=" + spec}, nil, ocitreeBin, "repo", "init", "--repo", repo)
		bad, _, _ := strings.Cut(spec[strings.LastIndex(spec, ",")+1:], "=")
		if strings.Contains(spec, "explode") {
			bad = "explode"
		}
		if r.code != 2 || !strings.Contains(r.stderr, bad) || !strings.Contains(r.stderr, "OCITREE_FAILPOINTS") {
			t.Errorf("OCITREE_FAILPOINTS=%s: want exit 2 and an error naming %q:\n%s", spec, bad, r)
		}
		if _, err := os.Lstat(repo); !os.IsNotExist(err) {
			t.Errorf("OCITREE_FAILPOINTS=%s: the command ran anyway (%v)", spec, err)
		}
	}
}

// TestCrashMatrixCoversEveryPoint fails when the binary lists a point that
// no kill case reaches (crashCases or, for the host commands, hostCrashCases
// in host_crash_test.go, which must have a case for every deploy-* and
// boot-* point), or a matrix names a point the binary lacks.
func TestCrashMatrixCoversEveryPoint(t *testing.T) {
	setup(t)
	t.Parallel()
	names := failpointNames(t)
	killed := map[string]bool{}
	for _, c := range crashCases {
		if !slices.Contains(names, c.point) {
			t.Errorf("the crash matrix names %q, which `OCITREE_FAILPOINTS=list` does not list", c.point)
		}
		if c.action == "kill" {
			killed[c.point] = true
		}
	}
	hostKilled := map[string]bool{}
	for _, c := range hostCrashCases {
		if !slices.Contains(names, c.point) {
			t.Errorf("the host crash matrix names %q, which `OCITREE_FAILPOINTS=list` does not list", c.point)
		}
		killed[c.point] = true
		hostKilled[c.point] = true
	}
	for _, n := range names {
		if (strings.HasPrefix(n, "deploy-") || strings.HasPrefix(n, "boot-")) && !hostKilled[n] {
			t.Errorf("host failpoint %q has no case in hostCrashCases (integration/host_crash_test.go): add one", n)
		}
	}
	if n := len(hostUpdatePoints); n < 20 {
		t.Errorf("the host matrix kills upgrade at %d distinct points, want at least 20", n)
	}
	for _, n := range names {
		if !killed[n] {
			t.Errorf("failpoint %q has no kill case in crashCases (integration/crash_test.go): add one", n)
		}
	}
	if len(killed) < 12 {
		t.Errorf("the matrix kills at %d distinct points, want at least 12", len(killed))
	}
}

// TestCrash runs the matrix.
func TestCrash(t *testing.T) {
	setup(t)
	for _, c := range crashCases {
		for _, mode := range crashModes {
			t.Run(fmt.Sprintf("%s/%s=%s/%s", c.cmd.name, c.point, c.action, mode), func(t *testing.T) {
				t.Parallel()
				runCrashCase(t, c, mode)
			})
		}
	}
}

// crashStart returns a fresh copy of the command's starting store.
func crashStart(t *testing.T, cmd *crashCommand, mode string) string {
	t.Helper()
	base := cached(t, "crash-start:"+cmd.name+":"+mode, func() (string, error) {
		dir, err := os.MkdirTemp(cacheDir, "crash-"+cmd.name+"-"+mode+"-")
		if err != nil {
			return "", err
		}
		repo := filepath.Join(dir, "repo")
		cmd.prepare(t, repo, mode)
		return repo, nil
	})
	repo := filepath.Join(workDir(t), "repo")
	copyDir(t, base, repo)
	return repo
}

// crashGolden is the store after an uninterrupted run from the start.
type crashGolden struct {
	stdout  string
	refs    map[string]string
	objects []string
}

func crashComplete(t *testing.T, cmd *crashCommand, mode string) crashGolden {
	t.Helper()
	val := cached(t, "crash-golden:"+cmd.name+":"+mode, func() (string, error) {
		repo := crashStart(t, cmd, mode)
		out := must(t, ocitree(t, cmd.args(t, repo)...))
		if cmd.check != nil {
			cmd.check(t, mode, out)
		}
		refs := readRefs(t, repo)
		var b strings.Builder
		b.WriteString(out + "\x00")
		for _, k := range sortedKeys(refs) {
			fmt.Fprintf(&b, "%s=%s\n", k, refs[k])
		}
		b.WriteString("\x00" + strings.Join(listObjects(t, repo), "\n"))
		return b.String(), nil
	})
	f := strings.Split(val, "\x00")
	g := crashGolden{stdout: f[0], refs: map[string]string{}}
	for _, line := range strings.Split(strings.TrimSpace(f[1]), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			g.refs[k] = v
		}
	}
	if f[2] != "" {
		g.objects = strings.Split(f[2], "\n")
	}
	return g
}

// runFailpoint runs ocitree with OCITREE_FAILPOINTS=spec and returns the
// result and how the process ended.
func runFailpoint(t *testing.T, spec string, args []string) (result, syscall.WaitStatus) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, ocitreeBin, args...)
	cmd.Env = append(peerEnv(), "OCITREE_FAILPOINTS="+spec)
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	r := result{cmdline: "OCITREE_FAILPOINTS=" + spec + " " + quoteArgs("ocitree", args), stdout: so.String(), stderr: se.String(), err: err, code: -1}
	var ws syscall.WaitStatus
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
		ws = cmd.ProcessState.Sys().(syscall.WaitStatus)
	}
	return r, ws
}

func runCrashCase(t *testing.T, c crashCase, mode string) {
	want := crashComplete(t, c.cmd, mode)
	repo := crashStart(t, c.cmd, mode)
	before := readRefs(t, repo)
	objectsBefore := listObjects(t, repo)
	args := c.cmd.args(t, repo)

	release := func() {}
	if c.locked {
		release = ofdLock(t, repo, unix.F_WRLCK)
	}
	r, ws := runFailpoint(t, c.point+"="+c.action, args)
	release()
	switch c.action {
	case "kill":
		if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("the command did not die by SIGKILL at %s, so the point was not reached:\n%s", c.point, r)
		}
	case "error":
		if r.code != 1 || !strings.Contains(r.stderr, "failpoint "+c.point+": injected failure") {
			t.Fatalf("want exit 1 with the injected error of %s:\n%s", c.point, r)
		}
	}
	ostreeFsck(t, repo)
	if fr := ocitree(t, "repo", "fsck", "--repo", repo); fr.code != 0 {
		t.Errorf("ocitree repo fsck rejects the store:\n%s", fr)
	}
	checkRefsMoved(t, c, before, want.refs, readRefs(t, repo))
	staging := stagingDirs(t, repo)
	if c.cmd == crashCommit {
		// The README's claim: an orphaned commit object stays exactly
		// when the process dies after it moved in and before the ref.
		_, err := os.Lstat(objectPath(repo, strings.TrimSpace(want.stdout), "commit"))
		if have := err == nil; have != c.orphan {
			t.Errorf("commit object of the killed commit present: %v, want %v", have, c.orphan)
		}
		if inTxn := !c.locked && c.action == "kill"; inTxn && len(staging) == 0 {
			t.Errorf("no staging directory left by a process killed in its transaction")
		}
	}

	if c.action == "error" {
		// The failing command aborted its own transaction.
		if len(staging) > 0 {
			t.Errorf("a command that failed left staging behind: %v", staging)
		}
		if c.unpublished {
			if got := listObjects(t, repo); !slices.Equal(got, objectsBefore) {
				t.Errorf("an error before anything was published changed the objects: %d before, %d after", len(objectsBefore), len(got))
			}
			if got := readRefs(t, repo); !mapsEqual(got, before) {
				t.Errorf("an error before anything was published moved refs")
			}
		}
		return
	}

	// An orphaned commit may stay; a prune of what no ref reaches removes
	// it (on a copy: the rerun below starts from the killed state).
	pruned := filepath.Join(workDir(t), "pruned")
	copyDir(t, repo, pruned)
	must(t, ocitree(t, "repo", "prune", "--repo", pruned, "--refs-only"))
	checkNoOrphanCommits(t, pruned)
	ostreeFsck(t, pruned)

	// Running the command again completes it.
	rr := ocitree(t, args...)
	ok := rr.code == 0
	if c.cmd.rerunOK != nil {
		ok = c.cmd.rerunOK(rr)
	}
	if !ok {
		t.Fatalf("the command run again after the kill failed:\n%s", rr)
	}
	if rr.code == 0 && !c.cmd.rerunSays && rr.stdout != want.stdout {
		t.Errorf("the command run again printed %q, an uninterrupted run %q", rr.stdout, want.stdout)
	}
	if got := readRefs(t, repo); !mapsEqual(got, want.refs) {
		t.Errorf("refs after the rerun differ from an uninterrupted run's:\n%s", refsDiff(want.refs, got))
	}
	if c.cmd == crashPrune {
		if got := listObjects(t, repo); !slices.Equal(got, want.objects) {
			t.Errorf("objects after the rerun of the prune: %d, after an uninterrupted one: %d", len(got), len(want.objects))
		}
	}
	ostreeFsck(t, repo)

	// The next transaction removes the killed process's staging directory.
	if len(staging) > 0 {
		ocitreeCommit(t, repo, "crash/next", tree(t, "kernel"), commitOpts{subject: "next"})
	}
	for _, s := range staging {
		if _, err := os.Lstat(filepath.Join(repo, "tmp", s)); !os.IsNotExist(err) {
			t.Errorf("staging %s of the killed process survived the next transaction (%v)", s, err)
		}
	}
}

// checkRefsMoved: every ref is either where it was or where a complete run
// puts it, and the command's main refs as the case allows.
func checkRefsMoved(t *testing.T, c crashCase, before, complete, got map[string]string) {
	t.Helper()
	names := map[string]bool{}
	for _, m := range []map[string]string{before, complete, got} {
		for k := range m {
			names[k] = true
		}
	}
	for _, k := range sortedKeys(names) {
		if got[k] != before[k] && got[k] != complete[k] {
			t.Errorf("ref %s is %q: neither its old value %q nor that of a complete run %q", k, got[k], before[k], complete[k])
		}
	}
	for _, k := range c.cmd.mainRefs(t) {
		switch {
		case c.main == mainOld && got[k] != before[k]:
			t.Errorf("ref %s moved (%q -> %q) before the point that writes it", k, before[k], got[k])
		case c.main == mainNew && got[k] != complete[k]:
			t.Errorf("ref %s is %q, want %q: the point comes after it is written", k, got[k], complete[k])
		}
	}
}

// readRefs maps every ref file below repo/refs ("heads/a/b") to its
// content, without the newline.
func readRefs(t *testing.T, repo string) map[string]string {
	t.Helper()
	out := map[string]string{}
	root := filepath.Join(repo, "refs")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = strings.TrimSuffix(string(b), "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// imageRef is the ref (below refs/) of the image pulled as imgref, found
// by pulling it into a scratch archive store once.
func imageRef(t *testing.T, imgref string) string {
	t.Helper()
	return cached(t, "image-ref:"+imgref, func() (string, error) {
		dir, err := os.MkdirTemp(cacheDir, "imageref-")
		if err != nil {
			return "", err
		}
		repo := filepath.Join(dir, "repo")
		ocitreeInit(t, repo, "archive")
		imagePull(t, repo, imgref)
		for k := range readRefs(t, repo) {
			if strings.HasPrefix(k, "heads/ostree/container/image/") {
				return k, nil
			}
		}
		return "", fmt.Errorf("no image ref after pulling %s", imgref)
	})
}

// stagingDirs lists the transaction staging directories under repo/tmp.
func stagingDirs(t *testing.T, repo string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(repo, "tmp"))
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), "ocitree-staging-") {
			out = append(out, e.Name())
		}
	}
	return out
}

// checkNoOrphanCommits: every commit object is a ref's commit or its
// parent (the only history the matrix's stores have).
func checkNoOrphanCommits(t *testing.T, repo string) {
	t.Helper()
	reach := map[string]bool{}
	for _, c := range readRefs(t, repo) {
		reach[c] = true
		if p := ostree(t, "rev-parse", "--repo="+repo, c+"^"); p.code == 0 {
			reach[strings.TrimSpace(p.stdout)] = true
		}
	}
	for _, o := range listObjects(t, repo) {
		if strings.HasSuffix(o, ".commit") {
			c := strings.TrimSuffix(strings.ReplaceAll(o, string(filepath.Separator), ""), ".commit")
			if !reach[c] {
				t.Errorf("commit %s, which no ref reaches, survived `ocitree repo prune --refs-only`", c)
			}
		}
	}
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func refsDiff(want, got map[string]string) string {
	var b strings.Builder
	names := map[string]bool{}
	for k := range want {
		names[k] = true
	}
	for k := range got {
		names[k] = true
	}
	for _, k := range sortedKeys(names) {
		if want[k] != got[k] {
			fmt.Fprintf(&b, "  %s: want %q, got %q\n", k, want[k], got[k])
		}
	}
	return b.String()
}
