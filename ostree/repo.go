// Package ostree is an OSTree-compatible content-addressed store written in
// pure Go. Repositories it writes are read, checked and pulled by libostree's
// own tools, and it reads repositories written by them.
//
// Every write is fd-relative below the repository directory. Objects are
// staged in a transaction directory under tmp/ and renamed into objects/ only
// after one syncfs, so an interrupted run leaves no partial object and no ref.
package ostree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Mode is a repository mode: how content objects are stored.
type Mode int

// Repository modes.
const (
	ModeBare Mode = iota
	ModeBareUser
	ModeArchive
	ModeBareUserOnly
)

// String returns the mode's user-facing name.
func (m Mode) String() string {
	switch m {
	case ModeBare:
		return "bare"
	case ModeBareUser:
		return "bare-user"
	case ModeArchive:
		return "archive"
	case ModeBareUserOnly:
		return "bare-user-only"
	}
	return fmt.Sprintf("mode(%d)", int(m))
}

// configName is what `ostree init` writes into config for the mode.
func (m Mode) configName() string {
	if m == ModeArchive {
		return "archive-z2"
	}
	return m.String()
}

// ParseMode parses a mode name as ostree accepts it in config and on the
// command line.
func ParseMode(s string) (Mode, error) {
	switch s {
	case "bare":
		return ModeBare, nil
	case "bare-user":
		return ModeBareUser, nil
	case "archive", "archive-z2":
		return ModeArchive, nil
	case "bare-user-only":
		return ModeBareUserOnly, nil
	}
	return 0, fmt.Errorf("unsupported repository mode %q (want bare, bare-user or archive)", s)
}

// Repo is an open repository.
type Repo struct {
	path   string
	dfd    int // the repository directory
	objFd  int // objects/
	mode   Mode
	config *KeyFile
	umask  uint32

	objDirsMu sync.Mutex
	objDirs   [256]bool // objects/XX known to exist

	// noTmpfileLink is set once O_TMPFILE or linkat(AT_EMPTY_PATH) failed
	// here: objects are then created under a name (txn.go).
	noTmpfileLink atomic.Bool
	// spreadOnce marks tmp/ for spreading staging directories (txn.go).
	spreadOnce sync.Once
}

var repoDirs = []string{"objects", "refs", "refs/heads", "refs/remotes", "refs/mirrors", "tmp", "tmp/cache", "state", "extensions"}

// Init creates a repository at path in mode m, as `ostree init` does. An
// existing repository is left as it is when its mode matches.
func Init(path string, m Mode) (*Repo, error) {
	if m == ModeBareUserOnly {
		return nil, fmt.Errorf("init %s: mode bare-user-only is read-only here", path)
	}
	if _, err := os.Stat(filepath.Join(path, "objects")); err == nil {
		// Like libostree: a directory with objects/ is a repository; never
		// rewrite its config, even when it cannot be opened here.
		r, err := Open(path)
		if err != nil {
			return nil, fmt.Errorf("init %s: a repository exists there: %w", path, err)
		}
		if r.mode != m {
			r.Close()
			return nil, fmt.Errorf("init %s: a repository in mode %s already exists there", path, r.mode)
		}
		return r, nil
	}
	if err := os.MkdirAll(path, 0o755); err != nil {
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	dfd, err := unix.Open(path, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	defer unix.Close(dfd)
	for _, d := range repoDirs {
		if err := unix.Mkdirat(dfd, d, 0o777); err != nil && !errors.Is(err, unix.EEXIST) {
			return nil, fmt.Errorf("init %s: mkdir %s: %w", path, d, err)
		}
	}
	if m == ModeBareUser {
		if err := checkUserXattrs(dfd); err != nil {
			return nil, fmt.Errorf("init %s: mode bare-user needs user xattrs on this filesystem: %w", path, err)
		}
	}
	cfg := "[core]\nrepo_version=1\nmode=" + m.configName() + "\n"
	// config is written last: a repository "exists" once objects/ does, and
	// Open needs config, so a half-made repo is never mistaken for a good one.
	if err := writeFileAt(dfd, "config", []byte(cfg), 0o644); err != nil {
		return nil, fmt.Errorf("init %s: %w", path, err)
	}
	return Open(path)
}

func checkUserXattrs(dfd int) error {
	name := fmt.Sprintf("tmp/xattr-check-%d", os.Getpid())
	fd, err := unix.Openat(dfd, name, unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer unix.Unlinkat(dfd, name, 0)
	defer unix.Close(fd)
	return unix.Fsetxattr(fd, "user.ostreemeta", []byte{0}, 0)
}

// Open opens an existing repository.
func Open(path string) (*Repo, error) {
	dfd, err := unix.Open(path, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open repo %s: %w", path, err)
	}
	r := &Repo{path: path, dfd: dfd, objFd: -1}
	if err := r.load(); err != nil {
		r.Close()
		return nil, fmt.Errorf("open repo %s: %w", path, err)
	}
	return r, nil
}

func (r *Repo) load() error {
	data, err := readFileAt(r.dfd, "config", 1<<20)
	if err != nil {
		return fmt.Errorf("reading config: %w", err)
	}
	if r.config, err = ParseKeyFile(string(data)); err != nil {
		return err
	}
	if v, _ := r.config.Get("core", "repo_version"); v != "1" {
		return fmt.Errorf("unsupported repo_version %q", v)
	}
	if v, _ := r.config.Get("core", "archive"); v == "true" {
		return fmt.Errorf("legacy archive-v1 repositories are not supported")
	}
	modeName, ok := r.config.Get("core", "mode")
	if !ok {
		modeName = "bare"
	}
	if r.mode, err = ParseMode(modeName); err != nil {
		return err
	}
	if r.objFd, err = unix.Openat(r.dfd, "objects", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0); err != nil {
		return fmt.Errorf("objects/: %w", err)
	}
	// The umask decides which mode bits creat() keeps.
	r.umask = processUmask()
	return nil
}

// Close releases the repository's file descriptors.
func (r *Repo) Close() error {
	if r.objFd >= 0 {
		unix.Close(r.objFd)
		r.objFd = -1
	}
	if r.dfd >= 0 {
		unix.Close(r.dfd)
		r.dfd = -1
	}
	return nil
}

// Path is the directory the repository was opened at.
func (r *Repo) Path() string { return r.path }

// Mode is the repository's mode.
func (r *Repo) Mode() Mode { return r.mode }

// Config returns the parsed config file.
func (r *Repo) Config() *KeyFile { return r.config }

// HasObject reports whether the object is present in objects/.
func (r *Repo) HasObject(c Checksum, t ObjectType) (bool, error) {
	var st unix.Stat_t
	err := unix.Fstatat(r.objFd, objectRelPath(c, t, r.mode), &st, unix.AT_SYMLINK_NOFOLLOW)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	return false, fmt.Errorf("stat object %s: %w", ObjectName{c, t}, err)
}

// objectPath is the path of an object relative to the repository, for messages.
func (r *Repo) objectPath(c Checksum, t ObjectType) string {
	return filepath.Join("objects", objectRelPath(c, t, r.mode))
}

// ensureObjDir creates objects/XX once.
func (r *Repo) ensureObjDir(prefix byte) error {
	r.objDirsMu.Lock()
	defer r.objDirsMu.Unlock()
	if r.objDirs[prefix] {
		return nil
	}
	name := fmt.Sprintf("%02x", prefix)
	if err := unix.Mkdirat(r.objFd, name, 0o777); err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("mkdir objects/%s: %w", name, err)
	}
	r.objDirs[prefix] = true
	return nil
}

// LoadMeta reads a metadata object's bytes.
func (r *Repo) LoadMeta(c Checksum, t ObjectType) ([]byte, error) {
	if t == ObjFile {
		return nil, fmt.Errorf("LoadMeta: %s is not a metadata object", ObjectName{c, t})
	}
	b, err := readFileAt(r.objFd, objectRelPath(c, t, r.mode), 256<<20)
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return nil, &MissingObjectError{Name: ObjectName{c, t}}
		}
		return nil, fmt.Errorf("reading %s: %w", r.objectPath(c, t), err)
	}
	return b, nil
}

