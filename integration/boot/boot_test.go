package boot

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ocitree/ocitree/internal/registrytest"
	"golang.org/x/sys/unix"
)

const buildTags = "containers_image_openpgp containers_image_storage_stub containers_image_docker_daemon_stub"

// bootTimeout bounds one boot (a boot takes about 30 s under TCG on an idle
// two-core machine): a hang guard, not a measurement.
const bootTimeout = 600 * time.Second

// cmdTimeout bounds every other command (the fixture build included).
const cmdTimeout = 30 * time.Minute

// Kernel arguments of the deployments (the disk is the only one, virtio).
var kargs = []string{"root=/dev/vda", "rw", "console=ttyS0"}

// testKargs go on the QEMU command line only: fail fast (power off) instead
// of waiting in an emergency shell or after a panic.
const testKargs = "panic=-1 rd.shell=0 rd.emergency=poweroff"

// tools are what the test runs besides ocitree.
var tools = []string{"qemu-system-x86_64", "debugfs", "mkfs.ext4", "debootstrap", "docker-registry", "skopeo", "ostree", "chroot"}

// env is the shared state of one run: the prepared trees' commits and
// images.
type env struct {
	work, bin, repo, layout, reg string
	fixture                      string // the cache dir of fixtures/debian/bootable.sh
}

// TestBootDebian builds a v1 and a v2 (one package more) image of the
// bootable Debian fixture with ocitree rootfs prepare + repo commit +
// encapsulate, installs v1 into a sysroot directory, packs it into an ext4
// disk image (mkfs.ext4 -d, no mount) and boots it in QEMU the way a BLS
// bootloader would: -kernel/-initrd/-append from the default entry read
// out of the image with debugfs. The stock Debian initramfs's
// ostree-prepare-root picks the deployment. Inside the guest:
//
//   - boot 1 (v1): an /etc edit, ocitree switch oci:/var/updates:v2, a
//     second /etc edit, power off (ocitree-finalize.service carries the
//     second edit at shutdown);
//   - boot 2 (same disk): v2 with both edits; ocitree rollback;
//   - boot 3: v1 again.
//
// The same harness first runs with the stock ostree as the writer (admin
// deploy to install, admin deploy --stage in the guest): that run proves
// the harness, not ocitree.
func TestBootDebian(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the QEMU boot test takes minutes")
	}
	requireTools(t)
	start := time.Now()
	e := setup(t)
	t.Logf("setup (fixture, trees, commits, images): %v", time.Since(start).Round(time.Second))
	t.Run("ostree-writer", func(t *testing.T) { e.stockWriter(t) })
	t.Run("ocitree", func(t *testing.T) { e.ocitreeWriter(t) })
	t.Logf("whole boot test: %v", time.Since(start).Round(time.Second))
}

// ocitreeWriter: install with ocitree; switch, finalize and rollback run
// inside the guest.
func (e *env) ocitreeWriter(t *testing.T) {
	sys := sysrootDir(t, filepath.Join(e.work, "sysroot-ocitree"))
	args := []string{"install", "--tls-verify=false", "--sysroot", sys}
	for _, k := range kargs {
		args = append(args, "--karg", k)
	}
	step(t, "ocitree install v1", func() { run(t, e.bin, append(args, "docker://"+e.reg+"/debian:v1")...) })
	v := filepath.Join(sys, "ostree/deploy/default/var")
	// The update reaches the guest (no network) as an oci: layout on its
	// disk, copied from the registry as a host would fetch it.
	step(t, "skopeo copy v2 to var/updates", func() {
		run(t, "skopeo", "copy", "--src-tls-verify=false", "docker://"+e.reg+"/debian:v2", "oci:"+filepath.Join(v, "updates")+":v2")
	})
	writeScripts(t, v, map[int]string{
		1: `echo before-switch >/etc/ocitree-test
ocitree switch oci:/var/updates:v2
echo after-switch >/etc/ocitree-test2
ocitree status
`,
		2: `ocitree status
ocitree rollback
ocitree status
`,
	})
	img := mkfs(t, sys, filepath.Join(e.work, "disk-ocitree.img"))

	m1, log1 := boot(t, img, "ocitree-1")
	expect(t, "boot 1 (v1; switch to v2 in the guest)", m1, log1, map[string]string{"boot": "1", "script": "0", "stamp": "v1", "hello": "no",
		"etc": "before-switch", "etc2": "after-switch"})
	// ocitree-finalize.service logs to the console at shutdown.
	if !hasLine(log1, "finalize: carried", "/etc/ocitree-test2") {
		t.Errorf("boot 1: the shutdown log does not show ocitree finalize carrying /etc/ocitree-test2:\n%s", tail(log1))
	}
	logFinalize(t, log1)
	m2, log2 := boot(t, img, "ocitree-2")
	expect(t, "boot 2 (v2 after finalize; rollback in the guest)", m2, log2, map[string]string{"boot": "2", "script": "0", "stamp": "v2", "hello": "yes",
		"etc": "before-switch", "etc2": "after-switch"})
	if m2["deploy"] == m1["deploy"] {
		t.Errorf("boot 2 booted the same deployment as boot 1 (%s)", m1["deploy"])
	}
	m3, log3 := boot(t, img, "ocitree-3")
	expect(t, "boot 3 (v1 after rollback)", m3, log3, map[string]string{"boot": "3", "script": "none", "stamp": "v1", "hello": "no", "etc": "before-switch"})
	if m3["deploy"] != m1["deploy"] {
		t.Errorf("boot 3 booted %s, want boot 1's deployment %s", m3["deploy"], m1["deploy"])
	}
}

