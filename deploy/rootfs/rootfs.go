// Package rootfs turns a plain root filesystem (debootstrap, podman export
// of a Containerfile build) into a tree that ostree-style hosts can deploy,
// laid out the way ostree-based distributions ship theirs: the kernel in
// usr/lib/modules/$KVER, the default configuration in usr/etc, no /var
// content (it becomes usr/lib/tmpfiles.d lines), home and friends as links
// into var, sysroot/ with the ostree link, and empty API mount points.
//
// Check lists what Prepare would change; Prepare plans every change and
// refuses before moving anything when the tree cannot be prepared (two
// kernels, no initramfs, both etc and usr/etc populated, ...). All file
// operations go through an os.Root, so nothing outside the tree is read or
// changed and no symlink is followed out of it.
package rootfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"syscall"
)

// Paths of the prepared layout.
const (
	// DpkgDB is where the dpkg database lives in a prepared tree (as Endless
	// OS ships Debian), with var/lib/dpkg a link to it.
	DpkgDB = "usr/share/dpkg/database"
	// dpkgLink is var/lib/dpkg's target, relative to var/lib.
	dpkgLink = "../../usr/share/dpkg/database"
	// TmpfilesConf is the file Prepare writes the /var lines to.
	TmpfilesConf = "usr/lib/tmpfiles.d/ocitree-var.conf"
	// FactoryDir holds /var file content that tmpfiles C lines copy.
	FactoryDir = "usr/share/factory"
)

// varLinks are the top-level directories that become links into var (or
// run), as on Fedora Silverblue/CoreOS: the link target and the /var path
// whose tmpfiles line creates the target.
var varLinks = []struct{ name, target, varPath string }{
	{"home", "var/home", "/var/home"},
	{"root", "var/roothome", "/var/roothome"},
	{"srv", "var/srv", "/var/srv"},
	{"opt", "var/opt", "/var/opt"},
	{"mnt", "var/mnt", "/var/mnt"},
	{"media", "run/media", ""},
}

// apiDirs must exist and be empty: the kernel's and systemd's mount points.
var apiDirs = []string{"dev", "proc", "sys", "run", "tmp"}

// transient are /var subtrees whose file content is dropped rather than
// kept as factory copies: caches, logs and temporary files, which a new
// host starts without (their directories are still created).
var transient = []string{"/var/cache/", "/var/log/", "/var/tmp/"}

// kernelLinks are the top-level links Debian's kernel packages leave.
var kernelLinks = []string{"vmlinuz", "vmlinuz.old", "initrd.img", "initrd.img.old"}

// Options control Prepare.
type Options struct {
	// Units are extra files to write into the tree (path relative to the
	// tree → content, mode 0644), e.g. the ocitree systemd units. A file
	// that exists with other content is a refusal.
	Units map[string][]byte
	// Links are symlinks to make (path → target), e.g. the units'
	// enablement; one that exists with another target is a refusal.
	Links map[string]string
}

// Report is what Prepare changed (or, from Check, would change).
type Report struct {
	// Kernel is the kernel version found.
	Kernel string
	// Problems are the findings in the tree as it was, one line each.
	Problems []string
	// Moves are the renames done ("from -> to") and the units installed.
	Moves []string
	// Tmpfiles are the lines written to TmpfilesConf.
	Tmpfiles []string
	// Factory are the /var files kept as usr/share/factory copies.
	Factory []string
	// Dropped are removed /var files (caches, logs) and API dir content.
	Dropped []string
	// Devices counts the dropped device nodes; Special the dropped sockets
	// and fifos.
	Devices, Special int
}

// RefusedError is returned when the tree cannot be prepared; nothing was
// changed.
type RefusedError struct{ Reasons []string }

func (e *RefusedError) Error() string {
	return "rootfs prepare refused, nothing changed: " + strings.Join(e.Reasons, "; ")
}

// op is one planned change.
type op struct {
	kind string // rename, remove, removeall, mkdir, symlink, write
	a, b string
	mode fs.FileMode
	data []byte
}

