package derived

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ocitree/ocitree/ostree"
)

// ---- helpers (dl = derived layer) ----

type dlEnt struct {
	name   string
	typ    byte
	body   string
	mode   int64
	uid    int
	gid    int
	link   string
	xattrs map[string]string
}

func dlFile(name, body string) dlEnt {
	return dlEnt{name: name, typ: tar.TypeReg, body: body, mode: 0o644}
}
func dlDir(name string, mode int64) dlEnt {
	return dlEnt{name: name, typ: tar.TypeDir, mode: mode}
}
func dlLink(name, target string) dlEnt { return dlEnt{name: name, typ: tar.TypeLink, link: target} }
func dlSym(name, target string) dlEnt {
	return dlEnt{name: name, typ: tar.TypeSymlink, link: target, mode: 0o777}
}

func dlTar(t testing.TB, ents ...dlEnt) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range ents {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: e.mode, Uid: e.uid, Gid: e.gid, Linkname: e.link, Format: tar.FormatPAX}
		if e.typ == tar.TypeReg {
			h.Size = int64(len(e.body))
		}
		if e.typ == tar.TypeGNUSparse {
			h.Format = tar.FormatGNU
		}
		if len(e.xattrs) > 0 {
			h.PAXRecords = map[string]string{}
			for k, v := range e.xattrs {
				h.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatalf("%s: %v", e.name, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := io.WriteString(tw, e.body); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func dlRepo(t testing.TB) *ostree.Repo {
	t.Helper()
	mode := ostree.ModeBareUserOnly
	if os.Geteuid() == 0 {
		mode = ostree.ModeBare
	}
	r, err := ostree.Init(filepath.Join(t.TempDir(), "repo"), mode)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// dlCommitTar commits a plain tar with ostree's own importer (not the code
// under test) and returns the commit.
func dlCommitTar(t testing.TB, r *ostree.Repo, tarball []byte) ostree.Checksum {
	t.Helper()
	c, err := r.CommitTar(bytes.NewReader(tarball), ostree.CommitOptions{NoParent: true, Timestamp: time.Unix(1, 0), Subject: "base"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// dlTreeOf opens commit c as a lazy tree.
func dlTreeOf(t testing.TB, r *ostree.Repo, c ostree.Checksum) *ostree.MutableTree {
	t.Helper()
	cm, err := r.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	return ostree.NewMutableTreeFrom(r, cm.RootTree, cm.RootMeta)
}

// dlList lists commit c by path ("/usr/bin/sh").
func dlList(t testing.TB, r *ostree.Repo, c ostree.Checksum) map[string]ostree.ListEntry {
	t.Helper()
	out := map[string]ostree.ListEntry{}
	if err := r.List(c, "/", true, func(e ostree.ListEntry) error {
		out[e.Path] = e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func dlContent(t testing.TB, r *ostree.Repo, c ostree.Checksum) string {
	t.Helper()
	cont, err := r.OpenContent(c)
	if err != nil {
		t.Fatal(err)
	}
	defer cont.Payload.Close()
	b, err := io.ReadAll(cont.Payload)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// dlBaseTar is the base image of the rule tests, in ostree layout.
func dlBaseTar(t testing.TB) []byte {
	return dlTar(t,
		dlDir("./", 0o755),
		dlDir("usr/", 0o755), dlDir("usr/bin/", 0o755),
		dlFile("usr/bin/sh", "sh"),
		dlDir("usr/lib/", 0o755), dlFile("usr/lib/libc.so", "libc"),
		dlDir("usr/share/", 0o755), dlDir("usr/share/doc/", 0o755),
		dlFile("usr/share/doc/a", "a"), dlDir("usr/share/doc/sub/", 0o755), dlFile("usr/share/doc/sub/b", "b"),
		dlDir("usr/share/opq/", 0o755), dlFile("usr/share/opq/old1", "old1"),
		dlDir("usr/share/opq/keep/", 0o755), dlFile("usr/share/opq/keep/old2", "old2"),
		dlDir("usr/etc/", 0o755), dlFile("usr/etc/passwd", "root:x:0:0"), dlFile("usr/etc/group", "root:x:0"),
		dlDir("var/", 0o755), dlDir("var/lib/", 0o755), dlFile("var/lib/x", "x"),
		dlDir("run/", 0o755), dlDir("tmp/", 0o1777),
	)
}

type dlResult struct {
	r       *ostree.Repo
	base    ostree.Checksum
	commit  ostree.Checksum
	stats   *LayerStats
	ents    map[string]ostree.ListEntry
	baseEnt map[string]ostree.ListEntry
}

// dlApply applies layer onto the base and commits the result.
func dlApply(t *testing.T, layer []byte, opts Options) (*dlResult, error) {
	t.Helper()
	r := dlRepo(t)
	base := dlCommitTar(t, r, dlBaseTar(t))
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	tree := dlTreeOf(t, r, base)
	st, err := Apply(txn, tree, bytes.NewReader(layer), opts)
	if err != nil {
		return nil, err
	}
	c, err := txn.WriteCommit(tree, ostree.CommitOptions{Parent: &base, Timestamp: time.Unix(2, 0)})
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	return &dlResult{r: r, base: base, commit: c, stats: st, ents: dlList(t, r, c), baseEnt: dlList(t, r, base)}, nil
}

func (d *dlResult) has(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, ok := d.ents[p]; !ok {
			t.Errorf("%s missing", p)
		}
	}
}

func (d *dlResult) hasNot(t *testing.T, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if _, ok := d.ents[p]; ok {
			t.Errorf("%s present, want it gone", p)
		}
	}
}

func (d *dlResult) content(t *testing.T, p, want string) {
	t.Helper()
	e, ok := d.ents[p]
	if !ok {
		t.Errorf("%s missing", p)
		return
	}
	if e.IsDir {
		t.Errorf("%s is a directory", p)
		return
	}
	if got := dlContent(t, d.r, e.Checksum); got != want {
		t.Errorf("%s = %q, want %q", p, got, want)
	}
}

// dlChildren lists the entries directly below dir.
func (d *dlResult) children(dir string) []string {
	var out []string
	for p := range d.ents {
		if parent, name := filepath.Split(p); strings.TrimSuffix(parent, "/") == dir && name != "" && p != dir {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

func TestDerivedRules(t *testing.T) {
	type tc struct {
		name    string
		layer   []dlEnt
		opts    Options
		wantErr []string // substrings of the error
		check   func(t *testing.T, d *dlResult)
	}
	cases := []tc{
		{name: "whiteout file", layer: []dlEnt{dlFile("usr/bin/.wh.sh", "")}, check: func(t *testing.T, d *dlResult) {
			d.hasNot(t, "/usr/bin/sh", "/usr/bin/.wh.sh")
			d.has(t, "/usr/bin", "/usr/lib/libc.so")
			if d.stats.Whiteouts != 1 || d.stats.Files != 0 {
				t.Errorf("stats %+v", d.stats)
			}
		}},
		{name: "whiteout dir", layer: []dlEnt{dlFile("usr/share/.wh.doc", "")}, check: func(t *testing.T, d *dlResult) {
			d.hasNot(t, "/usr/share/doc", "/usr/share/doc/a", "/usr/share/doc/sub/b", "/usr/share/.wh.doc")
			d.has(t, "/usr/share/opq/old1")
		}},
		{name: "whiteout in etc and of a missing name", layer: []dlEnt{dlFile("etc/.wh.group", ""), dlFile("usr/.wh.nothing", ""), dlFile("nope/.wh.x", "")}, check: func(t *testing.T, d *dlResult) {
			d.hasNot(t, "/usr/etc/group", "/etc")
			d.has(t, "/usr/etc/passwd")
			if d.stats.Whiteouts != 2 || d.stats.Dropped["nope"] != 1 {
				t.Errorf("stats %+v", d.stats)
			}
		}},
		{name: "whiteout keeps same-layer content", layer: []dlEnt{
			dlFile("usr/share/doc/new", "n"), dlFile("usr/share/.wh.doc", ""),
			dlFile("usr/bin/fresh", "f"), dlFile("usr/bin/.wh.fresh", ""),
		}, check: func(t *testing.T, d *dlResult) {
			if got := d.children("/usr/share/doc"); strings.Join(got, ",") != "new" {
				t.Errorf("usr/share/doc = %v, want only the layer's new", got)
			}
			d.content(t, "/usr/share/doc/new", "n")
			d.content(t, "/usr/bin/fresh", "f")
		}},
		{name: "opaque with content before and after the marker", layer: []dlEnt{
			dlDir("usr/share/opq/", 0o750),
			dlFile("usr/share/opq/before", "b"),
			dlFile("usr/share/opq/keep/nb", "nb"),
			dlFile("usr/share/opq/.wh..wh..opq", ""),
			dlFile("usr/share/opq/after", "a"),
		}, check: func(t *testing.T, d *dlResult) {
			if got := d.children("/usr/share/opq"); strings.Join(got, ",") != "after,before,keep" {
				t.Errorf("usr/share/opq = %v", got)
			}
			if got := d.children("/usr/share/opq/keep"); strings.Join(got, ",") != "nb" {
				t.Errorf("usr/share/opq/keep = %v", got)
			}
			d.content(t, "/usr/share/opq/before", "b")
			d.content(t, "/usr/share/opq/after", "a")
			if m := d.ents["/usr/share/opq"].Mode & 0o7777; m != 0o750 {
				t.Errorf("opq mode %o", m)
			}
			d.has(t, "/usr/share/doc/a")
			if d.stats.Opaque != 1 || d.stats.Files != 3 || d.stats.Dirs != 1 {
				t.Errorf("stats %+v", d.stats)
			}
		}},
		{name: "opaque of etc", layer: []dlEnt{dlFile("etc/.wh..wh..opq", ""), dlFile("etc/hosts", "h")}, check: func(t *testing.T, d *dlResult) {
			if got := d.children("/usr/etc"); strings.Join(got, ",") != "hosts" {
				t.Errorf("usr/etc = %v", got)
			}
			d.has(t, "/usr/bin/sh")
		}},
		{name: "hardlink into the base", layer: []dlEnt{dlLink("usr/bin/sh2", "usr/bin/sh"), dlLink("usr/local/sh3", "/usr/bin/sh")}, check: func(t *testing.T, d *dlResult) {
			want := d.baseEnt["/usr/bin/sh"].Checksum
			for _, p := range []string{"/usr/bin/sh2", "/usr/local/sh3"} {
				if d.ents[p].Checksum != want {
					t.Errorf("%s checksum %s, want the base's %s", p, d.ents[p].Checksum, want)
				}
			}
			if m := d.ents["/usr/local"].Mode; m != 0o40755 || d.ents["/usr/local"].UID != 0 {
				t.Errorf("autocreated usr/local mode %o", m)
			}
			if d.stats.Hardlinks != 2 {
				t.Errorf("stats %+v", d.stats)
			}
		}},
		{name: "hardlink within the layer", layer: []dlEnt{dlFile("usr/bin/t", "t"), dlLink("usr/bin/t2", "./usr/bin/t")}, check: func(t *testing.T, d *dlResult) {
			if d.ents["/usr/bin/t2"].Checksum != d.ents["/usr/bin/t"].Checksum {
				t.Error("t2 is not t")
			}
		}},
		{name: "hardlink to missing", layer: []dlEnt{dlLink("usr/bin/x", "usr/bin/nothere")}, wantErr: []string{"usr/bin/x", "usr/bin/nothere", "not found"}},
		{name: "hardlink to whited-out", layer: []dlEnt{dlFile("usr/bin/.wh.sh", ""), dlLink("usr/bin/x", "usr/bin/sh")}, wantErr: []string{"usr/bin/x", "usr/bin/sh"}},
		{name: "hardlink to directory", layer: []dlEnt{dlLink("usr/bin/x", "usr/share/doc")}, wantErr: []string{"usr/bin/x", "usr/share/doc", "directory"}},
		{name: "dotdot", layer: []dlEnt{dlFile("usr/../../x", "x")}, wantErr: []string{"usr/../../x", ".."}},
		{name: "dotdot in hardlink target", layer: []dlEnt{dlLink("usr/x", "usr/../../etc/shadow")}, wantErr: []string{"usr/x", ".."}},
		{name: "non-UTF-8", layer: []dlEnt{dlFile("usr/\xff", "x")}, wantErr: []string{"UTF-8"}},
		{name: "symlinked parent in the layer", layer: []dlEnt{dlSym("usr/lib/evil", "/etc"), dlFile("usr/lib/evil/passwd", "x")}, wantErr: []string{"usr/lib/evil/passwd", "usr/lib/evil", "not a directory"}},
		{name: "symlinked parent in the base", layer: []dlEnt{dlFile("usr/bin/sh/x", "x")}, wantErr: []string{"usr/bin/sh/x", "not a directory"}},
		{name: "explicit directory replaces a symlink", layer: []dlEnt{dlSym("usr/lib/d", "/etc"), dlDir("usr/lib/d/", 0o755), dlFile("usr/lib/d/f", "f")}, check: func(t *testing.T, d *dlResult) {
			d.has(t, "/usr/lib/d/f")
			if d.ents["/usr/lib/d"].Mode&0o170000 != 0o040000 {
				t.Errorf("usr/lib/d mode %o, want a directory", d.ents["/usr/lib/d"].Mode)
			}
		}},
		{name: "char device", layer: []dlEnt{{name: "usr/lib/null", typ: tar.TypeChar, mode: 0o666}}, wantErr: []string{"usr/lib/null", "device"}},
		{name: "fifo", layer: []dlEnt{{name: "var/lib/fifo", typ: tar.TypeFifo, mode: 0o666}}, wantErr: []string{"var/lib/fifo", "FIFO"}},
		{name: "sparse", layer: []dlEnt{{name: "usr/lib/sparse", typ: tar.TypeGNUSparse, mode: 0o644}}, wantErr: []string{"usr/lib/sparse", "sparse"}},
		{name: "run tmp dev children dropped", layer: []dlEnt{
			dlDir("run/", 0o700), dlFile("run/foo", "f"), dlDir("run/a/", 0o755), dlFile("run/a/b", "b"),
			dlFile("tmp/x", "x"), {name: "dev/null", typ: tar.TypeChar, mode: 0o666}, dlFile("run/.wh.gone", ""),
		}, check: func(t *testing.T, d *dlResult) {
			d.hasNot(t, "/run/foo", "/run/a", "/tmp/x", "/dev")
			if m := d.ents["/run"].Mode & 0o7777; m != 0o700 {
				t.Errorf("run mode %o, want the layer's 0700", m)
			}
			if d.stats.Dropped["run"] != 4 || d.stats.Dropped["tmp"] != 1 || d.stats.Dropped["dev"] != 1 || len(d.stats.Dropped) != 3 {
				t.Errorf("dropped %v", d.stats.Dropped)
			}
		}},
		{name: "chmod of an existing directory", layer: []dlEnt{
			{name: "usr/share/doc/", typ: tar.TypeDir, mode: 0o2700, uid: 5, gid: 6, xattrs: map[string]string{"user.k": "v"}},
		}, check: func(t *testing.T, d *dlResult) {
			e := d.ents["/usr/share/doc"]
			if e.Mode != 0o42700 || e.UID != 5 || e.GID != 6 || len(e.Xattrs) != 1 || e.Xattrs[0].Name != "user.k" {
				t.Errorf("usr/share/doc = mode %o uid %d gid %d xattrs %v", e.Mode, e.UID, e.GID, e.Xattrs)
			}
			d.has(t, "/usr/share/doc/a", "/usr/share/doc/sub/b")
		}},
		{name: "etc to usr/etc with hardlink", layer: []dlEnt{
			dlDir("etc/", 0o755), dlFile("etc/hosts", "127.0.0.1"), dlLink("etc/passwd-", "etc/passwd"), dlLink("/etc/hosts.bak", "/etc/hosts"),
		}, check: func(t *testing.T, d *dlResult) {
			d.hasNot(t, "/etc")
			d.content(t, "/usr/etc/hosts", "127.0.0.1")
			if d.ents["/usr/etc/passwd-"].Checksum != d.baseEnt["/usr/etc/passwd"].Checksum {
				t.Error("etc/passwd- is not the base's usr/etc/passwd")
			}
			if d.ents["/usr/etc/hosts.bak"].Checksum != d.ents["/usr/etc/hosts"].Checksum {
				t.Error("etc/hosts.bak is not etc/hosts")
			}
		}},
		{name: "var kept", layer: []dlEnt{dlFile("var/lib/y", "y"), dlDir("var/cache/", 0o700)}, check: func(t *testing.T, d *dlResult) {
			d.content(t, "/var/lib/y", "y")
			d.has(t, "/var/lib/x", "/var/cache")
			d.hasNot(t, "/usr/share/factory")
		}},
		{name: "non-usr dropped", layer: []dlEnt{dlDir("opt/", 0o755), dlFile("opt/app/bin", "x"), dlFile("srv", "s"), dlFile("usr/ok", "ok")}, check: func(t *testing.T, d *dlResult) {
			d.hasNot(t, "/opt", "/srv")
			d.content(t, "/usr/ok", "ok")
			if d.stats.Dropped["opt"] != 2 || d.stats.Dropped["srv"] != 1 || d.stats.Files != 1 {
				t.Errorf("stats %+v", d.stats)
			}
		}},
		{name: "non-usr allowed", opts: Options{AllowNonUsr: true}, layer: []dlEnt{dlDir("opt/", 0o711), dlFile("opt/app/bin", "x"), dlLink("opt/app/bin2", "opt/app/bin")}, check: func(t *testing.T, d *dlResult) {
			d.content(t, "/opt/app/bin", "x")
			if d.ents["/opt"].Mode != 0o40711 || len(d.stats.Dropped) != 0 {
				t.Errorf("opt mode %o, dropped %v", d.ents["/opt"].Mode, d.stats.Dropped)
			}
			if d.ents["/opt/app/bin2"].Checksum != d.ents["/opt/app/bin"].Checksum {
				t.Error("hardlink in opt")
			}
		}},
		{name: "path normalization and metadata", layer: []dlEnt{
			{name: "/usr//bin/./z", typ: tar.TypeReg, body: "z", mode: 0o4755, uid: 7, gid: 8, xattrs: map[string]string{"user.b": "2", "user.a": "1"}},
			dlSym("./usr/bin/sl", "../lib/libc.so"),
		}, check: func(t *testing.T, d *dlResult) {
			e := d.ents["/usr/bin/z"]
			if e.Mode != 0o104755 || e.UID != 7 || e.GID != 8 || len(e.Xattrs) != 2 || e.Xattrs[0].Name != "user.a" || string(e.Xattrs[1].Value) != "2" {
				t.Errorf("z = %+v", e)
			}
			if s := d.ents["/usr/bin/sl"]; s.Target != "../lib/libc.so" || s.Mode != 0o120777 {
				t.Errorf("sl = %+v", s)
			}
			if d.stats.Files != 1 || d.stats.Symlinks != 1 {
				t.Errorf("stats %+v", d.stats)
			}
		}},
		{name: "type changes replace", layer: []dlEnt{dlDir("usr/lib/libc.so/", 0o755), dlFile("usr/lib/libc.so/x", "x"), dlFile("usr/share/doc", "now a file")}, check: func(t *testing.T, d *dlResult) {
			if !d.ents["/usr/lib/libc.so"].IsDir {
				t.Error("libc.so is not a directory")
			}
			d.content(t, "/usr/share/doc", "now a file")
			d.hasNot(t, "/usr/share/doc/a")
		}},
		{name: "root entry applied", layer: []dlEnt{dlDir("./", 0o555), dlDir("/", 0o551)}, check: func(t *testing.T, d *dlResult) {
			if m := d.ents["/"].Mode; m != 0o40551 || len(d.stats.Dropped) != 0 || d.stats.Dirs != 2 {
				t.Errorf("root mode %o, stats %+v", m, d.stats)
			}
			d.has(t, "/usr/bin/sh")
		}},
		{name: "whiteout of usr keeps the image's etc", layer: []dlEnt{dlFile(".wh.usr", ""), dlFile("usr/bin/new", "n")}, check: func(t *testing.T, d *dlResult) {
			d.hasNot(t, "/usr/bin/sh", "/usr/lib", "/usr/share")
			d.has(t, "/usr/etc/passwd", "/usr/etc/group", "/var/lib/x")
			d.content(t, "/usr/bin/new", "n")
		}},
		{name: "opaque root", layer: []dlEnt{dlFile(".wh..wh..opq", ""), dlFile("usr/bin/only", "o"), dlFile("etc/only", "e")}, check: func(t *testing.T, d *dlResult) {
			var got []string
			for p := range d.ents {
				got = append(got, p)
			}
			sort.Strings(got)
			if strings.Join(got, " ") != "/ /usr /usr/bin /usr/bin/only /usr/etc /usr/etc/only" {
				t.Errorf("tree %v", got)
			}
		}},
		{name: "pax global header ignored", layer: []dlEnt{{name: "pax_global_header", typ: tar.TypeXGlobalHeader}, dlFile("usr/g", "g")}, check: func(t *testing.T, d *dlResult) {
			d.content(t, "/usr/g", "g")
			d.hasNot(t, "/pax_global_header")
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := dlApply(t, dlTar(t, c.layer...), c.opts)
			if len(c.wantErr) > 0 {
				if err == nil {
					t.Fatalf("no error, want one mentioning %q", c.wantErr)
				}
				for _, s := range c.wantErr {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, d)
		})
	}
}

// TestDerivedLazy proves that applying a small layer reads only the
// directories on its paths: the dirtrees of every untouched subtree of the
// base are deleted from the repository before the layer is applied, so
// reading any of them would fail.
func TestDerivedLazy(t *testing.T) {
	r := dlRepo(t)
	const n = 2000
	ents := []dlEnt{dlDir("./", 0o755), dlDir("usr/", 0o755), dlDir("usr/bin/", 0o755), dlFile("usr/bin/sh", "sh"),
		dlDir("usr/etc/", 0o755), dlFile("usr/etc/hostname", ""), dlDir("usr/local/", 0o755),
		dlDir("usr/share/", 0o755), dlDir("usr/share/big/", 0o755)}
	for i := range n {
		ents = append(ents, dlDir(fmt.Sprintf("usr/share/big/d%04d/", i), 0o755), dlFile(fmt.Sprintf("usr/share/big/d%04d/f", i), fmt.Sprint(i)))
	}
	start := time.Now()
	base := dlCommitTar(t, r, dlTar(t, ents...))
	baseTime := time.Since(start)

	// Delete usr/share's dirtree and everything below it.
	cm, _ := r.ReadCommit(base)
	var doomed []ostree.Checksum
	var collect func(c ostree.Checksum)
	collect = func(c ostree.Checksum) {
		doomed = append(doomed, c)
		dt, err := r.ReadDirTree(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dt.Dirs {
			collect(d.Tree)
		}
	}
	root, _ := r.ReadDirTree(cm.RootTree)
	usr, _ := root.LookupDir("usr")
	usrTree, _ := r.ReadDirTree(usr.Tree)
	share, _ := usrTree.LookupDir("share")
	collect(share.Tree)
	if len(doomed) != n+2 {
		t.Fatalf("%d dirtrees below usr/share, want %d", len(doomed), n+2)
	}
	for _, c := range doomed {
		h := c.String()
		if err := os.Remove(filepath.Join(r.Path(), "objects", h[:2], h[2:]+".dirtree")); err != nil {
			t.Fatal(err)
		}
	}

	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	start = time.Now()
	tree := dlTreeOf(t, r, base)
	layer := dlTar(t, dlFile("usr/local/x", strings.Repeat("x", 1<<20)), dlLink("usr/bin/sh2", "usr/bin/sh"), dlFile("usr/bin/.wh.sh", ""))
	st, err := Apply(txn, tree, bytes.NewReader(layer), Options{})
	if err != nil {
		t.Fatalf("apply read an untouched subtree? %v", err)
	}
	c, err := WriteMergeCommit(txn, tree, base, "sha256:"+strings.Repeat("0", 64), []byte(`{}`), []byte(`{}`))
	if err != nil {
		t.Fatalf("merge commit read an untouched subtree? %v", err)
	}
	applyTime := time.Since(start)
	objs, _ := txn.Stats()
	// 1 content object; dirtrees of usr/local, usr/bin, usr and the root;
	// the commit. (usr/etc without its hostname is the empty dirtree the
	// base already has.)
	if objs != 6 {
		t.Errorf("%d objects written, want 6 (the changed paths only)", objs)
	}
	if st.Files != 1 || st.Hardlinks != 1 || st.Whiteouts != 1 {
		t.Errorf("stats %+v", st)
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := r.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	rt, _ := r.ReadDirTree(got.RootTree)
	u, _ := rt.LookupDir("usr")
	ut, _ := r.ReadDirTree(u.Tree)
	if s, _ := ut.LookupDir("share"); s.Tree != share.Tree {
		t.Error("usr/share was rewritten")
	}
	t.Logf("base import %v (%d dirs), 1 MB layer apply + merge commit %v, %d objects", baseTime, n, applyTime, objs)
}

func TestDerivedMergeCommit(t *testing.T) {
	manifest := []byte(`{"schemaVersion":2,"annotations":{"org.opencontainers.image.created":"2024-05-06T07:08:09Z"}}`)
	config := []byte(`{"created":"2023-01-02T03:04:05.123456789Z","architecture":"amd64"}`)
	digest := "sha256:" + strings.Repeat("ab", 32)
	baseTar := dlTar(t, dlDir("./", 0o755), dlDir("usr/", 0o755), dlDir("usr/etc/", 0o755),
		dlFile("usr/etc/hostname", ""), dlFile("usr/etc/resolv.conf", "nameserver 1.1.1.1\n"), dlFile("usr/etc/keep-empty", ""))

	run := func(t *testing.T, layer []byte, manifest, config []byte) (*ostree.Repo, ostree.Checksum, ostree.Checksum) {
		r := dlRepo(t)
		base := dlCommitTar(t, r, baseTar)
		txn, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer txn.Abort()
		tree := dlTreeOf(t, r, base)
		if _, err := Apply(txn, tree, bytes.NewReader(layer), Options{}); err != nil {
			t.Fatal(err)
		}
		c, err := WriteMergeCommit(txn, tree, base, digest, manifest, config)
		if err != nil {
			t.Fatal(err)
		}
		if err := txn.SetRef("ostree/container/image/test", &c); err != nil {
			t.Fatal(err)
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		return r, base, c
	}

	t.Run("version and bootable", func(t *testing.T) {
		cfg := []byte(`{"architecture":"amd64","config":{"Labels":{"org.opencontainers.image.version":"42.1","ostree.bootable":"true"}}}`)
		r, _, c := run(t, dlTar(t, dlFile("usr/bin/y", "y")), manifest, cfg)
		cm, err := r.ReadCommit(c)
		if err != nil {
			t.Fatal(err)
		}
		if got := cm.Metadata.String("version"); got != "42.1" {
			t.Errorf("version = %q, want the label's 42.1", got)
		}
		if v, ok := cm.Metadata.Lookup("ostree.bootable"); !ok || v.Value != true {
			t.Errorf("ostree.bootable = %v, %v; want true", v, ok)
		}
	})

	t.Run("metadata", func(t *testing.T) {
		// The derived layer writes an empty resolv.conf (a staged object)
		// and an empty file that must stay.
		// (mode 0600: an object the repository does not have yet)
		layer := dlTar(t, dlEnt{name: "etc/resolv.conf", typ: tar.TypeReg, mode: 0o600}, dlFile("etc/other-empty", ""), dlFile("usr/bin/x", "x"))
		r, base, c := run(t, layer, manifest, config)
		cm, err := r.ReadCommit(c)
		if err != nil {
			t.Fatal(err)
		}
		if cm.Parent != base {
			t.Errorf("parent %s, want base %s", cm.Parent, base)
		}
		if cm.Subject != "" || cm.Body != "" {
			t.Errorf("subject %q body %q", cm.Subject, cm.Body)
		}
		if want := uint64(time.Date(2024, 5, 6, 7, 8, 9, 0, time.UTC).Unix()); cm.Timestamp != want {
			t.Errorf("timestamp %d, want %d (the manifest annotation)", cm.Timestamp, want)
		}
		var keys []string
		for _, e := range cm.Metadata {
			keys = append(keys, e.Key)
			if e.Value.Type != "s" {
				t.Errorf("%s has type %s", e.Key, e.Value.Type)
			}
		}
		if got := strings.Join(keys, " "); got != "ostree.manifest-digest ostree.manifest ostree.container.image-config ostree.importer.version" {
			t.Errorf("metadata keys %s", got)
		}
		for k, want := range map[string]string{
			"ostree.manifest-digest":        digest,
			"ostree.manifest":               string(manifest),
			"ostree.container.image-config": string(config),
			"ostree.importer.version":       "ocitree",
		} {
			if got := cm.Metadata.String(k); got != want {
				t.Errorf("%s = %q, want %q", k, got, want)
			}
		}
		ents := dlList(t, r, c)
		for _, p := range []string{"/usr/etc/hostname", "/usr/etc/resolv.conf"} {
			if _, ok := ents[p]; ok {
				t.Errorf("%s (empty) kept", p)
			}
		}
		for _, p := range []string{"/usr/etc/keep-empty", "/usr/etc/other-empty", "/usr/bin/x"} {
			if _, ok := ents[p]; !ok {
				t.Errorf("%s missing", p)
			}
		}
		if _, err := exec.LookPath("ostree"); err != nil || testing.Short() {
			dlNeedTool(t, "ostree")
		}
		if out, err := exec.Command("ostree", "fsck", "--repo="+r.Path()).CombinedOutput(); err != nil {
			t.Errorf("ostree fsck: %v\n%s", err, out)
		}
		out, err := exec.Command("ostree", "show", "--repo="+r.Path(), "--print-metadata-key=ostree.manifest-digest", c.String()).CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "'"+digest+"'" {
			t.Errorf("ostree show: %v %q", err, out)
		}
		out, err = exec.Command("ostree", "log", "--repo="+r.Path(), "ostree/container/image/test").CombinedOutput()
		if err != nil || !strings.Contains(string(out), base.String()) {
			t.Errorf("ostree log does not show the base as parent: %v\n%s", err, out)
		}
	})
	t.Run("non-empty kept, config timestamp", func(t *testing.T) {
		layer := dlTar(t, dlFile("etc/hostname", "box\n"))
		r, _, c := run(t, layer, []byte(`{"schemaVersion":2}`), config)
		cm, _ := r.ReadCommit(c)
		if want := uint64(time.Date(2023, 1, 2, 3, 4, 5, 0, time.UTC).Unix()); cm.Timestamp != want {
			t.Errorf("timestamp %d, want %d (config created)", cm.Timestamp, want)
		}
		ents := dlList(t, r, c)
		if _, ok := ents["/usr/etc/hostname"]; !ok {
			t.Error("non-empty hostname removed")
		}
		if _, ok := ents["/usr/etc/resolv.conf"]; !ok {
			t.Error("non-empty resolv.conf removed")
		}
	})
	t.Run("no timestamp", func(t *testing.T) {
		t.Setenv("SOURCE_DATE_EPOCH", "12345")
		r, _, c := run(t, dlTar(t), []byte(`{"annotations":{"org.opencontainers.image.created":"yesterday"}}`), []byte(`null`))
		cm, _ := r.ReadCommit(c)
		if cm.Timestamp != 0 {
			t.Errorf("timestamp %d, want 0", cm.Timestamp)
		}
	})
	t.Run("bad input", func(t *testing.T) {
		r := dlRepo(t)
		base := dlCommitTar(t, r, baseTar)
		txn, err := r.Begin()
		if err != nil {
			t.Fatal(err)
		}
		defer txn.Abort()
		tree := dlTreeOf(t, r, base)
		if _, err := WriteMergeCommit(txn, tree, base, "nodigest", manifest, config); err == nil {
			t.Error("bad digest accepted")
		}
		if _, err := WriteMergeCommit(txn, tree, base, digest, []byte("{"), config); err == nil {
			t.Error("bad manifest accepted")
		}
		if _, err := WriteMergeCommit(txn, tree, ostree.Checksum{}, digest, manifest, config); err == nil {
			t.Error("zero base accepted")
		}
	})
}

func dlNeedTool(t *testing.T, name string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: needs %s", name)
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not installed", name)
	}
	t.Skipf("%s not installed", name)
}

// ---- the umoci comparison ----

func dlRun(t *testing.T, dir string, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func dlWrite(t *testing.T, p, body string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(p, uint32(mode)); err != nil {
		t.Fatal(err)
	}
}

func dlMust(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

type dlNode struct {
	Kind   string // dir, file, symlink
	Mode   uint32
	UID    uint32
	GID    uint32
	Data   string // sha256 of the content
	Target string
	Xattrs string
}

// dlSnapshot describes a checked-out tree; rename maps a relative path to
// the name it is compared under (nil to skip it).
func dlSnapshot(t *testing.T, root string, rename func(string) (string, bool)) map[string]dlNode {
	t.Helper()
	out := map[string]dlNode{}
	err := filepath.WalkDir(root, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		name, ok := rename(rel)
		if !ok {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return err
		}
		n := dlNode{Mode: st.Mode & 0o7777, UID: st.Uid, GID: st.Gid}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFDIR:
			n.Kind = "dir"
		case unix.S_IFLNK:
			n.Kind = "symlink"
			n.Mode = 0
			if n.Target, err = os.Readlink(p); err != nil {
				return err
			}
		case unix.S_IFREG:
			n.Kind = "file"
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			n.Data = hex.EncodeToString(h[:])
		default:
			n.Kind = fmt.Sprintf("type %o", st.Mode&unix.S_IFMT)
		}
		buf := make([]byte, 4096)
		sz, err := unix.Llistxattr(p, buf)
		if err != nil {
			return err
		}
		var xs []string
		for _, x := range strings.Split(string(buf[:sz]), "\x00") {
			if !strings.HasPrefix(x, "user.") {
				continue // security.* and the like come from the host
			}
			v := make([]byte, 4096)
			vn, err := unix.Lgetxattr(p, x, v)
			if err != nil {
				return err
			}
			xs = append(xs, x+"="+string(v[:vn]))
		}
		sort.Strings(xs)
		n.Xattrs = strings.Join(xs, ",")
		out[name] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func dlReadBlob(t *testing.T, layout, digest string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(layout, "blobs", strings.Replace(digest, ":", "/", 1)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDerivedUmoci builds an image with umoci (a base layer and derived
// layers with whiteouts, a chmod, hardlinks into the base and an opaque
// directory), applies its layers with Apply and compares the
// checked-out merge commit with umoci's own unpack of the image.
func TestDerivedUmoci(t *testing.T) {
	if _, err := exec.LookPath("umoci"); err != nil || testing.Short() {
		dlNeedTool(t, "umoci")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (ownership and xattrs in the bundles)")
	}
	dir := t.TempDir()
	dlRun(t, dir, "umoci", "init", "--layout", "img")
	dlRun(t, dir, "umoci", "new", "--image", "img:t")
	dlRun(t, dir, "umoci", "unpack", "--image", "img:t", "b1")

	// Layer 1: the base.
	r1 := filepath.Join(dir, "b1", "rootfs")
	dlWrite(t, r1+"/usr/bin/a", "a\n", 0o755)
	dlMust(t, unix.Setxattr(r1+"/usr/bin/a", "user.foo", []byte("bar"), 0))
	dlWrite(t, r1+"/usr/bin/suid", "s\n", 0o4755)
	dlMust(t, os.Symlink("a", r1+"/usr/bin/sl"))
	dlWrite(t, r1+"/usr/lib/hlt", "hardlink target\n", 0o644)
	dlMust(t, os.Chown(r1+"/usr/lib/hlt", 1000, 1001))
	dlWrite(t, r1+"/usr/share/chm/f", "f\n", 0o644)
	dlWrite(t, r1+"/usr/share/opq/old1", "old1\n", 0o644)
	dlWrite(t, r1+"/usr/share/opq/keep/old2", "old2\n", 0o644)
	dlWrite(t, r1+"/usr/share/del1", "d\n", 0o644)
	dlWrite(t, r1+"/usr/share/deldir/sub/f", "f\n", 0o644)
	dlWrite(t, r1+"/etc/passwd", "root:x:0:0::/root:/bin/sh\n", 0o644)
	dlWrite(t, r1+"/etc/group", "root:x:0:\n", 0o644)
	dlWrite(t, r1+"/etc/os-release", "ID=ours\n", 0o644)
	dlWrite(t, r1+"/var/lib/x", "x\n", 0o644)
	dlMust(t, os.MkdirAll(r1+"/run", 0o755))
	dlMust(t, os.MkdirAll(r1+"/tmp", 0o1777))
	dlMust(t, unix.Chmod(r1+"/tmp", 0o1777))
	dlRun(t, dir, "umoci", "repack", "--image", "img:t", "b1")

	// Layer 2: a derived layer as umoci computes it from the changes.
	dlRun(t, dir, "umoci", "unpack", "--image", "img:t", "b2")
	r2 := filepath.Join(dir, "b2", "rootfs")
	dlWrite(t, r2+"/usr/bin/new", "new\n", 0o700)
	dlMust(t, os.Chown(r2+"/usr/bin/new", 5, 6))
	dlMust(t, unix.Setxattr(r2+"/usr/bin/a", "user.foo", []byte("baz"), 0))
	dlMust(t, os.Symlink("/usr/bin/new", r2+"/usr/bin/sl2"))
	dlMust(t, os.Remove(r2+"/usr/share/del1"))
	dlMust(t, os.RemoveAll(r2+"/usr/share/deldir"))
	dlMust(t, os.Chmod(r2+"/usr/share/chm", 0o700))
	dlMust(t, os.Chown(r2+"/usr/share/chm", 7, 7))
	dlWrite(t, r2+"/etc/os-release", "ID=derived\n", 0o644)
	dlWrite(t, r2+"/etc/new.conf", "k=v\n", 0o600)
	dlMust(t, os.Remove(r2+"/etc/group"))
	dlWrite(t, r2+"/var/lib/y", "y\n", 0o644)
	dlWrite(t, r2+"/tmp/junk", "junk\n", 0o644)
	dlWrite(t, r2+"/run/foo/bar", "bar\n", 0o644)
	dlWrite(t, r2+"/opt/app/bin", "opt\n", 0o755)
	dlRun(t, dir, "umoci", "repack", "--image", "img:t", "b2")

	// Layer 3, by hand: an opaque directory with content before and after
	// the marker, hardlinks into the base (also in /etc), a whiteout.
	layer3 := dlTar(t,
		dlDir("usr/share/opq/", 0o750),
		dlFile("usr/share/opq/before", "before\n"),
		dlDir("usr/share/opq/keep/", 0o755),
		dlFile("usr/share/opq/keep/nb", "nb\n"),
		dlFile("usr/share/opq/.wh..wh..opq", ""),
		dlFile("usr/share/opq/after", "after\n"),
		dlLink("usr/bin/hl", "usr/lib/hlt"),
		dlLink("etc/passwd-", "etc/passwd"),
		dlFile("usr/bin/.wh.sl", ""),
	)
	dlMust(t, os.WriteFile(filepath.Join(dir, "layer3.tar"), layer3, 0o644))
	dlRun(t, dir, "umoci", "raw", "add-layer", "--image", "img:t", "layer3.tar")
	dlRun(t, dir, "umoci", "unpack", "--image", "img:t", "b3")

	// Read the image: index → manifest → layers.
	layout := filepath.Join(dir, "img")
	var index struct {
		Manifests []struct {
			Digest string `json:"digest"`
		} `json:"manifests"`
	}
	b, err := os.ReadFile(filepath.Join(layout, "index.json"))
	dlMust(t, err)
	dlMust(t, json.Unmarshal(b, &index))
	if len(index.Manifests) != 1 {
		t.Fatalf("index has %d manifests", len(index.Manifests))
	}
	mdigest := index.Manifests[0].Digest
	manifest := dlReadBlob(t, layout, mdigest)
	var m struct {
		Config struct {
			Digest string `json:"digest"`
		} `json:"config"`
		Layers []struct {
			MediaType string `json:"mediaType"`
			Digest    string `json:"digest"`
		} `json:"layers"`
	}
	dlMust(t, json.Unmarshal(manifest, &m))
	config := dlReadBlob(t, layout, m.Config.Digest)
	if len(m.Layers) != 3 {
		t.Fatalf("%d layers, want 3", len(m.Layers))
	}
	layerTar := func(i int) io.Reader {
		zr, err := gzip.NewReader(bytes.NewReader(dlReadBlob(t, layout, m.Layers[i].Digest)))
		dlMust(t, err)
		return zr
	}
	// umoci's layer 2 must carry real whiteouts for this test to mean
	// something.
	l2, _ := io.ReadAll(layerTar(1))
	if !bytes.Contains(l2, []byte(".wh.del1")) || !bytes.Contains(l2, []byte(".wh.deldir")) {
		t.Fatal("umoci's derived layer has no whiteouts")
	}

	r := dlRepo(t)
	// The base commit: layer 1 onto an empty tree.
	txn, err := r.Begin()
	dlMust(t, err)
	defer txn.Abort()
	tree := ostree.NewMutableTree()
	rootMeta, _ := (&ostree.DirMeta{Mode: 0o40755}).Encode()
	rm, err := txn.WriteMetadata(ostree.ObjDirMeta, rootMeta)
	dlMust(t, err)
	tree.SetMeta(rm)
	if _, err := Apply(txn, tree, layerTar(0), Options{}); err != nil {
		t.Fatal(err)
	}
	base, err := txn.WriteCommit(tree, ostree.CommitOptions{NoParent: true, Timestamp: time.Unix(1, 0)})
	dlMust(t, err)
	dlMust(t, txn.Commit())

	// The derived layers onto the base, then the merge commit.
	txn, err = r.Begin()
	dlMust(t, err)
	defer txn.Abort()
	tree = dlTreeOf(t, r, base)
	dropped := map[string]int{}
	for i := 1; i < 3; i++ {
		st, err := Apply(txn, tree, layerTar(i), Options{})
		if err != nil {
			t.Fatalf("layer %d: %v", i+1, err)
		}
		t.Logf("layer %d: %+v", i+1, *st)
		for k, v := range st.Dropped {
			dropped[k] += v
		}
	}
	merge, err := WriteMergeCommit(txn, tree, base, mdigest, manifest, config)
	dlMust(t, err)
	dlMust(t, txn.Commit())
	co := filepath.Join(dir, "checkout")
	dlMust(t, r.Checkout(merge, co, ostree.CheckoutOptions{NoHardlinks: true}))

	// Compare with umoci's rootfs, /etc seen as /usr/etc; what the rules
	// drop (children of run and tmp, /opt) is left out of umoci's side and
	// counted.
	var umociDropped int
	theirs := dlSnapshot(t, filepath.Join(dir, "b3", "rootfs"), func(rel string) (string, bool) {
		parts := strings.Split(rel, "/")
		switch {
		case (parts[0] == "run" || parts[0] == "tmp") && len(parts) > 1, parts[0] == "opt":
			umociDropped++
			return "", false
		case parts[0] == "etc":
			return filepath.Join("usr", rel), true
		}
		return rel, true
	})
	ours := dlSnapshot(t, co, func(rel string) (string, bool) { return rel, true })
	t.Logf("comparing %d paths (umoci) with %d (ours)", len(theirs), len(ours))
	var names []string
	for p := range theirs {
		names = append(names, p)
	}
	for p := range ours {
		if _, ok := theirs[p]; !ok {
			names = append(names, p)
		}
	}
	sort.Strings(names)
	for _, p := range names {
		a, inA := ours[p]
		b, inB := theirs[p]
		switch {
		case !inA:
			t.Errorf("%s: only in umoci's unpack: %+v", p, b)
		case !inB:
			t.Errorf("%s: only in ours: %+v", p, a)
		case a != b:
			t.Errorf("%s: ours %+v, umoci %+v", p, a, b)
		}
	}
	// Tripwires: the interesting cases are really in there.
	for p, want := range map[string]dlNode{
		"usr/share/chm":    {Kind: "dir", Mode: 0o700, UID: 7, GID: 7},
		"usr/share/opq":    {Kind: "dir", Mode: 0o750},
		"usr/bin/suid":     {Kind: "file", Mode: 0o4755},
		"usr/etc/new.conf": {Kind: "file", Mode: 0o600},
	} {
		got := ours[p]
		if got.Kind != want.Kind || got.Mode != want.Mode || got.UID != want.UID || got.GID != want.GID {
			t.Errorf("%s = %+v, want %+v", p, got, want)
		}
	}
	for _, p := range []string{"usr/share/del1", "usr/share/deldir", "usr/share/opq/old1", "usr/share/opq/keep/old2", "usr/bin/sl", "usr/etc/group", "etc"} {
		if _, ok := ours[p]; ok {
			t.Errorf("%s present", p)
		}
	}
	for _, p := range []string{"usr/share/opq/before", "usr/share/opq/after", "usr/share/opq/keep/nb", "usr/bin/hl", "usr/etc/passwd-", "var/lib/y", "run", "tmp"} {
		if _, ok := ours[p]; !ok {
			t.Errorf("%s missing", p)
		}
	}
	if ours["usr/bin/a"].Xattrs != "user.foo=baz" {
		t.Errorf("usr/bin/a xattrs %q", ours["usr/bin/a"].Xattrs)
	}
	ents := dlList(t, r, merge)
	if ents["/usr/bin/hl"].Checksum != ents["/usr/lib/hlt"].Checksum || ents["/usr/etc/passwd-"].Checksum != ents["/usr/etc/passwd"].Checksum {
		t.Error("hardlinks into the base do not share the object")
	}
	var st1, st2 unix.Stat_t
	dlMust(t, unix.Lstat(filepath.Join(dir, "b3/rootfs/usr/bin/hl"), &st1))
	dlMust(t, unix.Lstat(filepath.Join(dir, "b3/rootfs/usr/lib/hlt"), &st2))
	if st1.Ino != st2.Ino {
		t.Error("umoci did not hardlink usr/bin/hl")
	}
	total := 0
	for _, v := range dropped {
		total += v
	}
	if total != umociDropped || dropped["opt"] == 0 || dropped["tmp"] == 0 || dropped["run"] == 0 {
		t.Errorf("dropped %v (%d), umoci has %d such paths", dropped, total, umociDropped)
	}
	cm, err := r.ReadCommit(merge)
	dlMust(t, err)
	var cfg struct {
		Created time.Time `json:"created"`
	}
	dlMust(t, json.Unmarshal(config, &cfg))
	if cm.Timestamp != uint64(cfg.Created.Unix()) || cm.Parent != base {
		t.Errorf("merge commit timestamp %d parent %s, want %d %s", cm.Timestamp, cm.Parent, cfg.Created.Unix(), base)
	}
	if testing.Short() {
		return // -short: no peers
	}
	if out, err := exec.Command("ostree", "fsck", "--repo="+r.Path()).CombinedOutput(); err != nil {
		t.Errorf("ostree fsck: %v\n%s", err, out)
	}
}