// stockWriter: the same trees deployed by the real ostree (admin init-fs,
// os-init, pull-local from ocitree's repository, admin deploy), and in the
// guest ostree admin deploy --stage with libostree's finalize at shutdown.
func (e *env) stockWriter(t *testing.T) {
	sys := sysrootDir(t, filepath.Join(e.work, "sysroot-ostree"))
	if err := os.MkdirAll(sys, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "ostree", "admin", "init-fs", sys)
	run(t, "ostree", "admin", "os-init", "--sysroot="+sys, "debian")
	run(t, "ostree", "--repo="+filepath.Join(sys, "ostree/repo"), "pull-local", e.repo, "debian/v1", "debian/v2")
	args := []string{"admin", "deploy", "--sysroot=" + sys, "--os=debian"}
	for _, k := range kargs {
		args = append(args, "--karg="+k)
	}
	run(t, "ostree", append(args, "debian/v1")...)
	writeScripts(t, filepath.Join(sys, "ostree/deploy/debian/var"), map[int]string{
		1: `echo before-switch >/etc/ocitree-test
ostree admin deploy --stage --os=debian debian/v2
echo after-switch >/etc/ocitree-test2
`,
	})
	img := mkfs(t, sys, filepath.Join(e.work, "disk-ostree.img"))
	m1, log1 := boot(t, img, "ostree-1")
	expect(t, "ostree writer, boot 1 (v1)", m1, log1, map[string]string{"boot": "1", "script": "0", "stamp": "v1", "hello": "no"})
	m2, log2 := boot(t, img, "ostree-2")
	expect(t, "ostree writer, boot 2 (v2 after the staged deploy)", m2, log2, map[string]string{"boot": "2", "script": "none", "stamp": "v2", "hello": "yes",
		"etc": "before-switch", "etc2": "after-switch"})
}

