package ostree

import (
	"errors"
	"fmt"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrXattrTooLarge: the file system of the repository cannot hold an
// object's xattrs (ext4 keeps all of a file's xattrs in about one block,
// 4040 bytes of value on a 4 KiB-block ext4; btrfs about a node; xfs
// XATTR_SIZE_MAX, 64 KiB, per value).
var ErrXattrTooLarge = errors.New("xattrs too large for the store's file system")

// xattrProbeName is the name the probe sets: user.ostreemeta, the one xattr
// a bare-user object carries, so the probe measures exactly what it holds.
const xattrProbeName = "user.ostreemeta"

// xattrLimits caches the probed limit per file system (st_dev).
var xattrLimits sync.Map // uint64 -> int

// XattrLimit returns the largest value of one xattr the repository's file
// system holds on a new file, probed once per file system on a file in
// the repository's tmp/ that is removed again (about 17 setxattr calls).
func (r *Repo) XattrLimit() (int, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(r.dfd, "tmp", &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return 0, fmt.Errorf("xattr limit: %w", err)
	}
	if v, ok := xattrLimits.Load(st.Dev); ok {
		return v.(int), nil
	}
	name := "tmp/xattr-probe-" + strconv.Itoa(unix.Getpid())
	fd, err := unix.Openat(r.dfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return 0, fmt.Errorf("xattr limit: %w", err)
	}
	defer unix.Unlinkat(r.dfd, name, 0)
	defer unix.Close(fd)
	buf := make([]byte, 64<<10) // XATTR_SIZE_MAX
	lo, hi := 0, len(buf)
	for lo < hi {
		mid := (lo + hi + 1) / 2
		err := unix.Fsetxattr(fd, xattrProbeName, buf[:mid], 0)
		switch {
		case err == nil:
			lo = mid
		case tooLarge(err):
			hi = mid - 1
		default:
			return 0, fmt.Errorf("xattr limit: setxattr: %w", err)
		}
		unix.Fremovexattr(fd, xattrProbeName)
	}
	xattrLimits.Store(st.Dev, lo)
	return lo, nil
}

// tooLarge reports the errors setxattr gives for a value the file system
// cannot hold: ENOSPC (ext4, and a full disk), E2BIG, ERANGE.
func tooLarge(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.E2BIG) || errors.Is(err, unix.ERANGE)
}

// xattrError explains a failed setxattr of an object's xattrs: when the
// value written (size bytes, the xattr name) is more than the file system
// holds, the error says so with both numbers and wraps ErrXattrTooLarge
// instead of sending the user to check a disk that is not full.
func (r *Repo) xattrError(name string, size int, xs []Xattr, err error) error {
	if !tooLarge(err) {
		return fmt.Errorf("setting xattr %s on object: %w", name, err)
	}
	limit, perr := r.XattrLimit()
	if perr != nil || size <= limit {
		return fmt.Errorf("setting xattr %s (%d bytes) on object: %w", name, size, err) // a full disk, not the size
	}
	what := fmt.Sprintf("xattr %s is %d bytes", name, size)
	if name == xattrProbeName && len(xs) > 0 {
		big := xs[0]
		for _, x := range xs[1:] {
			if len(x.Value) > len(big.Value) {
				big = x
			}
		}
		what = fmt.Sprintf("xattrs are %d bytes stored (the largest, %s, is %d bytes)", size, big.Name, len(big.Value))
	}
	return fmt.Errorf("%s; the limit of the store's file system is %d bytes (setxattr: %v): %w", what, limit, err, ErrXattrTooLarge)
}
