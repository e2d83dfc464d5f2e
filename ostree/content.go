package ostree

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"strconv"
	"sync"
	"unsafe"

	"github.com/klauspost/compress/flate"
	"golang.org/x/sys/unix"
)

// smallFile is the size up to which content is read into memory, hashed, and
// written only when the object is missing. Larger files are hashed while they
// are written to a temp file.
const smallFile = 1 << 20

var bufPool = sync.Pool{New: func() any { b := make([]byte, smallFile); return &b }}

// deflateLevel matches zlib's default, which `ostree commit` uses.
const deflateLevel = 6

var flatePool = sync.Pool{New: func() any { w, _ := flate.NewWriter(nil, deflateLevel); return w }}

// ContentChecksum computes a content object's checksum from its metadata and
// payload without writing anything.
func ContentChecksum(meta *FileMeta, payload io.Reader) (Checksum, error) {
	header, err := meta.encodeHeader()
	if err != nil {
		return Checksum{}, err
	}
	h := sha256.New()
	h.Write(streamPrefix(header))
	if payload != nil {
		if _, err := io.Copy(h, payload); err != nil {
			return Checksum{}, err
		}
	}
	var c Checksum
	h.Sum(c[:0])
	return c, nil
}

// WriteContent stores a content object, reading exactly size bytes of payload
// (nothing for a symlink), and returns its checksum.
func (t *Txn) WriteContent(meta *FileMeta, payload io.Reader, size int64) (Checksum, error) {
	if err := meta.Validate(); err != nil {
		return Checksum{}, err
	}
	header, err := meta.encodeHeader()
	if err != nil {
		return Checksum{}, err
	}
	if meta.IsSymlink() {
		size = 0
	}
	if size < 0 {
		return Checksum{}, fmt.Errorf("invalid content size %d", size)
	}
	if size <= smallFile {
		bp := bufPool.Get().(*[]byte)
		defer bufPool.Put(bp)
		data := (*bp)[:size]
		if _, err := io.ReadFull(payload, data); err != nil && size > 0 {
			return Checksum{}, fmt.Errorf("reading content: %w", err)
		}
		return t.writeContentBytes(meta, header, data)
	}
	return t.writeContentStream(meta, header, payload, size)
}

// writeContentBytes hashes in-memory content and writes it only if missing,
// straight at its staging path.
func (t *Txn) writeContentBytes(meta *FileMeta, header, data []byte) (Checksum, error) {
	h := sha256.New()
	h.Write(streamPrefix(header))
	h.Write(data)
	var c Checksum
	h.Sum(c[:0])
	if ok, err := t.Has(c, ObjFile); err != nil || ok {
		return c, err
	}
	name := ObjectName{c, ObjFile}
	if meta.IsSymlink() && t.r.mode == ModeBare {
		rel := stagedRel(name, t.r.mode)
		if err := t.bareSymlink(rel, meta); err != nil {
			if errors.Is(err, unix.EEXIST) {
				return c, nil
			}
			unix.Unlinkat(t.stageFd, rel, 0)
			return c, err
		}
		if t.markStaged(name, 0) {
			return c, fpTxnFirstObjectStaged.Hit()
		}
		return c, nil
	}
	o, exists, err := t.newObject(&name, t.createPerm(meta))
	if err != nil || exists {
		return c, err
	}
	n, err := t.writePayload(o.f, meta, data, nil, int64(len(data)), nil)
	if err == nil {
		err = t.finishContent(o.f, meta)
	}
	if err != nil {
		t.dropObject(o)
		return c, fmt.Errorf("writing %s: %w", name, err)
	}
	return c, t.finishObject(o, name, n)
}

// writeContentStream writes a large regular file to a new object file while
// hashing it, then keeps the object only if it is new.
func (t *Txn) writeContentStream(meta *FileMeta, header []byte, payload io.Reader, size int64) (Checksum, error) {
	var c Checksum
	o, _, err := t.newObject(nil, t.createPerm(meta))
	if err != nil {
		return c, err
	}
	h := sha256.New()
	h.Write(streamPrefix(header))
	n, err := t.writePayload(o.f, meta, nil, io.LimitReader(payload, size), size, h)
	if err == nil && n != size && t.r.mode != ModeArchive {
		err = fmt.Errorf("short content: got %d of %d bytes", n, size)
	}
	h.Sum(c[:0])
	if err == nil {
		if ok, herr := t.Has(c, ObjFile); herr != nil || ok {
			t.dropObject(o)
			return c, herr
		}
		err = t.finishContent(o.f, meta)
	}
	if err != nil {
		t.dropObject(o)
		return c, err
	}
	return c, t.finishObject(o, ObjectName{c, ObjFile}, n)
}

// bareSymlink creates a bare-mode symlink object at rel below the staging
// directory, owned and labelled as meta says.
func (t *Txn) bareSymlink(rel string, meta *FileMeta) error {
	if err := unix.Symlinkat(meta.Target, t.stageFd, rel); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return err
		}
		return fmt.Errorf("creating symlink object: %w", err)
	}
	if err := unix.Fchownat(t.stageFd, rel, int(meta.UID), int(meta.GID), unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("chown symlink object: %w", err)
	}
	p := "/proc/self/fd/" + strconv.Itoa(t.stageFd) + "/" + rel
	for _, x := range meta.Xattrs {
		if err := unix.Lsetxattr(p, x.Name, x.Value, 0); err != nil {
			return fmt.Errorf("symlink object: %w", t.r.xattrError(x.Name, len(x.Value), nil, err))
		}
	}
	return nil
}

