package ostree

import (
	"fmt"
	"os"
	"path"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	"golang.org/x/sys/unix"
)

// dirHandle is an open source directory shared by the jobs reading its
// entries; the last user closes it.
type dirHandle struct {
	fd   int
	refs atomic.Int32
}

func (d *dirHandle) release() {
	if d.refs.Add(-1) == 0 {
		unix.Close(d.fd)
	}
}

type fileJob struct {
	dir  *dirHandle
	name string
	rel  string // path below the source root, for messages
	slot *Checksum
	link bool
}

type devIno struct{ dev, ino uint64 }

// linkResult shares one hardlinked inode's checksum between its names.
type linkResult struct {
	done chan struct{}
	sum  Checksum
	err  error
}

// dirImporter writes a directory tree into a transaction: one goroutine
// walks directories while workers hash and store files in parallel.
type dirImporter struct {
	txn   *Txn
	root  string
	jobs  chan fileJob
	wg    sync.WaitGroup
	errMu sync.Mutex
	err   error
	links sync.Map // devIno -> *linkResult
}

// ImportDir writes every file and directory below path into the transaction
// and returns the root as a MutableTree. Device nodes, FIFOs and sockets are
// refused, as are names and symlink targets that are not valid UTF-8.
func (t *Txn) ImportDir(srcPath string) (*MutableTree, error) {
	fd, err := unix.Open(srcPath, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", srcPath, err)
	}
	d := &dirImporter{txn: t, root: srcPath, jobs: make(chan fileJob, 256)}
	workers := runtime.GOMAXPROCS(0) * 2
	for i := 0; i < workers; i++ {
		d.wg.Add(1)
		go d.worker()
	}
	root := NewMutableTree()
	walkErr := d.walkDir(fd, ".", root)
	close(d.jobs)
	d.wg.Wait()
	if walkErr != nil {
		return nil, walkErr
	}
	if d.err != nil {
		return nil, d.err
	}
	return root, nil
}

func (d *dirImporter) fail(err error) {
	d.errMu.Lock()
	if d.err == nil {
		d.err = err
	}
	d.errMu.Unlock()
}

func (d *dirImporter) failed() bool {
	d.errMu.Lock()
	defer d.errMu.Unlock()
	return d.err != nil
}

func (d *dirImporter) where(rel string) string { return path.Join(d.root, rel) }

// walkDir records the directory open at fd (owned by walkDir) into mt.
func (d *dirImporter) walkDir(fd int, rel string, mt *MutableTree) error {
	h := &dirHandle{fd: fd}
	h.refs.Store(1)
	defer h.release()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", d.where(rel), err)
	}
	xs, err := listXattrsFd(fd)
	if err != nil {
		return fmt.Errorf("%s: %w", d.where(rel), err)
	}
	dm := DirMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode, Xattrs: xs}
	b, err := dm.Encode()
	if err != nil {
		return fmt.Errorf("%s: %w", d.where(rel), err)
	}
	mc, err := d.txn.WriteMetadata(ObjDirMeta, b)
	if err != nil {
		return err
	}
	mt.SetMeta(mc)
	ents, err := readDirNames(fd)
	if err != nil {
		return fmt.Errorf("reading directory %s: %w", d.where(rel), err)
	}
	for _, e := range ents {
		if d.failed() {
			return nil
		}
		crel := path.Join(rel, e.name)
		if err := ValidateName(e.name); err != nil {
			return fmt.Errorf("%s: %w", d.where(crel), err)
		}
		switch e.typ {
		case unix.DT_DIR:
			cfd, err := unix.Openat(fd, e.name, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
			if err != nil {
				return fmt.Errorf("opening %s: %w", d.where(crel), err)
			}
			sub, err := mt.EnsureDir(e.name)
			if err != nil {
				unix.Close(cfd)
				return err
			}
			if err := d.walkDir(cfd, crel, sub); err != nil {
				return err
			}
		case unix.DT_REG, unix.DT_LNK:
			slot := new(Checksum)
			if err := mt.SetFileSlot(e.name, slot); err != nil {
				return err
			}
			h.refs.Add(1)
			d.jobs <- fileJob{dir: h, name: e.name, rel: crel, slot: slot, link: e.typ == unix.DT_LNK}
		default:
			return fmt.Errorf("%s: not a regular file or symlink (%s); ostree cannot store it", d.where(crel), dtName(e.typ))
		}
	}
	return nil
}

func dtName(t uint8) string {
	switch t {
	case unix.DT_FIFO:
		return "FIFO"
	case unix.DT_SOCK:
		return "socket"
	case unix.DT_CHR:
		return "character device"
	case unix.DT_BLK:
		return "block device"
	}
	return "type " + strconv.Itoa(int(t))
}

