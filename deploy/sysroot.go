package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"

	"github.com/ocitree/ocitree/boot"
	"github.com/ocitree/ocitree/ostree"
	"golang.org/x/sys/unix"
)

// Sysroot is an opened physical root (the directory holding boot/ and
// ostree/) with its deployment list as the current boot entries give it.
type Sysroot struct {
	// Path is the sysroot directory.
	Path string
	// Repo is the sysroot's bare repository, ostree/repo.
	Repo *ostree.Repo
	// State is the current boot version and sub-bootversion.
	State boot.State
	// Deployments is the list in boot order (index 0 boots by default).
	Deployments []*Deployment
	// Booted is the running deployment; nil when the sysroot is not the
	// running system.
	Booted *Deployment

	root   *os.Root
	dfd    int // directory fd of the sysroot, for fstatat
	lockFd int
	// bootedName, when set, names the deployment taken as booted
	// ($CSUM.$SERIAL) on a sysroot directory (SimulateBooted).
	bootedName string
}

// SimulateBooted makes a sysroot directory behave as the running system
// booted from deployment name ($CSUM.$SERIAL): for tests of what happens
// on a host (finalize, the merge source), without /run/ostree-booted.
func (s *Sysroot) SimulateBooted(name string) error {
	s.bootedName = name
	if err := s.load(); err != nil {
		return err
	}
	if s.Booted == nil {
		return fmt.Errorf("sysroot %s: no deployment %s in the boot entries", s.Path, name)
	}
	return nil
}

// Deployment is one deployment of the list.
type Deployment struct {
	Index     int
	Stateroot string
	Checksum  ostree.Checksum
	Serial    int
	// BootChecksum and Bootserial come from the entry's ostree= bootlink.
	BootChecksum string
	Bootserial   int
	// Options is the BLS options line (with its ostree=).
	Options string
	// Origin is the parsed .origin file; nil when there is none.
	Origin *ostree.KeyFile
	// Version is the commit's version metadata ("" when none).
	Version string

	kernel *boot.Kernel
	osName string
}

// Dir is the deployment root relative to the sysroot.
func (d *Deployment) Dir() string {
	return fmt.Sprintf("ostree/deploy/%s/deploy/%s.%d", d.Stateroot, d.Checksum, d.Serial)
}

// Pinned reports whether the origin has [libostree-transient] pinned=true.
func (d *Deployment) Pinned() bool {
	if d.Origin == nil {
		return false
	}
	v, _ := d.Origin.Get("libostree-transient", "pinned")
	return v == "true"
}

// ImageRef is the origin's container-image-reference ("" when none).
func (d *Deployment) ImageRef() string {
	if d.Origin == nil {
		return ""
	}
	v, _ := d.Origin.Get("origin", "container-image-reference")
	return v
}

// InitFS creates an empty sysroot at dir as `ostree admin init-fs` (2022.7,
// not --modern) does: boot, dev, home, proc, run, sys (0755), root (0700),
// tmp (01777), then ostree/repo (a bare repository) and ostree/deploy.
// Existing directories are kept.
func InitFS(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("init sysroot %s: %w", dir, err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("init sysroot %s: %w", dir, err)
	}
	defer root.Close()
	for _, d := range []struct {
		name string
		mode fs.FileMode
	}{{"boot", 0o755}, {"dev", 0o755}, {"home", 0o755}, {"proc", 0o755}, {"run", 0o755}, {"sys", 0o755}, {"root", 0o700}, {"tmp", 0o777 | fs.ModeSticky}} {
		if err := root.Mkdir(d.name, d.mode.Perm()); err != nil {
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			return fmt.Errorf("init sysroot %s: %w", dir, err)
		}
		if err := root.Chmod(d.name, d.mode); err != nil {
			return fmt.Errorf("init sysroot %s: %w", dir, err)
		}
	}
	for _, d := range []string{"ostree/repo", "ostree/deploy"} {
		if err := root.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("init sysroot %s: %w", dir, err)
		}
	}
	r, err := ostree.Init(filepath.Join(dir, "ostree/repo"), ostree.ModeBare)
	if err != nil {
		return fmt.Errorf("init sysroot %s: %w", dir, err)
	}
	return r.Close()
}

