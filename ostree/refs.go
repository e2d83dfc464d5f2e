package ostree

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"golang.org/x/sys/unix"
)

// ErrRefNotFound is returned when a ref does not exist.
var ErrRefNotFound = errors.New("ref not found")

// ValidateRefName checks a ref name against libostree's rule:
// (?:[\w\d][-._\w\d]*/)*[\w\d][-._\w\d]*, and not a 64-hex checksum.
func ValidateRefName(name string) error {
	if name == "" {
		return fmt.Errorf("invalid ref name: empty")
	}
	if len(name) == 64 && isHex(name) {
		return fmt.Errorf("invalid ref name %q: looks like a checksum", name)
	}
	for _, part := range strings.Split(name, "/") {
		if part == "" || !isWordChar(part[0]) {
			return fmt.Errorf("invalid ref name %q", name)
		}
		for i := 1; i < len(part); i++ {
			if c := part[i]; !isWordChar(c) && c != '-' && c != '.' {
				return fmt.Errorf("invalid ref name %q", name)
			}
		}
	}
	return nil
}

func isWordChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_'
}

// ValidateCollectionID checks a collection ID as libostree does (D-Bus
// interface-name rules): at least two dot-separated elements of
// [A-Za-z_][A-Za-z0-9_]*, at most 255 characters.
func ValidateCollectionID(id string) error {
	parts := strings.Split(id, ".")
	ok := len(id) <= 255 && len(parts) >= 2
	for _, p := range parts {
		if p == "" || p[0] >= '0' && p[0] <= '9' {
			ok = false
		}
		for i := 0; i < len(p); i++ {
			if !isWordChar(p[i]) {
				ok = false
			}
		}
	}
	if !ok {
		return fmt.Errorf("invalid collection ID %q", id)
	}
	return nil
}

// refPath maps a ref spelling to its file below the repository:
// "name" → refs/heads/name, "remote:name" → refs/remotes/remote/name,
// "mirror:collection-id:name" → refs/mirrors/collection-id/name.
func refPath(ref string) (string, error) {
	if rest, ok := strings.CutPrefix(ref, "mirror:"); ok {
		coll, name, ok := strings.Cut(rest, ":")
		if !ok {
			return "", fmt.Errorf("invalid mirror ref %q: want mirror:COLLECTION-ID:NAME", ref)
		}
		if err := ValidateCollectionID(coll); err != nil {
			return "", err
		}
		if err := ValidateRefName(name); err != nil {
			return "", err
		}
		return "refs/mirrors/" + coll + "/" + name, nil
	}
	if remote, name, ok := strings.Cut(ref, ":"); ok {
		if err := ValidateRefName(remote); err != nil || strings.Contains(remote, "/") {
			return "", fmt.Errorf("invalid remote name in %q", ref)
		}
		if err := ValidateRefName(name); err != nil {
			return "", err
		}
		return "refs/remotes/" + remote + "/" + name, nil
	}
	if err := ValidateRefName(ref); err != nil {
		return "", err
	}
	return "refs/heads/" + ref, nil
}

