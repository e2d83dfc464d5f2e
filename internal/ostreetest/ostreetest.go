// Package ostreetest builds real sysroots with the stock `ostree` CLI (2022.7) for tests
// that compare our host code with libostree in the same run. It only drives the ostree
// CLI and reads files; nothing here uses ocitree's own code, so its results are fit to be
// goldens. Typical use:
//
//	ostreetest.Require(t)                  // skip, or fail under CI=true, without ostree or root
//	s := ostreetest.NewSysroot(t, "test")  // init-fs + os-init into t.TempDir()
//	tree := t.TempDir(); ostreetest.WriteBootableTree(t, tree); ...fill tree/usr/etc...
//	s.Commit(t, "v1", tree)                // returns the commit checksum
//	d1, err := s.Deploy("v1")              // `ostree admin deploy --retain`, returns the new deployment dir
//	out := s.ConfigDiff(t)                 // `ostree admin config-diff --os`
//
// A deployment directory is ostree/deploy/$OS/deploy/$CSUM.$SERIAL below the sysroot.
// The sysroot lives in t.TempDir(); its deployments' immutable bits are cleared before
// the temp dir is removed.
package ostreetest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Require skips the test (fails it with CI=true) unless the ostree CLI is on
// PATH and the test runs as root (deployments have root-owned files).
func Require(t *testing.T) {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	if _, err := exec.LookPath("ostree"); err != nil {
		if ci {
			t.Fatal("the ostree CLI is not on PATH (CI=true makes this a failure)")
		}
		t.Skip("the ostree CLI is not on PATH")
	}
	if os.Geteuid() != 0 {
		if ci {
			t.Fatal("needs root to build sysroots with foreign owners (CI=true makes this a failure)")
		}
		t.Skip("needs root to build sysroots with foreign owners")
	}
}

// Sysroot is a sysroot made by the real ostree CLI.
type Sysroot struct {
	Dir  string // the sysroot
	OS   string // the stateroot
	Repo string // Dir/ostree/repo
	// DeployOutput is the stdout of the last deploy (e.g. libostree's
	// "Copying /etc changes: …" line).
	DeployOutput string
}

// Run runs the ostree CLI and returns its stdout; the error includes stderr.
func Run(args ...string) (string, error) {
	cmd := exec.Command("ostree", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("ostree %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String(), nil
}

// MustRun is Run that fails the test on error.
func MustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := Run(args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// NewSysroot creates an empty sysroot with stateroot osname in a fresh temp dir
// (`ostree admin init-fs`, `ostree admin os-init`).
func NewSysroot(t *testing.T, osname string) *Sysroot {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "sysroot")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Runs before t.TempDir's removal: deployment roots carry the immutable bit.
	t.Cleanup(func() { ClearImmutable(t, dir) })
	MustRun(t, "admin", "init-fs", dir)
	MustRun(t, "admin", "os-init", "--sysroot", dir, osname)
	return &Sysroot{Dir: dir, OS: osname, Repo: filepath.Join(dir, "ostree", "repo")}
}

// ClearImmutable clears FS_IMMUTABLE_FL on every deployment root of the sysroot, so
// that the test's temp dir can be removed.
func ClearImmutable(t *testing.T, sysroot string) {
	roots, _ := filepath.Glob(filepath.Join(sysroot, "ostree", "deploy", "*", "deploy", "*"))
	for _, r := range roots {
		fd, err := unix.Open(r, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		if flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err == nil && flags&fsImmutableFL != 0 {
			if err := unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags&^fsImmutableFL)); err != nil {
				t.Logf("clearing the immutable bit of %s: %v", r, err)
			}
		}
		unix.Close(fd)
	}
}

// WriteBootableTree puts what `ostree admin deploy` needs into tree: a kernel at
// usr/lib/modules/5.10.0-test/vmlinuz, usr/lib/os-release and an empty usr/etc.
func WriteBootableTree(t *testing.T, tree string) {
	t.Helper()
	for _, d := range []string{"usr/lib/modules/5.10.0-test", "usr/etc"} {
		if err := os.MkdirAll(filepath.Join(tree, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, body := range map[string]string{
		"usr/lib/modules/5.10.0-test/vmlinuz": "not really a kernel\n",
		"usr/lib/os-release":                  "ID=etcmergetest\nPRETTY_NAME=\"etcmerge test\"\n",
	} {
		if err := os.WriteFile(filepath.Join(tree, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// Commit commits the directory tree to branch (`ostree commit --tree=dir=`) and returns
// the commit checksum.
func (s *Sysroot) Commit(t *testing.T, branch, tree string) string {
	t.Helper()
	out := MustRun(t, "--repo="+s.Repo, "commit", "-b", branch, "--tree=dir="+tree, "-s", branch)
	return strings.TrimSpace(out)
}

// DeploymentDirs lists the complete deployment directories of the stateroot.
func (s *Sysroot) DeploymentDirs() (map[string]bool, error) {
	ents, err := os.ReadDir(filepath.Join(s.Dir, "ostree", "deploy", s.OS, "deploy"))
	if err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	names := map[string]bool{}
	for _, e := range ents {
		names[e.Name()] = true
	}
	m := map[string]bool{}
	for _, e := range ents {
		// A complete deployment has its .origin; a failed deploy leaves a directory
		// without one, which the next deploy deletes and may reuse.
		if e.IsDir() && names[e.Name()+".origin"] {
			m[e.Name()] = true
		}
	}
	return m, nil
}

// Deploy runs `ostree admin deploy --retain --os OS [extra...] refspec` and returns the
// directory of the new deployment. The merge deployment is the first one of the
// stateroot (the sysroot is not booted); pass "--no-merge" in extra to skip the /etc merge.
func (s *Sysroot) Deploy(refspec string, extra ...string) (string, error) {
	before, err := s.DeploymentDirs()
	if err != nil {
		return "", err
	}
	args := append([]string{"admin", "deploy", "--sysroot", s.Dir, "--os", s.OS, "--retain"}, extra...)
	out, err := Run(append(args, refspec)...)
	s.DeployOutput = out
	if err != nil {
		return "", err
	}
	after, err := s.DeploymentDirs()
	if err != nil {
		return "", err
	}
	var added []string
	for name := range after {
		if !before[name] {
			added = append(added, name)
		}
	}
	sort.Strings(added)
	if len(added) != 1 {
		return "", fmt.Errorf("deploy of %s: expected one new deployment directory, got %v", refspec, added)
	}
	return filepath.Join(s.Dir, "ostree", "deploy", s.OS, "deploy", added[0]), nil
}

// ConfigDiff runs `ostree admin config-diff --os OS` (works on a sysroot that is not
// booted: it diffs the merge deployment, i.e. the first deployment of OS).
func (s *Sysroot) ConfigDiff(t *testing.T) string {
	t.Helper()
	return MustRun(t, "admin", "config-diff", "--sysroot", s.Dir, "--os", s.OS)
}

// fsImmutableFL is FS_IMMUTABLE_FL of linux/fs.h.
const fsImmutableFL = 0x10
