// TEMPORARY: replaced by the etc branch at merge.
//
// Package etcmerge is a minimal stand-in for the /etc three-way merge so
// that the deploy package compiles and works on this branch; the real
// implementation (spec §4) lives on the etc branch and replaces this file.
package etcmerge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"

	"golang.org/x/sys/unix"
)

// Kind is the kind of a change.
type Kind byte

// Change kinds, as ostree admin config-diff prints them.
const (
	Modified Kind = 'M'
	Added    Kind = 'A'
	Removed  Kind = 'D'
)

// Change is one path (relative to etc) that differs.
type Change struct {
	Kind Kind
	Path string
}

// Diff compares orig (usr/etc) with modified (etc).
func Diff(orig, modified string) ([]Change, error) {
	var out []Change
	err := filepath.WalkDir(orig, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(orig, p)
		if rel == "." {
			return nil
		}
		var a, b unix.Stat_t
		if err := unix.Lstat(p, &a); err != nil {
			return err
		}
		if err := unix.Lstat(filepath.Join(modified, rel), &b); err != nil {
			if errors.Is(err, unix.ENOENT) {
				out = append(out, Change{Removed, rel})
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			return err
		}
		if a.Mode != b.Mode || a.Uid != b.Uid || a.Gid != b.Gid || !sameContent(p, filepath.Join(modified, rel), a.Mode) {
			out = append(out, Change{Modified, rel})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = filepath.WalkDir(modified, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(modified, p)
		if rel == "." {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(orig, rel), &st); errors.Is(err, unix.ENOENT) {
			out = append(out, Change{Added, rel})
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Kind < out[j].Kind })
	return out, err
}

func sameContent(a, b string, mode uint32) bool {
	switch mode & unix.S_IFMT {
	case unix.S_IFLNK:
		x, _ := os.Readlink(a)
		y, _ := os.Readlink(b)
		return x == y
	case unix.S_IFREG:
		x, _ := os.ReadFile(a)
		y, _ := os.ReadFile(b)
		return bytes.Equal(x, y)
	}
	return true
}

// Merge carries the local changes (orig -> modified) into target.
func Merge(orig, modified, target string) ([]Change, error) {
	changes, err := Diff(orig, modified)
	if err != nil {
		return nil, err
	}
	for _, c := range changes {
		dst := filepath.Join(target, c.Path)
		if c.Kind == Removed {
			if err := os.RemoveAll(dst); err != nil {
				return nil, err
			}
			continue
		}
		if fi, err := os.Lstat(dst); err == nil && fi.IsDir() {
			if si, err := os.Lstat(filepath.Join(modified, c.Path)); err == nil && !si.IsDir() {
				return nil, fmt.Errorf("modified config file newly defaults to directory '%s', cannot merge", c.Path)
			}
			continue
		}
		os.Remove(dst)
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return nil, err
		}
		// The parent always takes the owner and mode of the local parent.
		if parent := filepath.Dir(c.Path); parent != "." {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(modified, parent), &st); err == nil {
				os.Lchown(filepath.Join(target, parent), int(st.Uid), int(st.Gid))
				unix.Chmod(filepath.Join(target, parent), st.Mode&0o7777)
			}
		}
		if err := copyAll(filepath.Join(modified, c.Path), dst); err != nil {
			return nil, fmt.Errorf("/etc merge %s: %w", c.Path, err)
		}
	}
	return changes, nil
}

func copyAll(src, dst string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	var st unix.Stat_t
	unix.Lstat(src, &st)
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		t, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(t, dst); err != nil {
			return err
		}
		return os.Lchown(dst, int(st.Uid), int(st.Gid))
	case fi.IsDir():
		if err := os.Mkdir(dst, 0o700); err != nil {
			return err
		}
		ents, err := os.ReadDir(src)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if err := copyAll(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
				return err
			}
		}
	case fi.Mode().IsRegular():
		in, err := os.Open(src)
		if err != nil {
			return err
		}
		defer in.Close()
		out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		if _, err := io.Copy(out, in); err != nil {
			out.Close()
			return err
		}
		if err := out.Close(); err != nil {
			return err
		}
	default:
		return nil
	}
	if err := os.Lchown(dst, int(st.Uid), int(st.Gid)); err != nil {
		return err
	}
	return os.Chmod(dst, fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky))
}

// Format prints changes as ostree admin config-diff does ("M    path").
func Format(w io.Writer, changes []Change) {
	for _, c := range changes {
		fmt.Fprintf(w, "%c    %s\n", c.Kind, c.Path)
	}
}
