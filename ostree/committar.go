package ostree

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// defaultDirMode is the metadata of directories a tar stream implies but
// does not list.
const defaultDirMode = modeDir | 0o755

// ImportTar writes the tree carried by a tar stream into the transaction and
// returns its root. Entries are streamed: no file is held in memory beyond
// the small-file buffer. Later entries replace earlier ones of the same
// path. Sparse files (GNU type 'S' and PAX GNU.sparse 0.0, 0.1 and 1.0) are
// stored with their holes read as zeros, as `ostree commit --tree=tar=`
// (libarchive) stores them. Refused, with the entry named: absolute paths,
// ".." components, device nodes, FIFOs, hardlinks to unknown or non-file
// entries, names or symlink targets that are not UTF-8.
func (t *Txn) ImportTar(rd io.Reader) (*MutableTree, error) {
	tr := tar.NewReader(rd)
	root := NewMutableTree()
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading tar: %w", err)
		}
		if err := t.importTarEntry(root, hdr, tr); err != nil {
			return nil, fmt.Errorf("tar entry %q: %w", hdr.Name, err)
		}
	}
	if err := t.fillDirMeta(root); err != nil {
		return nil, err
	}
	return root, nil
}

// CleanTarPath turns a tar entry name into slash-separated components below
// the root, refusing anything that would leave it.
func CleanTarPath(name string) ([]string, error) {
	if !utf8.ValidString(name) {
		return nil, fmt.Errorf("path is not valid UTF-8")
	}
	if strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("absolute path refused")
	}
	// One allocation, no intermediate split: deep paths are common in
	// hostile layers and this runs for every entry.
	parts := make([]string, 0, strings.Count(name, "/")+1)
	for rest := name; rest != ""; {
		p, tail, _ := strings.Cut(rest, "/")
		rest = tail
		switch p {
		case "", ".":
			continue
		case "..":
			return nil, fmt.Errorf("path with \"..\" refused")
		}
		if err := ValidateName(p); err != nil {
			return nil, err
		}
		parts = append(parts, p)
	}
	return parts, nil
}

func (t *Txn) importTarEntry(root *MutableTree, hdr *tar.Header, tr *tar.Reader) error {
	if hdr.Typeflag == tar.TypeXGlobalHeader {
		return nil // pax global header (git archive writes one): no file
	}
	parts, err := CleanTarPath(hdr.Name)
	if err != nil {
		return err
	}
	xattrs, err := TarXattrs(hdr)
	if err != nil {
		return err
	}
	perm := uint32(hdr.Mode) & modePermMask
	if hdr.Typeflag == tar.TypeDir {
		dir := root
		for _, p := range parts {
			if dir, err = dir.EnsureDir(p); err != nil {
				return err
			}
		}
		dm := DirMeta{UID: uint32(hdr.Uid), GID: uint32(hdr.Gid), Mode: modeDir | perm, Xattrs: xattrs}
		b, err := dm.Encode()
		if err != nil {
			return err
		}
		c, err := t.WriteMetadata(ObjDirMeta, b)
		if err != nil {
			return err
		}
		dir.SetMeta(c)
		return nil
	}
	if len(parts) == 0 {
		return fmt.Errorf("a non-directory entry for the root")
	}
	parent := root
	for _, p := range parts[:len(parts)-1] {
		if parent, err = parent.EnsureDir(p); err != nil {
			return err
		}
	}
	name := parts[len(parts)-1]
	meta := &FileMeta{UID: uint32(hdr.Uid), GID: uint32(hdr.Gid), Xattrs: xattrs}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
		// archive/tar expands a sparse file's holes (old GNU or PAX map)
		// and reports its real size.
		meta.Mode = modeReg | perm
		c, err := t.WriteContent(meta, tr, hdr.Size)
		if err != nil {
			return err
		}
		return parent.SetFile(name, c)
	case tar.TypeSymlink:
		if !utf8.ValidString(hdr.Linkname) {
			return fmt.Errorf("symlink target %q is not valid UTF-8", hdr.Linkname)
		}
		meta.Mode, meta.Target = modeLnk|0o777, hdr.Linkname
		c, err := t.WriteContent(meta, nil, 0)
		if err != nil {
			return err
		}
		return parent.SetFile(name, c)
	case tar.TypeLink:
		c, err := lookupTarLink(root, hdr.Linkname)
		if err != nil {
			return err
		}
		return parent.SetFile(name, c)
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		return fmt.Errorf("device nodes and FIFOs cannot be stored (type %q)", hdr.Typeflag)
	}
	return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
}

// lookupTarLink resolves a hardlink's target among entries already seen.
func lookupTarLink(root *MutableTree, linkname string) (Checksum, error) {
	parts, err := CleanTarPath(linkname)
	if err != nil || len(parts) == 0 {
		return Checksum{}, fmt.Errorf("hardlink target %q: invalid", linkname)
	}
	dir := root
	for _, p := range parts[:len(parts)-1] {
		sub, ok, err := dir.Dir(p)
		if err != nil {
			return Checksum{}, err
		}
		if !ok {
			return Checksum{}, fmt.Errorf("hardlink target %q not found earlier in the stream", linkname)
		}
		dir = sub
	}
	c, ok, err := dir.File(parts[len(parts)-1])
	if err != nil {
		return Checksum{}, err
	}
	if !ok {
		return Checksum{}, fmt.Errorf("hardlink target %q is not a file seen earlier in the stream", linkname)
	}
	return c, nil
}

// TarXattrs extracts extended attributes from PAX records
// (SCHILY.xattr.NAME), sorted, empty values dropped.
func TarXattrs(hdr *tar.Header) ([]Xattr, error) {
	var xs []Xattr
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		if name == "" {
			return nil, errors.New("empty xattr name")
		}
		xs = append(xs, Xattr{Name: name, Value: []byte(v)})
	}
	return SortXattrs(xs), nil
}

// fillDirMeta gives directories the stream implied but never listed the
// default metadata (root-owned 0755).
func (t *Txn) fillDirMeta(m *MutableTree) error {
	var def Checksum
	var walk func(*MutableTree) error
	walk = func(d *MutableTree) error {
		if d.meta.IsZero() {
			if def.IsZero() {
				b, _ := (&DirMeta{Mode: defaultDirMode}).Encode()
				c, err := t.WriteMetadata(ObjDirMeta, b)
				if err != nil {
					return err
				}
				def = c
			}
			d.SetMeta(def)
		}
		if !d.loaded {
			return nil
		}
		for _, sub := range d.dirs {
			if err := walk(sub); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(m)
}
