package derived

import (
	"strings"
	"unsafe"

	"github.com/ocitree/ocitree/ostree"
)

// pathStack is a path as components plus the same path joined by "/", so
// that whether it is a prefix of another path costs one comparison of
// bytes, not one per component: with a 10,000-deep chain listing every
// directory, per-component comparisons and lookups per entry dominated the
// import (issue 11, class 2).
type pathStack struct {
	names []string
	ends  []int  // ends[i]: length of joined after names[i]
	buf   []byte // names joined by "/"
}

// shared returns how many leading components parts shares with s.
func (s *pathStack) shared(parts []string) int {
	n := len(s.names)
	if n > 0 && len(parts) >= n {
		if j, ok := contiguous(parts[:n]); ok && j == string(s.buf) {
			return n
		}
	}
	k := 0
	for k < len(parts) && k < n && parts[k] == s.names[k] {
		k++
	}
	return k
}

// truncate keeps the first k components.
func (s *pathStack) truncate(k int) {
	s.names = s.names[:k]
	s.ends = s.ends[:k]
	if k == 0 {
		s.buf = s.buf[:0]
	} else {
		s.buf = s.buf[:s.ends[k-1]]
	}
}

// push appends a component.
func (s *pathStack) push(name string) {
	if len(s.names) > 0 {
		s.buf = append(s.buf, '/')
	}
	s.buf = append(s.buf, name...)
	// A copy: name is part of its entry's whole name, and a component
	// kept for the later entries below it would keep that alive (one name
	// per level of a 10,000-deep chain: 100 MB).
	s.names = append(s.names, strings.Clone(name))
	s.ends = append(s.ends, len(s.buf))
}

// contiguous returns parts joined by "/" without copying when they are
// consecutive pieces of one string separated by single bytes (as
// ostree.CleanTarPath returns them for a clean name); ok is false
// otherwise, and the caller compares component by component. The bytes
// between pieces are then checked to be "/".
func contiguous(parts []string) (string, bool) {
	if len(parts) == 0 {
		return "", true
	}
	base := uintptr(unsafe.Pointer(unsafe.StringData(parts[0])))
	n := len(parts[0])
	for _, p := range parts[1:] {
		if len(p) == 0 || uintptr(unsafe.Pointer(unsafe.StringData(p))) != base+uintptr(n)+1 {
			return "", false
		}
		n += 1 + len(p)
	}
	j := unsafe.String(unsafe.StringData(parts[0]), n)
	off := 0
	for _, p := range parts[:len(parts)-1] {
		off += len(p)
		if j[off] != '/' {
			return "", false
		}
		off++
	}
	return j, true
}

// pathCursor remembers the directory chain of the last path the applier
// walked, so that an entry sharing a prefix with the previous one (the
// common case, and every entry of a deep chain) resumes below that prefix
// instead of looking every component up again from the root.
//
// The cached directories stay valid as long as the tree's directories only
// change through ensurePath (which updates the cursor) or below the last
// component; anything else that removes or replaces a directory (whiteouts)
// must call reset.
type pathCursor struct {
	path pathStack
	dirs []*ostree.MutableTree // dirs[i] is the directory names[:i+1]
}

// resume returns how many leading components of parts are cached and the
// directory they lead to (root when none), dropping the rest of the cache.
func (c *pathCursor) resume(parts []string, root *ostree.MutableTree) (int, *ostree.MutableTree) {
	k := c.path.shared(parts)
	c.path.truncate(k)
	c.dirs = c.dirs[:k]
	if k == 0 {
		return 0, root
	}
	return k, c.dirs[k-1]
}

// push records dir as the directory of the next component name.
func (c *pathCursor) push(name string, dir *ostree.MutableTree) {
	c.path.push(name)
	c.dirs = append(c.dirs, dir)
}

// reset forgets the cache.
func (c *pathCursor) reset() {
	c.path.truncate(0)
	c.dirs = c.dirs[:0]
}

// addedCursor is the same for the added trie, which only grows, so its
// cache never goes stale: the nodes of the last path marked.
type addedCursor struct {
	path  pathStack
	nodes []*addedNode
}
