package pkgdb

import (
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
	"sync"

	"github.com/ocitree/ocitree/ostree"
)

// treeIndex answers path questions about a commit from its object list:
// which object is at a path, which directories exist, and where a path leads
// once symlinked parents are followed.
type treeIndex struct {
	repo  *ostree.Repo
	files map[string]ostree.Checksum // absolute path -> content object
	dirs  map[string]bool            // absolute directory paths that hold files ("/" included)

	mu      sync.Mutex
	targets map[ostree.Checksum]linkInfo // cache of OpenContent results
}

type linkInfo struct {
	symlink bool
	target  string
}

func newTreeIndex(repo *ostree.Repo, objs []ostree.ContentObject) *treeIndex {
	ix := &treeIndex{
		repo:    repo,
		files:   make(map[string]ostree.Checksum),
		dirs:    map[string]bool{"/": true},
		targets: make(map[ostree.Checksum]linkInfo),
	}
	for _, o := range objs {
		for _, p := range o.Paths {
			ix.files[p] = o.Checksum
			for d := path.Dir(p); d != "/" && !ix.dirs[d]; d = path.Dir(d) {
				ix.dirs[d] = true
			}
		}
	}
	return ix
}

// link reports whether the file at p is a symlink, and its target.
func (ix *treeIndex) link(p string) (linkInfo, bool, error) {
	c, ok := ix.files[p]
	if !ok {
		return linkInfo{}, false, nil
	}
	ix.mu.Lock()
	li, ok := ix.targets[c]
	ix.mu.Unlock()
	if ok {
		return li, true, nil
	}
	ct, err := ix.repo.OpenContent(c)
	if err != nil {
		return linkInfo{}, false, fmt.Errorf("%s: %w", p, err)
	}
	ct.Payload.Close()
	li = linkInfo{symlink: ct.Meta.IsSymlink(), target: ct.Meta.Target}
	ix.mu.Lock()
	ix.targets[c] = li
	ix.mu.Unlock()
	return li, true, nil
}

// errLoop is returned for a path whose symlinks do not resolve in 40 steps.
var errLoop = errors.New("too many levels of symbolic links")

// resolve turns an absolute path into the path that names the same entry in
// the commit once symlinked parent directories are followed, the way the
// kernel would inside a checkout: "/lib/x86_64-linux-gnu/libc.so.6" with
// "/lib -> usr/lib" becomes "/usr/lib/x86_64-linux-gnu/libc.so.6". With
// final, a symlink in the last component is followed too. Symlinks never
// lead above "/".
func (ix *treeIndex) resolve(p string, final bool) (string, error) {
	rem := splitPath(p)
	cur := "" // "" is the root; otherwise "/a/b"
	hops := 0
	for len(rem) > 0 {
		name := rem[0]
		rem = rem[1:]
		switch name {
		case "", ".":
			continue
		case "..":
			if cur != "" {
				cur = path.Dir(cur)
				if cur == "/" {
					cur = ""
				}
			}
			continue
		}
		next := cur + "/" + name
		if len(rem) > 0 || final {
			li, ok, err := ix.link(next)
			if err != nil {
				return "", err
			}
			if ok && li.symlink {
				hops++
				if hops > 40 {
					return "", fmt.Errorf("%s: %w", p, errLoop)
				}
				if strings.HasPrefix(li.target, "/") {
					cur = ""
				}
				rem = append(splitPath(li.target), rem...)
				continue
			}
		}
		cur = next
	}
	if cur == "" {
		return "/", nil
	}
	return cur, nil
}

func splitPath(p string) []string {
	return strings.Split(strings.Trim(p, "/"), "/")
}

// readFile returns the content of the regular file at p (symlinks followed),
// reading at most limit bytes.
func (ix *treeIndex) readFile(p string, limit int64) ([]byte, error) {
	rp, err := ix.resolve(p, true)
	if err != nil {
		return nil, err
	}
	c, ok := ix.files[rp]
	if !ok {
		return nil, fmt.Errorf("%s: %w", p, errNotInCommit)
	}
	ct, err := ix.repo.OpenContent(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	defer ct.Payload.Close()
	if ct.Meta.IsSymlink() {
		return nil, fmt.Errorf("%s: %w", p, errNotInCommit)
	}
	if ct.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d this reads", p, ct.Size, limit)
	}
	buf := make([]byte, ct.Size)
	if _, err := io.ReadFull(ct.Payload, buf); err != nil {
		return nil, fmt.Errorf("%s: %w", p, err)
	}
	return buf, nil
}

// isFile reports whether p, symlinks followed, is a file of the commit.
func (ix *treeIndex) isFile(p string) bool {
	rp, err := ix.resolve(p, true)
	if err != nil {
		return false
	}
	_, ok := ix.files[rp]
	return ok
}

var errNotInCommit = errors.New("no such file in the commit")
