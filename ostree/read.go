package ostree

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/klauspost/compress/flate"
	"golang.org/x/sys/unix"
)

// Content is an opened content object.
type Content struct {
	Meta *FileMeta
	Size int64 // payload size; 0 for symlinks
	// Payload reads the file's bytes (empty for symlinks). Close it when done.
	Payload io.ReadCloser
}

type nopReadCloser struct{ io.Reader }

func (nopReadCloser) Close() error { return nil }

// OpenContent opens a content object and returns its metadata and payload.
func (r *Repo) OpenContent(c Checksum) (*Content, error) {
	return r.openContentAt(r.objFd, objectRelPath(c, ObjFile, r.mode), c)
}

// openContentAt opens content object c stored at rel below dfd (objects/ or
// a transaction's staging directory).
func (r *Repo) openContentAt(dfd int, rel string, c Checksum) (*Content, error) {
	switch r.mode {
	case ModeArchive:
		return r.openFilez(dfd, c, rel)
	case ModeBare, ModeBareUserOnly:
		return r.openBare(dfd, c, rel)
	case ModeBareUser:
		return r.openBareUser(dfd, c, rel)
	}
	return nil, fmt.Errorf("unsupported mode %s", r.mode)
}

func (r *Repo) missingOr(c Checksum, err error) error {
	if errors.Is(err, unix.ENOENT) {
		return &MissingObjectError{Name: ObjectName{c, ObjFile}}
	}
	return fmt.Errorf("reading %s: %w", r.objectPath(c, ObjFile), err)
}

func (r *Repo) openBare(dfd int, c Checksum, rel string) (*Content, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, rel, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return nil, r.missingOr(c, err)
	}
	meta := &FileMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode}
	if r.mode == ModeBareUserOnly {
		meta.UID, meta.GID = 0, 0
	}
	if st.Mode&modeTypeMask == modeLnk {
		target, err := readlinkAt(dfd, rel)
		if err != nil {
			return nil, r.missingOr(c, err)
		}
		meta.Target = target
		if r.mode == ModeBare {
			if meta.Xattrs, err = listXattrsPath("/proc/self/fd/" + strconv.Itoa(dfd) + "/" + rel); err != nil {
				return nil, r.missingOr(c, err)
			}
		}
		return &Content{Meta: meta, Payload: nopReadCloser{strings.NewReader("")}}, nil
	}
	if st.Mode&modeTypeMask != modeReg {
		return nil, fmt.Errorf("%s: not a regular file or symlink", r.objectPath(c, ObjFile))
	}
	fd, err := unix.Openat(dfd, rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, r.missingOr(c, err)
	}
	if r.mode == ModeBare {
		if meta.Xattrs, err = listXattrsFd(fd); err != nil {
			unix.Close(fd)
			return nil, r.missingOr(c, err)
		}
	}
	return &Content{Meta: meta, Size: st.Size, Payload: os.NewFile(uintptr(fd), rel)}, nil
}

func (r *Repo) openBareUser(dfd int, c Checksum, rel string) (*Content, error) {
	fd, err := unix.Openat(dfd, rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, r.missingOr(c, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	meta, size, err := readUserMeta(fd)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", r.objectPath(c, ObjFile), err)
	}
	if meta.Mode&modeTypeMask == modeLnk {
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, unix.PathMax+1))
		if err != nil {
			return nil, r.missingOr(c, err)
		}
		if i := strings.IndexByte(string(b), 0); i >= 0 {
			b = b[:i]
		}
		meta.Target = string(b)
		return &Content{Meta: meta, Payload: nopReadCloser{strings.NewReader("")}}, nil
	}
	return &Content{Meta: meta, Size: size, Payload: f}, nil
}

// readUserMeta reads a bare-user object's user.ostreemeta and its size.
func readUserMeta(fd int) (*FileMeta, int64, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, 0, err
	}
	buf := make([]byte, 4096)
	for {
		n, err := unix.Fgetxattr(fd, "user.ostreemeta", buf)
		if errors.Is(err, unix.ERANGE) {
			buf = make([]byte, len(buf)*4)
			continue
		}
		if err != nil {
			return nil, 0, fmt.Errorf("reading user.ostreemeta: %w", err)
		}
		d, err := decodeUserMeta(buf[:n])
		if err != nil {
			return nil, 0, err
		}
		return d, st.Size, nil
	}
}

func decodeUserMeta(b []byte) (*FileMeta, error) {
	// Same layout as a dirmeta, with a file mode.
	dm, err := decodeDirMetaLoose(b)
	if err != nil {
		return nil, fmt.Errorf("user.ostreemeta: %w", err)
	}
	return dm, nil
}

func (r *Repo) openFilez(dfd int, c Checksum, rel string) (*Content, error) {
	fd, err := unix.Openat(dfd, rel, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, r.missingOr(c, err)
	}
	f := os.NewFile(uintptr(fd), rel)
	meta, size, err := readFilezHeader(f)
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s: %w", r.objectPath(c, ObjFile), err)
	}
	if meta.IsSymlink() {
		f.Close()
		return &Content{Meta: meta, Payload: nopReadCloser{strings.NewReader("")}}, nil
	}
	zr := flate.NewReader(bufio.NewReader(f))
	return &Content{Meta: meta, Size: int64(size), Payload: &filezReader{zr: zr, f: f, left: int64(size)}}, nil
}

// readFilezHeader reads the prefixed archive header from the start of f.
func readFilezHeader(f *os.File) (*FileMeta, uint64, error) {
	var pre [8]byte
	if _, err := io.ReadFull(f, pre[:]); err != nil {
		return nil, 0, fmt.Errorf("reading archive header: %w", err)
	}
	hlen := binary.BigEndian.Uint32(pre[:4])
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if hlen == 0 || int64(hlen) > st.Size()-8 {
		return nil, 0, fmt.Errorf("corrupted archive file: header length %d", hlen)
	}
	hb := make([]byte, hlen)
	if _, err := io.ReadFull(f, hb); err != nil {
		return nil, 0, fmt.Errorf("reading archive header: %w", err)
	}
	return decodeZFileHeader(hb)
}

// filezReader yields exactly the declared size of a .filez payload.
type filezReader struct {
	zr   io.ReadCloser
	f    *os.File
	left int64
}

func (z *filezReader) Read(p []byte) (int, error) {
	if z.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > z.left {
		p = p[:z.left]
	}
	n, err := z.zr.Read(p)
	z.left -= int64(n)
	if err == io.EOF && z.left > 0 {
		return n, fmt.Errorf("corrupted archive file: %w", io.ErrUnexpectedEOF)
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (z *filezReader) Close() error {
	z.zr.Close()
	return z.f.Close()
}

// readlinkAt reads a symlink's target below dfd.
func readlinkAt(dfd int, name string) (string, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Readlinkat(dfd, name, buf)
		if err != nil {
			return "", err
		}
		if n < len(buf) {
			return string(buf[:n]), nil
		}
		buf = make([]byte, len(buf)*2)
	}
}
