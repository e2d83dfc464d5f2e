package ostree

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"time"

	"github.com/ocitree/ocitree/ostree/gvariant"
)

// CommitOptions describe a commit the way `ostree commit` options do.
type CommitOptions struct {
	// Branch is the ref to point at the new commit; empty writes no ref.
	Branch string
	// Parent is the parent commit. When nil and Branch exists, the branch's
	// current commit is the parent; NoParent makes an orphan.
	Parent   *Checksum
	NoParent bool
	Subject  string
	Body     string
	// Timestamp defaults to SOURCE_DATE_EPOCH, else now.
	Timestamp time.Time
	// Metadata entries come first, in order (--add-metadata-string).
	Metadata Metadata
	// Bootable adds ostree.bootable and ostree.linux from usr/lib/modules.
	Bootable bool
	// NoBindings leaves out ostree.ref-binding.
	NoBindings bool
}

// StringVariant wraps a string as a metadata value.
func StringVariant(s string) gvariant.Variant { return gvariant.Variant{Type: "s", Value: s} }

// WriteCommit writes the root tree and a commit object pointing at it, and
// records the branch update; it returns the commit checksum. Nothing is
// visible until the transaction commits.
func (t *Txn) WriteCommit(root *MutableTree, opts CommitOptions) (Checksum, error) {
	if root.Meta().IsZero() {
		return Checksum{}, fmt.Errorf("commit: root directory has no metadata")
	}
	treeSum, err := t.WriteTree(root)
	if err != nil {
		return Checksum{}, err
	}
	c := &Commit{Subject: opts.Subject, Body: opts.Body, RootTree: treeSum, RootMeta: root.Meta()}
	if c.Timestamp, err = commitTimestamp(opts.Timestamp); err != nil {
		return Checksum{}, err
	}
	if c.Parent, err = t.commitParent(opts); err != nil {
		return Checksum{}, err
	}
	if c.Metadata, err = t.commitMetadata(root, opts); err != nil {
		return Checksum{}, err
	}
	b, err := c.Encode()
	if err != nil {
		return Checksum{}, err
	}
	sum, err := t.WriteMetadata(ObjCommit, b)
	if err != nil {
		return sum, err
	}
	if opts.Branch != "" {
		if err := t.SetRef(opts.Branch, &sum); err != nil {
			return sum, err
		}
	}
	return sum, nil
}

func commitTimestamp(ts time.Time) (uint64, error) {
	if !ts.IsZero() {
		if ts.Unix() < 0 {
			return 0, fmt.Errorf("timestamp %s is before the epoch", ts)
		}
		return uint64(ts.Unix()), nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("SOURCE_DATE_EPOCH=%q: %w", s, err)
		}
		return v, nil
	}
	return uint64(time.Now().Unix()), nil
}

func (t *Txn) commitParent(opts CommitOptions) (Checksum, error) {
	if opts.NoParent {
		return Checksum{}, nil
	}
	if opts.Parent != nil {
		if ok, err := t.Has(*opts.Parent, ObjCommit); err != nil || !ok {
			return Checksum{}, fmt.Errorf("parent commit %s not found", opts.Parent)
		}
		return *opts.Parent, nil
	}
	if opts.Branch == "" {
		return Checksum{}, nil
	}
	cur, err := t.r.ReadRef(opts.Branch)
	if errors.Is(err, ErrRefNotFound) {
		return Checksum{}, nil
	}
	return cur, err
}

// commitMetadata builds the a{sv} the way ot-builtin-commit.c does: the
// given entries, then ostree.ref-binding and ostree.collection-binding; with
// --bootable, everything re-inserted through a GVariantDict.
func (t *Txn) commitMetadata(root *MutableTree, opts CommitOptions) (Metadata, error) {
	md := append(Metadata(nil), opts.Metadata...)
	if !opts.NoBindings && opts.Branch != "" {
		md = append(md, MetaEntry{Key: "ostree.ref-binding", Value: gvariant.Variant{Type: "as", Value: []string{opts.Branch}}})
	}
	coll, _ := t.r.config.Get("core", "collection-id")
	if _, given := md.Lookup("ostree.collection-binding"); coll != "" && !given && !opts.NoBindings {
		md = append(md, MetaEntry{Key: "ostree.collection-binding", Value: StringVariant(coll)})
	}
	if opts.Bootable {
		kver, err := FindKernel(root)
		if err != nil {
			return nil, err
		}
		md = append(md,
			MetaEntry{Key: "ostree.bootable", Value: gvariant.Variant{Type: "b", Value: true}},
			MetaEntry{Key: "ostree.linux", Value: StringVariant(kver)})
		md = hashTableOrder(md)
	}
	return md, nil
}

// FindKernel returns the one kernel version that has
// usr/lib/modules/VERSION/vmlinuz, as `ostree commit --bootable` requires.
func FindKernel(root *MutableTree) (string, error) {
	var found []string
	mods, err := walkMutable(root, "usr", "lib", "modules")
	if err != nil || mods == nil {
		return "", fmt.Errorf("no kernel found in /usr/lib/modules")
	}
	names, err := mods.Names()
	if err != nil {
		return "", err
	}
	for _, n := range names {
		sub, ok, err := mods.Dir(n)
		if err != nil {
			return "", err
		}
		if !ok {
			continue
		}
		if _, ok, err := sub.File("vmlinuz"); err != nil {
			return "", err
		} else if ok {
			found = append(found, n)
		}
	}
	sort.Strings(found)
	switch len(found) {
	case 0:
		return "", fmt.Errorf("no kernel found in /usr/lib/modules")
	case 1:
		return found[0], nil
	}
	return "", fmt.Errorf("multiple kernels found in /usr/lib/modules: %v", found)
}

func walkMutable(m *MutableTree, parts ...string) (*MutableTree, error) {
	for _, p := range parts {
		sub, ok, err := m.Dir(p)
		if err != nil || !ok {
			return nil, err
		}
		m = sub
	}
	return m, nil
}

// CommitDir commits the directory tree at srcPath in one transaction and
// returns the commit checksum.
func (r *Repo) CommitDir(srcPath string, opts CommitOptions) (Checksum, error) {
	return r.commitWith(opts, func(t *Txn) (*MutableTree, error) { return t.ImportDir(srcPath) })
}

// CommitTar commits the tree carried by a tar stream in one transaction.
func (r *Repo) CommitTar(rd io.Reader, opts CommitOptions) (Checksum, error) {
	return r.commitWith(opts, func(t *Txn) (*MutableTree, error) { return t.ImportTar(rd) })
}

func (r *Repo) commitWith(opts CommitOptions, build func(*Txn) (*MutableTree, error)) (Checksum, error) {
	if opts.Branch != "" {
		if _, err := refPath(opts.Branch); err != nil {
			return Checksum{}, err
		}
	}
	t, err := r.Begin()
	if err != nil {
		return Checksum{}, err
	}
	defer t.Abort()
	root, err := build(t)
	if err != nil {
		return Checksum{}, err
	}
	sum, err := t.WriteCommit(root, opts)
	if err != nil {
		return sum, err
	}
	return sum, t.Commit()
}
