package ostree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

const stagingPrefix = "ocitree-staging-"

// Txn is a write transaction. Objects are staged in
// tmp/ocitree-staging-XXXX/ (flat: "<64 hex>.<ext>", no XX/ directories to
// create per transaction) and become visible in objects/ only in Commit,
// after one syncfs; commit objects are moved last and refs are written after
// all objects, so a killed transaction leaves nothing that fsck would reject.
// Object files are written unnamed (O_TMPFILE) and linked to their staging
// name only when complete, where the kernel allows it (objectFile).
// A Txn is safe for concurrent use by several writers.
type Txn struct {
	r          *Repo
	unlock     func()
	stageName  string // below the repo: tmp/ocitree-staging-XXXX
	stageFd    int
	stageLock  int
	mu         sync.Mutex
	staged     map[ObjectName]struct{}
	order      []ObjectName
	refs       map[string]*Checksum // nil value deletes the ref
	refOrder   []string             // refs in the order of their last SetRef
	done       bool
	noSync     bool
	bytesAdded int64
	beforeRefs func() error
	// unflushed counts the bytes staged since the last background syncfs
	// started; flushing is set while one runs, flushWG waits for it.
	unflushed atomic.Int64
	flushing  atomic.Bool
	flushWG   sync.WaitGroup
}

// Begin starts a transaction, taking the shared repository lock.
func (r *Repo) Begin() (*Txn, error) {
	unlock, err := r.lock(false)
	if err != nil {
		return nil, err
	}
	r.cleanStaleStaging()
	r.spreadOnce.Do(r.spreadStaging)
	name := "tmp/" + stagingPrefix + randomSuffix()
	// The lock file is locked under a name the stale-staging cleaner ignores,
	// then renamed: no other process can see it unlocked.
	lockFd, err := unix.Openat(r.dfd, name+".lock-new", unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		unlock()
		return nil, fmt.Errorf("creating staging lock: %w", err)
	}
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	err = unix.FcntlFlock(uintptr(lockFd), unix.F_OFD_SETLK, &lk)
	if err == nil {
		err = unix.Renameat(r.dfd, name+".lock-new", r.dfd, name+".lock")
	}
	if err != nil {
		unix.Unlinkat(r.dfd, name+".lock-new", 0)
		unix.Close(lockFd)
		unlock()
		return nil, fmt.Errorf("locking staging directory: %w", err)
	}
	t := &Txn{r: r, unlock: unlock, stageName: name, stageFd: -1, stageLock: lockFd, staged: map[ObjectName]struct{}{}, refs: map[string]*Checksum{}}
	if err := unix.Mkdirat(r.dfd, name, 0o755); err != nil {
		t.Abort()
		return nil, fmt.Errorf("creating staging directory: %w", err)
	}
	if t.stageFd, err = unix.Openat(r.dfd, name, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0); err != nil {
		t.stageFd = -1
		t.Abort()
		return nil, fmt.Errorf("opening staging directory: %w", err)
	}
	if v, _ := r.config.Get("core", "fsync"); v == "false" {
		t.noSync = true
	}
	return t, nil
}

// cleanStaleStaging removes staging directories whose writer is gone (its
// lock can be taken). Errors are ignored: this is housekeeping.
func (r *Repo) cleanStaleStaging() {
	ents, err := os.ReadDir(filepath.Join(r.path, "tmp"))
	if err != nil {
		return
	}
	for _, e := range ents {
		name := e.Name()
		if !strings.HasPrefix(name, stagingPrefix) || !strings.HasSuffix(name, ".lock") {
			continue
		}
		fd, err := unix.Openat(r.dfd, "tmp/"+name, unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		lk := unix.Flock_t{Type: unix.F_WRLCK}
		if unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk) == nil {
			os.RemoveAll(filepath.Join(r.path, "tmp", strings.TrimSuffix(name, ".lock")))
			unix.Unlinkat(r.dfd, "tmp/"+name, 0)
		}
		unix.Close(fd)
	}
}

// fsTopdirFl is FS_TOPDIR_FL (chattr +T): ext4 places the subdirectories
// of such a directory as it places top-level ones.
const fsTopdirFl = 0x00020000

// spreadStaging marks tmp/ with FS_TOPDIR_FL on ext4, so that each
// transaction's staging directory, and with it the inodes of the objects
// written there, goes to a lightly used block group instead of the
// repository's own. On ext4 without a journal, allocating an inode scans
// past every inode of the group freed in the last minute (five while its
// inode table block is dirty), so writing objects into the group a prune or
// `rm -rf` of another repository has just emptied costs ~0.3 ms per object,
// more than the rest of writing it. The flag changes nothing else; any
// error (another filesystem, not the directory's owner) is ignored.
func (r *Repo) spreadStaging() {
	fd, err := unix.Openat(r.dfd, "tmp", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var st unix.Statfs_t
	if unix.Fstatfs(fd, &st) != nil || st.Type != unix.EXT4_SUPER_MAGIC {
		return
	}
	flags, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil || flags&fsTopdirFl != 0 {
		return
	}
	unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(flags|fsTopdirFl))
}