// writeRef writes or (c == nil) deletes a ref with temp-then-rename; the
// temp file is made in the directory scratchFd (a transaction's staging
// directory, on the repository's filesystem).
func (r *Repo) writeRef(ref string, c *Checksum, scratchFd int) error {
	p, err := refPath(ref)
	if err != nil {
		return err
	}
	if c == nil {
		if err := unix.Unlinkat(r.dfd, p, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("deleting ref %s: %w", ref, err)
		}
		return nil
	}
	if err := mkdirAllAt(r.dfd, path.Dir(p)); err != nil {
		return fmt.Errorf("writing ref %s: %w", ref, err)
	}
	// The new ref file is written in the transaction's staging directory
	// and renamed into refs/: a process killed half-way leaves its temp
	// file there, where the next transaction removes it, not in refs/.
	tmp := "ref-" + randomSuffix()
	fd, err := unix.Openat(scratchFd, tmp, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o644)
	if err != nil {
		return fmt.Errorf("writing ref %s: %w", ref, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write([]byte(c.String() + "\n"))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(scratchFd, tmp, r.dfd, p)
	}
	if err != nil {
		unix.Unlinkat(scratchFd, tmp, 0)
		return fmt.Errorf("writing ref %s: %w", ref, err)
	}
	return nil
}

// SetRef points ref at c (nil deletes it) in a transaction of its own.
func (r *Repo) SetRef(ref string, c *Checksum) error {
	if c != nil {
		if ok, err := r.HasObject(*c, ObjCommit); err != nil || !ok {
			return fmt.Errorf("cannot set ref %s: commit %s not found", ref, c)
		}
	}
	t, err := r.Begin()
	if err != nil {
		return err
	}
	defer t.Abort()
	if err := t.SetRef(ref, c); err != nil {
		return err
	}
	return t.Commit()
}

// ReadRef returns the commit a ref points at. Alias refs (relative symlinks,
// e.g. refs/heads/alias -> ../app/x86_64) are followed, but the lookup never
// leaves refs/ (openat2 RESOLVE_BENEATH).
func (r *Repo) ReadRef(ref string) (Checksum, error) {
	p, err := refPath(ref)
	if err != nil {
		return Checksum{}, err
	}
	refsFd, err := unix.Openat(r.dfd, "refs", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return Checksum{}, fmt.Errorf("opening refs/: %w", err)
	}
	defer unix.Close(refsFd)
	fd, err := unix.Openat2(refsFd, strings.TrimPrefix(p, "refs/"), &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_MAGICLINKS,
	})
	switch {
	case errors.Is(err, unix.ENOENT), errors.Is(err, unix.ENOTDIR):
		return Checksum{}, fmt.Errorf("%w: %s", ErrRefNotFound, ref)
	case errors.Is(err, unix.EXDEV):
		return Checksum{}, fmt.Errorf("ref %s: alias points outside refs/", ref)
	case err != nil:
		return Checksum{}, fmt.Errorf("reading ref %s: %w", ref, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil {
		return Checksum{}, fmt.Errorf("reading ref %s: %w", ref, err)
	}
	c, err := ParseChecksum(strings.TrimSpace(string(b)))
	if err != nil {
		return Checksum{}, fmt.Errorf("ref %s: not a checksum", ref)
	}
	return c, nil
}

// ResolveRev turns a full checksum, a ref ("name", "remote:name",
// "mirror:coll:name", or "remote/name" as ostree also accepts) with an
// optional "^" suffix per parent step into a commit checksum.
func (r *Repo) ResolveRev(rev string) (Checksum, error) {
	base := strings.TrimRight(rev, "^")
	ups := len(rev) - len(base)
	var c Checksum
	var err error
	if len(base) == 64 && isHex(base) {
		c, _ = ParseChecksum(base)
	} else {
		c, err = r.ReadRef(base)
		if errors.Is(err, ErrRefNotFound) && !strings.Contains(base, ":") {
			if remote, name, ok := strings.Cut(base, "/"); ok {
				if c2, err2 := r.ReadRef(remote + ":" + name); err2 == nil {
					c, err = c2, nil
				}
			}
		}
		if err != nil {
			return Checksum{}, err
		}
	}
	for ; ups > 0; ups-- {
		cm, err := r.ReadCommit(c)
		if err != nil {
			return Checksum{}, err
		}
		if cm.Parent.IsZero() {
			return Checksum{}, fmt.Errorf("%s: commit %s has no parent", rev, c)
		}
		c = cm.Parent
	}
	return c, nil
}

// Ref is one ref and its target.
type Ref struct {
	Name     string // as ResolveRev accepts it
	Checksum Checksum
}

// ListRefs lists refs/heads, refs/remotes and refs/mirrors, sorted by name.
func (r *Repo) ListRefs() ([]Ref, error) {
	var out []Ref
	add := func(dir, prefix string) error {
		root := filepath.Join(r.path, dir)
		return filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				if errors.Is(err, os.ErrNotExist) {
					return nil
				}
				return err
			}
			if d.IsDir() || strings.HasPrefix(d.Name(), ".tmp-") {
				return nil
			}
			rel, _ := filepath.Rel(root, p)
			name := prefix + filepath.ToSlash(rel)
			c, err := r.ReadRef(name)
			if err != nil {
				return err
			}
			out = append(out, Ref{Name: name, Checksum: c})
			return nil
		})
	}
	if err := add("refs/heads", ""); err != nil {
		return nil, err
	}
	for _, kind := range []struct{ dir, prefix string }{{"refs/remotes", ""}, {"refs/mirrors", "mirror:"}} {
		ents, err := os.ReadDir(filepath.Join(r.path, kind.dir))
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() {
				if err := add(kind.dir+"/"+e.Name(), kind.prefix+e.Name()+":"); err != nil {
					return nil, err
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