// InitStateroot creates stateroot sr as `ostree admin os-init` (2022.7)
// does: ostree/deploy/SR and its var with tmp (01777), lib, log, and the
// symlinks run -> ../run, lock -> ../run/lock. An existing stateroot is
// kept as it is.
func InitStateroot(dir, sr string) error {
	if err := validStateroot(sr); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("stateroot %s: %w", sr, err)
	}
	defer root.Close()
	base := "ostree/deploy/" + sr
	if _, err := root.Lstat(base); err == nil {
		return nil
	}
	tmp := "ostree/deploy/." + sr + ".tmp"
	root.RemoveAll(tmp)
	steps := []func() error{
		func() error { return root.Mkdir(tmp, 0o777) },
		func() error { return root.Mkdir(tmp+"/var", 0o777) },
		func() error { return root.Mkdir(tmp+"/var/tmp", 0o777) },
		func() error { return root.Chmod(tmp+"/var/tmp", 0o777|fs.ModeSticky) },
		func() error { return root.Mkdir(tmp+"/var/lib", 0o755) },
		func() error { return root.Mkdir(tmp+"/var/log", 0o755) },
		func() error { return root.Symlink("../run", tmp+"/var/run") },
		func() error { return root.Symlink("../run/lock", tmp+"/var/lock") },
		func() error { return root.Rename(tmp, base) },
	}
	for _, f := range steps {
		if err := f(); err != nil {
			root.RemoveAll(tmp)
			return fmt.Errorf("creating stateroot %s: %w", sr, err)
		}
	}
	return bumpMtime(root)
}

var staterootRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

func validStateroot(sr string) error {
	if !staterootRE.MatchString(sr) {
		return fmt.Errorf("invalid stateroot name %q: use letters, digits, '_', '-', '.'", sr)
	}
	return nil
}

// bumpMtime touches ostree/deploy, which ostree_sysroot_load_if_changed,
// rpm-ostreed and bootc watch.
func bumpMtime(root *os.Root) error {
	f, err := root.Open("ostree/deploy")
	if err != nil {
		return err
	}
	defer f.Close()
	return unix.UtimesNanoAt(int(f.Fd()), "", nil, unix.AT_EMPTY_PATH)
}

var errNotBooted = errors.New("/ is not a system booted from an ostree deployment (no /run/ostree-booted, or no deployment is /); pass --sysroot DIR to work on a sysroot directory")

// Open opens and loads the sysroot at dir. When dir is "/" it must be a
// system booted from a deployment. Open takes no lock; Lock does.
func Open(dir string) (*Sysroot, error) {
	if filepath.Clean(dir) == "/" {
		if _, err := os.Stat("/run/ostree-booted"); err != nil {
			return nil, errNotBooted
		}
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("sysroot %s: %w", dir, err)
	}
	s := &Sysroot{Path: dir, root: root, lockFd: -1}
	s.dfd, err = unix.Open(dir, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("sysroot %s: %w", dir, err)
	}
	if _, err := root.Stat("ostree/deploy"); err != nil {
		root.Close()
		unix.Close(s.dfd)
		return nil, fmt.Errorf("sysroot %s: no ostree/deploy (%w); create one with `ocitree install --sysroot %s IMGREF`", dir, err, dir)
	}
	s.Repo, err = ostree.Open(filepath.Join(dir, "ostree/repo"))
	if err != nil {
		root.Close()
		unix.Close(s.dfd)
		return nil, fmt.Errorf("sysroot %s: %w", dir, err)
	}
	if err := s.load(); err != nil {
		s.Close()
		return nil, err
	}
	if filepath.Clean(dir) == "/" && s.Booted == nil {
		s.Close()
		return nil, errNotBooted
	}
	return s, nil
}

// Close releases the lock (if held) and closes the sysroot.
func (s *Sysroot) Close() error {
	s.Unlock()
	if s.Repo != nil {
		s.Repo.Close()
	}
	unix.Close(s.dfd)
	return s.root.Close()
}

// Root returns the sysroot as an os.Root (all writes go through it).
func (s *Sysroot) Root() *os.Root { return s.root }