// Repo returns the transaction's repository.
func (t *Txn) Repo() *Repo { return t.r }

// Has reports whether an object is in the repository or staged here.
func (t *Txn) Has(c Checksum, typ ObjectType) (bool, error) {
	t.mu.Lock()
	_, ok := t.staged[ObjectName{c, typ}]
	t.mu.Unlock()
	if ok {
		return true, nil
	}
	return t.r.HasObject(c, typ)
}

// WriteMetadata stores a metadata object given its serialized bytes and
// returns its checksum.
func (t *Txn) WriteMetadata(typ ObjectType, data []byte) (Checksum, error) {
	c := SumBytes(data)
	if ok, err := t.Has(c, typ); err != nil || ok {
		return c, err
	}
	name := ObjectName{c, typ}
	o, exists, err := t.newObject(&name, 0o644)
	if err != nil || exists {
		return c, err
	}
	_, err = o.f.Write(data)
	if err == nil {
		err = t.finishObject(o, name, int64(len(data)))
	} else {
		t.dropObject(o)
	}
	if err != nil {
		return c, fmt.Errorf("writing %s: %w", name, err)
	}
	return c, nil
}

// stagedRel is an object's name in the (flat) staging directory.
func stagedRel(name ObjectName, m Mode) string {
	return name.Checksum.String() + "." + extension(name.Type, m)
}

// writebackMin is the object size from which finishObject starts the
// object's writeback at once (sync_file_range), rather than leaving all of
// it to Commit's syncfs.
const writebackMin = 256 << 10

// flushEvery is how many bytes of objects a transaction stages between
// background syncfs calls: Commit's own syncfs then finds only the last
// of them to write, and the small files and the inodes the early writeback
// of large ones does not cover are written while the import goes on.
// (Commit still syncs everything itself before it publishes anything.)
const flushEvery = 64 << 20

// objectFile is an object file being written in the staging directory:
// unnamed (O_TMPFILE, linked to its name by finishObject) where the kernel
// and filesystem allow it, else created under a temp name (tmp) or directly
// under its staging name (direct). Unnamed files are cheaper to create on
// some kernels than named ones (a named create costs ~10× a linkat there)
// and a failed write leaves nothing behind.
type objectFile struct {
	f      *os.File
	tmp    string // named temp file, renamed by finishObject
	direct bool   // created at its staging name
}

// newObject opens a new object file with permission perm. With name, the
// object's name is known: exists reports that another writer of this
// transaction has staged (or, on the named fallback, is writing) it, and
// nothing was opened.
func (t *Txn) newObject(name *ObjectName, perm uint32) (o *objectFile, exists bool, err error) {
	if !t.r.noTmpfileLink.Load() {
		fd, err := unix.Openat(t.stageFd, ".", unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, perm)
		if err == nil {
			return &objectFile{f: os.NewFile(uintptr(fd), "tmpfile")}, false, nil
		}
		if !errors.Is(err, unix.EOPNOTSUPP) && !errors.Is(err, unix.EISDIR) && !errors.Is(err, unix.EINVAL) {
			return nil, false, fmt.Errorf("creating temp object in %s: %w", t.stageName, err)
		}
		t.r.noTmpfileLink.Store(true)
	}
	if name != nil {
		rel := stagedRel(*name, t.r.mode)
		fd, err := unix.Openat(t.stageFd, rel, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, perm)
		if errors.Is(err, unix.EEXIST) {
			return nil, true, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("creating staged object %s: %w", name, err)
		}
		return &objectFile{f: os.NewFile(uintptr(fd), rel), direct: true}, false, nil
	}
	tmp := "tmp-" + randomSuffix()
	fd, err := unix.Openat(t.stageFd, tmp, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, perm)
	if err != nil {
		return nil, false, fmt.Errorf("creating temp object in %s: %w", t.stageName, err)
	}
	return &objectFile{f: os.NewFile(uintptr(fd), tmp), tmp: tmp}, false, nil
}

