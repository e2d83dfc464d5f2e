package ostree

import (
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"time"
)

// CommitFS returns a read-only io/fs view of commit c's tree, so that
// code written for a directory (kernel discovery, config files) can check a
// commit before anything is checked out. Symlinks are reported as symlinks
// and never followed; opening one is an error.
func (r *Repo) CommitFS(c Checksum) (fs.FS, error) {
	cm, err := r.ReadCommit(c)
	if err != nil {
		return nil, err
	}
	return &commitFS{r: r, tree: cm.RootTree, meta: cm.RootMeta}, nil
}

type commitFS struct {
	r          *Repo
	tree, meta Checksum
}

// resolve walks name; it returns either a directory (tree, meta) or a file.
func (f *commitFS) resolve(op, name string) (dir *TreeDir, file *Checksum, err error) {
	if !fs.ValidPath(name) {
		return nil, nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	cur := TreeDir{Name: ".", Tree: f.tree, Meta: f.meta}
	if name == "." {
		return &cur, nil, nil
	}
	parts := strings.Split(name, "/")
	for i, p := range parts {
		dt, err := f.r.ReadDirTree(cur.Tree)
		if err != nil {
			return nil, nil, &fs.PathError{Op: op, Path: name, Err: err}
		}
		if d, ok := dt.LookupDir(p); ok {
			cur = d
			continue
		}
		if c, ok := dt.LookupFile(p); ok && i == len(parts)-1 {
			return nil, &c, nil
		}
		return nil, nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrNotExist}
	}
	return &cur, nil, nil
}

func (f *commitFS) Open(name string) (fs.File, error) {
	d, c, err := f.resolve("open", name)
	if err != nil {
		return nil, err
	}
	if d != nil {
		dm, err := f.r.ReadDirMeta(d.Meta)
		if err != nil {
			return nil, &fs.PathError{Op: "open", Path: name, Err: err}
		}
		return &commitDir{fs: f, name: name, d: *d, info: commitInfo{name: path.Base(name), mode: dm.Mode}}, nil
	}
	content, err := f.r.OpenContent(*c)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: name, Err: err}
	}
	info := commitInfo{name: path.Base(name), mode: content.Meta.Mode, size: content.Size}
	if content.Meta.IsSymlink() {
		content.Payload.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: errors.New("is a symlink (not followed)")}
	}
	return &commitFile{rc: content.Payload, info: info}, nil
}

// Stat does not follow symlinks.
func (f *commitFS) Stat(name string) (fs.FileInfo, error) {
	d, c, err := f.resolve("stat", name)
	if err != nil {
		return nil, err
	}
	if d != nil {
		dm, err := f.r.ReadDirMeta(d.Meta)
		if err != nil {
			return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
		}
		return commitInfo{name: path.Base(name), mode: dm.Mode}, nil
	}
	content, err := f.r.OpenContent(*c)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err}
	}
	content.Payload.Close()
	return commitInfo{name: path.Base(name), mode: content.Meta.Mode, size: content.Size}, nil
}

func (f *commitFS) ReadDir(name string) ([]fs.DirEntry, error) {
	d, _, err := f.resolve("readdir", name)
	if err != nil {
		return nil, err
	}
	if d == nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
	}
	return (&commitDir{fs: f, name: name, d: *d}).ReadDir(-1)
}

type commitInfo struct {
	name string
	mode uint32
	size int64
}

func (i commitInfo) Name() string       { return i.name }
func (i commitInfo) Size() int64        { return i.size }
func (i commitInfo) ModTime() time.Time { return time.Unix(0, 0) }
func (i commitInfo) IsDir() bool        { return i.mode&modeTypeMask == modeDir }
func (i commitInfo) Sys() any           { return nil }
func (i commitInfo) Mode() fs.FileMode {
	m := fs.FileMode(i.mode & 0o777)
	switch i.mode & modeTypeMask {
	case modeDir:
		m |= fs.ModeDir
	case modeLnk:
		m |= fs.ModeSymlink
	}
	if i.mode&0o4000 != 0 {
		m |= fs.ModeSetuid
	}
	if i.mode&0o2000 != 0 {
		m |= fs.ModeSetgid
	}
	if i.mode&0o1000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

type commitFile struct {
	rc   io.ReadCloser
	info commitInfo
}

func (f *commitFile) Stat() (fs.FileInfo, error) { return f.info, nil }
func (f *commitFile) Read(p []byte) (int, error) { return f.rc.Read(p) }
func (f *commitFile) Close() error               { return f.rc.Close() }

type commitDir struct {
	fs   *commitFS
	name string
	d    TreeDir
	info commitInfo
	ents []fs.DirEntry // nil until read
	pos  int
}

func (d *commitDir) Stat() (fs.FileInfo, error) { return d.info, nil }
func (d *commitDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}
func (d *commitDir) Close() error { return nil }

// ReadDir lists files then directories, each sorted by name (dirtree
// order), n at a time when n > 0.
func (d *commitDir) ReadDir(n int) ([]fs.DirEntry, error) {
	if d.ents == nil {
		dt, err := d.fs.r.ReadDirTree(d.d.Tree)
		if err != nil {
			return nil, err
		}
		d.ents = []fs.DirEntry{}
		for _, f := range dt.Files {
			d.ents = append(d.ents, &commitEntry{fs: d.fs, path: path.Join(d.name, f.Name), name: f.Name})
		}
		for _, s := range dt.Dirs {
			d.ents = append(d.ents, &commitEntry{fs: d.fs, path: path.Join(d.name, s.Name), name: s.Name, dir: true})
		}
	}
	rest := d.ents[d.pos:]
	if n <= 0 {
		d.pos = len(d.ents)
		return rest, nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	if n > len(rest) {
		n = len(rest)
	}
	d.pos += n
	return rest[:n], nil
}

type commitEntry struct {
	fs         *commitFS
	path, name string
	dir        bool
}

func (e *commitEntry) Name() string { return e.name }
func (e *commitEntry) IsDir() bool  { return e.dir }
func (e *commitEntry) Type() fs.FileMode {
	if e.dir {
		return fs.ModeDir
	}
	i, err := e.fs.Stat(e.path)
	if err != nil {
		return 0
	}
	return i.Mode().Type()
}
func (e *commitEntry) Info() (fs.FileInfo, error) { return e.fs.Stat(e.path) }