// createPerm is the mode an object file is created with: its final
// permission where the mode stores one, so most files need no chmod.
func (t *Txn) createPerm(meta *FileMeta) uint32 {
	if meta.IsSymlink() {
		return 0o644
	}
	switch t.r.mode {
	case ModeBare:
		return meta.Mode & 0o777
	case ModeBareUser:
		return meta.Mode&0o775 | 0o400
	}
	return 0o644
}

// needsChmod reports whether creating with perm left other bits on disk
// (the umask cleared some, or setuid/setgid/sticky, which chown clears).
func (t *Txn) needsChmod(perm uint32) bool {
	return perm&0o7000 != 0 || perm&t.r.umask != 0
}

// writePayload writes the object body for the repo's mode: the payload for
// bare modes (target+NUL for bare-user symlinks), header+deflate for archive.
// data, when non-nil, is the whole payload already in memory. h, when
// non-nil, receives the uncompressed payload.
func (t *Txn) writePayload(f *os.File, meta *FileMeta, data []byte, r io.Reader, size int64, h hash.Hash) (int64, error) {
	var src io.Reader = r
	if h != nil {
		src = io.TeeReader(r, h)
	}
	switch t.r.mode {
	case ModeBare:
		return copyPayload(f, data, src)
	case ModeBareUser:
		if meta.IsSymlink() {
			n, err := f.Write(append([]byte(meta.Target), 0))
			return int64(n), err
		}
		return copyPayload(f, data, src)
	case ModeArchive:
		return writeFilez(f, meta, data, src, size)
	}
	return 0, fmt.Errorf("writing content in mode %s is not supported", t.r.mode)
}

func copyPayload(f *os.File, data []byte, src io.Reader) (int64, error) {
	if data != nil {
		n, err := f.Write(data)
		return int64(n), err
	}
	return io.Copy(f, src)
}

// writeFilez writes an archive-mode .filez: the size-carrying header, then
// the raw deflate stream (none at all for symlinks).
func writeFilez(f *os.File, meta *FileMeta, data []byte, src io.Reader, size int64) (int64, error) {
	zh, err := meta.encodeZHeader(uint64(size))
	if err != nil {
		return 0, err
	}
	var buf bytes.Buffer
	buf.Write(streamPrefix(zh))
	if meta.IsSymlink() {
		n, err := f.Write(buf.Bytes())
		return int64(n), err
	}
	zw := flatePool.Get().(*flate.Writer)
	defer flatePool.Put(zw)
	if data != nil {
		zw.Reset(&buf)
		zw.Write(data)
		if err := zw.Close(); err != nil {
			return 0, err
		}
		n, err := f.Write(buf.Bytes())
		return int64(n), err
	}
	if _, err := f.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	cw := &countWriter{w: f}
	zw.Reset(cw)
	n, err := io.Copy(zw, src)
	if err == nil {
		err = zw.Close()
	}
	if err == nil && n != size {
		err = fmt.Errorf("short content: got %d of %d bytes", n, size)
	}
	return int64(buf.Len()) + cw.n, err
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// finishContent applies the per-mode metadata to a written object file.
func (t *Txn) finishContent(f *os.File, meta *FileMeta) error {
	fd := int(f.Fd())
	switch t.r.mode {
	case ModeBare:
		if err := unix.Fchown(fd, int(meta.UID), int(meta.GID)); err != nil {
			return fmt.Errorf("chown object to %d:%d: %w", meta.UID, meta.GID, err)
		}
		// chmod after chown: chown clears setuid and setgid.
		if perm := meta.Mode & modePermMask; t.needsChmod(perm) {
			if err := unix.Fchmod(fd, perm); err != nil {
				return fmt.Errorf("chmod object: %w", err)
			}
		}
		for _, x := range meta.Xattrs {
			if err := unix.Fsetxattr(fd, x.Name, x.Value, 0); err != nil {
				return t.r.xattrError(x.Name, len(x.Value), nil, err)
			}
		}
		return zeroMtime(fd)
	case ModeBareUser:
		um, err := meta.encodeUserMeta()
		if err != nil {
			return err
		}
		if err := unix.Fsetxattr(fd, "user.ostreemeta", um, 0); err != nil {
			return t.r.xattrError("user.ostreemeta", len(um), meta.Xattrs, err)
		}
		if perm := t.createPerm(meta); !meta.IsSymlink() && t.needsChmod(perm) {
			if err := unix.Fchmod(fd, perm); err != nil {
				return fmt.Errorf("chmod object: %w", err)
			}
		}
		return zeroMtime(fd)
	}
	return nil
}

// zeroMtime gives bare content objects libostree's canonical mtime of 0.
func zeroMtime(fd int) error {
	ts := [2]unix.Timespec{{Sec: 0, Nsec: unix.UTIME_OMIT}, {Sec: 0, Nsec: 0}}
	// utimensat(fd, NULL, ...) is futimens(fd, ...).
	_, _, errno := unix.Syscall6(unix.SYS_UTIMENSAT, uintptr(fd), 0, uintptr(unsafe.Pointer(&ts[0])), 0, 0, 0)
	if errno != 0 {
		return fmt.Errorf("setting object mtime: %w", errno)
	}
	return nil
}

// ErrNotContent is returned when asked for content of a non-content object.
var ErrNotContent = errors.New("not a content object")