// finishObject gives a completely written object file its staging name,
// closes it and records the object. Another writer having staged the same
// object first is not an error. On error nothing is left staged.
func (t *Txn) finishObject(o *objectFile, name ObjectName, size int64) error {
	rel := stagedRel(name, t.r.mode)
	if size >= writebackMin && !t.noSync {
		// Start writing the data out now, without waiting: the syncfs of
		// Commit then finds less to flush, and the disk works while the
		// import goes on. Advisory; an error changes nothing.
		unix.SyncFileRange(int(o.f.Fd()), 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	t.flushInBackground(size)
	var err error
	switch {
	case o.direct:
	case o.tmp != "":
		err = unix.Renameat(t.stageFd, o.tmp, t.stageFd, rel)
	default:
		err = t.linkTmpfile(int(o.f.Fd()), rel)
		if errors.Is(err, unix.EEXIST) {
			err = nil
		}
	}
	if cerr := o.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		switch {
		case o.direct:
			unix.Unlinkat(t.stageFd, rel, 0)
		case o.tmp != "":
			unix.Unlinkat(t.stageFd, o.tmp, 0)
		}
		return fmt.Errorf("staging %s: %w", name, err)
	}
	if t.markStaged(name, size) {
		return fpTxnFirstObjectStaged.Hit()
	}
	return nil
}

// linkTmpfile links the O_TMPFILE fd at rel below the staging directory:
// linkat(AT_EMPTY_PATH), which needs CAP_DAC_READ_SEARCH, else through
// /proc/self/fd (slower; later objects then use named files).
func (t *Txn) linkTmpfile(fd int, rel string) error {
	err := unix.Linkat(fd, "", t.stageFd, rel, unix.AT_EMPTY_PATH)
	if err == nil || errors.Is(err, unix.EEXIST) {
		return err
	}
	if !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.EPERM) && !errors.Is(err, unix.EINVAL) {
		return err
	}
	t.r.noTmpfileLink.Store(true)
	return unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), t.stageFd, rel, unix.AT_SYMLINK_FOLLOW)
}

// dropObject closes and removes an object file that will not be staged.
func (t *Txn) dropObject(o *objectFile) {
	name := o.f.Name()
	o.f.Close()
	if o.direct || o.tmp != "" {
		unix.Unlinkat(t.stageFd, name, 0)
	}
}

// markStaged records a finished object in the staging directory and
// reports whether it is the transaction's first.
func (t *Txn) markStaged(name ObjectName, size int64) (first bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, dup := t.staged[name]; dup {
		return false
	}
	t.staged[name] = struct{}{}
	t.order = append(t.order, name)
	t.bytesAdded += size
	return len(t.order) == 1
}

// BeforeRefs sets a function that Commit calls once every object is
// published and synced, just before the ref updates are written; its error
// ends Commit with no ref changed. Callers use it to place failpoints of
// their own at that step.
func (t *Txn) BeforeRefs(hook func() error) { t.beforeRefs = hook }

// SetRef records a ref update, applied by Commit after all objects are in
// place. A nil checksum deletes the ref. ref is "name", "remote:name", or
// "mirror:collection-id:name". Commit writes the refs in the order of their
// (last) SetRef, each atomically but not all at once: a process killed
// between two leaves the earlier ones written, so set last the ref whose
// presence says the others are there.
func (t *Txn) SetRef(ref string, c *Checksum) error {
	if _, err := refPath(ref); err != nil {
		return err
	}
	t.mu.Lock()
	if _, again := t.refs[ref]; again {
		t.refOrder = slices.DeleteFunc(t.refOrder, func(r string) bool { return r == ref })
	}
	t.refs[ref] = c
	t.refOrder = append(t.refOrder, ref)
	t.mu.Unlock()
	return nil
}

// Stats reports how many objects were newly written and their stored size.
func (t *Txn) Stats() (objects int, bytes int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.order), t.bytesAdded
}

