package ostree

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestInitLayoutAndConfig(t *testing.T) {
	tests := []struct {
		mode Mode
		cfg  string
	}{
		{ModeBare, "[core]\nrepo_version=1\nmode=bare\n"},
		{ModeBareUser, "[core]\nrepo_version=1\nmode=bare-user\n"},
		{ModeArchive, "[core]\nrepo_version=1\nmode=archive-z2\n"},
	}
	for _, tc := range tests {
		t.Run(tc.mode.String(), func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "repo")
			r := newRepoAt(t, path, tc.mode, true)
			if r.Mode() != tc.mode || r.Path() != path {
				t.Errorf("Mode %s Path %s", r.Mode(), r.Path())
			}
			b, err := os.ReadFile(filepath.Join(path, "config"))
			if err != nil || string(b) != tc.cfg {
				t.Errorf("config = %q, %v; want %q", b, err, tc.cfg)
			}
			for _, d := range []string{"objects", "refs/heads", "refs/remotes", "refs/mirrors", "tmp", "tmp/cache", "state", "extensions"} {
				if st, err := os.Stat(filepath.Join(path, d)); err != nil || !st.IsDir() {
					t.Errorf("%s: %v", d, err)
				}
			}
			// Init again in the same mode opens it; another mode is refused.
			again, err := Init(path, tc.mode)
			if err != nil {
				t.Fatalf("re-Init: %v", err)
			}
			again.Close()
			other := ModeArchive
			if tc.mode == ModeArchive {
				other = ModeBareUser
			}
			if r2, err := Init(path, other); err == nil {
				r2.Close()
				t.Errorf("Init in mode %s over a %s repository succeeded", other, tc.mode)
			}
			if b2, _ := os.ReadFile(filepath.Join(path, "config")); !bytes.Equal(b, b2) {
				t.Errorf("config changed by a refused Init: %q", b2)
			}
			if _, err := os.Stat(filepath.Join(path, "tmp")); err != nil {
				t.Fatal(err)
			}
			if left, _ := os.ReadDir(filepath.Join(path, "tmp")); len(left) != 1 || left[0].Name() != "cache" {
				var names []string
				for _, e := range left {
					names = append(names, e.Name())
				}
				t.Errorf("tmp/ after Init holds %v, want only cache", names)
			}
		})
	}
	if r, err := Init(filepath.Join(t.TempDir(), "r"), ModeBareUserOnly); err == nil {
		r.Close()
		t.Error("Init in bare-user-only succeeded")
	}
}

func TestOpenConfigs(t *testing.T) {
	tests := []struct {
		name string
		cfg  string
		mode Mode
		ok   bool
	}{
		{"archive-z2", "[core]\nrepo_version=1\nmode=archive-z2\n", ModeArchive, true},
		{"archive", "[core]\nrepo_version=1\nmode=archive\n", ModeArchive, true},
		{"default bare", "[core]\nrepo_version=1\n", ModeBare, true},
		{"bare-user-only", "[core]\nrepo_version=1\nmode=bare-user-only\n", ModeBareUserOnly, true},
		{"comments and remotes", "# hi\n[core]\nrepo_version=1\nmode=bare-user\n\n[remote \"o\"]\nurl=file:///x\n", ModeBareUser, true},
		{"version 2", "[core]\nrepo_version=2\nmode=bare\n", 0, false},
		{"no version", "[core]\nmode=bare\n", 0, false},
		{"archive-v1", "[core]\nrepo_version=1\narchive=true\n", 0, false},
		{"unknown mode", "[core]\nrepo_version=1\nmode=bare-split-xattrs\n", 0, false},
		{"garbage", "not a key file\n", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir()
			os.Mkdir(filepath.Join(path, "objects"), 0o755)
			os.WriteFile(filepath.Join(path, "config"), []byte(tc.cfg), 0o644)
			r, err := Open(path)
			if (err == nil) != tc.ok {
				t.Fatalf("Open = %v, want ok=%v", err, tc.ok)
			}
			if err == nil {
				defer r.Close()
				if r.Mode() != tc.mode {
					t.Errorf("mode %s, want %s", r.Mode(), tc.mode)
				}
			}
		})
	}
	if _, err := Open(filepath.Join(t.TempDir(), "none")); err == nil {
		t.Error("Open of a missing directory succeeded")
	}
	noObjects := t.TempDir()
	os.WriteFile(filepath.Join(noObjects, "config"), []byte("[core]\nrepo_version=1\n"), 0o644)
	if _, err := Open(noObjects); err == nil {
		t.Error("Open without objects/ succeeded")
	}
}

func TestParseMode(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Mode
		ok   bool
	}{
		{"bare", ModeBare, true}, {"bare-user", ModeBareUser, true}, {"archive", ModeArchive, true},
		{"archive-z2", ModeArchive, true}, {"bare-user-only", ModeBareUserOnly, true},
		{"", 0, false}, {"Bare", 0, false}, {"bare-split-xattrs", 0, false},
	} {
		got, err := ParseMode(tc.in)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("ParseMode(%q) = %s, %v", tc.in, got, err)
		}
	}
	for m, s := range map[Mode]string{ModeBare: "bare", ModeBareUser: "bare-user", ModeArchive: "archive", ModeBareUserOnly: "bare-user-only"} {
		if m.String() != s {
			t.Errorf("%d.String() = %s, want %s", int(m), m.String(), s)
		}
	}
}

