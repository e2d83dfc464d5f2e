package ostree

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/bits"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/ocitree/ocitree/ostree/gvariant"
)

// GVariant type strings of ostree's objects.
const (
	typeCommit      = "(a{sv}aya(say)sstayay)"
	typeDirTree     = "(a(say)a(sayay))"
	typeDirMeta     = "(uuua(ayay))"
	typeFileHeader  = "(uuuusa(ayay))"
	typeZFileHeader = "(tuuuusa(ayay))"
	typeMetadata    = "a{sv}"
)

// File type bits of st_mode.
const (
	modeTypeMask = 0170000
	modeReg      = 0100000
	modeLnk      = 0120000
	modeDir      = 0040000
	modePermMask = 07777
)

// be32 and be64 convert ostree's big-endian fields to and from the
// little-endian integers the GVariant serializer writes.
func be32(v uint32) uint32 { return bits.ReverseBytes32(v) }
func be64(v uint64) uint64 { return bits.ReverseBytes64(v) }

// Xattr is one extended attribute. Name has no trailing NUL.
type Xattr struct {
	Name  string
	Value []byte
}

// SortXattrs sorts by name (strcmp order) and drops empty values, as libglnx
// does when reading attributes from the filesystem.
func SortXattrs(xs []Xattr) []Xattr {
	out := xs[:0]
	for _, x := range xs {
		if len(x.Value) > 0 {
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func xattrsToGV(xs []Xattr) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		name := make([]byte, len(x.Name)+1)
		copy(name, x.Name)
		out[i] = []any{name, x.Value}
	}
	return out
}

func xattrsFromGV(v any) ([]Xattr, error) {
	arr, _ := v.([]any)
	out := make([]Xattr, 0, len(arr))
	for _, e := range arr {
		pair := e.([]any)
		name := pair[0].([]byte)
		if len(name) == 0 || name[len(name)-1] != 0 {
			return nil, fmt.Errorf("xattr name not NUL-terminated")
		}
		out = append(out, Xattr{Name: string(name[:len(name)-1]), Value: pair[1].([]byte)})
	}
	return out, nil
}

// FileMeta is the metadata of a content object (a regular file or symlink).
type FileMeta struct {
	UID, GID uint32
	Mode     uint32 // full st_mode, S_IFREG or S_IFLNK
	Target   string // symlink target; empty for regular files
	Xattrs   []Xattr
}

// IsSymlink reports whether the object is a symlink.
func (m *FileMeta) IsSymlink() bool { return m.Mode&modeTypeMask == modeLnk }

// Validate checks what libostree requires of a content object's metadata.
func (m *FileMeta) Validate() error {
	switch m.Mode & modeTypeMask {
	case modeReg:
		if m.Target != "" {
			return fmt.Errorf("regular file with a symlink target")
		}
	case modeLnk:
		if m.Target == "" {
			return fmt.Errorf("symlink with an empty target")
		}
		if !utf8.ValidString(m.Target) || strings.IndexByte(m.Target, 0) >= 0 {
			return fmt.Errorf("symlink target %q is not valid UTF-8", m.Target)
		}
	default:
		return fmt.Errorf("not a regular file or symlink (mode %o)", m.Mode)
	}
	if m.Mode&^(modeTypeMask|modePermMask) != 0 {
		return fmt.Errorf("invalid mode %o", m.Mode)
	}
	return nil
}

// encodeHeader serializes the (uuuusa(ayay)) header used for checksums.
func (m *FileMeta) encodeHeader() ([]byte, error) {
	return gvariant.Marshal(typeFileHeader, []any{be32(m.UID), be32(m.GID), be32(m.Mode), uint32(0), m.Target, xattrsToGV(m.Xattrs)})
}

// encodeZHeader serializes the archive-mode (tuuuusa(ayay)) header.
func (m *FileMeta) encodeZHeader(size uint64) ([]byte, error) {
	return gvariant.Marshal(typeZFileHeader, []any{be64(size), be32(m.UID), be32(m.GID), be32(m.Mode), uint32(0), m.Target, xattrsToGV(m.Xattrs)})
}

// encodeUserMeta serializes the bare-user "user.ostreemeta" value (uuua(ayay)).
func (m *FileMeta) encodeUserMeta() ([]byte, error) {
	return gvariant.Marshal(typeDirMeta, []any{be32(m.UID), be32(m.GID), be32(m.Mode), xattrsToGV(m.Xattrs)})
}

// streamPrefix is BE32(len(header)) || 00000000 || header: what precedes the
// payload in the content checksum (and in a .filez file).
func streamPrefix(header []byte) []byte {
	p := make([]byte, 8, 8+len(header))
	binary.BigEndian.PutUint32(p, uint32(len(header)))
	return append(p, header...)
}

func decodeFileHeader(b []byte) (*FileMeta, error) {
	v, err := gvariant.Unmarshal(typeFileHeader, b)
	if err != nil {
		return nil, fmt.Errorf("file header: %w", err)
	}
	t := v.([]any)
	if be32(t[3].(uint32)) != 0 {
		return nil, fmt.Errorf("corrupted file header: invalid rdev")
	}
	xs, err := xattrsFromGV(t[5])
	if err != nil {
		return nil, err
	}
	return &FileMeta{UID: be32(t[0].(uint32)), GID: be32(t[1].(uint32)), Mode: be32(t[2].(uint32)), Target: t[4].(string), Xattrs: xs}, nil
}

func decodeZFileHeader(b []byte) (*FileMeta, uint64, error) {
	v, err := gvariant.Unmarshal(typeZFileHeader, b)
	if err != nil {
		return nil, 0, fmt.Errorf("archive file header: %w", err)
	}
	t := v.([]any)
	if be32(t[4].(uint32)) != 0 {
		return nil, 0, fmt.Errorf("corrupted archive file: invalid rdev")
	}
	xs, err := xattrsFromGV(t[6])
	if err != nil {
		return nil, 0, err
	}
	m := &FileMeta{UID: be32(t[1].(uint32)), GID: be32(t[2].(uint32)), Mode: be32(t[3].(uint32)), Target: t[5].(string), Xattrs: xs}
	return m, be64(t[0].(uint64)), nil
}

// DirMeta is a directory's metadata object.
type DirMeta struct {
	UID, GID uint32
	Mode     uint32 // full st_mode with S_IFDIR
	Xattrs   []Xattr
}

// Encode serializes the dirmeta object.
func (d *DirMeta) Encode() ([]byte, error) {
	if d.Mode&modeTypeMask != modeDir || d.Mode&^(modeTypeMask|modePermMask) != 0 {
		return nil, fmt.Errorf("invalid directory metadata mode %o", d.Mode)
	}
	return gvariant.Marshal(typeDirMeta, []any{be32(d.UID), be32(d.GID), be32(d.Mode), xattrsToGV(d.Xattrs)})
}

// DecodeDirMeta parses and validates a dirmeta object.
func DecodeDirMeta(b []byte) (*DirMeta, error) {
	v, err := gvariant.Unmarshal(typeDirMeta, b)
	if err != nil {
		return nil, fmt.Errorf("dirmeta: %w", err)
	}
	t := v.([]any)
	xs, err := xattrsFromGV(t[3])
	if err != nil {
		return nil, err
	}
	d := &DirMeta{UID: be32(t[0].(uint32)), GID: be32(t[1].(uint32)), Mode: be32(t[2].(uint32)), Xattrs: xs}
	if d.Mode&modeTypeMask != modeDir || d.Mode&^(modeTypeMask|modePermMask) != 0 {
		return nil, fmt.Errorf("invalid directory metadata mode %o", d.Mode)
	}
	return d, nil
}

// TreeFile is a file or symlink entry of a dirtree.
type TreeFile struct {
	Name     string
	Checksum Checksum
}

// TreeDir is a subdirectory entry of a dirtree.
type TreeDir struct {
	Name string
	Tree Checksum
	Meta Checksum
}

// DirTree is a directory listing object. Both lists are sorted by name.
type DirTree struct {
	Files []TreeFile
	Dirs  []TreeDir
}

// ValidateName checks a dirtree entry name as ostree does.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("invalid empty filename")
	case name == "." || name == "..":
		return fmt.Errorf("invalid filename %q", name)
	case strings.IndexByte(name, '/') >= 0:
		return fmt.Errorf("invalid / in filename %q", name)
	case strings.IndexByte(name, 0) >= 0:
		return fmt.Errorf("invalid NUL in filename %q", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("invalid UTF-8 in filename %q", name)
	}
	return nil
}