// setup builds (or finds cached) the fixture, makes the v1 and v2 trees,
// prepares, commits and encapsulates them, and pushes both images to a
// local docker-registry.
func setup(t *testing.T) *env {
	work := t.TempDir()
	e := &env{work: work, repo: filepath.Join(work, "repo"), layout: filepath.Join(work, "oci")}
	e.bin = filepath.Join(work, "ocitree")
	step(t, "build ocitree", func() {
		c := exec.Command(goTool(), "build", "-tags", buildTags, "-o", e.bin, "github.com/ocitree/ocitree/cmd/ocitree")
		c.Env = append(os.Environ(), "CGO_ENABLED=0") // the binary runs inside the guest
		if out, err := c.CombinedOutput(); err != nil {
			t.Fatalf("go build ./cmd/ocitree: %v\n%s", err, out)
		}
	})
	step(t, "fixture", func() {
		out := run(t, "bash", "../../fixtures/debian/bootable.sh")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		e.fixture = lines[len(lines)-1]
	})
	debs, _ := filepath.Glob(filepath.Join(e.fixture, "debs", "hello_*.deb"))
	if len(debs) != 1 {
		t.Fatalf("fixture %s: want one hello .deb, have %v", e.fixture, debs)
	}
	run(t, e.bin, "repo", "init", "--repo", e.repo, "--mode", "bare")
	for _, v := range []string{"v1", "v2"} {
		tree := filepath.Join(work, "tree-"+v)
		step(t, "tree "+v, func() {
			run(t, "cp", "-a", filepath.Join(e.fixture, "rootfs"), tree)
			if v == "v2" {
				// One package more, installed as a Containerfile's RUN would.
				run(t, "cp", debs[0], filepath.Join(tree, "tmp/hello.deb"))
				run(t, "chroot", tree, "dpkg", "-i", "/tmp/hello.deb")
				os.Remove(filepath.Join(tree, "tmp/hello.deb"))
			}
			mustWrite(t, filepath.Join(tree, "usr/share/ocitree-test/stamp"), v+"\n", 0o644)
			data, err := os.ReadFile(e.bin)
			if err != nil {
				t.Fatal(err)
			}
			mustWrite(t, filepath.Join(tree, "usr/bin/ocitree"), string(data), 0o755)
			run(t, e.bin, "rootfs", "prepare", tree)
			if out := run(t, e.bin, "rootfs", "prepare", "--check", tree); strings.TrimSpace(out) != "" {
				t.Fatalf("rootfs prepare --check after prepare lists:\n%s", out)
			}
		})
		step(t, "commit "+v, func() {
			run(t, e.bin, "repo", "commit", "--repo", e.repo, "--branch", "debian/"+v, "--subject", v, "--bootable",
				"--add-metadata-string", "version="+v, tree)
		})
		os.RemoveAll(tree)
		step(t, "encapsulate "+v, func() {
			// zstd: faster to write here and to unpack in the (emulated) guest than gzip.
			args := []string{"encapsulate", "--compression", "zstd", "--repo", e.repo, "debian/" + v, "oci:" + e.layout + ":" + v}
			if v == "v2" {
				// Keep v1's layer layout so the guest fetches only the changed chunks.
				args = append(args, "--previous-build", "oci:"+e.layout+":v1")
			}
			run(t, e.bin, args...)
		})
	}
	e.reg = registrytest.Start(t, filepath.Join(work, "registry"))
	step(t, "push", func() {
		for _, v := range []string{"v1", "v2"} {
			run(t, "skopeo", "copy", "--dest-tls-verify=false", "oci:"+e.layout+":"+v, "docker://"+e.reg+"/debian:"+v)
		}
	})
	return e
}

// writeScripts places the guest's per-boot scripts (run by the fixture's
// ocitree-boot-marker.service on boot N as /var/ocitree-test/script-N) in
// the stateroot's var.
func writeScripts(t *testing.T, statevar string, scripts map[int]string) {
	d := filepath.Join(statevar, "ocitree-test")
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	for n, s := range scripts {
		mustWrite(t, filepath.Join(d, fmt.Sprintf("script-%d", n)), "set -ex\n"+s, 0o755)
	}
}

// mkfs packs the sysroot directory into a 4 GiB (sparse) ext4 image
// without mounting anything, and checks it with e2fsck.
func mkfs(t *testing.T, sys, img string) string {
	step(t, "mkfs.ext4 -d "+filepath.Base(img), func() {
		run(t, tool("mkfs.ext4"), "-q", "-F", "-L", "root", "-d", sys, img, "4G")
		run(t, tool("e2fsck"), "-fn", img)
	})
	return img
}

