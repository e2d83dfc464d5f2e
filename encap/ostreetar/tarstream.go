package ostreetar

// The writer side of the ostree-container tar stream ("tar format v1").
//
// Headers are written with Go's archive/tar in GNU format, which matches
// what ostree-ext's writer (tar-rs, Header::new_gnu) produces in everything
// an importer or a container runtime looks at: GNU magic, "././@LongLink"
// entries of type L (names) and K (link targets) for anything longer than
// 100 bytes, mtime 0, empty uname/gname, modes without the S_IFMT bits,
// names relative without "./" (the root is "./"), directories without a
// trailing slash, link and symlink targets verbatim.
//
// Deviations from tar-rs's bytes (byte-exactness is not a goal: gzip output
// differs anyway; what matters is that ostree-ext's importer and OCI
// unpackers accept the stream and that it is deterministic):
//
//   - A content object with extended attributes other than security.selinux
//     is written in PAX format: Go cannot mix a PAX extended header with a
//     GNU header, so that one object entry is a POSIX ustar header (magic
//     "ustar\x0000") preceded by its "x" header, which Go names
//     "<dir>/PaxHeaders.0/<file>" (truncated to 100 bytes) where tar-rs
//     leaves the name empty. The records are the same SCHILY.xattr.<name>
//     records, sorted by name (ostree keeps xattrs sorted, so this is the
//     object's xattr order). The object path is 98 bytes and fits the ustar
//     name field, so no "path" record is needed.
//   - GNU long-name/long-link entries have mode 0 (tar-rs: 0644).
//   - Numeric fields tar-rs leaves as NUL bytes (devmajor/devminor) are
//     octal zeros, and the header checksum is "%06o\x00 " as GNU tar writes it.
//   - The root-level /sysroot directory gets no directory entry (the skeleton
//     made it), as in ostree-ext, but its dirtree objects (and those below
//     it) are written: ostree-ext leaves them out, which makes a commit with
//     a non-empty /sysroot incomplete after import.

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/ocitree/ocitree/ostree"
	"github.com/ocitree/ocitree/ostree/gvariant"
)

// Paths and constants of the stream.
const (
	repoPrefix    = "sysroot/ostree/repo/"
	objectsPrefix = repoPrefix + "objects/"
	repoConfig    = "[core]\nrepo_version=1\nmode=bare-split-xattrs\n"

	sfxCommit      = "commit"
	sfxCommitMeta  = "commitmeta"
	sfxDirTree     = "dirtree"
	sfxDirMeta     = "dirmeta"
	sfxFile        = "file"
	sfxXattrs      = "file-xattrs"
	sfxXattrsLink  = "file-xattrs-link"
	selinuxXattr   = "security.selinux"
	paxXattrPrefix = "SCHILY.xattr."

	sIFMT  = 0o170000
	sIFREG = 0o100000
	sIFLNK = 0o120000
	perms  = 0o7777
)

// skeletonDirs lists the repository skeleton's directories in stream order
// (§3.3): the objects/XX directories come between objects and extensions.
func skeletonDirs() []string {
	dirs := []string{"sysroot", "sysroot/ostree", "sysroot/ostree/repo", "sysroot/ostree/repo/objects"}
	for i := range 256 {
		dirs = append(dirs, fmt.Sprintf("%s%02x", objectsPrefix, i))
	}
	for _, d := range []string{"extensions", "refs", "refs/heads", "refs/mirrors", "refs/remotes", "state", "tmp", "tmp/cache"} {
		dirs = append(dirs, repoPrefix+d)
	}
	return dirs
}

// objectPath is the stream path of an object: objects/XX/<62 hex>.<suffix>.
func objectPath(c ostree.Checksum, suffix string) string {
	h := c.String()
	return objectsPrefix + h[:2] + "/" + h[2:] + "." + suffix
}

var typeSuffix = map[ostree.ObjectType]string{
	ostree.ObjCommit:     sfxCommit,
	ostree.ObjCommitMeta: sfxCommitMeta,
	ostree.ObjDirTree:    sfxDirTree,
	ostree.ObjDirMeta:    sfxDirMeta,
}