// Lock takes the sysroot lock (flock LOCK_EX on ostree/lock, as
// ostree_sysroot_lock), waiting for another writer, then reloads the
// deployment list.
func (s *Sysroot) Lock() error {
	if s.lockFd >= 0 {
		return nil
	}
	f, err := s.root.OpenFile("ostree/lock", os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if errors.Is(err, unix.EROFS) {
		return fmt.Errorf("sysroot %s is mounted read-only (%w); remount it read-write (e.g. mount -o remount,rw /sysroot, and /boot) and retry", s.Path, err)
	}
	if err != nil {
		return fmt.Errorf("sysroot lock: %w", err)
	}
	fd, err := unix.Dup(int(f.Fd()))
	f.Close()
	if err != nil {
		return fmt.Errorf("sysroot lock: %w", err)
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); errors.Is(err, unix.EWOULDBLOCK) {
		fmt.Fprintf(os.Stderr, "waiting for the sysroot lock %s (another ostree or ocitree is writing)\n", filepath.Join(s.Path, "ostree/lock"))
		err = unix.Flock(fd, unix.LOCK_EX)
	}
	if err != nil {
		unix.Close(fd)
		return fmt.Errorf("sysroot lock: %w", err)
	}
	s.lockFd = fd
	return s.load()
}

// Unlock releases the sysroot lock.
func (s *Sysroot) Unlock() {
	if s.lockFd < 0 {
		return
	}
	s.root.Remove("ostree/lock")
	unix.Close(s.lockFd)
	s.lockFd = -1
}

// load reads the boot state and the deployment list (spec §6).
func (s *Sysroot) load() error {
	st, err := boot.ReadState(s.root)
	if err != nil {
		return fmt.Errorf("sysroot %s: %w", s.Path, err)
	}
	s.State = st
	entries, err := boot.ReadEntries(s.root, st.Bootversion)
	if err != nil {
		return fmt.Errorf("sysroot %s: %w", s.Path, err)
	}
	s.Deployments, s.Booted = nil, nil
	var rootSt unix.Stat_t
	booted := false
	if filepath.Clean(s.Path) == "/" {
		if _, err := os.Stat("/run/ostree-booted"); err == nil && unix.Stat("/", &rootSt) == nil {
			booted = true
		}
	}
	for i, e := range entries {
		bl, err := boot.ResolveBootlink(s.root, e)
		if err != nil {
			return fmt.Errorf("sysroot %s: %w", s.Path, err)
		}
		csum, serial, err := parseDeployName(bl.Target)
		if err != nil {
			return fmt.Errorf("sysroot %s: boot entry %s: %w", s.Path, e.Name, err)
		}
		d := &Deployment{Index: i, Stateroot: bl.Stateroot, Checksum: csum, Serial: serial,
			BootChecksum: bl.BootChecksum, Bootserial: bl.Bootserial, Options: e.Get("options")}
		var dst unix.Stat_t
		if err := unix.Fstatat(s.dfd, d.Dir(), &dst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return fmt.Errorf("sysroot %s: deployment %s: %w", s.Path, d.Dir(), err)
		}
		if booted && dst.Dev == rootSt.Dev && dst.Ino == rootSt.Ino {
			s.Booted = d
		}
		if s.bootedName != "" && path.Base(d.Dir()) == s.bootedName {
			s.Booted = d
		}
		if data, err := s.root.ReadFile(d.Dir() + ".origin"); err == nil {
			if d.Origin, err = ostree.ParseKeyFile(string(data)); err != nil {
				return fmt.Errorf("sysroot %s: %s.origin: %w", s.Path, d.Dir(), err)
			}
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("sysroot %s: %w", s.Path, err)
		}
		if c, err := s.Repo.ReadCommit(csum); err == nil {
			d.Version = c.Metadata.String("version")
		}
		s.Deployments = append(s.Deployments, d)
	}
	return nil
}

var deployNameRE = regexp.MustCompile(`^([0-9a-f]+)\.([0-9]+)$`)

func parseDeployName(n string) (ostree.Checksum, int, error) {
	m := deployNameRE.FindStringSubmatch(n)
	if m == nil {
		return ostree.Checksum{}, 0, fmt.Errorf("deployment name %q is not CHECKSUM.SERIAL", n)
	}
	c, err := ostree.ParseChecksum(m[1])
	if err != nil {
		return c, 0, fmt.Errorf("deployment name %q: %w", n, err)
	}
	serial, err := strconv.Atoi(m[2])
	return c, serial, err
}

// kernelOf finds the kernel layout of an existing deployment; its boot
// checksum is the one its bootlink names (not recomputed).
func (s *Sysroot) kernelOf(d *Deployment) (*boot.Kernel, string, error) {
	if d.kernel != nil {
		return d.kernel, d.osName, nil
	}
	dr, err := s.root.OpenRoot(d.Dir())
	if err != nil {
		return nil, "", fmt.Errorf("deployment %s: %w", d.Dir(), err)
	}
	defer dr.Close()
	k, err := boot.FindKernelLayout(dr.FS())
	if err != nil {
		return nil, "", fmt.Errorf("deployment %s: %w", d.Dir(), err)
	}
	k.Checksum = d.BootChecksum
	name, err := boot.OSName(dr.FS())
	if err != nil {
		return nil, "", fmt.Errorf("deployment %s: %w", d.Dir(), err)
	}
	d.kernel, d.osName = k, name
	return k, name, nil
}

// MergeDeployment is the deployment whose /etc and kargs a new deployment
// of stateroot sr starts from: the booted one when it is of sr, else the
// first of sr in the list; nil when there is none.
func (s *Sysroot) MergeDeployment(sr string) *Deployment {
	if s.Booted != nil && s.Booted.Stateroot == sr {
		return s.Booted
	}
	for _, d := range s.Deployments {
		if d.Stateroot == sr {
			return d
		}
	}
	return nil
}

func (s *Sysroot) abs(rel string) string {
	return filepath.Join(s.Path, filepath.FromSlash(path.Clean(rel)))
}