func TestLoadMetaErrors(t *testing.T) {
	r := newRepo(t, ModeArchive)
	var missing *MissingObjectError
	if _, err := r.LoadMeta(mustChecksum(t, sumHello), ObjDirTree); !errors.As(err, &missing) {
		t.Errorf("LoadMeta of a missing object = %v, want MissingObjectError", err)
	}
	if _, err := r.LoadMeta(mustChecksum(t, sumHello), ObjFile); err == nil {
		t.Error("LoadMeta of a content object succeeded")
	}
	if _, err := r.OpenContent(mustChecksum(t, sumHello)); !errors.As(err, &missing) {
		t.Errorf("OpenContent of a missing object = %v, want MissingObjectError", err)
	}
	if _, err := r.ReadCommit(mustChecksum(t, sumHello)); !errors.As(err, &missing) {
		t.Errorf("ReadCommit of a missing object = %v", err)
	}
}

func TestCommitOptions(t *testing.T) {
	r := newRepo(t, ModeArchive)
	tree := []tarEnt{reg("f", 0o644, "x")}

	// Explicit timestamp.
	c1 := commitTar(t, r, CommitOptions{Branch: "main", Subject: "s", Body: "b", Timestamp: time.Unix(1577836800, 0)}, tree...)
	cm1, _ := r.ReadCommit(c1)
	if cm1.Timestamp != 1577836800 || cm1.Subject != "s" || cm1.Body != "b" || !cm1.Parent.IsZero() {
		t.Errorf("commit 1 = %+v", cm1)
	}
	if bind, ok := cm1.Metadata.Lookup("ostree.ref-binding"); !ok || bind.Type != "as" {
		t.Errorf("ref-binding = %+v, %v", bind, ok)
	}
	// SOURCE_DATE_EPOCH, and the branch's commit as the default parent.
	t.Setenv("SOURCE_DATE_EPOCH", "1600000000")
	c2 := commitTar(t, r, CommitOptions{Branch: "main"}, tree...)
	cm2, _ := r.ReadCommit(c2)
	if cm2.Timestamp != 1600000000 || cm2.Parent != c1 {
		t.Errorf("commit 2: timestamp %d parent %s", cm2.Timestamp, cm2.Parent)
	}
	// NoParent, explicit Parent.
	c3 := commitTar(t, r, CommitOptions{Branch: "main", NoParent: true}, tree...)
	if cm3, _ := r.ReadCommit(c3); !cm3.Parent.IsZero() {
		t.Errorf("NoParent commit has parent %s", cm3.Parent)
	}
	c4 := commitTar(t, r, CommitOptions{Branch: "other", Parent: &c1, NoBindings: true}, tree...)
	if cm4, _ := r.ReadCommit(c4); cm4.Parent != c1 || len(cm4.Metadata) != 0 {
		t.Errorf("commit 4 = %+v", cm4)
	}
	before := objectSet(t, r)
	bad := []struct {
		name string
		opts CommitOptions
		env  string
	}{
		{"missing parent", CommitOptions{Branch: "x", Parent: &Checksum{1}}, ""},
		{"bad branch", CommitOptions{Branch: "bad name"}, ""},
		{"before the epoch", CommitOptions{Timestamp: time.Unix(-10, 0)}, ""},
		{"bad SOURCE_DATE_EPOCH", CommitOptions{}, "yesterday"},
		{"bootable without kernel", CommitOptions{Bootable: true}, ""},
	}
	for _, b := range bad {
		if b.env != "" {
			t.Setenv("SOURCE_DATE_EPOCH", b.env)
		}
		if _, err := r.CommitTar(bytes.NewReader(mkTar(t, reg("new-"+b.name, 0o644, b.name))), b.opts); err == nil {
			t.Errorf("%s: CommitTar succeeded", b.name)
		}
		if b.env != "" {
			t.Setenv("SOURCE_DATE_EPOCH", "1600000000")
		}
	}
	if after := objectSet(t, r); len(after) != len(before) {
		t.Errorf("refused commits added %d objects", len(after)-len(before))
	}
	if left := stagingLeft(t, r); len(left) != 0 {
		t.Errorf("staging left: %v", left)
	}
	if got, _ := r.ReadRef("main"); got != c3 {
		t.Errorf("main = %s, want %s", got, c3)
	}
}

// TestInitKeepsExistingRepo: a directory that already holds a repository
// (objects/ exists) is never re-initialized, even when this package cannot
// open it: its config must survive.
func TestInitKeepsExistingRepo(t *testing.T) {
	for _, cfg := range []string{
		"[core]\nrepo_version=1\nmode=bare-split-xattrs\n",
		"[core]\nrepo_version=1\narchive=true\n",
		"[core]\nrepo_version=2\nmode=archive-z2\n",
	} {
		path := t.TempDir()
		os.Mkdir(filepath.Join(path, "objects"), 0o755)
		os.WriteFile(filepath.Join(path, "config"), []byte(cfg), 0o644)
		if r, err := Init(path, ModeArchive); err == nil {
			r.Close()
			t.Errorf("Init over an existing repository with config %q succeeded", cfg)
		}
		if b, _ := os.ReadFile(filepath.Join(path, "config")); string(b) != cfg {
			t.Errorf("Init rewrote the config of an existing repository: %q -> %q", cfg, b)
		}
	}
}