// checkoutPath turns an absolute commit path into its name in the stream:
// relative, with /usr/etc shown as etc (§3.6).
func checkoutPath(abs string) (string, error) {
	rel, ok := strings.CutPrefix(abs, "/")
	if !ok || rel == "" {
		return "", fmt.Errorf("checkout path %q is not an absolute file path", abs)
	}
	for _, c := range strings.Split(rel, "/") {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("checkout path %q is not clean", abs)
		}
	}
	return mapEtc(rel), nil
}

// mapEtc maps usr/etc and usr/etc/... to etc and etc/....
func mapEtc(rel string) string {
	if rel == "usr/etc" {
		return "etc"
	}
	if rest, ok := strings.CutPrefix(rel, "usr/etc/"); ok {
		return "etc/" + rest
	}
	return rel
}

// Chunk is the content of one layer. Its objects are emitted in ascending
// checksum order whatever their order here; each checksum may appear once.
type Chunk struct{ Objects []ostree.ContentObject }

// layerWriter writes one layer.
type layerWriter struct {
	tw    *tar.Writer
	repo  *ostree.Repo
	wrote map[ostree.ObjectName]bool // metadata objects already in this layer
	metas map[ostree.Checksum]*ostree.DirMeta
}

func newLayerWriter(w io.Writer, repo *ostree.Repo) *layerWriter {
	return &layerWriter{
		tw:    tar.NewWriter(w),
		repo:  repo,
		wrote: map[ostree.ObjectName]bool{},
		metas: map[ostree.Checksum]*ostree.DirMeta{},
	}
}

// header writes h with the stream's conventions: GNU format unless PAX was
// asked for, mtime 0, no user or group names.
func (lw *layerWriter) header(h *tar.Header) error {
	h.ModTime = time.Unix(0, 0)
	h.Uname, h.Gname = "", ""
	if h.Format == tar.FormatUnknown {
		h.Format = tar.FormatGNU
	}
	if err := lw.tw.WriteHeader(h); err != nil {
		return fmt.Errorf("tar entry %s: %w", h.Name, err)
	}
	return nil
}

func (lw *layerWriter) dir(name string, uid, gid uint32, mode uint32) error {
	return lw.header(&tar.Header{Typeflag: tar.TypeDir, Name: name, Uid: int(uid), Gid: int(gid), Mode: int64(mode & perms)})
}

// data writes a synthetic regular file (uid 0, gid 0, 0644).
func (lw *layerWriter) data(name string, b []byte) error {
	if err := lw.header(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(b))}); err != nil {
		return err
	}
	if _, err := lw.tw.Write(b); err != nil {
		return fmt.Errorf("tar entry %s: %w", name, err)
	}
	return nil
}

func (lw *layerWriter) skeleton() error {
	for _, d := range skeletonDirs() {
		if err := lw.dir(d, 0, 0, 0o755); err != nil {
			return err
		}
	}
	return lw.data(repoPrefix+"config", []byte(repoConfig))
}

// metaObject writes a metadata object once per layer.
func (lw *layerWriter) metaObject(c ostree.Checksum, typ ostree.ObjectType) error {
	if lw.wrote[ostree.ObjectName{Checksum: c, Type: typ}] {
		return nil
	}
	b, err := lw.repo.LoadMeta(c, typ)
	if err != nil {
		return err
	}
	return lw.metaBytes(c, typ, b)
}

// metaBytes writes a metadata object, given its bytes, once per layer.
func (lw *layerWriter) metaBytes(c ostree.Checksum, typ ostree.ObjectType, b []byte) error {
	name := ostree.ObjectName{Checksum: c, Type: typ}
	if lw.wrote[name] {
		return nil
	}
	lw.wrote[name] = true
	return lw.data(objectPath(c, typeSuffix[typ]), b)
}

