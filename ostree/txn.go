package ostree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

const stagingPrefix = "ocitree-staging-"

// Txn is a write transaction. Objects are staged below
// tmp/ocitree-staging-XXXX/ and become visible in objects/ only in Commit,
// after one syncfs; commit objects are moved last and refs are written after
// all objects, so a killed transaction leaves nothing that fsck would reject.
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
	stageDirs  [256]bool
	refs       map[string]*Checksum // nil value deletes the ref
	done       bool
	noSync     bool
	bytesAdded int64
}

// Begin starts a transaction, taking the shared repository lock.
func (r *Repo) Begin() (*Txn, error) {
	unlock, err := r.lock(false)
	if err != nil {
		return nil, err
	}
	r.cleanStaleStaging()
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
	fd, exists, err := t.createStaged(name, 0o644)
	if err != nil || exists {
		return c, err
	}
	f := os.NewFile(uintptr(fd), name.String())
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.unstage(name)
		return c, fmt.Errorf("writing %s: %w", name, err)
	}
	t.markStaged(name, int64(len(data)))
	return c, nil
}

// createTemp makes a temp file in the staging directory.
func (t *Txn) createTemp(perm uint32) (string, int, error) {
	name := "tmp-" + randomSuffix()
	fd, err := unix.Openat(t.stageFd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, perm)
	if err != nil {
		return "", -1, fmt.Errorf("creating temp object in %s: %w", t.stageName, err)
	}
	return name, fd, nil
}

// stagedPath ensures the staging XX/ directory of name and returns the
// object's path below the staging directory.
func (t *Txn) stagedPath(name ObjectName) (string, error) {
	prefix := name.Checksum[0]
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.stageDirs[prefix] {
		if err := unix.Mkdirat(t.stageFd, fmt.Sprintf("%02x", prefix), 0o777); err != nil && !errors.Is(err, unix.EEXIST) {
			return "", fmt.Errorf("staging %s: %w", name, err)
		}
		t.stageDirs[prefix] = true
	}
	return objectRelPath(name.Checksum, name.Type, t.r.mode), nil
}

// markStaged records a finished object in the staging directory.
func (t *Txn) markStaged(name ObjectName, size int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, dup := t.staged[name]; dup {
		return
	}
	t.staged[name] = struct{}{}
	t.order = append(t.order, name)
	t.bytesAdded += size
}

// unstage removes a staged object whose write failed, so a retry writes it
// again. (A concurrent writer of the same object that saw it being created
// has returned success; the failure still fails the whole transaction.)
func (t *Txn) unstage(name ObjectName) {
	unix.Unlinkat(t.stageFd, objectRelPath(name.Checksum, name.Type, t.r.mode), 0)
}

// stage renames a finished temp file to its object name in the staging dir.
func (t *Txn) stage(tmp string, name ObjectName, size int64) error {
	rel, err := t.stagedPath(name)
	if err == nil {
		err = unix.Renameat(t.stageFd, tmp, t.stageFd, rel)
	}
	if err != nil {
		unix.Unlinkat(t.stageFd, tmp, 0)
		return fmt.Errorf("staging %s: %w", name, err)
	}
	t.markStaged(name, size)
	return nil
}

// createStaged creates the object file at its final staging path: the
// staging directory is private and discarded whole when a transaction does
// not commit, so no temp name is needed. exists is true when another writer
// of this transaction is already writing the same object.
func (t *Txn) createStaged(name ObjectName, perm uint32) (fd int, exists bool, err error) {
	rel, err := t.stagedPath(name)
	if err != nil {
		return -1, false, err
	}
	fd, err = unix.Openat(t.stageFd, rel, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, perm)
	if errors.Is(err, unix.EEXIST) {
		return -1, true, nil
	}
	if err != nil {
		return -1, false, fmt.Errorf("creating staged object %s: %w", name, err)
	}
	return fd, false, nil
}

// SetRef records a ref update, applied by Commit after all objects are in
// place. A nil checksum deletes the ref. ref is "name", "remote:name", or
// "mirror:collection-id:name".
func (t *Txn) SetRef(ref string, c *Checksum) error {
	if _, err := refPath(ref); err != nil {
		return err
	}
	t.mu.Lock()
	t.refs[ref] = c
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
	if err := t.sync(); err != nil {
		return err
	}
	last := func(n ObjectName) bool { return n.Type == ObjCommit || n.Type == ObjCommitMeta }
	sort.SliceStable(t.order, func(i, j int) bool { return !last(t.order[i]) && last(t.order[j]) })
	for _, name := range t.order {
		if err := t.r.ensureObjDir(name.Checksum[0]); err != nil {
			return err
		}
		rel := objectRelPath(name.Checksum, name.Type, t.r.mode)
		flags := uint(unix.RENAME_NOREPLACE)
		if name.Type == ObjCommitMeta {
			flags = 0 // detached metadata is mutable: the new one wins
		}
		err := unix.Renameat2(t.stageFd, rel, t.r.objFd, rel, flags)
		if err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("moving %s into objects/: %w", name, err)
		}
		if name.Type == ObjCommit {
			// A new commit supersedes a tombstone of the same name.
			unix.Unlinkat(t.r.objFd, objectRelPath(name.Checksum, ObjTombstone, t.r.mode), 0)
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
	names := make([]string, 0, len(t.refs))
	for ref := range t.refs {
		names = append(names, ref)
	}
	sort.Strings(names)
	for _, ref := range names {
		if err := t.r.writeRef(ref, t.refs[ref]); err != nil {
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

// Abort drops everything staged and releases the lock. It is a no-op after
// Commit or a previous Abort.
func (t *Txn) Abort() {
	if t.done {
		return
	}
	t.done = true
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
	b, err := readFileAt(t.stageFd, objectRelPath(c, typ, t.r.mode), 256<<20)
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
	rel, err := t.stagedPath(name)
	if err != nil {
		return err
	}
	unix.Unlinkat(t.stageFd, rel, 0)
	if err := writeFileAt(t.stageFd, rel, b, 0o644); err != nil {
		return err
	}
	t.markStaged(name, int64(len(b)))
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
	return t.r.openContentAt(t.stageFd, c)
}
