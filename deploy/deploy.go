package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/ocitree/ocitree/boot"
	"github.com/ocitree/ocitree/deploy/etcmerge"
	"github.com/ocitree/ocitree/deploy/etcsnap"
	"github.com/ocitree/ocitree/ostree"
	"golang.org/x/sys/unix"
)

// CommitInfo is what a commit must provide to be deployed, read from the
// repository before anything is written.
type CommitInfo struct {
	Commit  ostree.Checksum
	Kernel  *boot.Kernel
	OSName  string
	Version string
	// KargsD are the kargs of usr/lib/bootc/kargs.d/*.toml for this
	// architecture; KargsDPresent says whether the directory exists.
	KargsD        []string
	KargsDPresent bool
}

// Inspect checks that commit c is deployable and returns its kernel, OS
// name, version and kargs.d arguments. It refuses, naming the problem: a
// commit without a kernel or with two, with both a populated /etc and
// usr/etc, without usr/etc, without os-release, or with a malformed
// kargs.d file.
func Inspect(repo *ostree.Repo, c ostree.Checksum) (*CommitInfo, error) {
	cm, err := repo.ReadCommit(c)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", c, err)
	}
	fsys, err := repo.CommitFS(c)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", c, err)
	}
	info := &CommitInfo{Commit: c, Version: cm.Metadata.String("version")}
	etcEnts, etcErr := fs.ReadDir(fsys, "etc")
	_, usrEtcErr := fs.Stat(fsys, "usr/etc")
	if info.Kernel, err = boot.FindKernel(fsys); err != nil {
		if usrEtcErr != nil {
			return nil, fmt.Errorf("commit %s is not deployable: %w; it looks like a plain root filesystem: lay it out with `ocitree rootfs prepare DIR` before committing it", c, err)
		}
		return nil, fmt.Errorf("commit %s is not deployable: %w", c, err)
	}
	if usrEtcErr != nil {
		if etcErr == nil {
			return nil, fmt.Errorf("commit %s is not deployable: it has /etc but no /usr/etc; ostree deploys /etc from usr/etc: lay the tree out with `ocitree rootfs prepare DIR` before committing it", c)
		}
		return nil, fmt.Errorf("commit %s is not deployable: no /usr/etc (the default /etc of the image); lay the tree out with `ocitree rootfs prepare DIR` before committing it", c)
	}
	if etcErr == nil && len(etcEnts) > 0 {
		return nil, fmt.Errorf("commit %s is not deployable: tree contains both /etc and /usr/etc; keep the image's configuration only in usr/etc", c)
	}
	if info.OSName, err = boot.OSName(fsys); err != nil {
		return nil, fmt.Errorf("commit %s is not deployable: %w", c, err)
	}
	if info.KargsD, info.KargsDPresent, err = boot.ReadKargsD(fsys); err != nil {
		return nil, fmt.Errorf("commit %s is not deployable: %w", c, err)
	}
	return info, nil
}

// DeployOptions control Deploy.
type DeployOptions struct {
	Stateroot string
	// Info is Inspect's result for the commit to deploy.
	Info *CommitInfo
	// Origin is written as the deployment's .origin (nil: none).
	Origin *ostree.KeyFile
	// Kargs are the deployment's kernel arguments; nil inherits the merge
	// deployment's options verbatim (an old ostree= is replaced later).
	Kargs *string
	// Merge is the deployment whose /etc changes are carried over; nil for
	// none.
	Merge *Deployment
}

