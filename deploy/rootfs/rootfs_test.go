package rootfs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// fakeDebootstrap builds a tree shaped like a debootstrap of Debian 12 with
// a kernel: dpkg status, caches, logs, a kernel and initrd in boot/ with
// the top-level links, etc/, root's dot files and, as root, a device node.
func fakeDebootstrap(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	w := func(p, data string, mode os.FileMode) {
		t.Helper()
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(data), mode); err != nil {
			t.Fatal(err)
		}
	}
	md := func(p string, mode os.FileMode) {
		t.Helper()
		if err := os.MkdirAll(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(dir, p), mode); err != nil {
			t.Fatal(err)
		}
	}
	ln := func(target, p string) {
		t.Helper()
		if err := os.Symlink(target, filepath.Join(dir, p)); err != nil {
			t.Fatal(err)
		}
	}
	w("etc/os-release", "ID=debian\nVERSION_ID=12\n", 0o644)
	w("etc/hostname", "debian\n", 0o644)
	w("usr/bin/true", "#!/bin/sh\n", 0o755)
	md("usr/lib/modules/6.1.0-1-amd64/kernel", 0o755)
	md("usr/lib/tmpfiles.d", 0o755)
	w("usr/lib/tmpfiles.d/var.conf", "q /var 0755 - - -\nd /var/cache 0755 - - -\n", 0o644)
	md("usr/share/dpkg", 0o755)
	w("boot/vmlinuz-6.1.0-1-amd64", "kernel", 0o644)
	w("boot/initrd.img-6.1.0-1-amd64", "initrd", 0o644)
	w("boot/config-6.1.0-1-amd64", "CONFIG_X=y", 0o644)
	ln("boot/vmlinuz-6.1.0-1-amd64", "vmlinuz")
	ln("boot/initrd.img-6.1.0-1-amd64", "initrd.img")
	w("var/lib/dpkg/status", "Package: base-files\nStatus: install ok installed\n", 0o644)
	w("var/lib/dpkg/info/base-files.list", "/etc/os-release\n", 0o644)
	w("var/cache/apt/pkgcache.bin", "cache", 0o644)
	md("var/cache/apt/archives/partial", 0o700)
	w("var/log/dpkg.log", "log", 0o644)
	w("var/lib/misc/state", "keep me", 0o600)
	w("var/lib/empty-file", "", 0o640)
	md("var/tmp", 0o777|os.ModeSticky)
	ln("/run", "var/run")
	md("var/mail", 0o775|os.ModeSetgid)
	md("var/lib/with space%", 0o755)
	w("root/.bashrc", "# root\n", 0o644)
	md("root", 0o700)
	md("home", 0o755)
	md("opt", 0o755)
	md("media", 0o755)
	md("dev/pts", 0o755)
	ln("/proc/self/fd", "dev/fd")
	w("run/lock/x", "", 0o644)
	md("tmp", 0o777|os.ModeSticky)
	md("proc", 0o555)
	if os.Getuid() == 0 {
		if err := unix.Mknod(filepath.Join(dir, "dev/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(dir, "var/mail"), 0, 8); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func has(list []string, sub string) bool {
	for _, l := range list {
		if strings.Contains(l, sub) {
			return true
		}
	}
	return false
}

func TestCheckListsEveryProblemThenNone(t *testing.T) {
	dir := fakeDebootstrap(t)
	rep, err := Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"kernel: boot/vmlinuz-6.1.0-1-amd64", "kernel: boot/initrd.img-6.1.0-1-amd64", "/vmlinuz: a kernel link",
		"/etc is not in /usr/etc", "var/lib/dpkg is not in", "/var has content", "/home is a directory", "/root is a directory",
		"/srv is not a link", "/mnt is not a link", "/media is a directory", "no /sysroot", "/ostree is not a link",
		"/dev has content", "/run has content", "no /sys directory", "/proc has mode"}
	if os.Getuid() == 0 {
		want = append(want, "1 device nodes")
	}
	for _, w := range want {
		if !has(rep.Problems, w) {
			t.Errorf("check does not list %q; it lists:\n%s", w, strings.Join(rep.Problems, "\n"))
		}
	}
	// Check changed nothing.
	if _, err := os.Lstat(filepath.Join(dir, "boot/vmlinuz-6.1.0-1-amd64")); err != nil {
		t.Errorf("check moved the kernel: %v", err)
	}

	rep, err = Prepare(dir, Options{Units: map[string][]byte{"usr/lib/systemd/system/x.service": []byte("[Unit]\n")}})
	if err != nil {
		t.Fatal(err)
	}
	rep2, err := Check(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep2.Problems) != 0 {
		t.Errorf("check after prepare lists problems:\n%s", strings.Join(rep2.Problems, "\n"))
	}
	// A second prepare changes nothing.
	if rep3, err := Prepare(dir, Options{Units: map[string][]byte{"usr/lib/systemd/system/x.service": []byte("[Unit]\n")}}); err != nil || len(rep3.Problems) != 0 || len(rep3.Moves) != 0 {
		t.Errorf("second prepare: %v %+v", err, rep3)
	}

	read := func(p string) string {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Error(err)
		}
		return string(b)
	}
	link := func(p, want string) {
		if got, err := os.Readlink(filepath.Join(dir, p)); err != nil || got != want {
			t.Errorf("%s: link %q (%v), want %q", p, got, err, want)
		}
	}
	if read("usr/lib/modules/6.1.0-1-amd64/vmlinuz") != "kernel" || read("usr/lib/modules/6.1.0-1-amd64/initramfs.img") != "initrd" || read("usr/lib/modules/6.1.0-1-amd64/config") != "CONFIG_X=y" {
		t.Error("kernel files not in the modules directory")
	}
	if read("usr/etc/hostname") != "debian\n" {
		t.Error("etc not moved to usr/etc")
	}
	if !strings.Contains(read(DpkgDB+"/status"), "base-files") {
		t.Error("dpkg status not in " + DpkgDB)
	}
	link("var/lib/dpkg", "../../usr/share/dpkg/database")
	if !strings.Contains(read("var/lib/dpkg/status"), "base-files") {
		t.Error("var/lib/dpkg/status not readable through the link")
	}
	for _, l := range [][2]string{{"home", "var/home"}, {"root", "var/roothome"}, {"srv", "var/srv"}, {"opt", "var/opt"}, {"mnt", "var/mnt"}, {"media", "run/media"}, {"ostree", "sysroot/ostree"}} {
		link(l[0], l[1])
	}
	for _, d := range []string{"dev", "proc", "sys", "run", "tmp", "sysroot"} {
		ents, err := os.ReadDir(filepath.Join(dir, d))
		if err != nil || len(ents) != 0 {
			t.Errorf("%s: %v %v, want an empty directory", d, ents, err)
		}
	}
	for _, gone := range []string{"etc", "vmlinuz", "initrd.img", "boot/vmlinuz-6.1.0-1-amd64", "var/cache", "var/log", "var/mail", "var/lib/misc"} {
		if _, err := os.Lstat(filepath.Join(dir, gone)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s still there (%v)", gone, err)
		}
	}
	if read("usr/share/factory/var/lib/misc/state") != "keep me" || read("usr/share/factory/var/roothome/.bashrc") != "# root\n" {
		t.Error("file content not kept in usr/share/factory")
	}
	conf := read(TmpfilesConf)
	mailGid := "0"
	if os.Getuid() == 0 {
		mailGid = "8"
	}
	for _, l := range []string{
		"L /var/lib/dpkg - - - - ../../usr/share/dpkg/database",
		"d /var/cache/apt/archives/partial 0700 ",
		"d /var/tmp 1777 ",
		"d /var/mail 2775 0 " + mailGid + " -",
		"L /var/run - - - - /run",
		"f /var/lib/empty-file 0640 ",
		"C /var/lib/misc/state - - - - /usr/share/factory/var/lib/misc/state",
		"d /var/roothome 0700 ",
		"C /var/roothome/.bashrc - - - - /usr/share/factory/var/roothome/.bashrc",
		"d /var/home 0755 ", "d /var/srv 0755 0 0 -", "d /run/media 0755 0 0 -",
		`d /var/lib/with\x20space%% 0755 `,
	} {
		if !strings.Contains(conf, "\n"+l) {
			t.Errorf("tmpfiles conf lacks %q:\n%s", l, conf)
		}
	}
	// Paths the tree's own tmpfiles.d declares get no second line; dropped
	// caches and logs have none.
	for _, l := range []string{"d /var/cache 0", "/var/cache/apt/pkgcache.bin", "/var/log/dpkg.log", "/var/lib/dpkg/status"} {
		if strings.Contains(conf, l) {
			t.Errorf("tmpfiles conf has %q:\n%s", l, conf)
		}
	}
	if !has(rep.Dropped, "/var/log/dpkg.log") || !has(rep.Dropped, "/var/cache/apt/pkgcache.bin") {
		t.Errorf("dropped files not reported: %v", rep.Dropped)
	}
	if os.Getuid() == 0 && rep.Devices != 1 {
		t.Errorf("devices dropped: %d, want 1", rep.Devices)
	}
	if read("usr/lib/systemd/system/x.service") != "[Unit]\n" {
		t.Error("unit not installed")
	}
}

