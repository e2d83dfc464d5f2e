package etcmerge

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Merge carries the local changes (Diff(orig, modified)) into target (the new deployment's
// etc, already a copy of its usr/etc), exactly as libostree's merge_configuration_from,
// and returns them (also with an error, unless the diff itself failed).
//
// In that order: every removed path is deleted from target (whatever target has there);
// every modified, then every added path is copied from modified into target, replacing
// what target has there: regular files and symlinks with their content or target, owner,
// mode, timestamps and xattrs; directories recursively, created 0700 and then given the
// owner, mode and xattrs of their source. Missing parents are created the same way, and
// the immediate parent of each copied path always gets the owner, mode and xattrs of its
// counterpart in modified. A directory that target already has is left as it is (so an
// owner or mode change of a directory that still exists is not carried). Sockets, FIFOs
// and devices are skipped at the top level of a change; inside a copied directory they
// are an error, as in libostree.
//
// Merge refuses, before changing anything in target (libostree fails half-way, after it
// has applied the changes that came before; it discards the deployment either way):
//   - a modified or added non-directory where target has a directory ("Modified config
//     file newly defaults to directory", libostree's error);
//   - a change (also a removal) below a path that target has as a non-directory
//     (libostree fails there too) or as a symlink (libostree follows it, possibly out of
//     the deployment, and writes or deletes there; Merge never follows symlinks);
//   - a socket, FIFO or device inside a directory it would copy.
func Merge(orig, modified, target string) ([]Change, error) {
	changes, err := Diff(orig, modified)
	if err != nil {
		return nil, err
	}
	return changes, Apply(modified, target, changes)
}

// Apply carries changes (a subset of a Diff whose modified side is
// modified) into target with Merge's rules and its checks before anything
// is written. Merge is Diff then Apply; finalize applies a few changes one
// at a time.
func Apply(modified, target string, changes []Change) error {
	mfd, err := openRoot(modified)
	if err != nil {
		return err
	}
	defer unix.Close(mfd)
	tfd, err := openRoot(target)
	if err != nil {
		return err
	}
	defer unix.Close(tfd)
	m := merger{modified: modified, target: target, mfd: mfd, tfd: tfd}
	if err := m.check(changes); err != nil {
		return err
	}
	for _, k := range []Kind{Removed, Modified, Added} {
		for _, c := range changes {
			if c.Kind != k {
				continue
			}
			if k == Removed {
				err = m.remove(c.Path)
			} else {
				err = m.copyChange(c.Path)
			}
			if err != nil {
				return fmt.Errorf("merging /etc change %c %s: %w", byte(c.Kind), c.Path, err)
			}
		}
	}
	return nil
}

type merger struct {
	modified, target string
	mfd, tfd         int
}

// ErrNewDefaultIsDirectory is returned (wrapped) by Merge when a locally modified or added
// file is a directory in the new defaults; libostree refuses the deploy in that case.
var ErrNewDefaultIsDirectory = errors.New("modified config file newly defaults to directory, cannot merge")

// ErrNotDirectory is returned (wrapped) by Merge when a change lies below a path that the
// new /etc has as a symlink or other non-directory.
var ErrNotDirectory = errors.New("not a directory in the new /etc (symlinks are not followed)")

func split(rel string) (parent, name string) {
	i := strings.LastIndexByte(rel, '/')
	if i < 0 {
		return "", rel
	}
	return rel[:i], rel[i+1:]
}

// check validates all changes against the untouched target, so that a merge libostree
// would abort half-way is refused before anything is written.
func (m *merger) check(changes []Change) error {
	for _, c := range changes {
		if c.Kind != Removed {
			continue
		}
		if _, err := m.targetAncestors(c.Path); err != nil {
			return err
		}
	}
	// replaced holds the paths that will be copied afresh as directories from modified;
	// everything below them mirrors modified and cannot conflict.
	replaced := map[string]bool{}
	for _, k := range []Kind{Modified, Added} {
	next:
		for _, c := range changes {
			if c.Kind != k {
				continue
			}
			for p := c.Path; ; {
				i := strings.LastIndexByte(p, '/')
				if i < 0 {
					break
				}
				p = p[:i]
				if replaced[p] {
					continue next
				}
			}
			mst, err := m.lstatModified(c.Path)
			if err != nil {
				return err
			}
			mdir := mst.Mode&unix.S_IFMT == unix.S_IFDIR
			exists, err := m.targetAncestors(c.Path)
			if err != nil {
				return err
			}
			tdir := false
			if exists {
				parent, name := split(c.Path)
				tst, err := m.lstatTarget(parent, name)
				if err != nil && !errors.Is(err, unix.ENOENT) {
					return err
				}
				tdir = err == nil && tst.Mode&unix.S_IFMT == unix.S_IFDIR
			}
			if tdir && !mdir {
				return fmt.Errorf("%s: %w", join(m.target, c.Path), ErrNewDefaultIsDirectory)
			}
			if mdir && !tdir {
				replaced[c.Path] = true
				if err := m.checkCopyable(c.Path); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// checkCopyable fails if the directory rel of modified, which will be copied
// recursively, holds something other than directories, regular files and symlinks.
func (m *merger) checkCopyable(rel string) error {
	fd, err := openPath(m.mfd, rel)
	if err != nil {
		return fmt.Errorf("opening %s: %w", join(m.modified, rel), err)
	}
	defer unix.Close(fd)
	names, err := readNames(fd)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", join(m.modified, rel), err)
	}
	for _, n := range names {
		crel := join(rel, n)
		st, err := lstatAt(fd, n)
		if err != nil {
			return fmt.Errorf("stat %s: %w", join(m.modified, crel), err)
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			if err := m.checkCopyable(crel); err != nil {
				return err
			}
		case unix.S_IFREG, unix.S_IFLNK:
		default:
			return fmt.Errorf("%s: %w", join(m.modified, crel), ErrSpecialFile)
		}
	}
	return nil
}

// targetAncestors walks the parents of rel in target: it reports whether they all exist,
// and fails if one is not a directory.
func (m *merger) targetAncestors(rel string) (bool, error) {
	parent, _ := split(rel)
	if parent == "" {
		return true, nil
	}
	fd, err := unix.Dup(m.tfd)
	if err != nil {
		return false, err
	}
	defer func() { unix.Close(fd) }()
	done := ""
	for _, c := range strings.Split(parent, "/") {
		done = join(done, c)
		st, err := lstatAt(fd, c)
		if errors.Is(err, unix.ENOENT) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("stat %s: %w", join(m.target, done), err)
		}
		if st.Mode&unix.S_IFMT != unix.S_IFDIR {
			return false, fmt.Errorf("%s (needed for %s): %w", join(m.target, done), rel, ErrNotDirectory)
		}
		nfd, err := openDirAt(fd, c)
		if err != nil {
			return false, fmt.Errorf("opening %s: %w", join(m.target, done), err)
		}
		unix.Close(fd)
		fd = nfd
	}
	return true, nil
}

func (m *merger) lstatModified(rel string) (unix.Stat_t, error) {
	parent, name := split(rel)
	pfd, err := openPath(m.mfd, parent)
	if err != nil {
		return unix.Stat_t{}, fmt.Errorf("opening %s: %w", join(m.modified, parent), err)
	}
	defer unix.Close(pfd)
	st, err := lstatAt(pfd, name)
	if err != nil {
		return st, fmt.Errorf("stat %s: %w", join(m.modified, rel), err)
	}
	return st, nil
}

func (m *merger) lstatTarget(parent, name string) (unix.Stat_t, error) {
	pfd, err := openPath(m.tfd, parent)
	if err != nil {
		return unix.Stat_t{}, fmt.Errorf("opening %s: %w", join(m.target, parent), err)
	}
	defer unix.Close(pfd)
	return lstatAt(pfd, name)
}

// openPath opens the directory rel below root, component by component, never following a
// symlink. rel "" opens (a duplicate of) root.
func openPath(root int, rel string) (int, error) {
	fd, err := unix.Dup(root)
	if err != nil {
		return -1, err
	}
	if rel == "" {
		return fd, nil
	}
	for _, c := range strings.Split(rel, "/") {
		nfd, err := openDirAt(fd, c)
		unix.Close(fd)
		if err != nil {
			return -1, err
		}
		fd = nfd
	}
	return fd, nil
}

// remove deletes rel from target recursively (libostree: glnx_shutil_rm_rf_at); a missing
// path or parent is not an error.
func (m *merger) remove(rel string) error {
	parent, name := split(rel)
	pfd, err := openPath(m.tfd, parent)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return fmt.Errorf("%s: %w", join(m.target, parent), ErrNotDirectory)
	}
	if err != nil {
		return fmt.Errorf("opening %s: %w", join(m.target, parent), err)
	}
	defer unix.Close(pfd)
	return removeAt(pfd, name, join(m.target, rel))
}

func removeAt(dfd int, name, show string) error {
	st, err := lstatAt(dfd, name)
	if errors.Is(err, unix.ENOENT) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("stat %s: %w", show, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR {
		if err := unix.Unlinkat(dfd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("removing %s: %w", show, err)
		}
		return nil
	}
	fd, err := openDirAt(dfd, name)
	if err != nil {
		return fmt.Errorf("opening %s: %w", show, err)
	}
	names, err := readNames(fd)
	if err == nil {
		for _, n := range names {
			if err = removeAt(fd, n, show+"/"+n); err != nil {
				break
			}
		}
	} else {
		err = fmt.Errorf("reading directory %s: %w", show, err)
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	if err := unix.Unlinkat(dfd, name, unix.AT_REMOVEDIR); err != nil {
		return fmt.Errorf("removing %s: %w", show, err)
	}
	return nil
}

// ensureDir opens the directory rel in target, creating missing components (0700, then
// owner, mode and xattrs of the same directory in modified). rel itself always gets the
// attributes of its counterpart in modified, also when it existed.
func (m *merger) ensureDir(rel string) (int, error) {
	fd, err := unix.Dup(m.tfd)
	if err != nil {
		return -1, err
	}
	comps := strings.Split(rel, "/")
	done := ""
	for i, c := range comps {
		done = join(done, c)
		created := false
		nfd, err := openDirAt(fd, c)
		if errors.Is(err, unix.ENOENT) {
			if err = unix.Mkdirat(fd, c, 0o700); err == nil || errors.Is(err, unix.EEXIST) {
				created = err == nil
				nfd, err = openDirAt(fd, c)
			}
		}
		unix.Close(fd)
		if errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
			return -1, fmt.Errorf("%s: %w", join(m.target, done), ErrNotDirectory)
		}
		if err != nil {
			return -1, fmt.Errorf("creating directory %s: %w", join(m.target, done), err)
		}
		fd = nfd
		if created || i == len(comps)-1 {
			src, err := openPath(m.mfd, done)
			if err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("opening %s: %w", join(m.modified, done), err)
			}
			err = copyDirAttrs(src, fd)
			unix.Close(src)
			if err != nil {
				unix.Close(fd)
				return -1, fmt.Errorf("copying the attributes of %s to %s: %w", join(m.modified, done), join(m.target, done), err)
			}
		}
	}
	return fd, nil
}

// copyChange copies one modified or added path (libostree: copy_modified_config_file).
func (m *merger) copyChange(rel string) error {
	parent, name := split(rel)
	mpfd, err := openPath(m.mfd, parent)
	if err != nil {
		return fmt.Errorf("opening %s: %w", join(m.modified, parent), err)
	}
	defer unix.Close(mpfd)
	mst, err := lstatAt(mpfd, name)
	if err != nil {
		return fmt.Errorf("reading modified config file %s: %w", join(m.modified, rel), err)
	}
	var tpfd int
	if parent != "" {
		tpfd, err = m.ensureDir(parent)
	} else {
		tpfd, err = unix.Dup(m.tfd)
	}
	if err != nil {
		return err
	}
	defer unix.Close(tpfd)
	mdir := mst.Mode&unix.S_IFMT == unix.S_IFDIR
	tst, err := lstatAt(tpfd, name)
	switch {
	case errors.Is(err, unix.ENOENT):
	case err != nil:
		return fmt.Errorf("stat %s: %w", join(m.target, rel), err)
	case tst.Mode&unix.S_IFMT == unix.S_IFDIR:
		if !mdir {
			return fmt.Errorf("%s: %w", join(m.target, rel), ErrNewDefaultIsDirectory)
		}
		return nil // libostree keeps the directory the new defaults have
	default:
		if err := unix.Unlinkat(tpfd, name, 0); err != nil {
			return fmt.Errorf("removing %s: %w", join(m.target, rel), err)
		}
	}
	switch mst.Mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return copyTree(mpfd, name, tpfd, join(m.modified, rel), join(m.target, rel))
	case unix.S_IFREG, unix.S_IFLNK:
		return copyEntry(mpfd, name, &mst, tpfd, join(m.modified, rel), join(m.target, rel))
	}
	return nil // libostree: "Ignoring non-regular/non-symlink file found during /etc merge"
}

// copyTree copies directory name from sp to dp recursively (libostree: copy_dir_recurse).
func copyTree(sp int, name string, dp int, sshow, dshow string) error {
	sfd, err := openDirAt(sp, name)
	if err != nil {
		return fmt.Errorf("opening %s: %w", sshow, err)
	}
	defer unix.Close(sfd)
	if err := unix.Mkdirat(dp, name, 0o700); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("creating directory %s: %w", dshow, err)
	}
	dfd, err := openDirAt(dp, name)
	if err != nil {
		return fmt.Errorf("opening %s: %w", dshow, err)
	}
	defer unix.Close(dfd)
	if err := copyDirAttrs(sfd, dfd); err != nil {
		return fmt.Errorf("copying the attributes of %s to %s: %w", sshow, dshow, err)
	}
	names, err := readNames(sfd)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", sshow, err)
	}
	for _, n := range names {
		st, err := lstatAt(sfd, n)
		if err != nil {
			return fmt.Errorf("stat %s/%s: %w", sshow, n, err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			err = copyTree(sfd, n, dfd, sshow+"/"+n, dshow+"/"+n)
		} else {
			err = copyEntry(sfd, n, &st, dfd, sshow+"/"+n, dshow+"/"+n)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// ErrSpecialFile is returned (wrapped) when a copied directory holds a socket, FIFO or
// device; libostree's copy fails the same way ("Cannot copy non-regular/non-symlink file").
var ErrSpecialFile = errors.New("cannot copy non-regular/non-symlink file")

func tempName() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return ".etcmerge-" + hex.EncodeToString(b[:])
}

// copyEntry copies a regular file or symlink name from sp to the same name in dp, under
// a temporary name first, then renamed over whatever dp has there.
func copyEntry(sp int, name string, st *unix.Stat_t, dp int, sshow, dshow string) error {
	tmp := tempName()
	var err error
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
		err = copyRegular(sp, name, st, dp, tmp)
	case unix.S_IFLNK:
		err = copySymlink(sp, name, st, dp, tmp)
	default:
		return fmt.Errorf("%s: %w", sshow, ErrSpecialFile)
	}
	if err == nil {
		err = unix.Renameat(dp, tmp, dp, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dp, tmp, 0)
		return fmt.Errorf("copying %s to %s: %w", sshow, dshow, err)
	}
	return nil
}

func copyRegular(sp int, name string, st *unix.Stat_t, dp int, tmp string) error {
	src, err := openRegularAt(sp, name)
	if err != nil {
		return err
	}
	defer src.Close()
	fd, err := unix.Openat(dp, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	dst := os.NewFile(uintptr(fd), tmp)
	defer dst.Close()
	if _, err := io.Copy(dst, src); err != nil {
		return err
	}
	if err := unix.Fchown(fd, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	if err := unix.Fchmod(fd, st.Mode&0o7777); err != nil {
		return err
	}
	ts := []unix.Timespec{st.Atim, st.Mtim}
	if err := unix.UtimesNanoAt(dp, tmp, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	xs, err := listXattrs(fdXattr(int(src.Fd())))
	if err != nil {
		return err
	}
	for _, x := range xs {
		if err := unix.Fsetxattr(fd, x.name, x.value, 0); err != nil {
			return fmt.Errorf("setting xattr %s: %w", x.name, err)
		}
	}
	return dst.Close()
}

func copySymlink(sp int, name string, st *unix.Stat_t, dp int, tmp string) error {
	target, err := readlinkAt(sp, name)
	if err != nil {
		return err
	}
	if err := unix.Symlinkat(target, dp, tmp); err != nil {
		return err
	}
	if err := unix.Fchownat(dp, tmp, int(st.Uid), int(st.Gid), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	xs, err := listXattrs(linkXattr(procPath(sp, name)))
	if err != nil {
		return err
	}
	dst := procPath(dp, tmp)
	for _, x := range xs {
		if err := unix.Lsetxattr(dst, x.name, x.value, 0); err != nil {
			return fmt.Errorf("setting xattr %s: %w", x.name, err)
		}
	}
	return nil
}

// copyDirAttrs gives dst the xattrs (added to those it has), owner and mode of src
// (libostree: dirfd_copy_attributes_and_xattrs).
func copyDirAttrs(src, dst int) error {
	xs, err := listXattrs(fdXattr(src))
	if err != nil {
		return err
	}
	for _, x := range xs {
		if err := unix.Fsetxattr(dst, x.name, x.value, 0); err != nil {
			return fmt.Errorf("setting xattr %s: %w", x.name, err)
		}
	}
	var st unix.Stat_t
	if err := unix.Fstat(src, &st); err != nil {
		return err
	}
	if err := unix.Fchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return unix.Fchmod(dst, st.Mode&0o7777)
}

// procPath names an entry of an open directory for the l*xattr calls: the directory's
// magic link is resolved to that very directory, and the last component is not followed.
func procPath(dfd int, name string) string {
	return fmt.Sprintf("/proc/self/fd/%d/%s", dfd, name)
}
