package ostree

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// CheckoutOptions control a checkout.
type CheckoutOptions struct {
	// UserMode writes files owned by the caller, without extended attributes
	// and without setuid/setgid bits (`ostree checkout -U`).
	UserMode bool
	// Subpath checks out only this directory or file of the commit.
	Subpath string
	// NoHardlinks always copies content instead of hardlinking objects.
	NoHardlinks bool
}

// Checkout writes the tree of commit rev to dest, which must not exist. The
// tree is built in a temp directory beside dest and renamed into place, so a
// failed checkout leaves nothing at dest. Objects are hardlinked when the
// repository mode stores them exactly as the checkout needs them (bare;
// bare-user in user mode) and the filesystem allows it; otherwise copied.
// Every write is relative to a directory fd and never follows symlinks.
func (r *Repo) Checkout(rev Checksum, dest string, opts CheckoutOptions) error {
	c, err := r.ReadCommit(rev)
	if err != nil {
		return err
	}
	tree, meta := c.RootTree, c.RootMeta
	parts := splitPath(opts.Subpath)
	for i, p := range parts {
		dt, err := r.ReadDirTree(tree)
		if err != nil {
			return err
		}
		if d, ok := dt.LookupDir(p); ok {
			tree, meta = d.Tree, d.Meta
			continue
		}
		if f, ok := dt.LookupFile(p); ok && i == len(parts)-1 {
			return r.checkoutOneFile(f, dest, opts)
		}
		return fmt.Errorf("checkout: %s not found in commit %s", opts.Subpath, rev)
	}
	parent, base, pfd, err := openParent(dest)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstatat(pfd, base, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
		return fmt.Errorf("checkout: %s already exists", dest)
	}
	tmp := "." + base + ".ocitree-checkout-" + randomSuffix()
	co := &checkouter{r: r, opts: opts, sem: make(chan struct{}, runtime.GOMAXPROCS(0)*2)}
	co.hardlink = canHardlink(r.mode, opts)
	if err := co.dir(pfd, tmp, tree, meta); err != nil {
		os.RemoveAll(filepath.Join(parent, tmp))
		return fmt.Errorf("checkout %s: %w", rev, err)
	}
	if err := unix.Renameat2(pfd, tmp, pfd, base, unix.RENAME_NOREPLACE); err != nil {
		os.RemoveAll(filepath.Join(parent, tmp))
		return fmt.Errorf("checkout: moving into %s: %w", dest, err)
	}
	return nil
}

// canHardlink says whether objects can be linked as they are: bare objects
// carry the real owner and mode (only right for a full checkout); bare-user
// and bare-user-only objects carry the caller's, right for user mode. This is
// libostree's rule.
func canHardlink(m Mode, opts CheckoutOptions) bool {
	if opts.NoHardlinks {
		return false
	}
	if opts.UserMode {
		return m == ModeBareUser || m == ModeBareUserOnly
	}
	return m == ModeBare
}

type checkouter struct {
	r        *Repo
	opts     CheckoutOptions
	hardlink bool
	sem      chan struct{} // bounds parallel subtree checkouts
	metas    sync.Map      // Checksum -> *DirMeta
}

func (co *checkouter) dirMeta(c Checksum) (*DirMeta, error) {
	if v, ok := co.metas.Load(c); ok {
		return v.(*DirMeta), nil
	}
	dm, err := co.r.ReadDirMeta(c)
	if err != nil {
		return nil, err
	}
	co.metas.Store(c, dm)
	return dm, nil
}

// dir creates directory name below pfd and fills it from tree.
func (co *checkouter) dir(pfd int, name string, tree, meta Checksum) error {
	dm, err := co.dirMeta(meta)
	if err != nil {
		return err
	}
	dt, err := co.r.ReadDirTree(tree)
	if err != nil {
		return err
	}
	// Created 0700 and chmodded once filled (a 0555 directory could not be
	// filled), except in user mode when mkdir can give the final mode.
	perm, final := uint32(0o700), co.mkdirFinal(dm)
	if final {
		perm = dm.Mode & modePermMask
	}
	if err := unix.Mkdirat(pfd, name, perm); err != nil {
		return fmt.Errorf("mkdir %s: %w", name, err)
	}
	fd, err := unix.Openat(pfd, name, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", name, err)
	}
	defer unix.Close(fd)
	for _, f := range dt.Files {
		if err := co.file(fd, f.Name, f.Checksum); err != nil {
			return fmt.Errorf("%s/%s: %w", name, f.Name, err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(dt.Dirs))
	for i, d := range dt.Dirs {
		select {
		case co.sem <- struct{}{}:
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[i] = co.dir(fd, d.Name, d.Tree, d.Meta)
				<-co.sem
			}()
		default:
			errs[i] = co.dir(fd, d.Name, d.Tree, d.Meta)
		}
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("%s/%w", name, wrapName(dt.Dirs[i].Name, err))
		}
	}
	if final {
		return nil
	}
	return co.applyDirMeta(fd, dm)
}

// mkdirFinal reports whether mkdir can create the directory with its final
// mode: user mode, owner-writable and searchable, no bit the umask clears
// and no setgid/sticky (which mkdir may not keep).
func (co *checkouter) mkdirFinal(dm *DirMeta) bool {
	perm := dm.Mode & modePermMask
	return co.opts.UserMode && perm&0o700 == 0o700 && perm&0o7000 == 0 && perm&co.r.umask == 0
}

func wrapName(name string, err error) error { return fmt.Errorf("%s: %w", name, err) }