type plan struct {
	rep      Report
	refusals []string
	ops      []op
}

func (p *plan) problem(format string, args ...any) {
	p.rep.Problems = append(p.rep.Problems, fmt.Sprintf(format, args...))
}

func (p *plan) refuse(format string, args ...any) {
	p.refusals = append(p.refusals, fmt.Sprintf(format, args...))
}

// Check lists what Prepare would change in the tree dir, without changing
// anything. A prepared tree gives no problems. The error is for a tree
// that cannot be read or cannot be prepared (RefusedError).
func Check(dir string) (*Report, error) {
	p, err := makePlan(dir, Options{})
	if err != nil {
		return nil, err
	}
	if len(p.refusals) > 0 {
		return &p.rep, &RefusedError{p.refusals}
	}
	return &p.rep, nil
}

// Prepare lays the tree dir out for deployment (see the package doc). It
// plans everything first and returns a RefusedError, changing nothing,
// when any problem cannot be fixed.
func Prepare(dir string, opts Options) (*Report, error) {
	p, err := makePlan(dir, opts)
	if err != nil {
		return nil, err
	}
	if len(p.refusals) > 0 {
		return &p.rep, &RefusedError{p.refusals}
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("rootfs prepare: %w", err)
	}
	defer r.Close()
	for _, o := range p.ops {
		if err := apply(r, o); err != nil {
			return &p.rep, fmt.Errorf("rootfs prepare: %s %s: %w", o.kind, o.a, err)
		}
	}
	return &p.rep, nil
}

func apply(r *os.Root, o op) error {
	switch o.kind {
	case "rename":
		if err := r.MkdirAll(path.Dir(o.b), 0o755); err != nil {
			return err
		}
		return r.Rename(o.a, o.b)
	case "remove":
		return r.Remove(o.a)
	case "removeall":
		return r.RemoveAll(o.a)
	case "mkdir":
		if err := r.MkdirAll(o.a, o.mode); err != nil {
			return err
		}
		return r.Chmod(o.a, o.mode)
	case "symlink":
		if err := r.MkdirAll(path.Dir(o.a), 0o755); err != nil {
			return err
		}
		return r.Symlink(o.b, o.a)
	case "write":
		if err := r.MkdirAll(path.Dir(o.a), 0o755); err != nil {
			return err
		}
		tmp := o.a + ".ocitree-tmp"
		f, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, o.mode)
		if err != nil {
			return err
		}
		if _, err := f.Write(o.data); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		return r.Rename(tmp, o.a)
	}
	return fmt.Errorf("unknown operation %q", o.kind)
}

// lstat is Lstat through the root, nil when absent.
func lstat(r *os.Root, name string) (fs.FileInfo, error) {
	fi, err := r.Lstat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return fi, err
}

func readDirNames(r *os.Root, name string) ([]string, error) {
	f, err := r.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	sort.Strings(names)
	return names, err
}

// isEmptyDir says whether name is a directory without entries.
func isEmptyDir(r *os.Root, name string) (bool, error) {
	names, err := readDirNames(r, name)
	return err == nil && len(names) == 0, err
}

func owner(fi fs.FileInfo) (int, int) {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid), int(st.Gid)
	}
	return 0, 0
}

// ErrRunningRoot is returned for the root of the running system.
var ErrRunningRoot = errors.New("rootfs: refusing the root directory of the running system; pass the directory of a tree to prepare")

func makePlan(dir string, opts Options) (*plan, error) {
	var st, rootSt syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	if err := syscall.Stat("/", &rootSt); err == nil && st.Dev == rootSt.Dev && st.Ino == rootSt.Ino {
		return nil, ErrRunningRoot
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("rootfs: %w", err)
	}
	defer r.Close()
	p := &plan{}
	steps := []func(*os.Root, *plan, Options) error{planDevices, planKernel, planEtc, planVar, planLinks, planAPIDirs, planUnits}
	for _, step := range steps {
		if err := step(r, p, opts); err != nil {
			return nil, fmt.Errorf("rootfs %s: %w", dir, err)
		}
	}
	return p, nil
}
