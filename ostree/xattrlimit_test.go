package ostree

import (
	"bytes"
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestXattrLimit: the probed limit is what the file system holds (a value
// of that size is set on a new file, one byte more is refused), and an
// object whose xattrs are over it is refused with ErrXattrTooLarge naming
// the xattr, its size and the limit, not "no space left on device"; the
// repository is left as it was (issue 11, class 5).
func TestXattrLimit(t *testing.T) {
	r, err := Init(filepath.Join(t.TempDir(), "repo"), ModeBareUser)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	limit, err := r.XattrLimit()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("xattr limit of the test file system: %d bytes", limit)
	if limit <= 0 || limit > 64<<10 {
		t.Fatalf("limit %d", limit)
	}
	fd, err := unix.Openat(r.dfd, "tmp/check", unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, limit+1)
	if err := unix.Fsetxattr(fd, xattrProbeName, buf[:limit], 0); err != nil {
		t.Errorf("a value of the limit refused: %v", err)
	}
	unix.Fremovexattr(fd, xattrProbeName)
	if err := unix.Fsetxattr(fd, xattrProbeName, buf, 0); err == nil {
		t.Errorf("a value of the limit + 1 accepted")
	}
	unix.Close(fd)
	unix.Unlinkat(r.dfd, "tmp/check", 0)

	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	meta := &FileMeta{Mode: 0o100644, Xattrs: []Xattr{{Name: "user.small", Value: []byte("v")}, {Name: "user.big", Value: bytes.Repeat([]byte("x"), limit+1)}}}
	_, err = txn.WriteContent(meta, strings.NewReader("body"), 4)
	txn.Abort()
	for _, w := range []string{"user.big, is " + strconv.Itoa(limit+1) + " bytes", "the limit of the store's file system is " + strconv.Itoa(limit) + " bytes"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("write: %v, want an error with %q", err, w)
		}
	}
	if !errors.Is(err, ErrXattrTooLarge) {
		t.Errorf("%v does not wrap ErrXattrTooLarge", err)
	}
	objs, err := r.ListObjects(func(ObjectType) bool { return true })
	if err != nil || len(objs) != 0 {
		t.Errorf("objects after the refused write: %v %v", objs, err)
	}
}