func (d *dirImporter) worker() {
	defer d.wg.Done()
	for j := range d.jobs {
		if !d.failed() {
			if err := d.importFile(j); err != nil {
				d.fail(err)
			}
		}
		j.dir.release()
	}
}

func (d *dirImporter) importFile(j fileJob) error {
	if j.link {
		return d.importSymlink(j)
	}
	fd, err := unix.Openat(j.dir.fd, j.name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", d.where(j.rel), err)
	}
	f := os.NewFile(uintptr(fd), j.rel)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat %s: %w", d.where(j.rel), err)
	}
	if st.Mode&modeTypeMask != modeReg {
		return fmt.Errorf("%s: not a regular file or symlink", d.where(j.rel))
	}
	var shared *linkResult
	if st.Nlink > 1 {
		lr := &linkResult{done: make(chan struct{})}
		if prev, loaded := d.links.LoadOrStore(devIno{st.Dev, st.Ino}, lr); loaded {
			p := prev.(*linkResult)
			<-p.done
			*j.slot = p.sum
			return p.err
		}
		shared = lr
		defer close(lr.done)
	}
	xs, err := listXattrsFd(fd)
	if err != nil {
		err = fmt.Errorf("%s: %w", d.where(j.rel), err)
	} else {
		meta := &FileMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode, Xattrs: xs}
		*j.slot, err = d.txn.WriteContent(meta, f, st.Size)
		if err != nil {
			err = fmt.Errorf("%s: %w", d.where(j.rel), err)
		}
	}
	if shared != nil {
		shared.sum, shared.err = *j.slot, err
	}
	return err
}

func (d *dirImporter) importSymlink(j fileJob) error {
	var st unix.Stat_t
	if err := unix.Fstatat(j.dir.fd, j.name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return fmt.Errorf("stat %s: %w", d.where(j.rel), err)
	}
	target, err := readlinkAt(j.dir.fd, j.name)
	if err != nil {
		return fmt.Errorf("readlink %s: %w", d.where(j.rel), err)
	}
	if !utf8.ValidString(target) {
		return fmt.Errorf("%s: symlink target %q is not valid UTF-8", d.where(j.rel), target)
	}
	xs, err := listXattrsPath("/proc/self/fd/" + strconv.Itoa(j.dir.fd) + "/" + j.name)
	if err != nil {
		return fmt.Errorf("%s: %w", d.where(j.rel), err)
	}
	meta := &FileMeta{UID: st.Uid, GID: st.Gid, Mode: st.Mode, Target: target, Xattrs: xs}
	if *j.slot, err = d.txn.WriteContent(meta, nil, 0); err != nil {
		return fmt.Errorf("%s: %w", d.where(j.rel), err)
	}
	return nil
}

type dirent struct {
	name string
	typ  uint8
}

// readDirNames lists a directory with getdents, filling in the type with
// fstatat where the filesystem does not report it.
func readDirNames(fd int) ([]dirent, error) {
	var out []dirent
	buf := make([]byte, 32*1024)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			break
		}
		b := buf[:n]
		for len(b) > 0 {
			// struct linux_dirent64: ino u64, off i64, reclen u16, type u8, name.
			reclen := int(b[16]) | int(b[17])<<8
			if reclen < 19 || reclen > len(b) {
				return nil, fmt.Errorf("malformed directory entry")
			}
			typ := b[18]
			nameb := b[19:reclen]
			for i, c := range nameb {
				if c == 0 {
					nameb = nameb[:i]
					break
				}
			}
			b = b[reclen:]
			name := string(nameb)
			if name == "." || name == ".." {
				continue
			}
			if typ == unix.DT_UNKNOWN {
				var st unix.Stat_t
				if err := unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
					return nil, err
				}
				typ = modeToDT(st.Mode)
			}
			out = append(out, dirent{name: name, typ: typ})
		}
	}
	return out, nil
}

func modeToDT(mode uint32) uint8 {
	switch mode & modeTypeMask {
	case modeDir:
		return unix.DT_DIR
	case modeReg:
		return unix.DT_REG
	case modeLnk:
		return unix.DT_LNK
	case unix.S_IFIFO:
		return unix.DT_FIFO
	case unix.S_IFSOCK:
		return unix.DT_SOCK
	case unix.S_IFCHR:
		return unix.DT_CHR
	case unix.S_IFBLK:
		return unix.DT_BLK
	}
	return unix.DT_UNKNOWN
}
