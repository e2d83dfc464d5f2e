package ostree

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
)

// Checksum is a SHA-256 digest naming an object: 32 raw bytes inside objects,
// 64 lowercase hex characters in paths and refs.
type Checksum [32]byte

// String returns the checksum as 64 lowercase hex characters.
func (c Checksum) String() string { return hex.EncodeToString(c[:]) }

// IsZero reports whether c is the all-zero value (no checksum).
func (c Checksum) IsZero() bool { return c == Checksum{} }

// ParseChecksum parses 64 lowercase hex characters.
func ParseChecksum(s string) (Checksum, error) {
	var c Checksum
	if len(s) != 64 {
		return c, fmt.Errorf("invalid checksum %q: want 64 hex characters", s)
	}
	for i := 0; i < len(s); i++ {
		if ch := s[i]; !(ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f') {
			return c, fmt.Errorf("invalid checksum %q: not lowercase hex", s)
		}
	}
	_, err := hex.Decode(c[:], []byte(s))
	return c, err
}

// ChecksumFromBytes converts the 32-byte "ay" form stored inside objects.
func ChecksumFromBytes(b []byte) (Checksum, error) {
	var c Checksum
	if len(b) != 32 {
		return c, fmt.Errorf("invalid checksum of length %d expected 32", len(b))
	}
	copy(c[:], b)
	return c, nil
}

// SumBytes is the checksum of a metadata object: sha256 of its serialized bytes.
func SumBytes(b []byte) Checksum { return sha256.Sum256(b) }

// ObjectType is libostree's object type enum.
type ObjectType int

// Object types, numbered as in libostree.
const (
	ObjFile       ObjectType = 1
	ObjDirTree    ObjectType = 2
	ObjDirMeta    ObjectType = 3
	ObjCommit     ObjectType = 4
	ObjTombstone  ObjectType = 5
	ObjCommitMeta ObjectType = 6
)

// String returns the type's name as ostree prints it.
func (t ObjectType) String() string {
	switch t {
	case ObjFile:
		return "file"
	case ObjDirTree:
		return "dirtree"
	case ObjDirMeta:
		return "dirmeta"
	case ObjCommit:
		return "commit"
	case ObjTombstone:
		return "tombstone-commit"
	case ObjCommitMeta:
		return "commitmeta"
	}
	return fmt.Sprintf("objtype(%d)", int(t))
}

// ObjectName identifies one object: its checksum and type.
type ObjectName struct {
	Checksum Checksum
	Type     ObjectType
}

// String formats the name as ostree does: "<hex>.<type>".
func (n ObjectName) String() string { return n.Checksum.String() + "." + n.Type.String() }

// extension is the loose-object file extension for type t in a repo of mode m.
func extension(t ObjectType, m Mode) string {
	if t == ObjFile {
		if m == ModeArchive {
			return "filez"
		}
		return "file"
	}
	return t.String()
}

// objectRelPath is the path of an object below objects/: "XX/<62 hex>.<ext>".
func objectRelPath(c Checksum, t ObjectType, m Mode) string {
	h := c.String()
	return h[:2] + "/" + h[2:] + "." + extension(t, m)
}
