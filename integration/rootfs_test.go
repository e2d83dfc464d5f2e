package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/fixtures"
)

// TestRootfsPrepareToInstall takes a debootstrap-like plain root filesystem
// (fixtures.PlainRootfs) through the path from a Containerfile build to a
// host: rootfs prepare --check lists every problem, an image of the
// unprepared tree is refused by install with a pointer to rootfs prepare
// (nothing written to boot/ or ostree/deploy), rootfs prepare lays it out,
// --check then lists nothing, and the prepared tree commits, encapsulates
// and installs into a sysroot that the real ostree admin status reads. The
// real systemd-tmpfiles then applies the written tmpfiles.d lines without
// error and recreates /var as the image had it.
func TestRootfsPrepareToInstall(t *testing.T) {
	setup(t, "systemd-tmpfiles")
	work := workDir(t)
	tree := filepath.Join(work, "rootfs")
	if err := fixtures.PlainRootfs(tree); err != nil {
		t.Fatal(err)
	}
	k := fixtures.MiniOSKernel

	r := ocitree(t, "rootfs", "prepare", "--check", tree)
	if r.code != 1 {
		t.Fatalf("check of the plain tree: want exit 1:\n%s", r)
	}
	want := []string{"kernel: boot/vmlinuz-" + k + " is not at usr/lib/modules/" + k + "/vmlinuz",
		"kernel: boot/initrd.img-" + k + " is not at usr/lib/modules/" + k + "/initramfs.img",
		"/vmlinuz: a kernel link", "/initrd.img: a kernel link", "/etc is not in /usr/etc", "var/lib/dpkg is not in usr/share/dpkg/database",
		"/var has content", "/home is a directory", "/root is a directory", "/srv is a directory", "/mnt is a directory",
		"/opt is not a link", "/media is not a link", "no /sysroot directory", "/ostree is not a link", "/run has content", "/tmp has content", "/dev has content"}
	if os.Getuid() == 0 {
		want = append(want, "1 device nodes")
	}
	for _, w := range want {
		if !strings.Contains(r.stdout, w) {
			t.Errorf("check does not list %q:\n%s", w, r.stdout)
		}
	}

	// The unprepared tree's image (without its device node, which no
	// commit can hold) is refused by install, pointing at rootfs prepare.
	plain := filepath.Join(work, "plain")
	copyDir(t, tree, plain)
	os.Remove(filepath.Join(plain, "dev/null"))
	repo := filepath.Join(work, "repo")
	must(t, ocitree(t, "repo", "init", "--repo", repo, "--mode", "bare"))
	must(t, ocitree(t, append(commitOpts{subject: "plain"}.ocitreeArgs(repo, "plain"), plain)...))
	layout := filepath.Join(work, "oci")
	encapsulate(t, repo, "plain", "oci:"+layout+":plain")
	bad := sysrootDir(t, work, "bad")
	r = ocitree(t, "install", "--sysroot", bad, "oci:"+layout+":plain")
	if r.code != 1 || !strings.Contains(r.stderr, "ocitree rootfs prepare DIR") {
		t.Errorf("install of the unprepared image: want exit 1 pointing at rootfs prepare:\n%s", r)
	}
	for _, d := range []string{"boot", "ostree/deploy"} {
		if ents, _ := os.ReadDir(filepath.Join(bad, d)); len(ents) != 0 {
			t.Errorf("refused install wrote into %s: %v", d, ents)
		}
	}

	out := must(t, ocitree(t, "rootfs", "prepare", tree))
	for _, w := range []string{"moved: etc -> usr/etc", "moved: var/lib/dpkg -> usr/share/dpkg/database", "installed usr/lib/systemd/system/ocitree-update.timer",
		"tmpfiles: d /var/mail 2775 ", "factory: /var/roothome/.profile", "kernel " + k + ";"} {
		if !strings.Contains(out, w) {
			t.Errorf("prepare output lacks %q:\n%s", w, out)
		}
	}
	if os.Getuid() == 0 && !strings.Contains(out, "1 device nodes") {
		t.Errorf("prepare does not report the device node:\n%s", out)
	}
	if r := ocitree(t, "rootfs", "prepare", "--check", tree); r.code != 0 || strings.TrimSpace(r.stdout) != "" {
		t.Errorf("check of the prepared tree: want exit 0 and nothing listed:\n%s", r)
	}

	must(t, ocitree(t, append(commitOpts{subject: "prepared", metadata: []string{"version=1.0"}, bootable: true}.ocitreeArgs(repo, "prepared"), tree)...))
	encapsulate(t, repo, "prepared", "oci:"+layout+":1.0")
	sys := sysrootDir(t, work, "sysroot")
	must(t, ocitree(t, "install", "--sysroot", sys, "oci:"+layout+":1.0"))
	ds := assertSameStatus(t, "after install of the prepared tree", sys)
	if versions(ds) != "1.0" {
		t.Fatalf("versions %s, want 1.0", versions(ds))
	}
	deps, _ := filepath.Glob(filepath.Join(sys, "ostree/deploy/default/deploy/*.0"))
	if len(deps) != 1 {
		t.Fatalf("deployments: %v", deps)
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Error(err)
		}
		return string(b)
	}
	dep := deps[0]
	if read(filepath.Join(dep, "etc/hostname")) != "minios\n" || !strings.Contains(read(filepath.Join(dep, "usr/share/dpkg/database/status")), "Package: hello") {
		t.Error("deployment lacks /etc or the dpkg database under /usr")
	}
	if _, err := os.Stat(filepath.Join(sys, "boot/ostree")); err != nil {
		t.Errorf("no boot files: %v", err)
	}

	// The real systemd-tmpfiles accepts every line and recreates /var.
	r = runCmd(t, nil, "systemd-tmpfiles", "--root="+tree, "--create", filepath.Join(tree, "usr/lib/tmpfiles.d/ocitree-var.conf"))
	if r.code != 0 || strings.TrimSpace(r.stderr) != "" {
		t.Fatalf("systemd-tmpfiles on the written lines:\n%s", r)
	}
	if got := read(filepath.Join(tree, "var/lib/dpkg/status")); !strings.Contains(got, "Package: hello") {
		t.Error("var/lib/dpkg/status not readable after systemd-tmpfiles")
	}
	if read(filepath.Join(tree, "var/roothome/.profile")) == "" || !strings.Contains(read(filepath.Join(tree, "var/lib/systemd/deb-systemd-helper-enabled/sshd.service.dsh-also")), "sshd.service") {
		t.Error("file content not copied back by the C lines")
	}
	for p, mode := range map[string]os.FileMode{"var/mail": 0o775 | os.ModeSetgid | os.ModeDir, "var/cache/apt/archives/partial": 0o700 | os.ModeDir,
		"var/tmp": 0o777 | os.ModeSticky | os.ModeDir, "var/roothome": 0o700 | os.ModeDir, "var/lib/dpkg/lock": 0o640} {
		fi, err := os.Stat(filepath.Join(tree, p))
		if err != nil || fi.Mode() != mode {
			t.Errorf("%s after systemd-tmpfiles: %v %v, want %v", p, fi, err, mode)
		}
	}
}