// Encode serializes the dirtree, sorting both lists.
func (d *DirTree) Encode() ([]byte, error) {
	sort.Slice(d.Files, func(i, j int) bool { return d.Files[i].Name < d.Files[j].Name })
	sort.Slice(d.Dirs, func(i, j int) bool { return d.Dirs[i].Name < d.Dirs[j].Name })
	files := make([]any, len(d.Files))
	for i := range d.Files {
		files[i] = []any{d.Files[i].Name, d.Files[i].Checksum[:]}
	}
	dirs := make([]any, len(d.Dirs))
	for i := range d.Dirs {
		dirs[i] = []any{d.Dirs[i].Name, d.Dirs[i].Tree[:], d.Dirs[i].Meta[:]}
	}
	return gvariant.Marshal(typeDirTree, []any{files, dirs})
}

// DecodeDirTree parses and validates a dirtree object.
func DecodeDirTree(b []byte) (*DirTree, error) {
	v, err := gvariant.Unmarshal(typeDirTree, b)
	if err != nil {
		return nil, fmt.Errorf("dirtree: %w", err)
	}
	t := v.([]any)
	fa, _ := t[0].([]any)
	da, _ := t[1].([]any)
	d := &DirTree{Files: make([]TreeFile, len(fa)), Dirs: make([]TreeDir, len(da))}
	for i, e := range fa {
		f := e.([]any)
		d.Files[i].Name = f[0].(string)
		if err := ValidateName(d.Files[i].Name); err != nil {
			return nil, err
		}
		if d.Files[i].Checksum, err = ChecksumFromBytes(f[1].([]byte)); err != nil {
			return nil, err
		}
	}
	for i, e := range da {
		f := e.([]any)
		d.Dirs[i].Name = f[0].(string)
		if err := ValidateName(d.Dirs[i].Name); err != nil {
			return nil, err
		}
		if d.Dirs[i].Tree, err = ChecksumFromBytes(f[1].([]byte)); err != nil {
			return nil, err
		}
		if d.Dirs[i].Meta, err = ChecksumFromBytes(f[2].([]byte)); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// LookupFile finds a file entry by name (binary search, as ostree does).
func (d *DirTree) LookupFile(name string) (Checksum, bool) {
	i := sort.Search(len(d.Files), func(i int) bool { return d.Files[i].Name >= name })
	if i < len(d.Files) && d.Files[i].Name == name {
		return d.Files[i].Checksum, true
	}
	return Checksum{}, false
}

// LookupDir finds a subdirectory entry by name.
func (d *DirTree) LookupDir(name string) (TreeDir, bool) {
	i := sort.Search(len(d.Dirs), func(i int) bool { return d.Dirs[i].Name >= name })
	if i < len(d.Dirs) && d.Dirs[i].Name == name {
		return d.Dirs[i], true
	}
	return TreeDir{}, false
}

// MetaEntry is one key of commit metadata (an a{sv} entry), kept in order.
type MetaEntry struct {
	Key   string
	Value gvariant.Variant
}

// Metadata is an ordered a{sv} dictionary.
type Metadata []MetaEntry

// Lookup returns the value stored under key.
func (m Metadata) Lookup(key string) (gvariant.Variant, bool) {
	for _, e := range m {
		if e.Key == key {
			return e.Value, true
		}
	}
	return gvariant.Variant{}, false
}

// String returns the string value of key, or "".
func (m Metadata) String(key string) string {
	v, ok := m.Lookup(key)
	if !ok {
		return ""
	}
	s, _ := v.Value.(string)
	return s
}

// Encode serializes the dictionary.
func (m Metadata) Encode() ([]byte, error) {
	return gvariant.Marshal(typeMetadata, m.toGV())
}

func (m Metadata) toGV() []gvariant.DictEntry {
	out := make([]gvariant.DictEntry, len(m))
	for i, e := range m {
		out[i] = gvariant.DictEntry{Key: e.Key, Value: e.Value}
	}
	return out
}

func metadataFromGV(v any) (Metadata, error) {
	des, _ := v.([]gvariant.DictEntry)
	out := make(Metadata, len(des))
	for i, de := range des {
		out[i] = MetaEntry{Key: de.Key.(string), Value: de.Value.(gvariant.Variant)}
		if out[i].Key == "" {
			return nil, fmt.Errorf("empty metadata key")
		}
	}
	return out, nil
}

// DecodeMetadata parses an a{sv} dictionary (detached metadata).
func DecodeMetadata(b []byte) (Metadata, error) {
	v, err := gvariant.Unmarshal(typeMetadata, b)
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	return metadataFromGV(v)
}

// Commit is a commit object.
type Commit struct {
	Metadata  Metadata
	Parent    Checksum // zero when there is none
	Subject   string
	Body      string
	Timestamp uint64 // seconds since the epoch, UTC
	RootTree  Checksum
	RootMeta  Checksum
}

// Encode serializes the commit object.
func (c *Commit) Encode() ([]byte, error) {
	var parent []byte
	if !c.Parent.IsZero() {
		parent = c.Parent[:]
	}
	return gvariant.Marshal(typeCommit, []any{c.Metadata.toGV(), parent, []any{}, c.Subject, c.Body, be64(c.Timestamp), c.RootTree[:], c.RootMeta[:]})
}

// DecodeCommit parses and validates a commit object.
func DecodeCommit(b []byte) (*Commit, error) {
	v, err := gvariant.Unmarshal(typeCommit, b)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	t := v.([]any)
	c := &Commit{Subject: t[3].(string), Body: t[4].(string), Timestamp: be64(t[5].(uint64))}
	if c.Metadata, err = metadataFromGV(t[0]); err != nil {
		return nil, err
	}
	if p := t[1].([]byte); len(p) != 0 {
		if c.Parent, err = ChecksumFromBytes(p); err != nil {
			return nil, fmt.Errorf("commit parent: %w", err)
		}
	}
	if c.RootTree, err = ChecksumFromBytes(t[6].([]byte)); err != nil {
		return nil, fmt.Errorf("commit root tree: %w", err)
	}
	if c.RootMeta, err = ChecksumFromBytes(t[7].([]byte)); err != nil {
		return nil, fmt.Errorf("commit root meta: %w", err)
	}
	return c, nil
}

// ContentChecksum is sha256(rootTree || rootMeta), as `ostree show` prints it.
func (c *Commit) ContentChecksum() Checksum {
	return SumBytes(bytes.Join([][]byte{c.RootTree[:], c.RootMeta[:]}, nil))
}

// decodeDirMetaLoose parses a (uuua(ayay)) value without requiring a
// directory mode: the bare-user "user.ostreemeta" form.
func decodeDirMetaLoose(b []byte) (*FileMeta, error) {
	v, err := gvariant.Unmarshal(typeDirMeta, b)
	if err != nil {
		return nil, err
	}
	t := v.([]any)
	xs, err := xattrsFromGV(t[3])
	if err != nil {
		return nil, err
	}
	return &FileMeta{UID: be32(t[0].(uint32)), GID: be32(t[1].(uint32)), Mode: be32(t[2].(uint32)), Xattrs: xs}, nil
}