func (lw *layerWriter) dirMeta(c ostree.Checksum) (*ostree.DirMeta, error) {
	if m, ok := lw.metas[c]; ok {
		return m, nil
	}
	m, err := lw.repo.ReadDirMeta(c)
	if err != nil {
		return nil, fmt.Errorf("dirmeta %s: %w", c, err)
	}
	lw.metas[c] = m
	return m, nil
}

// structure writes the dirtree object of the directory at rel (relative,
// "" for the root), then for each subdirectory its dirmeta object, its
// directory entry and, recursively, its contents (§3.4 step 5). With
// entries false only objects are written (below /sysroot).
func (lw *layerWriter) structure(rel string, tree ostree.Checksum, entries bool, varTmp *bool) error {
	b, err := lw.repo.LoadMeta(tree, ostree.ObjDirTree)
	if err != nil {
		return fmt.Errorf("dirtree %s of /%s: %w", tree, rel, err)
	}
	dt, err := ostree.DecodeDirTree(b)
	if err != nil {
		return fmt.Errorf("dirtree %s of /%s: %w", tree, rel, err)
	}
	if err := lw.metaBytes(tree, ostree.ObjDirTree, b); err != nil {
		return err
	}
	for _, d := range dt.Dirs {
		if err := lw.metaObject(d.Meta, ostree.ObjDirMeta); err != nil {
			return err
		}
		p := d.Name
		if rel != "" {
			p = rel + "/" + d.Name
		}
		sub := entries
		if rel == "" && d.Name == "sysroot" {
			sub = false // the skeleton already made sysroot/
		}
		if sub {
			m, err := lw.dirMeta(d.Meta)
			if err != nil {
				return err
			}
			if err := lw.dir(mapEtc(p), m.UID, m.GID, m.Mode); err != nil {
				return err
			}
			if p == "var/tmp" {
				*varTmp = true
			}
		}
		if err := lw.structure(p, d.Tree, sub, varTmp); err != nil {
			return err
		}
	}
	return nil
}

// encodeXattrs serializes xattrs as ostree's a(ayay) with NUL-terminated
// names; no attributes serialize to zero bytes.
func encodeXattrs(xs []ostree.Xattr) ([]byte, error) {
	arr := make([]any, len(xs))
	for i, x := range xs {
		arr[i] = []any{append([]byte(x.Name), 0), x.Value}
	}
	return gvariant.Marshal("a(ayay)", arr)
}

// sortedChunk returns the chunk's objects in ascending checksum order,
// refusing a checksum listed twice.
func sortedChunk(ch Chunk) ([]ostree.ContentObject, error) {
	objs := slices.Clone(ch.Objects)
	slices.SortFunc(objs, func(a, b ostree.ContentObject) int { return bytes.Compare(a.Checksum[:], b.Checksum[:]) })
	for i := 1; i < len(objs); i++ {
		if objs[i].Checksum == objs[i-1].Checksum {
			return nil, fmt.Errorf("content object %s listed twice in one chunk", objs[i].Checksum)
		}
	}
	return objs, nil
}

func (lw *layerWriter) chunk(ch Chunk) error {
	objs, err := sortedChunk(ch)
	if err != nil {
		return err
	}
	for _, o := range objs {
		if err := lw.content(o); err != nil {
			return err
		}
	}
	return nil
}

