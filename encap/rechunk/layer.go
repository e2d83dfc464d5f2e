package rechunk

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ocitree/ocitree/ostree"
)

// A layer's tar (§3.4): plain root-filesystem paths in component-wise
// path order, each preceded by every ancestor directory this layer has not
// written yet (with its real metadata), so the layer is self-contained. GNU
// headers (PAX where there are xattrs), numeric owners only, mtime clamped
// to the epoch: ostree keeps no mtimes, so every entry has mtime 0, the
// value a deployment has too. Xattrs as sorted SCHILY.xattr records without
// security.selinux and trusted.*. A content object at several paths of one
// layer is written once and hardlinked (empty files excepted, as ostree
// checks them out as copies).

// entry is one path of a layer: a content object or a directory.
type entry struct {
	name string
	obj  ostree.Checksum
	dir  bool
}

// writeLayer writes layer l of plan as a tar stream to w.
func writeLayer(w io.Writer, repo *ostree.Repo, plan *Plan, l *Layer, epoch time.Time) error {
	var entries []entry
	for _, c := range l.Objects {
		for _, n := range plan.objs[c] {
			entries = append(entries, entry{name: n, obj: c})
		}
	}
	for _, d := range l.Dirs {
		entries = append(entries, entry{name: d, dir: true})
	}
	slices.SortFunc(entries, func(a, b entry) int { return comparePaths(a.name, b.name) })

	lw := &tarWriter{tw: tar.NewWriter(w), tree: plan.tree, written: map[string]bool{}, first: map[ostree.Checksum]string{}, mtime: mtime(epoch)}
	for _, e := range entries {
		if err := lw.parents(e.name); err != nil {
			return err
		}
		var err error
		if e.dir {
			err = lw.dir(e.name)
		} else {
			err = lw.file(repo, e)
		}
		if err != nil {
			return err
		}
	}
	return lw.tw.Close()
}

// mtime is the clamp of every entry: min(0, epoch), as the tree's own
// mtimes are 0.
func mtime(epoch time.Time) time.Time {
	if epoch.Unix() < 0 {
		return epoch
	}
	return time.Unix(0, 0)
}

type tarWriter struct {
	tw      *tar.Writer
	tree    *treeInfo
	written map[string]bool            // directories written in this layer
	first   map[ostree.Checksum]string // object -> the path that carries its data
	mtime   time.Time
}

// parents writes the ancestors of name not yet written, shallowest first
// (not the root: it is written for itself, in one layer).
func (lw *tarWriter) parents(name string) error {
	var todo []string
	for d := parentOf(name); d != ""; d = parentOf(d) {
		if lw.written[d] {
			break
		}
		todo = append(todo, d)
	}
	for i := len(todo) - 1; i >= 0; i-- {
		if err := lw.dir(todo[i]); err != nil {
			return err
		}
	}
	return nil
}

func parentOf(name string) string {
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		return name[:i]
	}
	return ""
}

func (lw *tarWriter) dir(name string) error {
	if lw.written[name] {
		return nil
	}
	lw.written[name] = true
	m, ok := lw.tree.meta[name]
	if !ok {
		return fmt.Errorf("directory /%s: no metadata", name)
	}
	h := &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Uid: int(m.UID), Gid: int(m.GID), Mode: int64(m.Mode & 0o7777)}
	if name == "" {
		h.Name = "./"
	}
	setXattrs(h, m.Xattrs)
	return lw.header(h)
}

// setXattrs adds the xattrs a layer carries as PAX records.
func setXattrs(h *tar.Header, xs []ostree.Xattr) {
	for _, x := range xs {
		if x.Name == "security.selinux" || strings.HasPrefix(x.Name, "trusted.") {
			continue
		}
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords["SCHILY.xattr."+x.Name] = string(x.Value)
	}
}

func (lw *tarWriter) header(h *tar.Header) error {
	h.ModTime = lw.mtime
	h.Format = tar.FormatGNU
	if h.PAXRecords != nil {
		h.Format = tar.FormatPAX // Go writes the records sorted by key
	}
	if err := lw.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("tar entry %s: %w", h.Name, err)
	}
	return nil
}

func (lw *tarWriter) file(repo *ostree.Repo, e entry) error {
	ct, err := repo.OpenContent(e.obj)
	if err != nil {
		return fmt.Errorf("/%s: %w", e.name, err)
	}
	defer ct.Payload.Close()
	m := ct.Meta
	h := &tar.Header{Name: e.name, Uid: int(m.UID), Gid: int(m.GID), Mode: int64(m.Mode & 0o7777)}
	switch {
	case m.IsSymlink():
		h.Typeflag, h.Linkname = tar.TypeSymlink, m.Target
	case ct.Size > 0 && lw.first[e.obj] != "":
		h.Typeflag, h.Linkname = tar.TypeLink, lw.first[e.obj]
		return lw.header(h) // a hardlink carries no xattrs of its own
	default:
		h.Typeflag, h.Size = tar.TypeReg, ct.Size
		lw.first[e.obj] = e.name
	}
	setXattrs(h, m.Xattrs)
	if err := lw.header(h); err != nil {
		return err
	}
	if h.Size > 0 {
		if n, err := io.CopyN(lw.tw, ct.Payload, h.Size); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("/%s: copied %d of %d bytes: %w", e.name, n, h.Size, err)
		}
	}
	return nil
}