// Deploy creates a new deployment of opts.Info.Commit (spec §3): a
// hardlink checkout into ostree/deploy/$SR/deploy/$CSUM.$SERIAL, etc/
// copied from usr/etc, the /etc merge from opts.Merge, the stateroot's var
// stamp, the origin file and the immutable bit. It does not change the
// boot configuration: pass the result to WriteDeployments. The sysroot
// must be locked. Changes is what the /etc merge carried.
func (s *Sysroot) Deploy(opts DeployOptions) (d *Deployment, changes []etcmerge.Change, err error) {
	if s.lockFd < 0 {
		return nil, nil, errors.New("deploy: the sysroot is not locked")
	}
	sr := opts.Stateroot
	if err := validStateroot(sr); err != nil {
		return nil, nil, err
	}
	if _, err := s.root.Stat("ostree/deploy/" + sr); err != nil {
		return nil, nil, fmt.Errorf("no stateroot %s in %s (%w); create it with install or `ostree admin os-init %s`", sr, s.Path, err, sr)
	}
	c := opts.Info.Commit
	serial, err := s.nextSerial(sr, c)
	if err != nil {
		return nil, nil, err
	}
	d = &Deployment{Index: -1, Stateroot: sr, Checksum: c, Serial: serial, BootChecksum: opts.Info.Kernel.Checksum,
		Origin: opts.Origin, Version: opts.Info.Version, kernel: opts.Info.Kernel, osName: opts.Info.OSName}
	switch {
	case opts.Kargs != nil:
		d.Options = *opts.Kargs
	case opts.Merge != nil:
		d.Options = opts.Merge.Options
	}
	ddir := "ostree/deploy/" + sr + "/deploy"
	if err := s.root.MkdirAll(ddir, 0o775); err != nil {
		return nil, nil, fmt.Errorf("deploy: %w", err)
	}
	dir := d.Dir()
	fail := func(err error) (*Deployment, []etcmerge.Change, error) {
		s.root.Remove(dir + EtcSnapSuffix)
		setImmutable(s.root, dir, false)
		s.root.RemoveAll(dir)
		return nil, nil, err
	}
	if err := s.Repo.Checkout(c, s.abs(dir), ostree.CheckoutOptions{}); err != nil {
		return fail(fmt.Errorf("deploy: checkout of %s: %w", c, err))
	}
	if err := fpCheckoutDone.Hit(); err != nil {
		return fail(err)
	}
	// An empty etc/ beside usr/etc is removed (Inspect refused a full one).
	if err := s.root.Remove(dir + "/etc"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fail(fmt.Errorf("deploy: removing the empty etc: %w", err))
	}
	if err := s.Repo.Checkout(c, s.abs(dir+"/etc"), ostree.CheckoutOptions{Subpath: "/usr/etc", NoHardlinks: true}); err != nil {
		return fail(fmt.Errorf("deploy: copying usr/etc to etc: %w", err))
	}
	if err := fpEtcCopied.Hit(); err != nil {
		return fail(err)
	}
	if opts.Merge != nil {
		md := opts.Merge.Dir()
		changes, err = etcmerge.Merge(s.abs(md+"/usr/etc"), s.abs(md+"/etc"), s.abs(dir+"/etc"))
		if err != nil {
			return fail(fmt.Errorf("deploy: /etc merge from %s: %w; fix the local change named above in %s/etc and retry", md, err, md))
		}
		if err := fpEtcMerged.Hit(); err != nil {
			return fail(err)
		}
		// What the merge source's /etc looked like now, for finalize to
		// find the edits made after this deploy.
		snap, err := etcsnap.Take(s.abs(md+"/etc"), path.Base(md))
		if err != nil {
			return fail(fmt.Errorf("deploy: %w", err))
		}
		b, err := snap.Marshal()
		if err != nil {
			return fail(fmt.Errorf("deploy: %w", err))
		}
		if err := writeFileMode(s.root, dir+EtcSnapSuffix, b, 0o600); err != nil {
			return fail(fmt.Errorf("deploy: etc snapshot: %w", err))
		}
	}
	// As libostree 2022.7: the commit's /var is not used (the stateroot's
	// var was seeded at os-init); say so for each entry it has.
	if f, err := s.root.Open(dir + "/var"); err == nil {
		names, _ := f.Readdirnames(-1)
		f.Close()
		sort.Strings(names)
		for _, n := range names {
			fmt.Fprintf(os.Stderr, "note: Deploying commit %s which contains content in /var/%s that will be ignored.\n", c, n)
		}
	}
	vardir := "ostree/deploy/" + sr + "/var"
	for _, p := range []string{dir + "/etc/.updated", vardir + "/.updated"} {
		if err := s.root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fail(fmt.Errorf("deploy: %w", err))
		}
	}
	if _, err := s.root.Lstat(vardir + "/.ostree-selabeled"); errors.Is(err, fs.ErrNotExist) {
		if err := writeFile(s.root, vardir+"/.ostree-selabeled", nil); err != nil {
			return fail(fmt.Errorf("deploy: %w", err))
		}
	}
	if opts.Origin != nil {
		if err := writeFile(s.root, dir+".origin", []byte(opts.Origin.String())); err != nil {
			return fail(fmt.Errorf("deploy: origin: %w", err))
		}
		if err := fpOriginWritten.Hit(); err != nil {
			return fail(err)
		}
	}
	if err := setImmutable(s.root, dir, true); err != nil {
		fmt.Fprintf(os.Stderr, "note: %s: immutable bit not set (%v); the filesystem does not support it\n", dir, err)
	}
	return d, changes, nil
}

// nextSerial is 1 + the highest serial of $CSUM.* directories of sr on
// disk, else 0.
func (s *Sysroot) nextSerial(sr string, c ostree.Checksum) (int, error) {
	f, err := s.root.Open("ostree/deploy/" + sr + "/deploy")
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return 0, err
	}
	next := 0
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, c.String()+".")
		if !ok {
			continue
		}
		if v, err := strconv.Atoi(rest); err == nil && v >= next {
			next = v + 1
		}
	}
	return next, nil
}

// writeFile writes a 0644 file through a temp file and a rename.
func writeFile(root *os.Root, name string, data []byte) error {
	return writeFileMode(root, name, data, 0o644)
}

// writeFileMode is writeFile with another mode.
func writeFileMode(root *os.Root, name string, data []byte, mode os.FileMode) error {
	tmp := path.Join(path.Dir(name), "."+path.Base(name)+".tmp")
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(mode)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		root.Remove(tmp)
	}
	return err
}

// setImmutable sets or clears FS_IMMUTABLE_FL on a directory (the
// deployment root only, as libostree).
func setImmutable(root *os.Root, dir string, on bool) error {
	f, err := root.OpenFile(dir, os.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	flags, err := unix.IoctlGetUint32(int(f.Fd()), unix.FS_IOC_GETFLAGS)
	if err != nil {
		return err
	}
	nf := flags &^ fsImmutableFl
	if on {
		nf |= fsImmutableFl
	}
	if nf == flags {
		return nil
	}
	return unix.IoctlSetPointerInt(int(f.Fd()), unix.FS_IOC_SETFLAGS, int(nf))
}

// fsImmutableFl is FS_IMMUTABLE_FL of linux/fs.h.
const fsImmutableFl = 0x00000010
