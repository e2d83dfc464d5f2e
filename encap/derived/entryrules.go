package derived

import (
	"archive/tar"
	"errors"
	"fmt"
	"math"
	"strings"
)

// Limits of what the store can hold and give back (issue 11, class 5): a
// file name component longer than NAME_MAX cannot be checked out, a symlink
// target of PATH_MAX bytes or more is refused by the kernel (and reported
// corrupt by both fsck tools), ostree stores uid and gid as 32 bits, and a
// file system keeps one xattr value of at most XATTR_SIZE_MAX (less on
// most: a bare-user store keeps all of a file's xattrs in one value).
const (
	MaxNameBytes   = 255
	MaxTargetBytes = 4095
	MaxXattrBytes  = 64 << 10
)

// ErrEntryRefused: a layer entry the store cannot hold.
var ErrEntryRefused = errors.New("entry refused")

// checkEntryRules refuses a tar entry (its path components parts) the store
// cannot hold, naming the rule; the caller names the entry.
func checkEntryRules(hdr *tar.Header, parts []string) error {
	for _, p := range parts {
		if len(p) > MaxNameBytes {
			return fmt.Errorf("name component %.40q… is %d bytes; the limit is %d: %w", p, len(p), MaxNameBytes, ErrEntryRefused)
		}
	}
	if hdr.Typeflag == tar.TypeSymlink && len(hdr.Linkname) > MaxTargetBytes {
		return fmt.Errorf("symlink target is %d bytes; the limit is %d: %w", len(hdr.Linkname), MaxTargetBytes, ErrEntryRefused)
	}
	if hdr.Uid < 0 || hdr.Uid > math.MaxUint32 || hdr.Gid < 0 || hdr.Gid > math.MaxUint32 {
		return fmt.Errorf("uid/gid %d/%d outside 0…%d: %w", hdr.Uid, hdr.Gid, uint64(math.MaxUint32), ErrEntryRefused)
	}
	total := 0
	for k, v := range hdr.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			if len(v) > MaxXattrBytes {
				return fmt.Errorf("xattr %s is %d bytes; the limit is %d: %w", name, len(v), MaxXattrBytes, ErrEntryRefused)
			}
			total += len(name) + len(v)
		}
	}
	if total > MaxXattrBytes {
		return fmt.Errorf("xattrs are %d bytes together; the limit is %d: %w", total, MaxXattrBytes, ErrEntryRefused)
	}
	return nil
}