func (co *checkouter) applyDirMeta(fd int, dm *DirMeta) error {
	if co.opts.UserMode {
		// ostree -U keeps setgid on directories (var/local is 2775 on Debian).
		return unix.Fchmod(fd, dm.Mode&modePermMask)
	}
	if err := unix.Fchown(fd, int(dm.UID), int(dm.GID)); err != nil {
		return fmt.Errorf("chown: %w", err)
	}
	for _, x := range dm.Xattrs {
		if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
			return fmt.Errorf("setting xattr %s: %w", x.Name, err)
		}
	}
	return unix.Fchmod(fd, dm.Mode&modePermMask)
}

// file checks out one content object as name below dfd.
func (co *checkouter) file(dfd int, name string, c Checksum) error {
	if co.hardlink {
		err := co.link(dfd, name, c)
		if err == nil {
			return nil
		}
		if !errors.Is(err, errNoLink) {
			return err
		}
	}
	return co.copy(dfd, name, c)
}

var errNoLink = errors.New("hardlink not possible")

// link hardlinks the object; errNoLink asks the caller to copy instead.
func (co *checkouter) link(dfd int, name string, c Checksum) error {
	rel := objectRelPath(c, ObjFile, co.r.mode)
	if co.r.mode == ModeBareUser {
		// Symlinks are stored as regular files here: those must be created.
		// One getxattr tells, without opening the object.
		var buf [512]byte
		n, err := unix.Lgetxattr(filepath.Join(co.r.path, "objects", rel), "user.ostreemeta", buf[:])
		if errors.Is(err, unix.ENOENT) {
			return &MissingObjectError{Name: ObjectName{c, ObjFile}}
		}
		if err != nil && !errors.Is(err, unix.ERANGE) {
			return fmt.Errorf("reading user.ostreemeta of %s: %w", rel, err)
		}
		if err != nil || n < 12 || binary.BigEndian.Uint32(buf[8:12])&modeTypeMask != modeReg {
			return errNoLink
		}
	}
	err := unix.Linkat(co.r.objFd, rel, dfd, name, 0)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, unix.ENOENT):
		return &MissingObjectError{Name: ObjectName{c, ObjFile}}
	case errors.Is(err, unix.EXDEV), errors.Is(err, unix.EMLINK), errors.Is(err, unix.EPERM):
		return errNoLink
	}
	return fmt.Errorf("hardlink: %w", err)
}

func (co *checkouter) copy(dfd int, name string, c Checksum) error {
	cont, err := co.r.OpenContent(c)
	if err != nil {
		return err
	}
	defer cont.Payload.Close()
	m := cont.Meta
	if m.IsSymlink() {
		return co.symlink(dfd, name, m)
	}
	perm := m.Mode & modePermMask
	if co.opts.UserMode {
		// As ostree -U: no setuid/setgid, and always readable by the owner.
		perm = perm&^(unix.S_ISUID|unix.S_ISGID) | 0o400
	}
	fd, err := unix.Openat(dfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	f := os.NewFile(uintptr(fd), name)
	defer f.Close()
	n, err := io.Copy(f, cont.Payload)
	if err != nil {
		return fmt.Errorf("writing: %w", err)
	}
	if n != cont.Size {
		return fmt.Errorf("object %s: wrote %d of %d bytes", c, n, cont.Size)
	}
	if !co.opts.UserMode {
		if err := unix.Fchown(fd, int(m.UID), int(m.GID)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
		for _, x := range m.Xattrs {
			if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
				return fmt.Errorf("setting xattr %s: %w", x.Name, err)
			}
		}
	}
	if err := unix.Fchmod(fd, perm); err != nil {
		return fmt.Errorf("chmod: %w", err)
	}
	return f.Close()
}

func (co *checkouter) symlink(dfd int, name string, m *FileMeta) error {
	if err := unix.Symlinkat(m.Target, dfd, name); err != nil {
		return fmt.Errorf("symlink: %w", err)
	}
	if co.opts.UserMode {
		return nil
	}
	if err := unix.Fchownat(dfd, name, int(m.UID), int(m.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown symlink: %w", err)
	}
	p := "/proc/self/fd/" + strconv.Itoa(dfd) + "/" + name
	for _, x := range m.Xattrs {
		if err := unix.Lsetxattr(p, x.Name, x.Value, 0); err != nil {
			return fmt.Errorf("setting xattr %s on symlink: %w", x.Name, err)
		}
	}
	return nil
}

// checkoutOneFile checks out a single file object as dest, through a temp
// name beside it so a failure leaves nothing at dest.
func (r *Repo) checkoutOneFile(c Checksum, dest string, opts CheckoutOptions) error {
	_, base, pfd, err := openParent(dest)
	if err != nil {
		return err
	}
	defer unix.Close(pfd)
	co := &checkouter{r: r, opts: opts, hardlink: canHardlink(r.mode, opts)}
	tmp := "." + base + ".ocitree-checkout-" + randomSuffix()
	if err := co.file(pfd, tmp, c); err != nil {
		unix.Unlinkat(pfd, tmp, 0)
		return fmt.Errorf("checkout %s: %w", dest, err)
	}
	if err := unix.Renameat2(pfd, tmp, pfd, base, unix.RENAME_NOREPLACE); err != nil {
		unix.Unlinkat(pfd, tmp, 0)
		return fmt.Errorf("checkout: moving into %s: %w", dest, err)
	}
	return nil
}

// openParent opens the directory that will hold dest and returns it with
// dest's last component.
func openParent(dest string) (parent, base string, fd int, err error) {
	parent, base = filepath.Split(filepath.Clean(dest))
	if parent == "" {
		parent = "."
	}
	fd, err = unix.Open(parent, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return "", "", -1, fmt.Errorf("checkout: opening %s: %w", parent, err)
	}
	return parent, base, fd, nil
}
