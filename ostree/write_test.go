package ostree

import (
	"bytes"
	"compress/flate"
	"crypto/sha256"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// bigPayload is deterministic data just over the in-memory limit, so
// WriteContent takes its streaming path.
func bigPayload() []byte {
	const n = smallFile + 123457
	out := make([]byte, 0, n+sha256.Size)
	seed := sha256.Sum256([]byte("ocitree"))
	for len(out) < n {
		out = append(out, seed[:]...)
		seed = sha256.Sum256(seed[:])
	}
	return out[:n]
}

type writtenObj struct {
	name    string
	meta    *FileMeta
	payload []byte
	want    Checksum
}

// writeSamples writes the file vectors (minus the trusted.* one outside bare
// mode), a >1 MiB file, and a symlink into a transaction.
func writeSamples(t *testing.T, txn *Txn, m Mode) []writtenObj {
	t.Helper()
	var objs []writtenObj
	for _, v := range vectorsOf(t, "file") {
		meta, payload := fileFromVector(t, v.Inputs)
		objs = append(objs, writtenObj{v.Description, meta, payload, mustChecksum(t, *v.Checksum)})
	}
	big := bigPayload()
	objs = append(objs, writtenObj{"big file", &FileMeta{Mode: 0o100644}, big, handSum(0, 0, 0o100644, big)})
	objs = append(objs, writtenObj{"big setuid file owned by 1000", &FileMeta{UID: 1000, GID: 1000, Mode: 0o104755}, big, handSum(1000, 1000, 0o104755, big)})
	// A symlink with an xattr (root may set trusted.* on symlinks). Its
	// checksum comes from ContentChecksum, which the vectors pin down.
	lx := &FileMeta{Mode: 0o120777, Target: "../some/where", Xattrs: []Xattr{{"trusted.lnk", []byte("v")}}}
	lxSum, err := ContentChecksum(lx, nil)
	if err != nil {
		t.Fatal(err)
	}
	objs = append(objs, writtenObj{"symlink with trusted xattr", lx, nil, lxSum})
	for _, o := range objs {
		c, err := txn.WriteContent(o.meta, bytes.NewReader(o.payload), int64(len(o.payload)))
		if err != nil {
			t.Fatalf("WriteContent(%s): %v", o.name, err)
		}
		if c != o.want {
			t.Errorf("WriteContent(%s) = %s, want %s", o.name, c, o.want)
		}
	}
	return objs
}

func TestWriteContentAllModes(t *testing.T) {
	forModes(t, func(t *testing.T, m Mode) {
		requireRoot(t) // objects owned by uid 1000, trusted.* xattrs
		r := newRepo(t, m)
		txn, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer txn.Abort()
		objs := writeSamples(t, txn, m)
		for _, o := range objs {
			if ok, err := r.HasObject(o.want, ObjFile); err != nil || ok {
				t.Errorf("%s: in objects/ before Commit (%v, %v)", o.name, ok, err)
			}
			if ok, err := txn.Has(o.want, ObjFile); err != nil || !ok {
				t.Errorf("%s: Txn.Has = %v, %v", o.name, ok, err)
			}
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		for _, o := range objs {
			t.Run(o.name, func(t *testing.T) {
				if ok, err := r.HasObject(o.want, ObjFile); err != nil || !ok {
					t.Fatalf("not in objects/ after Commit (%v, %v)", ok, err)
				}
				meta, payload := readAllContent(t, r, o.want)
				if !metaEqual(meta, o.meta) {
					t.Errorf("OpenContent meta = %+v, want %+v", meta, o.meta)
				}
				if !bytes.Equal(payload, o.payload) {
					t.Errorf("OpenContent payload: %d bytes differ from the %d written", len(payload), len(o.payload))
				}
				checkOnDisk(t, r, o)
			})
		}
	})
}

// checkOnDisk verifies the object file as each mode stores it (spec §3.5).
func checkOnDisk(t *testing.T, r *Repo, o writtenObj) {
	p := filepath.Join(r.Path(), handObjectPath(o.want, fileExt(r.Mode())))
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	switch r.Mode() {
	case ModeBare:
		if st.Uid != o.meta.UID || st.Gid != o.meta.GID || st.Mode != o.meta.Mode {
			t.Errorf("bare object %d:%d %o, want %d:%d %o", st.Uid, st.Gid, st.Mode, o.meta.UID, o.meta.GID, o.meta.Mode)
		}
		if o.meta.IsSymlink() {
			if target, _ := os.Readlink(p); target != o.meta.Target {
				t.Errorf("bare symlink object -> %q, want %q", target, o.meta.Target)
			}
		} else {
			if st.Mtim.Sec != 0 || st.Mtim.Nsec != 0 {
				t.Errorf("bare object mtime %d.%09d, want 0", st.Mtim.Sec, st.Mtim.Nsec)
			}
			if b, _ := os.ReadFile(p); !bytes.Equal(b, o.payload) {
				t.Error("bare object content differs from the payload")
			}
		}
		xs, err := listXattrsPath(p)
		if err != nil {
			t.Fatal(err)
		}
		if !xattrsEqual(xs, o.meta.Xattrs) {
			t.Errorf("bare object xattrs %v, want %v", xs, o.meta.Xattrs)
		}
	case ModeBareUser:
		if st.Mode&modeTypeMask != modeReg {
			t.Fatalf("bare-user object is not a regular file: %o", st.Mode)
		}
		um := make([]byte, 4096)
		n, err := unix.Lgetxattr(p, "user.ostreemeta", um)
		if err != nil {
			t.Fatal(err)
		}
		want, err := o.meta.encodeUserMeta()
		if err != nil {
			t.Fatal(err)
		}
		if len(o.meta.Xattrs) == 0 {
			want = handUserMeta(o.meta.UID, o.meta.GID, o.meta.Mode)
		}
		if !bytes.Equal(um[:n], want) {
			t.Errorf("user.ostreemeta = %x, want %x", um[:n], want)
		}
		// Real xattrs live only inside user.ostreemeta.
		for _, x := range o.meta.Xattrs {
			if _, err := unix.Lgetxattr(p, x.Name, nil); err == nil {
				t.Errorf("xattr %s applied to the bare-user object file", x.Name)
			}
		}
		b, _ := os.ReadFile(p)
		if o.meta.IsSymlink() {
			if string(b) != o.meta.Target+"\x00" {
				t.Errorf("bare-user symlink object holds %q, want target+NUL", b)
			}
		} else {
			if want := o.meta.Mode&0o775 | 0o400; st.Mode&modePermMask != want {
				t.Errorf("bare-user object mode %o, want %o", st.Mode&modePermMask, want)
			}
			if !bytes.Equal(b, o.payload) {
				t.Error("bare-user object content differs from the payload")
			}
		}
	case ModeArchive:
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		zh, err := o.meta.encodeZHeader(uint64(len(o.payload)))
		if err != nil {
			t.Fatal(err)
		}
		prefix := streamPrefix(zh)
		if len(o.meta.Xattrs) == 0 && !o.meta.IsSymlink() {
			prefix = handZHeaderPrefixed(uint64(len(o.payload)), o.meta.UID, o.meta.GID, o.meta.Mode)
		}
		if !bytes.HasPrefix(b, prefix) {
			t.Fatalf(".filez does not start with the archive header %x", prefix)
		}
		rest := b[len(prefix):]
		if o.meta.IsSymlink() {
			if len(rest) != 0 {
				t.Errorf("symlink .filez has %d bytes after the header, want none", len(rest))
			}
			return
		}
		br := bytes.NewReader(rest)
		got, err := io.ReadAll(flate.NewReader(br))
		if err != nil {
			t.Fatalf("raw inflate: %v", err)
		}
		if !bytes.Equal(got, o.payload) {
			t.Error("inflated .filez differs from the payload")
		}
		if br.Len() != 0 {
			t.Errorf("%d bytes after the deflate stream", br.Len())
		}
		if st.Mode&modePermMask != 0o644 {
			t.Errorf(".filez mode %o, want 0644", st.Mode&modePermMask)
		}
	}
}

// TestWriteBareUserVectors checks bare-user objects against the
// bare-user-ostreemeta vectors: xattr bytes, file mode, file content.
func TestWriteBareUserVectors(t *testing.T) {
	r := newRepo(t, ModeBareUser)
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	vecs := vectorsOf(t, "bare-user-ostreemeta")
	for _, v := range vecs {
		meta := &FileMeta{UID: v.Inputs.UID, GID: v.Inputs.GID, Mode: v.Inputs.Mode, Xattrs: vecXattrs(t, v.Inputs.Xattrs)}
		content := unhex(t, v.ObjectFileContentHex)
		var c Checksum
		if meta.IsSymlink() {
			meta.Target = strings.TrimSuffix(string(content), "\x00")
			c, err = txn.WriteContent(meta, nil, 0)
		} else {
			c, err = txn.WriteContent(meta, bytes.NewReader(content), int64(len(content)))
		}
		if err != nil {
			t.Fatal(err)
		}
		if c.String() != *v.Checksum {
			t.Errorf("%s: checksum %s, want %s", v.Description, c, *v.Checksum)
		}
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, v := range vecs {
		p := filepath.Join(r.Path(), handObjectPath(mustChecksum(t, *v.Checksum), "file"))
		buf := make([]byte, 4096)
		n, err := unix.Lgetxattr(p, "user.ostreemeta", buf)
		if err != nil {
			t.Fatal(err)
		}
		if want := unhex(t, *v.Hex); !bytes.Equal(buf[:n], want) {
			t.Errorf("%s: user.ostreemeta %x, want %x", v.Description, buf[:n], want)
		}
		b, _ := os.ReadFile(p)
		if want := unhex(t, v.ObjectFileContentHex); !bytes.Equal(b, want) {
			t.Errorf("%s: object content %x, want %x", v.Description, b, want)
		}
		if v.Inputs.Mode&modeTypeMask == modeReg {
			var st unix.Stat_t
			unix.Lstat(p, &st)
			if got := "0" + strings.TrimLeft(octal(st.Mode&modePermMask), "0"); got != v.ObjectFileModeOctal {
				t.Errorf("%s: object mode %s, want %s", v.Description, got, v.ObjectFileModeOctal)
			}
		}
	}
}

func octal(m uint32) string {
	const digits = "01234567"
	s := ""
	for i := 0; i < 4; i++ {
		s = string(digits[m&7]) + s
		m >>= 3
	}
	return s
}

// TestWriteArchiveVectors checks .filez files against the archive-filez
// vectors: the header is normative, the deflate bytes are not.
func TestWriteArchiveVectors(t *testing.T) {
	r := newRepo(t, ModeArchive)
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	vecs := vectorsOf(t, "archive-filez")
	for _, v := range vecs {
		meta, payload := fileFromVector(t, v.Inputs)
		c, err := txn.WriteContent(meta, bytes.NewReader(payload), int64(len(payload)))
		if err != nil {
			t.Fatal(err)
		}
		if c.String() != *v.Checksum {
			t.Errorf("%s: checksum %s, want %s", v.Description, c, *v.Checksum)
		}
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	for _, v := range vecs {
		b, err := os.ReadFile(filepath.Join(r.Path(), v.ObjectPath))
		if err != nil {
			t.Fatal(err)
		}
		prefix := unhex(t, v.HeaderPrefixedHex)
		if !bytes.HasPrefix(b, prefix) {
			t.Errorf("%s: .filez starts %x, want %x", v.Description, b[:min(len(b), len(prefix))], prefix)
			continue
		}
		_, payload := fileFromVector(t, v.Inputs)
		if v.Inputs.SymlinkTarget != nil {
			if !bytes.Equal(b, unhex(t, *v.Hex)) {
				t.Errorf("%s: symlink .filez %x, want exactly %s", v.Description, b, *v.Hex)
			}
			continue
		}
		got, err := io.ReadAll(flate.NewReader(bytes.NewReader(b[len(prefix):])))
		if err != nil || !bytes.Equal(got, payload) {
			t.Errorf("%s: inflated %q (%v), want %q", v.Description, got, err, payload)
		}
	}
}

func TestWriteContentRefusals(t *testing.T) {
	r := newRepo(t, ModeArchive)
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	tests := []struct {
		name    string
		meta    FileMeta
		payload []byte
		size    int64
	}{
		{"short small file", FileMeta{Mode: 0o100644}, []byte("12345"), 10},
		{"short big file", FileMeta{Mode: 0o100644}, make([]byte, smallFile+10), smallFile + 20},
		{"directory", FileMeta{Mode: 0o040755}, nil, 0},
		{"fifo", FileMeta{Mode: 0o010644}, nil, 0},
		{"symlink without target", FileMeta{Mode: 0o120777}, nil, 0},
		{"non-UTF-8 symlink target", FileMeta{Mode: 0o120777, Target: "x\xfe"}, nil, 0},
	}
	for _, tc := range tests {
		if _, err := txn.WriteContent(&tc.meta, bytes.NewReader(tc.payload), tc.size); err == nil {
			t.Errorf("%s: WriteContent succeeded", tc.name)
		}
	}
	if n, _ := txn.Stats(); n != 0 {
		t.Errorf("%d objects staged by refused writes", n)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	assertPristine(t, r)
}

// TestWriteContentShortStreamEachMode: a payload shorter than its declared
// size must fail in every mode and leave nothing behind.
func TestWriteContentShortStreamEachMode(t *testing.T) {
	forModes(t, func(t *testing.T, m Mode) {
		r := newRepo(t, m)
		txn, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer txn.Abort()
		data := bigPayload()
		if _, err := txn.WriteContent(&FileMeta{Mode: 0o100644}, bytes.NewReader(data), int64(len(data))+1); err == nil {
			t.Error("WriteContent accepted a short stream")
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		assertPristine(t, r)
	})
}

// TestWriteContentDedup: the same content written twice (and by several
// goroutines) is stored once.
func TestWriteContentDedup(t *testing.T) {
	forModes(t, func(t *testing.T, m Mode) {
		r := newRepo(t, m)
		txn, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer txn.Abort()
		big := bigPayload()
		payloads := [][]byte{[]byte("hello\n"), big}
		errs := make(chan error, 16)
		for i := 0; i < 16; i++ {
			go func(p []byte) {
				c, err := txn.WriteContent(&FileMeta{Mode: 0o100644}, bytes.NewReader(p), int64(len(p)))
				if err == nil && c != handSum(0, 0, 0o100644, p) {
					err = io.ErrUnexpectedEOF
				}
				errs <- err
			}(payloads[i%2])
		}
		for i := 0; i < 16; i++ {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
		if n, _ := txn.Stats(); n != 2 {
			t.Errorf("Stats: %d objects, want 2", n)
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		objs, err := r.ListObjects(func(ObjectType) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		if len(objs) != 2 {
			t.Errorf("%d objects in the repo, want 2: %v", len(objs), objs)
		}
		for _, p := range payloads {
			_, got := readAllContent(t, r, handSum(0, 0, 0o100644, p))
			if !bytes.Equal(got, p) {
				t.Error("content differs")
			}
		}
		// Writing existing content again stages nothing.
		txn2, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer txn2.Abort()
		for _, p := range payloads {
			if _, err := txn2.WriteContent(&FileMeta{Mode: 0o100644}, bytes.NewReader(p), int64(len(p))); err != nil {
				t.Fatal(err)
			}
		}
		if n, _ := txn2.Stats(); n != 0 {
			t.Errorf("rewrite staged %d objects", n)
		}
	})
}

// TestWriteContentRetryAfterFailure: a write that failed must not make a
// later write of the same object report success without storing it.
func TestWriteContentRetryAfterFailure(t *testing.T) {
	requireRoot(t)
	r := newRepo(t, ModeBare)
	tests := []struct {
		name    string
		meta    FileMeta
		payload []byte
	}{
		// No such xattr namespace: fsetxattr fails after the file exists.
		{"regular file, bad xattr", FileMeta{Mode: 0o100644, Xattrs: []Xattr{{"nonamespace", []byte("v")}}}, []byte("retry\n")},
		// user.* xattrs are not allowed on symlinks.
		{"symlink, user xattr", FileMeta{Mode: 0o120777, Target: "t", Xattrs: []Xattr{{"user.x", []byte("v")}}}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			txn := beginT(t, r)
			var sums []Checksum
			for i := 0; i < 2; i++ {
				c, err := txn.WriteContent(&tc.meta, bytes.NewReader(tc.payload), int64(len(tc.payload)))
				if i == 0 && err == nil {
					t.Skip("the xattr could be set here; nothing to test")
				}
				if err == nil {
					sums = append(sums, c)
				}
			}
			if err := txn.Commit(); err != nil {
				t.Fatal(err)
			}
			for _, c := range sums {
				if ok, _ := r.HasObject(c, ObjFile); !ok {
					t.Errorf("a retried WriteContent returned %s without error, but the object is not in the repository", c)
				}
			}
		})
	}
}

func TestWriteContentNegativeSize(t *testing.T) {
	r := newRepo(t, ModeArchive)
	txn := beginT(t, r)
	defer func() {
		if p := recover(); p != nil {
			t.Errorf("WriteContent with size -1 panicked: %v", p)
		}
	}()
	if _, err := txn.WriteContent(&FileMeta{Mode: 0o100644}, bytes.NewReader(nil), -1); err == nil {
		t.Error("WriteContent accepted size -1")
	}
}
