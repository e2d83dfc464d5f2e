package ostree

import (
	"errors"
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// listXattrsFd reads all extended attributes of an open file, sorted by
// name, with empty values dropped (what libglnx gives ostree).
func listXattrsFd(fd int) ([]Xattr, error) {
	return readXattrs(
		func(b []byte) (int, error) { return unix.Flistxattr(fd, b) },
		func(name string, b []byte) (int, error) { return unix.Fgetxattr(fd, name, b) },
	)
}

// listXattrsPath is listXattrsFd for a path, not following a final symlink.
func listXattrsPath(path string) ([]Xattr, error) {
	return readXattrs(
		func(b []byte) (int, error) { return unix.Llistxattr(path, b) },
		func(name string, b []byte) (int, error) { return unix.Lgetxattr(path, name, b) },
	)
}

func readXattrs(list func([]byte) (int, error), get func(string, []byte) (int, error)) ([]Xattr, error) {
	var stack [1024]byte
	buf := stack[:]
	var n int
	for {
		var err error
		n, err = list(buf)
		if errors.Is(err, unix.ENOTSUP) {
			return nil, nil
		}
		if errors.Is(err, unix.ERANGE) {
			sz, lerr := list(nil)
			if lerr != nil {
				return nil, fmt.Errorf("listing xattrs: %w", lerr)
			}
			buf = make([]byte, sz+1024)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("listing xattrs: %w", err)
		}
		break
	}
	if n == 0 {
		return nil, nil
	}
	var out []Xattr
	for _, name := range strings.Split(strings.TrimRight(string(buf[:n]), "\x00"), "\x00") {
		if name == "" {
			continue
		}
		val, err := getXattr(get, name)
		if err != nil {
			return nil, err
		}
		out = append(out, Xattr{Name: name, Value: val})
	}
	return SortXattrs(out), nil
}

func getXattr(get func(string, []byte) (int, error), name string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := get(name, buf)
		if errors.Is(err, unix.ERANGE) {
			sz, serr := get(name, nil)
			if serr != nil {
				return nil, fmt.Errorf("reading xattr %s: %w", name, serr)
			}
			buf = make([]byte, sz+256)
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading xattr %s: %w", name, err)
		}
		return buf[:n], nil
	}
}