// boot emulates a BLS bootloader on the disk image: the entry with the
// highest version key in /boot/loader/entries (read with debugfs, which
// follows the /boot/loader link) gives the kernel, the initramfs and the
// command line. The guest runs until it powers off; its serial console is
// the returned log, parsed for the ocitree-boot-ok marker.
func boot(t *testing.T, img, name string) (map[string]string, string) {
	t.Helper()
	dir := filepath.Join(filepath.Dir(img), "boot-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	entry := defaultEntry(t, img)
	k, i := filepath.Join(dir, "vmlinuz"), filepath.Join(dir, "initrd")
	debugfs(t, img, "dump /boot"+entry["linux"]+" "+k)
	debugfs(t, img, "dump /boot"+entry["initrd"]+" "+i)
	logFile := filepath.Join(dir, "serial.log")
	args := []string{"-accel", accel(), "-m", "1536", "-smp", "2", "-nodefaults", "-nic", "none", "-display", "none", "-no-reboot",
		"-serial", "file:" + logFile, "-kernel", k, "-initrd", i, "-append", entry["options"] + " " + testKargs,
		"-drive", "file=" + img + ",if=virtio,format=raw"}
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, tool("qemu-system-x86_64"), args...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	start := time.Now()
	err := c.Run()
	took := time.Since(start).Round(100 * time.Millisecond)
	b, _ := os.ReadFile(logFile)
	log := strings.ReplaceAll(string(b), "\r", "")
	if ctx.Err() != nil {
		t.Fatalf("boot %s (%s): no power-off within %v; serial console:\n%s", name, entry["title"], bootTimeout, tail(log))
	}
	if err != nil {
		t.Fatalf("boot %s: qemu: %v\n%s\nserial console:\n%s", name, err, out.String(), tail(log))
	}
	m := marker(log)
	t.Logf("boot %s: %s in %v: %s", name, entry["title"], took, m["line"])
	return m, log
}

// marker parses the last ocitree-boot-ok line of a serial log into its
// key=value fields ("line" is the whole line; nil when there is none).
func marker(log string) map[string]string {
	var m map[string]string
	for _, l := range strings.Split(log, "\n") {
		i := strings.Index(l, "ocitree-boot-ok ")
		if i < 0 {
			continue
		}
		l = l[i:]
		m = map[string]string{"line": l}
		for _, f := range strings.Fields(l)[1:] {
			k, v, _ := strings.Cut(f, "=")
			m[k] = v
		}
	}
	return m
}

// hasLine reports whether a line of log contains all of parts.
func hasLine(log string, parts ...string) bool {
	for _, l := range strings.Split(log, "\n") {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			return true
		}
	}
	return false
}

// logFinalize logs how long ocitree-finalize.service took to stop at
// shutdown (the fixture prints the uptime before and after): a
// measurement, not an assertion.
func logFinalize(t *testing.T, log string) {
	t.Helper()
	up := func(key string) (float64, bool) {
		i := strings.Index(log, key+" uptime=")
		if i < 0 {
			return 0, false
		}
		f := strings.Fields(log[i+len(key)+len(" uptime="):])
		if len(f) == 0 {
			return 0, false
		}
		v, err := strconv.ParseFloat(f[0], 64)
		return v, err == nil
	}
	s, ok1 := up("ocitree-boot-finalize-start")
	e, ok2 := up("ocitree-boot-finalize-end")
	if ok1 && ok2 {
		t.Logf("ocitree-finalize.service stop at shutdown (emulated guest): %.2f s", e-s)
	}
}

// expect checks the marker fields every boot must show (ostree-prepare-root
// ran, /usr read-only, /var writable, no failed unit) and want.
func expect(t *testing.T, what string, m map[string]string, log string, want map[string]string) {
	t.Helper()
	if m == nil {
		t.Fatalf("%s: no ocitree-boot-ok marker on the serial console:\n%s", what, tail(log))
	}
	if m["deploy"] == "" {
		t.Errorf("%s: the marker names no booted deployment", what)
	}
	all := map[string]string{"ostree-booted": "yes", "usr-ro": "yes", "var-rw": "yes", "failed": ""}
	for k, v := range want {
		all[k] = v
	}
	keys := make([]string, 0, len(all))
	for k := range all {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	bad := false
	for _, k := range keys {
		if got, ok := m[k]; !ok || got != all[k] {
			t.Errorf("%s: %s=%q, want %q", what, k, got, all[k])
			bad = true
		}
	}
	if bad {
		t.Fatalf("%s: marker %s\nserial console:\n%s", what, m["line"], tail(log))
	}
}

// defaultEntry reads the BLS entries from the image and returns the keys of
// the one with the highest version (the default, as libostree numbers them).
func defaultEntry(t *testing.T, img string) map[string]string {
	t.Helper()
	var best map[string]string
	bestV := -1
	for _, l := range strings.Split(debugfs(t, img, "ls -p /boot/loader/entries"), "\n") {
		// /inode/mode/uid/gid/name/size/
		f := strings.Split(strings.TrimSpace(l), "/")
		if len(f) < 7 || !strings.HasSuffix(f[5], ".conf") {
			continue
		}
		e := map[string]string{"file": f[5]}
		for _, kl := range strings.Split(debugfs(t, img, "cat /boot/loader/entries/"+f[5]), "\n") {
			if k, v, ok := strings.Cut(kl, " "); ok {
				e[k] = strings.TrimSpace(v)
			}
		}
		v, err := strconv.Atoi(e["version"])
		if err != nil {
			t.Fatalf("BLS entry %s: version %q", f[5], e["version"])
		}
		if v > bestV {
			best, bestV = e, v
		}
	}
	if best == nil || best["linux"] == "" || best["initrd"] == "" || best["options"] == "" {
		t.Fatalf("no usable BLS entry in %s: %v", img, best)
	}
	return best
}

func debugfs(t *testing.T, img, req string) string {
	t.Helper()
	c := exec.Command(tool("debugfs"), "-R", req, img)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("debugfs -R %q %s: %v\n%s", req, img, err, errb.String())
	}
	// debugfs exits 0 on a missing file and says so on stderr.
	if s := errb.String(); strings.Contains(s, "not found") || strings.Contains(s, "File not found") {
		t.Fatalf("debugfs -R %q %s: %s", req, img, s)
	}
	return out.String()
}