// snapshot lists every path with its type, for "nothing changed" checks.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String() + "\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestPrepareRefusesUnchanged(t *testing.T) {
	cases := []struct {
		name, want string
		mutate     func(dir string) error
	}{
		{"two kernels", "two kernels", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "boot/vmlinuz-6.1.0-2-amd64"), []byte("k2"), 0o644)
		}},
		{"two kernels, one in modules", "two kernels", func(dir string) error {
			if err := os.MkdirAll(filepath.Join(dir, "usr/lib/modules/6.5.0"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "usr/lib/modules/6.5.0/vmlinuz"), nil, 0o644)
		}},
		{"no initramfs", "no initramfs", func(dir string) error {
			return os.Remove(filepath.Join(dir, "boot/initrd.img-6.1.0-1-amd64"))
		}},
		{"no kernel", "no kernel", func(dir string) error {
			return os.Remove(filepath.Join(dir, "boot/vmlinuz-6.1.0-1-amd64"))
		}},
		{"etc and usr/etc", "both /etc and /usr/etc", func(dir string) error {
			if err := os.MkdirAll(filepath.Join(dir, "usr/etc"), 0o755); err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(dir, "usr/etc/passwd"), nil, 0o644)
		}},
		{"media with content", "/media has content", func(dir string) error {
			return os.WriteFile(filepath.Join(dir, "media/x"), nil, 0o644)
		}},
		{"var links out of the tree", "/var is not a directory", func(dir string) error {
			if err := os.RemoveAll(filepath.Join(dir, "var")); err != nil {
				return err
			}
			return os.Symlink(os.TempDir(), filepath.Join(dir, "var"))
		}},
		{"home elsewhere", `/home is a link to "/elsewhere"`, func(dir string) error {
			if err := os.RemoveAll(filepath.Join(dir, "home")); err != nil {
				return err
			}
			return os.Symlink("/elsewhere", filepath.Join(dir, "home"))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := fakeDebootstrap(t)
			if err := c.mutate(dir); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)
			_, err := Prepare(dir, Options{})
			var re *RefusedError
			if !errors.As(err, &re) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("prepare: %v, want a refusal naming %q", err, c.want)
			}
			if after := snapshot(t, dir); after != before {
				t.Errorf("a refused prepare changed the tree")
			}
			if _, err := Check(dir); !errors.As(err, &re) {
				t.Errorf("check: %v, want the refusal too", err)
			}
		})
	}
}

func TestEscapePath(t *testing.T) {
	for _, p := range []string{"/var/a b", "/var/100%", `/var/x"y\z`, "/var/tab\there", "/var/ü"} {
		e := escapePath(p)
		if strings.ContainsAny(e, " \t\"") {
			t.Errorf("%q escaped to %q", p, e)
		}
		if got := unescapePath(e); got != p {
			t.Errorf("%q -> %q -> %q", p, e, got)
		}
	}
}

// TestRefusesRunningRoot: the running system's / is never taken as a tree
// (only Check is called here; Prepare goes through the same plan).
func TestRefusesRunningRoot(t *testing.T) {
	for _, d := range []string{"/", "/.", "/usr/.."} {
		if _, err := Check(d); !errors.Is(err, ErrRunningRoot) {
			t.Errorf("Check(%q): %v, want ErrRunningRoot", d, err)
		}
	}
	if _, err := Check(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("Check of a missing directory succeeded")
	}
}
