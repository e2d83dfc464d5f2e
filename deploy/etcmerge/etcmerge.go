// Package etcmerge computes and applies the local changes of a deployment's /etc the
// way libostree does when it deploys a new tree (merge_configuration_from in
// ostree-sysroot-deploy.c, 2022.7): the differences between the defaults (usr/etc) and the
// edited /etc of the merge deployment are found like ostree_diff_dirs with
// OSTREE_DIFF_FLAGS_IGNORE_XATTRS, and then carried into the new deployment's /etc.
//
// All file system access is relative to directory descriptors opened once per call, never
// follows a symlink, and writes new files under a temporary name before renaming them
// into place. Existing files of the target are replaced, never written to, so an inode the
// target shares with a repository is never modified.
package etcmerge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// Kind says how a path differs between the defaults and the modified /etc.
type Kind byte

// The kinds of change, with the letters `ostree admin config-diff` prints.
const (
	// Modified: present in both with a different type, content, owner, mode or symlink target.
	Modified Kind = 'M'
	// Added: present only in the modified /etc (every descendant of an added directory is
	// listed too).
	Added Kind = 'A'
	// Removed: present only in the defaults (descendants are not listed).
	Removed Kind = 'D'
)

// String returns the letter of the kind.
func (k Kind) String() string { return string(rune(k)) }

// Change is one difference between the defaults and the modified /etc.
type Change struct {
	Kind Kind
	// Path is relative to etc, "/"-separated, e.g. "ssh/sshd_config".
	Path string
}

// Diff lists what differs between orig (the defaults: the current deployment's usr/etc)
// and modified (its etc), like `ostree admin config-diff`, sorted by path.
//
// As in libostree, an entry differs when its file type, owner, full mode, symlink target
// or (regular files) content differ; extended attributes and timestamps are not compared
// (libostree passes OSTREE_DIFF_FLAGS_IGNORE_XATTRS because SELinux labels of usr/etc and
// etc differ). Directories present in both are always descended; a removed directory is
// listed alone; an added directory is listed with all its descendants.
func Diff(orig, modified string) ([]Change, error) {
	ofd, err := openRoot(orig)
	if err != nil {
		return nil, err
	}
	defer unix.Close(ofd)
	mfd, err := openRoot(modified)
	if err != nil {
		return nil, err
	}
	defer unix.Close(mfd)
	d := differ{orig: orig, modified: modified}
	if err := d.dir(ofd, mfd, ""); err != nil {
		return nil, err
	}
	sortChanges(d.out)
	return d.out, nil
}

func sortChanges(cs []Change) {
	sort.SliceStable(cs, func(i, j int) bool { return cs[i].Path < cs[j].Path })
}

// Format writes changes like `ostree admin config-diff` prints them: first the modified,
// then the removed, then the added paths, one "K    path" line each (the kind letter and
// four spaces), in the order of changes within each group.
func Format(w io.Writer, changes []Change) error {
	var b bytes.Buffer
	for _, k := range []Kind{Modified, Removed, Added} {
		for _, c := range changes {
			if c.Kind == k {
				fmt.Fprintf(&b, "%c    %s\n", byte(c.Kind), c.Path)
			}
		}
	}
	_, err := w.Write(b.Bytes())
	if err != nil {
		return fmt.Errorf("writing the /etc changes: %w", err)
	}
	return nil
}

// Summary is the line libostree prints (and logs to the journal) before it applies the
// changes: "Copying /etc changes: 1 modified, 0 removed, 2 added".
func Summary(changes []Change) string {
	var n [3]int
	for _, c := range changes {
		switch c.Kind {
		case Modified:
			n[0]++
		case Removed:
			n[1]++
		case Added:
			n[2]++
		}
	}
	return fmt.Sprintf("Copying /etc changes: %d modified, %d removed, %d added", n[0], n[1], n[2])
}

// openRoot opens a directory given by path for fd-relative work; a final symlink is refused.
func openRoot(path string) (int, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("opening directory %s: %w", path, err)
	}
	return fd, nil
}

// openDirAt opens name (one component) below dfd as a directory without following a symlink.
func openDirAt(dfd int, name string) (int, error) {
	return unix.Openat(dfd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
}

// readNames lists the entries of an open directory (readdir order, without . and ..).
func readNames(dfd int) ([]string, error) {
	nfd, err := unix.Dup(dfd)
	if err != nil {
		return nil, err
	}
	if _, err := unix.Seek(nfd, 0, io.SeekStart); err != nil {
		unix.Close(nfd)
		return nil, err
	}
	f := os.NewFile(uintptr(nfd), "dir")
	defer f.Close()
	return f.Readdirnames(-1)
}

func lstatAt(dfd int, name string) (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
	return st, err
}

// fileType is GIO's classification that ostree_diff_dirs compares: regular, directory,
// symlink, or "special" for everything else.
func fileType(mode uint32) uint32 {
	switch mode & unix.S_IFMT {
	case unix.S_IFREG, unix.S_IFDIR, unix.S_IFLNK:
		return mode & unix.S_IFMT
	}
	return 0
}

func join(prefix, name string) string {
	if prefix == "" {
		return name
	}
	return prefix + "/" + name
}

type differ struct {
	orig, modified string
	out            []Change
}

func (d *differ) dir(ofd, mfd int, prefix string) error {
	onames, err := readNames(ofd)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", join(d.orig, prefix), err)
	}
	inOrig := make(map[string]bool, len(onames))
	for _, name := range onames {
		inOrig[name] = true
		rel := join(prefix, name)
		ost, err := lstatAt(ofd, name)
		if err != nil {
			return fmt.Errorf("stat %s: %w", join(d.orig, rel), err)
		}
		mst, err := lstatAt(mfd, name)
		if errors.Is(err, unix.ENOENT) {
			d.out = append(d.out, Change{Removed, rel})
			continue
		}
		if err != nil {
			return fmt.Errorf("stat %s: %w", join(d.modified, rel), err)
		}
		if fileType(ost.Mode) != fileType(mst.Mode) {
			d.out = append(d.out, Change{Modified, rel})
			continue
		}
		same, err := d.same(ofd, mfd, name, rel, &ost, &mst)
		if err != nil {
			return err
		}
		if !same {
			d.out = append(d.out, Change{Modified, rel})
		}
		if ost.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := d.subdirs(ofd, mfd, name, rel); err != nil {
				return err
			}
		}
	}
	mnames, err := readNames(mfd)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", join(d.modified, prefix), err)
	}
	for _, name := range mnames {
		if inOrig[name] {
			continue
		}
		rel := join(prefix, name)
		d.out = append(d.out, Change{Added, rel})
		mst, err := lstatAt(mfd, name)
		if err != nil {
			return fmt.Errorf("stat %s: %w", join(d.modified, rel), err)
		}
		if mst.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := d.added(mfd, name, rel); err != nil {
				return err
			}
		}
	}
	return nil
}

