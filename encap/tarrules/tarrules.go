// Package tarrules holds the rules every layer entry must pass before the
// store takes anything from it (issue 11, class 5): limits of what the store
// can hold and give back, and, for layers whose shape is known (ostree
// chunk and commit layers), rules over the layer as a whole: no entry below
// a non-directory, no path twice, no hardlink to an entry the layer has not
// given before, no device nodes.
package tarrules

import (
	"archive/tar"
	"errors"
	"fmt"
	"hash/maphash"
	"math"
	"strings"

	"github.com/ocitree/ocitree/ostree"
)

// Limits of what the store can hold and give back: a file name component
// longer than NAME_MAX cannot be checked out, a symlink target of PATH_MAX
// bytes or more is refused by the kernel (and reported corrupt by both fsck
// tools), ostree stores uid and gid as 32 bits, and a file system keeps one
// xattr value of at most XATTR_SIZE_MAX (less on most: a bare-user store
// keeps all of a file's xattrs in one value).
const (
	MaxNameBytes   = 255
	MaxTargetBytes = 4095
	MaxXattrBytes  = 64 << 10
)

// ErrEntryRefused: a layer entry the store cannot hold, or one no honest
// writer of the layer's kind produces.
var ErrEntryRefused = errors.New("entry refused")

// CheckHeader refuses a tar entry (its path components parts) the store
// cannot hold, naming the rule and the limit; the caller names the entry.
func CheckHeader(hdr *tar.Header, parts []string) error {
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

// Entry kinds a Layer remembers.
const (
	kindDir    = 'd'
	kindNonDir = 'f'
)

// Layer checks the entries of one layer against each other. It keeps a
// 64-bit seeded hash per entry, not the names: memory grows by a few bytes
// per entry, and each check costs time linear in the entry's path however
// deep it is. The seed is random per layer, so a layer cannot be built to
// collide (two different paths share a hash with probability n²/2⁶⁵).
type Layer struct {
	seed  maphash.Seed
	kinds map[uint64]byte
}

// NewLayer returns the checker for one layer.
func NewLayer() *Layer {
	return &Layer{seed: maphash.MakeSeed(), kinds: map[uint64]byte{}}
}

// Split cleans an entry's name (or a hardlink's target) into path
// components: relative, no "..", each component a valid file name.
func Split(name string) ([]string, error) {
	parts, err := ostree.CleanTarPath(name)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", err, ErrEntryRefused)
	}
	return parts, nil
}

// Entry checks the next entry of the layer: its type (regular file,
// directory, symlink or hardlink; no devices, FIFOs or sparse files), the
// limits of CheckHeader, no earlier non-directory entry at any of its
// parents (a symlinked or regular-file parent), no earlier entry at its
// path (a directory may be listed twice), and a hardlink's target an
// earlier non-directory entry of the layer. It returns the entry's path
// components. A pax global header is not an entry: the caller skips it.
func (l *Layer) Entry(hdr *tar.Header) ([]string, error) {
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeDir, tar.TypeSymlink, tar.TypeLink:
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return nil, fmt.Errorf("device nodes and FIFOs cannot be stored (type %q): %w", hdr.Typeflag, ErrEntryRefused)
	case tar.TypeGNUSparse:
		return nil, fmt.Errorf("sparse files are not supported: %w", ErrEntryRefused)
	default:
		return nil, fmt.Errorf("unsupported tar entry type %q: %w", hdr.Typeflag, ErrEntryRefused)
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return nil, fmt.Errorf("sparse files are not supported: %w", ErrEntryRefused)
		}
	}
	parts, err := Split(hdr.Name)
	if err != nil {
		return nil, err
	}
	if err := CheckHeader(hdr, parts); err != nil {
		return nil, err
	}
	kind := byte(kindNonDir)
	if hdr.Typeflag == tar.TypeDir {
		kind = kindDir
	}
	if len(parts) == 0 && kind != kindDir {
		return nil, fmt.Errorf("a non-directory entry for the root: %w", ErrEntryRefused)
	}
	var h maphash.Hash
	h.SetSeed(l.seed)
	var sum uint64
	for i, p := range parts {
		h.WriteString(p)
		h.WriteByte('/')
		sum = h.Sum64()
		if i < len(parts)-1 && l.kinds[sum] == kindNonDir {
			return nil, fmt.Errorf("parent %s is not a directory (an earlier entry of the layer is a file, symlink or hardlink there): %w", strings.Join(parts[:i+1], "/"), ErrEntryRefused)
		}
	}
	if len(parts) > 0 {
		if prev, ok := l.kinds[sum]; ok && (prev != kindDir || kind != kindDir) {
			return nil, fmt.Errorf("duplicate entry: the layer lists this path before: %w", ErrEntryRefused)
		}
	}
	if hdr.Typeflag == tar.TypeLink {
		if err := l.linkTarget(hdr.Linkname); err != nil {
			return nil, err
		}
	}
	if len(parts) > 0 {
		l.kinds[sum] = kind
	}
	return parts, nil
}

// linkTarget checks that a hardlink points at an earlier non-directory entry.
func (l *Layer) linkTarget(target string) error {
	parts, err := Split(target)
	if err != nil {
		return fmt.Errorf("hardlink target %.100q: %w", target, err)
	}
	var h maphash.Hash
	h.SetSeed(l.seed)
	for _, p := range parts {
		h.WriteString(p)
		h.WriteByte('/')
	}
	if len(parts) == 0 || l.kinds[h.Sum64()] != kindNonDir {
		return fmt.Errorf("hardlink to %.100q, which is not an earlier file of the layer: %w", target, ErrEntryRefused)
	}
	return nil
}
