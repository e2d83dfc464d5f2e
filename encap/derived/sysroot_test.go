package derived

import (
	"archive/tar"
	"io"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/ostree"
)

// dlObj is an object path as an encapsulated base image has it.
func dlObj(hexByte string) string {
	return "sysroot/ostree/repo/objects/" + hexByte + "/" + strings.Repeat("5e", 31) + ".file"
}

func TestDerivedObjectPaths(t *testing.T) {
	obj, obj2 := dlObj("b7"), dlObj("c8")
	objDirs := []dlEnt{dlDir("sysroot/", 0o755), dlDir("sysroot/ostree/", 0o755), dlDir("sysroot/ostree/repo/", 0o755),
		dlDir("sysroot/ostree/repo/objects/", 0o755), dlDir("sysroot/ostree/repo/objects/b7/", 0o755)}
	mode := func(d *dlResult, p string) uint32 {
		return d.ents[p].Mode
	}
	type tc struct {
		name    string
		layer   []dlEnt
		wantErr []string
		check   func(t *testing.T, d *dlResult)
	}
	cases := []tc{
		{name: "object first, then real paths"}, // layer and check below
		{name: "real path first, object links to it", layer: []dlEnt{
			dlDir("etc/", 0o755), dlFile("etc/motd", "motd\nmore\n"),
			dlDir("sysroot/", 0o755), dlLink(obj, "etc/motd"),
			dlDir("var/", 0o755), dlLink("var/motd2", obj),
		}, check: func(t *testing.T, d *dlResult) {
			d.content(t, "/usr/etc/motd", "motd\nmore\n")
			d.content(t, "/var/motd2", "motd\nmore\n")
			if d.ents["/usr/etc/motd"].Checksum != d.ents["/var/motd2"].Checksum {
				t.Error("var/motd2 is not the same object as usr/etc/motd")
			}
			d.hasNot(t, "/sysroot")
		}},
		{name: "unreferenced object content dropped and counted", layer: append(append([]dlEnt(nil), objDirs...),
			dlFile(obj, "nobody links here"), dlFile("usr/bin/new", "new")), check: func(t *testing.T, d *dlResult) {
			d.hasNot(t, "/sysroot")
			d.content(t, "/usr/bin/new", "new")
			if got := d.stats.Dropped["sysroot"]; got != len(objDirs)+1 {
				t.Errorf("Dropped[sysroot] = %d, want %d", got, len(objDirs)+1)
			}
		}},
		{name: "hardlink to an object path no entry provides", layer: []dlEnt{dlDir("var/", 0o755), dlLink("var/log", obj)},
			wantErr: []string{`"var/log"`, obj, "no entry of this layer provides"}},
		{name: "hardlink to an object path provided later", layer: []dlEnt{dlLink("usr/bin/x", obj), dlFile(obj, "late")},
			wantErr: []string{`"usr/bin/x"`, "no entry of this layer provides"}},
		{name: "object path is a directory", layer: []dlEnt{dlDir(obj+"/", 0o755)}, wantErr: []string{obj, "is a directory"}},
		{name: "object path is a symlink", layer: []dlEnt{dlSym(obj, "/etc/shadow"), dlLink("usr/bin/x", obj)}, wantErr: []string{obj, "is a symlink"}},
		{name: "below an object path", layer: []dlEnt{dlFile(obj+"/x", "x")}, wantErr: []string{obj + "/x", "nested"}},
		{name: "object path hardlink to a missing real path", layer: []dlEnt{dlLink(obj, "usr/bin/nothere")}, wantErr: []string{"target not found"}},
		{name: "two objects, chains", layer: []dlEnt{
			dlFile(obj, "one"), dlLink(obj2, obj), dlLink("usr/bin/a", obj2), dlLink("usr/bin/b", obj),
		}, check: func(t *testing.T, d *dlResult) {
			d.content(t, "/usr/bin/a", "one")
			d.content(t, "/usr/bin/b", "one")
		}},
	}
	// The main case: the object path carries the changed content (with its
	// mode), the real paths are hardlinks to it, one of them below etc/.
	cases[0].layer = append(append([]dlEnt(nil), objDirs...),
		dlEnt{name: obj, typ: '0', body: "root:x:0:0\nnew:x:1:1\n", mode: 0o600, uid: 0, gid: 0},
		dlDir("etc/", 0o755), dlLink("etc/passwd", obj),
		dlDir("var/", 0o755), dlLink("var/passwd.bak", obj),
		dlLink("var/passwd.bak2", "etc/passwd"),
	)
	cases[0].check = func(t *testing.T, d *dlResult) {
		for _, p := range []string{"/usr/etc/passwd", "/var/passwd.bak", "/var/passwd.bak2"} {
			d.content(t, p, "root:x:0:0\nnew:x:1:1\n")
			if m := mode(d, p); m&0o7777 != 0o600 {
				t.Errorf("%s mode %o, want 0600", p, m)
			}
			if d.ents[p].Checksum != d.ents["/usr/etc/passwd"].Checksum {
				t.Errorf("%s is not the canonical file's object", p)
			}
		}
		d.hasNot(t, "/sysroot", "/etc")
		if d.stats.Dropped["sysroot"] != len(objDirs) {
			t.Errorf("Dropped[sysroot] = %d, want %d (only the directories)", d.stats.Dropped["sysroot"], len(objDirs))
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d, err := dlApply(t, dlTar(t, c.layer...), Options{})
			if len(c.wantErr) > 0 {
				if err == nil {
					t.Fatalf("applied, want an error with %q", c.wantErr)
				}
				for _, w := range c.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
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

// TestDerivedObjectPathsRecorded: the object entry's payload is reported
// once for the layer record, in tar order, even though the tree takes it
// under another name.
func TestDerivedObjectPathsRecorded(t *testing.T) {
	r := dlRepo(t)
	base := dlCommitTar(t, r, dlBaseTar(t))
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	layer := dlTar(t, dlFile("usr/bin/first", "first"), dlFile(dlObj("b7"), "changed"), dlLink("usr/bin/sh", dlObj("b7")), dlFile(dlObj("c8"), "unused"))
	var got []ostree.Checksum
	if _, err := ApplyRecording(txn, dlTreeOf(t, r, base), tar.NewReader(strings.NewReader(string(layer))), Options{}, func(c ostree.Checksum) { got = append(got, c) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d payloads reported, want 3 (first, changed, unused)", len(got))
	}
	for i, want := range []string{"first", "changed", "unused"} {
		if s := dlContentTxn(t, txn, got[i]); s != want {
			t.Errorf("payload %d = %q, want %q", i, s, want)
		}
	}
}

func dlContentTxn(t *testing.T, txn *ostree.Txn, c ostree.Checksum) string {
	t.Helper()
	cont, err := txn.OpenContent(c)
	if err != nil {
		t.Fatal(err)
	}
	defer cont.Payload.Close()
	var b strings.Builder
	if _, err := io.Copy(&b, cont.Payload); err != nil {
		t.Fatal(err)
	}
	return b.String()
}