// content writes one content object (§3.5): its xattrs link (the NEW
// regular-file form), the object entry, then one entry per checkout path.
func (lw *layerWriter) content(o ostree.ContentObject) (err error) {
	names := make([]string, len(o.Paths))
	for i, p := range o.Paths {
		if names[i], err = checkoutPath(p); err != nil {
			return fmt.Errorf("content object %s: %w", o.Checksum, err)
		}
	}
	c, err := lw.repo.OpenContent(o.Checksum)
	if err != nil {
		return fmt.Errorf("content object %s: %w", o.Checksum, err)
	}
	defer c.Payload.Close()
	m := c.Meta
	xb, err := encodeXattrs(m.Xattrs)
	if err != nil {
		return fmt.Errorf("content object %s: xattrs: %w", o.Checksum, err)
	}
	if err := lw.data(objectPath(o.Checksum, sfxXattrsLink), xb); err != nil {
		return err
	}
	obj := objectPath(o.Checksum, sfxFile)
	h := &tar.Header{Name: obj, Uid: int(m.UID), Gid: int(m.GID), Mode: int64(m.Mode & perms)}
	if m.IsSymlink() {
		h.Typeflag, h.Linkname = tar.TypeSymlink, m.Target
	} else {
		h.Typeflag, h.Size = tar.TypeReg, c.Size
	}
	for _, x := range m.Xattrs {
		if x.Name == selinuxXattr {
			continue
		}
		if h.PAXRecords == nil {
			h.PAXRecords = map[string]string{}
		}
		h.PAXRecords[paxXattrPrefix+x.Name] = string(x.Value)
	}
	if h.PAXRecords != nil {
		h.Format = tar.FormatPAX
	}
	if err := lw.header(h); err != nil {
		return err
	}
	if h.Size > 0 {
		if n, err := io.CopyN(lw.tw, c.Payload, h.Size); err != nil {
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("content object %s: copied %d of %d bytes: %w", o.Checksum, n, h.Size, err)
		}
	}
	empty := !m.IsSymlink() && c.Size == 0
	for _, name := range names {
		l := &tar.Header{Name: name, Uid: h.Uid, Gid: h.Gid, Mode: h.Mode}
		if empty {
			l.Typeflag = tar.TypeReg // independent empty files, never links
		} else {
			l.Typeflag, l.Linkname = tar.TypeLink, obj
		}
		if err := lw.header(l); err != nil {
			return err
		}
	}
	return nil
}

// WriteCommitLayer writes the commit ("ostree") layer of an encapsulated
// commit to w (§3.4): the root directory "./", the repository skeleton, the
// .commit object, its .commitmeta when the commit has detached metadata, the
// root .dirmeta, then a depth-first walk writing each directory's .dirtree,
// each subdirectory's .dirmeta and directory entry (/usr/etc shown as etc),
// a synthetic var/tmp (mode 01777) when the commit has none, and finally the
// content objects of rest (§3.5). The tar stream is finished; w is not closed.
func WriteCommitLayer(w io.Writer, repo *ostree.Repo, commit ostree.Checksum, rest Chunk) error {
	lw := newLayerWriter(w, repo)
	cm, err := repo.ReadCommit(commit)
	if err != nil {
		return fmt.Errorf("commit %s: %w", commit, err)
	}
	root, err := lw.dirMeta(cm.RootMeta)
	if err != nil {
		return err
	}
	if err := lw.dir("./", root.UID, root.GID, root.Mode); err != nil {
		return err
	}
	if err := lw.skeleton(); err != nil {
		return err
	}
	if err := lw.metaObject(commit, ostree.ObjCommit); err != nil {
		return err
	}
	if err := lw.metaObject(commit, ostree.ObjCommitMeta); err != nil {
		var missing *ostree.MissingObjectError
		if !errors.As(err, &missing) {
			return err
		}
	}
	if err := lw.metaObject(cm.RootMeta, ostree.ObjDirMeta); err != nil {
		return err
	}
	varTmp := false
	if err := lw.structure("", cm.RootTree, true, &varTmp); err != nil {
		return err
	}
	if !varTmp {
		if err := lw.dir("var/tmp", 0, 0, 0o1777); err != nil {
			return err
		}
	}
	if err := lw.chunk(rest); err != nil {
		return err
	}
	return lw.tw.Close()
}

// WriteChunkLayer writes a component layer to w: the repository skeleton,
// then the chunk's content objects in ascending checksum order, each with its
// xattrs link and its checkout-path hardlinks (§3.3, §3.5). The tar stream is
// finished; w is not closed.
func WriteChunkLayer(w io.Writer, repo *ostree.Repo, chunk Chunk) error {
	lw := newLayerWriter(w, repo)
	if err := lw.skeleton(); err != nil {
		return err
	}
	if err := lw.chunk(chunk); err != nil {
		return err
	}
	return lw.tw.Close()
}