// accel is tcg unless OCITREE_BOOT_ACCEL says otherwise: /dev/kvm can be
// present but unusable (a PV-only KVM without vmx/svm hangs stock kernels).
func accel() string {
	if a := os.Getenv("OCITREE_BOOT_ACCEL"); a != "" {
		return a
	}
	return "tcg"
}

// tail returns the end of a serial log without systemd's progress
// spinner lines ("Job ... running (2min / no limit)").
func tail(log string) string {
	const n = 12000
	var keep []string
	for _, l := range strings.Split(log, "\n") {
		if !(strings.Contains(l, "Job ") && strings.Contains(l, " running (")) {
			keep = append(keep, l)
		}
	}
	log = strings.Join(keep, "\n")
	if len(log) > n {
		return "...\n" + log[len(log)-n:]
	}
	return log
}

func step(t *testing.T, name string, fn func()) {
	t.Helper()
	start := time.Now()
	fn()
	t.Logf("%s: %v", name, time.Since(start).Round(100*time.Millisecond))
}

// run runs a command and fails the test unless it succeeds; it returns
// stdout.
func run(t *testing.T, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	c := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	c.Stdout, c.Stderr = &out, &errb
	if err := c.Run(); err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", name, strings.Join(args, " "), err, tail(out.String()), tail(errb.String()))
	}
	return out.String()
}

func mustWrite(t *testing.T, p, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// sysrootDir returns dir, whose deployments' immutable bits are cleared
// when the test ends so that the temporary directory can be removed.
func sysrootDir(t *testing.T, dir string) string {
	t.Cleanup(func() {
		ds, _ := filepath.Glob(filepath.Join(dir, "ostree/deploy/*/deploy/*"))
		for _, d := range ds {
			fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
			if err != nil {
				continue
			}
			if fl, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err == nil && fl&fsImmutableFl != 0 {
				unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(fl&^fsImmutableFl))
			}
			unix.Close(fd)
		}
	})
	return dir
}

// tool finds a program on PATH or in the sbin directories (debugfs and
// mkfs.ext4 live there, which a non-login PATH may lack).
func tool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin"} {
		if p := filepath.Join(d, name); isExec(p) {
			return p
		}
	}
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0
}

// requireTools skips the test (fails it with CI=true) unless every tool is
// there and the test runs as root (debootstrap, chroot, root-owned trees).
func requireTools(t *testing.T) {
	t.Helper()
	ci := os.Getenv("CI") == "true"
	fail := t.Skipf
	if ci {
		fail = t.Fatalf
	}
	for _, name := range tools {
		if tool(name) == "" {
			fail("%s is not installed (bash scripts/test-deps.sh installs it)%s", name, ciNote(ci))
		}
	}
	if os.Geteuid() != 0 {
		fail("the boot test needs root (debootstrap, chroot, root-owned trees)%s", ciNote(ci))
	}
	if runtime.GOARCH != "amd64" {
		fail("the boot test boots an amd64 Debian kernel; this is %s%s", runtime.GOARCH, ciNote(ci))
	}
}

func ciNote(ci bool) string {
	if ci {
		return " (CI=true makes this a failure)"
	}
	return ""
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

// fsImmutableFl is FS_IMMUTABLE_FL of linux/fs.h (chattr +i).
const fsImmutableFl = 0x10
