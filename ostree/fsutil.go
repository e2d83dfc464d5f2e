package ostree

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// randomSuffix returns a short random string for temp names.
func randomSuffix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// readFileAt reads a whole file below dfd without following a symlink in its
// last component, refusing files larger than limit. (Raw syscalls: this runs
// once per dirtree in checkouts, where os.File's extra calls show.)
func readFileAt(dfd int, name string, limit int64) ([]byte, error) {
	fd, err := unix.Openat(dfd, name, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Size > limit {
		return nil, fmt.Errorf("%s: %d bytes is over the %d byte limit", name, st.Size, limit)
	}
	buf := make([]byte, st.Size)
	for off := 0; off < len(buf); {
		n, err := unix.Read(fd, buf[off:])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			return nil, fmt.Errorf("%s: %w", name, io.ErrUnexpectedEOF)
		}
		off += n
	}
	return buf, nil
}

// writeFileAt replaces name below dfd atomically: a temp file in the same
// directory, then rename. Parent directories are created as needed.
func writeFileAt(dfd int, name string, data []byte, perm uint32) error {
	dir := path.Dir(name)
	if dir != "." {
		if err := mkdirAllAt(dfd, dir); err != nil {
			return err
		}
	}
	tmp := path.Join(dir, ".tmp-"+path.Base(name)+"-"+randomSuffix())
	fd, err := unix.Openat(dfd, tmp, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, perm)
	if err != nil {
		return fmt.Errorf("creating %s: %w", tmp, err)
	}
	f := os.NewFile(uintptr(fd), tmp)
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, name)
	}
	if err != nil {
		unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// mkdirAllAt creates a relative directory path below dfd, refusing to pass
// through symlinks.
func mkdirAllAt(dfd int, rel string) error {
	cur, err := unix.Dup(dfd)
	if err != nil {
		return err
	}
	defer func() { unix.Close(cur) }()
	for _, part := range splitPath(rel) {
		if err := unix.Mkdirat(cur, part, 0o777); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("mkdir %s: %w", rel, err)
		}
		next, err := unix.Openat(cur, part, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0)
		if err != nil {
			return fmt.Errorf("open %s: %w", rel, err)
		}
		unix.Close(cur)
		cur = next
	}
	return nil
}

// splitPath splits a slash-separated relative path, dropping empty and "."
// parts.
func splitPath(p string) []string {
	var out []string
	for len(p) > 0 {
		i := 0
		for i < len(p) && p[i] != '/' {
			i++
		}
		if part := p[:i]; part != "" && part != "." {
			out = append(out, part)
		}
		if i == len(p) {
			break
		}
		p = p[i+1:]
	}
	return out
}

// lock takes libostree's repository lock: an OFD lock on .lock, shared for
// transactions and reads, exclusive for deletions. OFD locks are what
// libostree uses; flock() locks would not exclude them. Like libostree it
// gives up after core.lock-timeout-secs (300 by default). The returned func
// releases it.
func (r *Repo) lock(exclusive bool) (func(), error) {
	fd, err := unix.Openat(r.dfd, ".lock", unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0o660)
	if err != nil {
		return nil, fmt.Errorf("opening %s/.lock: %w", r.path, err)
	}
	lk := unix.Flock_t{Type: unix.F_RDLCK, Whence: 0}
	kind := "shared"
	if exclusive {
		lk.Type, kind = unix.F_WRLCK, "exclusive"
	}
	deadline := time.Now().Add(r.lockTimeout())
	for tries := 0; ; tries++ {
		err = unix.FcntlFlock(uintptr(fd), unix.F_OFD_SETLK, &lk)
		if err == nil {
			return func() { unix.Close(fd) }, nil
		}
		if !errors.Is(err, unix.EAGAIN) && !errors.Is(err, unix.EACCES) && !errors.Is(err, unix.EINTR) {
			break
		}
		if tries == 0 {
			if ferr := fpLockBusy.Hit(); ferr != nil {
				err = ferr
				break
			}
		}
		if r.lockTimeout() >= 0 && !time.Now().Before(deadline) {
			err = fmt.Errorf("timed out after %s; another process holds it", r.lockTimeout())
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	unix.Close(fd)
	return nil, fmt.Errorf("taking the %s lock on %s/.lock: %w", kind, r.path, err)
}

func (r *Repo) lockTimeout() time.Duration {
	if v, ok := r.config.Get("core", "lock-timeout-secs"); ok {
		if n, err := strconv.Atoi(v); err == nil {
			if n < 0 {
				return -1 // wait as long as it takes
			}
			return time.Duration(n) * time.Second
		}
	}
	return 300 * time.Second
}
