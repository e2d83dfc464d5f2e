package integration

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestBuilderImagesOverlay is TestBuilderImages with buildah's overlay
// storage driver (what podman and buildah use by default), where this
// kernel and filesystem allow it: the layers buildah writes from overlay
// upper directories (whiteouts, opaque directories, copied-up base files)
// must import the same. Skipped, also with CI=true, when containers/storage
// refuses overlay here: that is the kernel's or the filesystem's answer,
// not a missing tool.
func TestBuilderImagesOverlay(t *testing.T) {
	setup(t, "buildah", "umoci", "skopeo")
	dir := workDir(t)
	bld := newOverlayBuilderEnv(t, dir)
	builderImages(t, dir, bld)
}

// newOverlayBuilderEnv returns a buildah with the overlay driver, or skips
// the test, saying why, when containers/storage cannot use overlay on the
// test's directory (its driver init mounts a probe overlay).
func newOverlayBuilderEnv(t *testing.T, dir string) *builderEnv {
	t.Helper()
	b := &builderEnv{root: filepath.Join(dir, "buildah-overlay-root"), runroot: filepath.Join(dir, "buildah-overlay-run"), driver: "overlay"}
	t.Cleanup(func() { unmountUnder(t, b.root, b.runroot) })
	r := runCmd(t, nil, "buildah", "--root", b.root, "--runroot", b.runroot, "--storage-driver", "overlay", "info")
	if r.err != nil || r.code != 0 {
		t.Skipf("buildah's overlay storage driver is refused here (kernel %s, %s): this kernel or filesystem does not allow overlay mounts, which is not a missing tool:\n%s", kernelRelease(), dir, r)
	}
	if !strings.Contains(r.stdout, `"GraphDriverName": "overlay"`) {
		t.Fatalf("buildah info with --storage-driver overlay reports another driver:\n%s", r.stdout)
	}
	return b
}

// unmountUnder lazily unmounts whatever containers/storage left mounted
// under the given directories (the overlay driver keeps its layer mounts
// and may bind-mount its home), deepest first, so that the test's directory
// can be removed.
func unmountUnder(t *testing.T, dirs ...string) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Logf("reading mounts: %v", err)
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := strings.ReplaceAll(fields[4], `\040`, " ")
		for _, d := range dirs {
			if mp == d || strings.HasPrefix(mp, d+"/") {
				mounts = append(mounts, mp)
			}
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := syscall.Unmount(mounts[i], syscall.MNT_DETACH); err != nil {
			t.Logf("unmounting %s: %v", mounts[i], err)
		}
	}
}

// kernelRelease is uname -r.
func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(b))
}
