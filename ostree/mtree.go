package ostree

import (
	"fmt"
	"sort"
	"strings"
)

// MutableTree is a directory being built for a commit: file entries map to
// content checksums, subdirectories to subtrees. A subtree taken from an
// existing commit stays unread (only its checksums are kept) until something
// below it changes, so merging trees costs what changed, not the tree's size.
type MutableTree struct {
	meta  Checksum
	files map[string]*Checksum
	dirs  map[string]*MutableTree

	repo    *Repo    // for lazy loading of base
	base    Checksum // dirtree this node came from
	hasBase bool
	loaded  bool // entries read; a node never loaded is written as base
}

// NewMutableTree returns an empty tree with no metadata set.
func NewMutableTree() *MutableTree {
	return &MutableTree{files: map[string]*Checksum{}, dirs: map[string]*MutableTree{}, loaded: true}
}

// NewMutableTreeFrom returns a tree that starts as the stored dirtree
// tree/meta of repo; it is read only when modified.
func NewMutableTreeFrom(repo *Repo, tree, meta Checksum) *MutableTree {
	return &MutableTree{meta: meta, repo: repo, base: tree, hasBase: true}
}

func (m *MutableTree) load() error {
	if m.loaded {
		return nil
	}
	dt, err := m.repo.ReadDirTree(m.base)
	if err != nil {
		return err
	}
	m.files = make(map[string]*Checksum, len(dt.Files))
	m.dirs = make(map[string]*MutableTree, len(dt.Dirs))
	for _, f := range dt.Files {
		c := f.Checksum
		m.files[f.Name] = &c
	}
	for _, d := range dt.Dirs {
		m.dirs[d.Name] = NewMutableTreeFrom(m.repo, d.Tree, d.Meta)
	}
	m.loaded = true
	return nil
}

// touch prepares the node for a change.
func (m *MutableTree) touch() error { return m.load() }

// Meta returns the dirmeta checksum.
func (m *MutableTree) Meta() Checksum { return m.meta }

// SetMeta sets the directory's dirmeta checksum.
func (m *MutableTree) SetMeta(c Checksum) {
	m.meta = c
}

// EnsureDir returns the subdirectory name, creating it (without metadata)
// when missing; a file of that name is replaced.
func (m *MutableTree) EnsureDir(name string) (*MutableTree, error) {
	if err := ValidateName(name); err != nil {
		return nil, err
	}
	if err := m.touch(); err != nil {
		return nil, err
	}
	if d, ok := m.dirs[name]; ok {
		return d, nil
	}
	delete(m.files, name)
	d := NewMutableTree()
	// A copy: name may be part of a longer string (a tar entry's whole
	// path) that the key would keep alive.
	m.dirs[strings.Clone(name)] = d
	return d, nil
}

// Dir returns an existing subdirectory.
func (m *MutableTree) Dir(name string) (*MutableTree, bool, error) {
	if err := m.load(); err != nil {
		return nil, false, err
	}
	d, ok := m.dirs[name]
	return d, ok, nil
}

// File returns the content checksum of a file entry.
func (m *MutableTree) File(name string) (Checksum, bool, error) {
	if err := m.load(); err != nil {
		return Checksum{}, false, err
	}
	c, ok := m.files[name]
	if !ok {
		return Checksum{}, false, nil
	}
	return *c, true, nil
}

// SetFileSlot sets a file entry whose checksum is filled in later (before
// the tree is written); a directory of that name is replaced.
func (m *MutableTree) SetFileSlot(name string, slot *Checksum) error {
	if err := ValidateName(name); err != nil {
		return err
	}
	if err := m.touch(); err != nil {
		return err
	}
	delete(m.dirs, name)
	if _, ok := m.files[name]; ok {
		m.files[name] = slot
	} else {
		m.files[strings.Clone(name)] = slot // as in EnsureDir
	}
	return nil
}

// SetFile sets a file entry.
func (m *MutableTree) SetFile(name string, c Checksum) error {
	return m.SetFileSlot(name, &c)
}

// Remove deletes an entry of either kind; it reports whether one existed.
func (m *MutableTree) Remove(name string) (bool, error) {
	if err := m.touch(); err != nil {
		return false, err
	}
	_, f := m.files[name]
	_, d := m.dirs[name]
	delete(m.files, name)
	delete(m.dirs, name)
	return f || d, nil
}

// Names lists the entries, sorted.
func (m *MutableTree) Names() ([]string, error) {
	if err := m.load(); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(m.files)+len(m.dirs))
	for n := range m.files {
		out = append(out, n)
	}
	for n := range m.dirs {
		out = append(out, n)
	}
	sort.Strings(out)
	return out, nil
}

// WriteTree stores the tree's dirtree objects bottom-up and returns the root
// dirtree checksum. Unmodified subtrees are reused by checksum.
func (t *Txn) WriteTree(m *MutableTree) (Checksum, error) {
	if m.hasBase && !m.loaded {
		return m.base, nil
	}
	var dt DirTree
	for name, c := range m.files {
		dt.Files = append(dt.Files, TreeFile{Name: name, Checksum: *c})
	}
	for name, sub := range m.dirs {
		if sub.meta.IsZero() {
			return Checksum{}, fmt.Errorf("directory %q has no metadata", name)
		}
		tc, err := t.WriteTree(sub)
		if err != nil {
			return Checksum{}, err
		}
		dt.Dirs = append(dt.Dirs, TreeDir{Name: name, Tree: tc, Meta: sub.meta})
	}
	b, err := dt.Encode()
	if err != nil {
		return Checksum{}, err
	}
	c, err := t.WriteMetadata(ObjDirTree, b)
	if err != nil {
		return c, err
	}
	return c, nil
}
