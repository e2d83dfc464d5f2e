package etcmerge

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

type xattr struct {
	name  string
	value []byte
}

// xattrSource lists (list) and reads (get) the extended attributes of one file.
type xattrSource struct {
	list func([]byte) (int, error)
	get  func(string, []byte) (int, error)
}

func fdXattr(fd int) xattrSource {
	return xattrSource{
		list: func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		get:  func(n string, b []byte) (int, error) { return unix.Fgetxattr(fd, n, b) },
	}
}

// linkXattr reads the xattrs of path itself, not following a final symlink.
func linkXattr(path string) xattrSource {
	return xattrSource{
		list: func(b []byte) (int, error) { return unix.Llistxattr(path, b) },
		get:  func(n string, b []byte) (int, error) { return unix.Lgetxattr(path, n, b) },
	}
}

// listXattrs returns all xattrs of a file, sorted by name; a file system without xattr
// support has none.
func listXattrs(s xattrSource) ([]xattr, error) {
	var buf []byte
	for {
		sz, err := s.list(nil)
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("listing xattrs: %w", err)
		}
		if sz == 0 {
			return nil, nil
		}
		buf = make([]byte, sz)
		n, err := s.list(buf)
		if errors.Is(err, unix.ERANGE) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing xattrs: %w", err)
		}
		buf = buf[:n]
		break
	}
	var out []xattr
	for _, name := range strings.Split(string(buf), "\x00") {
		if name == "" {
			continue
		}
		for {
			sz, err := s.get(name, nil)
			if errors.Is(err, unix.ENODATA) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("reading xattr %s: %w", name, err)
			}
			val := make([]byte, sz)
			n, err := s.get(name, val)
			if errors.Is(err, unix.ERANGE) {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("reading xattr %s: %w", name, err)
			}
			out = append(out, xattr{name, val[:n]})
			break
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out, nil
}
