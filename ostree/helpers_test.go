package ostree

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Shared helpers for the package's unit tests. Goldens come from the spec's
// byte vectors (produced by real ostree) or are built here by hand from the
// format definition, never from the code under test.

func isCI() bool { return os.Getenv("CI") == "true" }

// skipOrFail skips a test that cannot run in this environment, except in CI
// where every test must run.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	if isCI() {
		t.Fatalf("CI=true: "+format, args...)
	}
	t.Skipf(format, args...)
}

func requireRoot(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: needs root")
	}
	if os.Geteuid() != 0 {
		skipOrFail(t, "needs root (chown, mknod, trusted.* xattrs)")
	}
}

// ---- byte vectors ----

type vecXattr struct {
	Name     string `json:"name"`
	ValueHex string `json:"value_hex"`
}

type vecMeta struct {
	Key   string          `json:"key"`
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

type vecInputs struct {
	UID           uint32     `json:"uid"`
	GID           uint32     `json:"gid"`
	Mode          uint32     `json:"mode"`
	Size          uint64     `json:"size"`
	ContentHex    *string    `json:"content_hex"`
	SymlinkTarget *string    `json:"symlink_target"`
	Xattrs        []vecXattr `json:"xattrs"`
	Files         []struct {
		Name     string `json:"name"`
		Checksum string `json:"checksum"`
	} `json:"files"`
	Dirs []struct {
		Name         string `json:"name"`
		TreeChecksum string `json:"tree_checksum"`
		MetaChecksum string `json:"meta_checksum"`
	} `json:"dirs"`
	Metadata  []vecMeta `json:"metadata"`
	Parent    *string   `json:"parent"`
	Subject   string    `json:"subject"`
	Body      string    `json:"body"`
	Timestamp uint64    `json:"timestamp"`
	RootTree  string    `json:"root_tree"`
	RootMeta  string    `json:"root_meta"`
	Commit    string    `json:"commit"`
}

type vector struct {
	Kind                 string    `json:"kind"`
	Description          string    `json:"description"`
	Inputs               vecInputs `json:"inputs"`
	HeaderVariantHex     string    `json:"header_variant_hex"`
	HeaderPrefixedHex    string    `json:"header_prefixed_hex"`
	Hex                  *string   `json:"hex"`
	Checksum             *string   `json:"checksum"`
	ObjectPath           string    `json:"object_path"`
	ContentChecksum      string    `json:"content_checksum"`
	ObjectFileContentHex string    `json:"object_file_content_hex"`
	ObjectFileModeOctal  string    `json:"object_file_mode_octal"`
}

func loadVectors(t testing.TB) []vector {
	t.Helper()
	p := filepath.Join("..", "testdata", "ostree-test-vectors.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vectors []vector `json:"vectors"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("parsing %s: %v", p, err)
	}
	if len(doc.Vectors) == 0 {
		t.Fatalf("%s holds no vectors", p)
	}
	return doc.Vectors
}

func vectorsOf(t testing.TB, kind string) []vector {
	t.Helper()
	var out []vector
	for _, v := range loadVectors(t) {
		if v.Kind == kind {
			out = append(out, v)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %q vectors", kind)
	}
	return out
}

func unhex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func mustChecksum(t testing.TB, s string) Checksum {
	t.Helper()
	c, err := ParseChecksum(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func vecXattrs(t testing.TB, xs []vecXattr) []Xattr {
	var out []Xattr
	for _, x := range xs {
		out = append(out, Xattr{Name: x.Name, Value: unhex(t, x.ValueHex)})
	}
	return out
}

// fileFromVector returns the metadata and payload (nil for symlinks) of a
// file-like vector.
func fileFromVector(t testing.TB, in vecInputs) (*FileMeta, []byte) {
	t.Helper()
	m := &FileMeta{UID: in.UID, GID: in.GID, Mode: in.Mode, Xattrs: vecXattrs(t, in.Xattrs)}
	if in.SymlinkTarget != nil {
		m.Target = *in.SymlinkTarget
	}
	var payload []byte
	if in.ContentHex != nil {
		payload = unhex(t, *in.ContentHex)
	}
	return m, payload
}

// ---- hand-built encodings (spec §3.5) ----

// handHeader is the (uuuusa(ayay)) file header for a regular file with no
// xattrs, written out byte by byte: uid, gid, mode big-endian, rdev 0, the
// empty string's NUL, and the one framing offset (0x11 = end of the string).
func handHeader(uid, gid, mode uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, uid)
	b = binary.BigEndian.AppendUint32(b, gid)
	b = binary.BigEndian.AppendUint32(b, mode)
	b = binary.BigEndian.AppendUint32(b, 0)
	return append(b, 0x00, 0x11)
}

// handZHeaderPrefixed is the archive header (tuuuusa(ayay)) of a regular file
// with no xattrs, with its 8-byte length prefix.
func handZHeaderPrefixed(size uint64, uid, gid, mode uint32) []byte {
	h := binary.BigEndian.AppendUint64(nil, size)
	h = binary.BigEndian.AppendUint32(h, uid)
	h = binary.BigEndian.AppendUint32(h, gid)
	h = binary.BigEndian.AppendUint32(h, mode)
	h = binary.BigEndian.AppendUint32(h, 0)
	h = append(h, 0x00, 0x19) // empty string at 24, string ends at 25
	p := binary.BigEndian.AppendUint32(nil, uint32(len(h)))
	p = append(p, 0, 0, 0, 0)
	return append(p, h...)
}

// handUserMeta is bare-user's user.ostreemeta for an object without xattrs.
func handUserMeta(uid, gid, mode uint32) []byte {
	b := binary.BigEndian.AppendUint32(nil, uid)
	b = binary.BigEndian.AppendUint32(b, gid)
	return binary.BigEndian.AppendUint32(b, mode)
}

// handSum is the content checksum of a regular file with no xattrs:
// sha256(BE32(len) || 0000 || header || payload).
func handSum(uid, gid, mode uint32, payload []byte) Checksum {
	h := handHeader(uid, gid, mode)
	s := sha256.New()
	s.Write(binary.BigEndian.AppendUint32(nil, uint32(len(h))))
	s.Write([]byte{0, 0, 0, 0})
	s.Write(h)
	s.Write(payload)
	var c Checksum
	s.Sum(c[:0])
	return c
}

// handObjectPath is objects/XX/<62 hex>.<ext> for a checksum.
func handObjectPath(c Checksum, ext string) string {
	h := c.String()
	return "objects/" + h[:2] + "/" + h[2:] + "." + ext
}

func fileExt(m Mode) string {
	if m == ModeArchive {
		return "filez"
	}
	return "file"
}

// Well-known checksums from the spec's vectors.
const (
	sumDirMeta0755      = "446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488"
	sumDirMeta0700      = "84641b0a39d8c873690da8f32aea21cf5d6fff354f85e045f6f5ecdc8e7758d0"
	sumDirMetaUserDir   = "8fdeb13a6b2ddb89ca728da521ab8a02a291612b8c6d7af1561c29e1ae469217"
	sumEmptyDirTree     = "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
	sumHello            = "44f778e59f0a4748d6b0c90a47347212a231c4ad1e8f7ea5c5dffc7749153a6b"
	sumLinkHello        = "f66efa496a72379413c44593de510dc344beb045294f1a543da87b2b6118db35"
	sumLinkA            = "438802d990f25270d36f902bc9ce9d0737b88f9ae0b41ed59ec9e47c28523e0a"
	sumXattrFile        = "20e9509d2d0c639033069b3e0ae3c26052208dc6a05515cf3dd61abfa4b5b4de"
	sumOwned            = "49728c1692bf256d1c021b1aad4561adc4dc1f8c0228a4a8430f61606cb5e5f6"
	sumExecSh           = "89b350d278ff59ba4780bc377b8ebfee8ade6b55c99fab1ec84e133bc6ea52c5"
	sumSuid             = "f9c6ed2613c724cea0822249a71fc2a154ff6c3efb25e04c1ec9b942faff8b66"
	sumTreeExecSh       = "1be47a792cbf8d8300bfb79e2b90c583d090f4c70ebd6711dc018e9520fee0ec"
	sumTreeAB           = "29ca41f2098ac7159e7e906ae61c3864f03bef0e0bba6d3cf4e1015ed4ceffbf"
	sumCommitTwoEntries = "503d6ea093d5dae505668d74a29e6c1a4617559be125de3b092bdef22e208a36"
)

// twoEntriesOpts are the options that, over the tree {a: "hello\n" 0644,
// b -> a}, give the "Two entries" commit vector 503d6ea0….
func twoEntriesOpts(branch string) CommitOptions {
	return CommitOptions{Branch: branch, NoBindings: true, Subject: "Two entries", Body: "Body line", Timestamp: time.Unix(1600000000, 0)}
}

// ---- repositories ----

// newRepo makes a fresh repository in a temp dir. core.fsync=false keeps the
// tests fast except where sync says otherwise.
func newRepo(t testing.TB, m Mode) *Repo {
	t.Helper()
	return newRepoAt(t, filepath.Join(t.TempDir(), "repo"), m, false)
}

func newRepoAt(t testing.TB, path string, m Mode, sync bool) *Repo {
	t.Helper()
	if m == ModeBare {
		requireRoot(t)
	}
	r, err := Init(path, m)
	if err != nil {
		if m == ModeBareUser && strings.Contains(err.Error(), "xattr") {
			skipOrFail(t, "bare-user needs user xattrs on %s: %v", path, err)
		}
		t.Fatalf("Init(%s, %s): %v", path, m, err)
	}
	if !sync {
		r.Close()
		f, err := os.OpenFile(filepath.Join(path, "config"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.WriteString("fsync=false\n")
		f.Close()
		if r, err = Open(path); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { r.Close() })
	return r
}

var allModes = []Mode{ModeBare, ModeBareUser, ModeArchive}

// forModes runs f as one subtest per writable mode.
func forModes(t *testing.T, f func(t *testing.T, m Mode)) {
	for _, m := range allModes {
		t.Run(m.String(), func(t *testing.T) { f(t, m) })
	}
}

// stagingLeft lists what is left of transactions in tmp/.
func stagingLeft(t testing.TB, r *Repo) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(r.Path(), "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), stagingPrefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// assertPristine checks that a repository holds no object, no ref and no
// staging leftovers.
func assertPristine(t testing.TB, r *Repo) {
	t.Helper()
	refs, err := r.ListRefs()
	if err != nil {
		t.Fatal(err)
	}
	if len(refs) != 0 {
		t.Errorf("refs written: %v", refs)
	}
	if left := stagingLeft(t, r); len(left) != 0 {
		t.Errorf("staging left in tmp/: %v", left)
	}
	var objs []string
	filepath.WalkDir(filepath.Join(r.Path(), "objects"), func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			objs = append(objs, p)
		}
		return nil
	})
	if len(objs) != 0 {
		t.Errorf("objects written: %v", objs)
	}
}

// ---- tar streams ----

type tarEnt struct {
	hdr  tar.Header
	body string
}

func reg(name string, mode int64, body string) tarEnt {
	return tarEnt{hdr: tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: mode}, body: body}
}

func dirEnt(name string, mode int64) tarEnt {
	return tarEnt{hdr: tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: mode}}
}

func symEnt(name, target string) tarEnt {
	return tarEnt{hdr: tar.Header{Name: name, Typeflag: tar.TypeSymlink, Linkname: target, Mode: 0o777}}
}

func linkEnt(name, target string) tarEnt {
	return tarEnt{hdr: tar.Header{Name: name, Typeflag: tar.TypeLink, Linkname: target}}
}

func mkTar(t testing.TB, ents ...tarEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := e.hdr
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("tar header %q: %v", h.Name, err)
		}
		if _, err := tw.Write([]byte(e.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func commitTar(t testing.TB, r *Repo, opts CommitOptions, ents ...tarEnt) Checksum {
	t.Helper()
	c, err := r.CommitTar(bytes.NewReader(mkTar(t, ents...)), opts)
	if err != nil {
		t.Fatalf("CommitTar: %v", err)
	}
	return c
}

// lookupPath walks a commit to a file or directory entry. For a directory it
// returns the dirtree and dirmeta; for a file, the content checksum.
func lookupPath(t testing.TB, r *Repo, commit Checksum, p string) (tree, meta, file Checksum) {
	t.Helper()
	cm, err := r.ReadCommit(commit)
	if err != nil {
		t.Fatal(err)
	}
	tree, meta = cm.RootTree, cm.RootMeta
	parts := splitPath(p)
	for i, name := range parts {
		dt, err := r.ReadDirTree(tree)
		if err != nil {
			t.Fatal(err)
		}
		if d, ok := dt.LookupDir(name); ok {
			tree, meta = d.Tree, d.Meta
			continue
		}
		if f, ok := dt.LookupFile(name); ok && i == len(parts)-1 {
			return Checksum{}, Checksum{}, f
		}
		t.Fatalf("%s not found in commit %s", p, commit)
	}
	return tree, meta, Checksum{}
}

func readAllContent(t testing.TB, r *Repo, c Checksum) (*FileMeta, []byte) {
	t.Helper()
	cont, err := r.OpenContent(c)
	if err != nil {
		t.Fatalf("OpenContent(%s): %v", c, err)
	}
	defer cont.Payload.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(cont.Payload); err != nil {
		t.Fatalf("reading %s: %v", c, err)
	}
	if int64(buf.Len()) != cont.Size {
		t.Errorf("content %s: Size %d, read %d bytes", c, cont.Size, buf.Len())
	}
	return cont.Meta, buf.Bytes()
}

// xattrsEqual compares xattr lists, treating nil and empty as equal.
func xattrsEqual(a, b []Xattr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

func metaEqual(a, b *FileMeta) bool {
	return a.UID == b.UID && a.GID == b.GID && a.Mode == b.Mode && a.Target == b.Target && xattrsEqual(a.Xattrs, b.Xattrs)
}
