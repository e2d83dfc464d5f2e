package ostree

import (
	"fmt"
	"path"
)

// ListEntry is one path of a commit, as `ostree ls` shows it.
type ListEntry struct {
	Path         string
	IsDir        bool
	Mode         uint32
	UID, GID     uint32
	Size         int64
	Target       string
	Checksum     Checksum // content checksum, or dirtree checksum for a directory
	MetaChecksum Checksum // dirmeta checksum for a directory
	Xattrs       []Xattr
}

// List calls fn for the path p of commit c and, when it is a directory, its
// entries (files first, then directories, each sorted), recursing with
// recursive as `ostree ls -R` does.
func (r *Repo) List(c Checksum, p string, recursive bool, fn func(ListEntry) error) error {
	cm, err := r.ReadCommit(c)
	if err != nil {
		return err
	}
	tree, meta := cm.RootTree, cm.RootMeta
	parts := splitPath(p)
	for i, name := range parts {
		dt, err := r.ReadDirTree(tree)
		if err != nil {
			return err
		}
		if d, ok := dt.LookupDir(name); ok {
			tree, meta = d.Tree, d.Meta
			continue
		}
		if f, ok := dt.LookupFile(name); ok && i == len(parts)-1 {
			e, err := r.fileEntry("/"+path.Join(parts...), f)
			if err != nil {
				return err
			}
			return fn(e)
		}
		return fmt.Errorf("%s: no such file or directory in commit %s", p, c)
	}
	return r.listDir("/"+path.Join(parts...), tree, meta, recursive, true, fn)
}

func (r *Repo) fileEntry(p string, c Checksum) (ListEntry, error) {
	cont, err := r.OpenContent(c)
	if err != nil {
		return ListEntry{}, err
	}
	cont.Payload.Close()
	m := cont.Meta
	return ListEntry{Path: p, Mode: m.Mode, UID: m.UID, GID: m.GID, Size: cont.Size, Target: m.Target, Checksum: c, Xattrs: m.Xattrs}, nil
}

func (r *Repo) listDir(p string, tree, meta Checksum, recursive, top bool, fn func(ListEntry) error) error {
	dm, err := r.ReadDirMeta(meta)
	if err != nil {
		return err
	}
	if err := fn(ListEntry{Path: p, IsDir: true, Mode: dm.Mode, UID: dm.UID, GID: dm.GID, Checksum: tree, MetaChecksum: meta, Xattrs: dm.Xattrs}); err != nil {
		return err
	}
	if !top && !recursive {
		return nil
	}
	dt, err := r.ReadDirTree(tree)
	if err != nil {
		return err
	}
	for _, f := range dt.Files {
		e, err := r.fileEntry(path.Join(p, f.Name), f.Checksum)
		if err != nil {
			return err
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	for _, d := range dt.Dirs {
		if err := r.listDir(path.Join(p, d.Name), d.Tree, d.Meta, recursive, false, fn); err != nil {
			return err
		}
	}
	return nil
}