func (d *differ) subdirs(ofd, mfd int, name, rel string) error {
	o, err := openDirAt(ofd, name)
	if err != nil {
		return fmt.Errorf("opening %s: %w", join(d.orig, rel), err)
	}
	defer unix.Close(o)
	m, err := openDirAt(mfd, name)
	if err != nil {
		return fmt.Errorf("opening %s: %w", join(d.modified, rel), err)
	}
	defer unix.Close(m)
	return d.dir(o, m, rel)
}

// added lists every descendant of an added directory, pre-order.
func (d *differ) added(pfd int, name, rel string) error {
	fd, err := openDirAt(pfd, name)
	if err != nil {
		return fmt.Errorf("opening %s: %w", join(d.modified, rel), err)
	}
	defer unix.Close(fd)
	names, err := readNames(fd)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", join(d.modified, rel), err)
	}
	for _, n := range names {
		crel := join(rel, n)
		d.out = append(d.out, Change{Added, crel})
		st, err := lstatAt(fd, n)
		if err != nil {
			return fmt.Errorf("stat %s: %w", join(d.modified, crel), err)
		}
		if st.Mode&unix.S_IFMT == unix.S_IFDIR {
			if err := d.added(fd, n, crel); err != nil {
				return err
			}
		}
	}
	return nil
}

// same reports whether two entries of the same type have equal ostree content checksums
// computed without xattrs: uid, gid, mode, symlink target and regular file content.
func (d *differ) same(ofd, mfd int, name, rel string, ost, mst *unix.Stat_t) (bool, error) {
	if ost.Uid != mst.Uid || ost.Gid != mst.Gid || ost.Mode != mst.Mode {
		return false, nil
	}
	switch ost.Mode & unix.S_IFMT {
	case unix.S_IFLNK:
		ot, err := readlinkAt(ofd, name)
		if err != nil {
			return false, fmt.Errorf("reading symlink %s: %w", join(d.orig, rel), err)
		}
		mt, err := readlinkAt(mfd, name)
		if err != nil {
			return false, fmt.Errorf("reading symlink %s: %w", join(d.modified, rel), err)
		}
		return ot == mt, nil
	case unix.S_IFREG:
		if ost.Size != mst.Size {
			return false, nil
		}
		return d.sameContent(ofd, mfd, name, rel)
	}
	return true, nil
}

func readlinkAt(dfd int, name string) (string, error) {
	for n := 256; ; n *= 2 {
		buf := make([]byte, n)
		got, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", err
		}
		if got < n {
			return string(buf[:got]), nil
		}
	}
}

// openRegularAt opens a regular file below dfd for reading, refusing anything else.
func openRegularAt(dfd int, name string) (*os.File, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, fmt.Errorf("not a regular file any more: %w", unix.EINVAL)
	}
	return os.NewFile(uintptr(fd), name), nil
}

func (d *differ) sameContent(ofd, mfd int, name, rel string) (bool, error) {
	of, err := openRegularAt(ofd, name)
	if err != nil {
		return false, fmt.Errorf("opening %s: %w", join(d.orig, rel), err)
	}
	defer of.Close()
	mf, err := openRegularAt(mfd, name)
	if err != nil {
		return false, fmt.Errorf("opening %s: %w", join(d.modified, rel), err)
	}
	defer mf.Close()
	const chunk = 64 << 10
	ob := make([]byte, chunk)
	mb := make([]byte, chunk)
	for {
		on, oerr := io.ReadFull(of, ob)
		mn, merr := io.ReadFull(mf, mb)
		if !bytes.Equal(ob[:on], mb[:mn]) {
			return false, nil
		}
		oend := oerr == io.EOF || oerr == io.ErrUnexpectedEOF
		mend := merr == io.EOF || merr == io.ErrUnexpectedEOF
		if oerr != nil && !oend {
			return false, fmt.Errorf("reading %s: %w", join(d.orig, rel), oerr)
		}
		if merr != nil && !mend {
			return false, fmt.Errorf("reading %s: %w", join(d.modified, rel), merr)
		}
		if oend || mend {
			return oend == mend, nil
		}
	}
}

// splitPath returns the components of a relative "/"-separated path.
func splitPath(rel string) []string {
	return strings.Split(rel, "/")
}