// MissingObjectError says an object is not in the repository.
type MissingObjectError struct{ Name ObjectName }

func (e *MissingObjectError) Error() string { return "object missing: " + e.Name.String() }

// ReadCommit loads and parses a commit object.
func (r *Repo) ReadCommit(c Checksum) (*Commit, error) {
	b, err := r.LoadMeta(c, ObjCommit)
	if err != nil {
		return nil, err
	}
	return DecodeCommit(b)
}

// ReadDirTree loads and parses a dirtree object.
func (r *Repo) ReadDirTree(c Checksum) (*DirTree, error) {
	b, err := r.LoadMeta(c, ObjDirTree)
	if err != nil {
		return nil, err
	}
	return DecodeDirTree(b)
}

// ReadDirMeta loads and parses a dirmeta object.
func (r *Repo) ReadDirMeta(c Checksum) (*DirMeta, error) {
	b, err := r.LoadMeta(c, ObjDirMeta)
	if err != nil {
		return nil, err
	}
	return DecodeDirMeta(b)
}

// ReadDetachedMetadata returns the commit's detached metadata, or nil when
// there is none.
func (r *Repo) ReadDetachedMetadata(c Checksum) (Metadata, error) {
	b, err := r.LoadMeta(c, ObjCommitMeta)
	var missing *MissingObjectError
	if errors.As(err, &missing) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return DecodeMetadata(b)
}

// WriteDetachedMetadata replaces the commit's detached metadata (temp file
// then rename, like libostree); nil or empty metadata removes it.
func (r *Repo) WriteDetachedMetadata(c Checksum, md Metadata) error {
	if ok, err := r.HasObject(c, ObjCommit); err != nil || !ok {
		return fmt.Errorf("detached metadata: commit %s not found", c)
	}
	unlock, err := r.lock(false)
	if err != nil {
		return err
	}
	defer unlock()
	rel := objectRelPath(c, ObjCommitMeta, r.mode)
	if len(md) == 0 {
		if err := unix.Unlinkat(r.objFd, rel, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return fmt.Errorf("removing %s: %w", rel, err)
		}
		return nil
	}
	b, err := md.Encode()
	if err != nil {
		return err
	}
	if err := writeFileAt(r.objFd, rel, b, 0o644); err != nil {
		return err
	}
	return unix.Syncfs(r.dfd)
}

// isHex reports whether s is lowercase hex.
func isHex(s string) bool {
	return strings.Trim(s, "0123456789abcdef") == ""
}

// processUmask reads the umask without changing it (umask(2) would, for
// every thread, for a moment).
func processUmask() uint32 {
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "Umask:"); ok {
				if n, err := strconv.ParseUint(strings.TrimSpace(v), 8, 32); err == nil {
					return uint32(n)
				}
			}
		}
	}
	return 0o022
}