// Commit makes the staged objects part of the repository and applies ref
// updates: syncfs, rename objects (commits last), syncfs, write refs.
func (t *Txn) Commit() error {
	if t.done {
		return fmt.Errorf("transaction already finished")
	}
	defer t.Abort()
	objects := len(t.order) > 0
	if objects {
		if err := fpTxnAllObjectsStaged.Hit(); err != nil {
			return err
		}
	}
	if err := t.sync(); err != nil {
		return err
	}
	if objects {
		if err := fpTxnSynced.Hit(); err != nil {
			return err
		}
	}
	last := func(n ObjectName) bool { return n.Type == ObjCommit || n.Type == ObjCommitMeta }
	sort.SliceStable(t.order, func(i, j int) bool { return !last(t.order[i]) && last(t.order[j]) })
	commitPublished := false
	for i, name := range t.order {
		if i == len(t.order)/2 && i > 0 {
			if err := fpTxnRenamesHalfway.Hit(); err != nil {
				return err
			}
		}
		if err := t.r.ensureObjDir(name.Checksum[0]); err != nil {
			return err
		}
		rel := objectRelPath(name.Checksum, name.Type, t.r.mode)
		flags := uint(unix.RENAME_NOREPLACE)
		if name.Type == ObjCommitMeta {
			flags = 0 // detached metadata is mutable: the new one wins
		}
		err := unix.Renameat2(t.stageFd, stagedRel(name, t.r.mode), t.r.objFd, rel, flags)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("moving %s into objects/: %w", name, err)
		}
		if name.Type == ObjCommit {
			// A new commit supersedes a tombstone of the same name.
			unix.Unlinkat(t.r.objFd, objectRelPath(name.Checksum, ObjTombstone, t.r.mode), 0)
			if !commitPublished {
				commitPublished = true
				if err := fpTxnCommitPublished.Hit(); err != nil {
					return err
				}
			}
		}
	}
	if len(t.order) > 0 {
		if err := t.sync(); err != nil {
			return err
		}
	}
	if len(t.refs) == 0 {
		return nil
	}
	names := t.refOrder
	if err := fpTxnBeforeRefs.Hit(); err != nil {
		return err
	}
	if t.beforeRefs != nil {
		if err := t.beforeRefs(); err != nil {
			return err
		}
	}
	for i, ref := range names {
		if i == 1 {
			if err := fpTxnBetweenRefs.Hit(); err != nil {
				return err
			}
		}
		if err := t.r.writeRef(ref, t.refs[ref], t.stageFd); err != nil {
			return err
		}
	}
	return t.sync()
}

func (t *Txn) sync() error {
	if t.noSync {
		return nil
	}
	if err := unix.Syncfs(t.r.dfd); err != nil {
		return fmt.Errorf("syncfs %s: %w", t.r.path, err)
	}
	return nil
}

// flushInBackground counts size more bytes staged and, every flushEvery
// bytes, starts a syncfs on a goroutine of its own unless one still runs.
// Advisory: its error changes nothing (Commit's syncfs reports).
func (t *Txn) flushInBackground(size int64) {
	if t.noSync || t.unflushed.Add(size) < flushEvery || !t.flushing.CompareAndSwap(false, true) {
		return
	}
	t.unflushed.Store(0)
	t.flushWG.Add(1)
	go func() {
		defer t.flushWG.Done()
		unix.Syncfs(t.r.dfd)
		t.flushing.Store(false)
	}()
}

// Abort drops everything staged and releases the lock. It is a no-op after
// Commit or a previous Abort.
func (t *Txn) Abort() {
	if t.done {
		return
	}
	t.done = true
	t.flushWG.Wait() // no goroutine outlives the transaction
	if t.stageFd >= 0 {
		unix.Close(t.stageFd)
	}
	os.RemoveAll(filepath.Join(t.r.path, t.stageName))
	unix.Unlinkat(t.r.dfd, t.stageName+".lock", 0)
	unix.Close(t.stageLock)
	t.unlock()
}

// LoadMeta reads a metadata object staged in this transaction or already in
// the repository.
func (t *Txn) LoadMeta(c Checksum, typ ObjectType) ([]byte, error) {
	t.mu.Lock()
	_, staged := t.staged[ObjectName{c, typ}]
	t.mu.Unlock()
	if !staged {
		return t.r.LoadMeta(c, typ)
	}
	b, err := readFileAt(t.stageFd, stagedRel(ObjectName{c, typ}, t.r.mode), 256<<20)
	if err != nil {
		return nil, fmt.Errorf("reading staged %s: %w", ObjectName{c, typ}, err)
	}
	return b, nil
}

// WriteDetachedMetadata stages a commit's detached metadata (.commitmeta,
// named by the commit, not by its own checksum); Commit moves it in with the
// commit, replacing an earlier one.
func (t *Txn) WriteDetachedMetadata(commit Checksum, md Metadata) error {
	b, err := md.Encode()
	if err != nil {
		return err
	}
	name := ObjectName{commit, ObjCommitMeta}
	rel := stagedRel(name, t.r.mode)
	unix.Unlinkat(t.stageFd, rel, 0)
	if err := writeFileAt(t.stageFd, rel, b, 0o644); err != nil {
		return err
	}
	if t.markStaged(name, int64(len(b))) {
		return fpTxnFirstObjectStaged.Hit()
	}
	return nil
}

// OpenContent opens a content object staged in this transaction or already
// in the repository.
func (t *Txn) OpenContent(c Checksum) (*Content, error) {
	t.mu.Lock()
	_, staged := t.staged[ObjectName{c, ObjFile}]
	t.mu.Unlock()
	if !staged {
		return t.r.OpenContent(c)
	}
	return t.r.openContentAt(t.stageFd, stagedRel(ObjectName{c, ObjFile}, t.r.mode), c)
}
