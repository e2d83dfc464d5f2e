package ostree

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestValidateRefName(t *testing.T) {
	// (?:[\w\d][-._\w\d]*/)*[\w\d][-._\w\d]*, and not 64 hex characters.
	tests := []struct {
		name string
		ok   bool
	}{
		{"main", true},
		{"a", true},
		{"_", true},
		{"9", true},
		{"test/main", true},
		{"a/b/c/d", true},
		{"app/x86_64", true},
		{"foo-bar.baz_1", true},
		{"a..b", true}, // dots are fine after the first character
		{"a-", true},
		{"fedora/39/x86_64/silverblue", true},
		{strings.Repeat("ab", 32), false}, // a checksum
		{strings.Repeat("ab", 31) + "a", true},
		{strings.Repeat("ab", 32) + "c", true},
		{strings.Repeat("AB", 32), true}, // only lowercase hex is a checksum
		{"", false},
		{"/", false},
		{"/a", false},
		{"a/", false},
		{"a//b", false},
		{"-a", false},
		{".a", false},
		{"a/.b", false},
		{"a/-b", false},
		{"..", false},
		{"a/../b", false},
		{"a b", false},
		{"a:b", false},
		{"a\x00b", false},
		{"a\nb", false},
		{"a*b", false},
		{"a~b", false},
	}
	for _, tc := range tests {
		if err := ValidateRefName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidateRefName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestRefPath(t *testing.T) {
	tests := []struct {
		ref, want string
	}{
		{"main", "refs/heads/main"},
		{"test/main", "refs/heads/test/main"},
		{"origin:main", "refs/remotes/origin/main"},
		{"origin:app/x86_64", "refs/remotes/origin/app/x86_64"},
		{"mirror:org.example.Other:mirror/ref", "refs/mirrors/org.example.Other/mirror/ref"},
		{"mirror:org.example.Other:main", "refs/mirrors/org.example.Other/main"},
		{"", ""},
		{":main", ""},
		{"origin:", ""},
		{"or/igin:main", ""},
		{"origin:../x", ""},
		{"mirror:x", ""},
		{"mirror::main", ""},
		{"mirror:a/b:main", ""},
		{"mirror:org.x:", ""},
		{"mirror:org.x:a/../b", ""},
		{"mirror:..:main", ""}, // refs/mirrors/../main is refs/main
		{"mirror:.:main", ""},
		{"mirror:..:heads/main", ""},
		{strings.Repeat("cd", 32), ""},
	}
	for _, tc := range tests {
		got, err := refPath(tc.ref)
		if tc.want == "" {
			if err == nil {
				t.Errorf("refPath(%q) = %q, want an error", tc.ref, got)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("refPath(%q) = %q, %v; want %q", tc.ref, got, err, tc.want)
		}
	}
}

// refRepo makes a repository with a chain of three commits on main.
func refRepo(t *testing.T) (*Repo, []Checksum) {
	r := newRepo(t, ModeArchive)
	var cs []Checksum
	for i, body := range []string{"1", "2", "3"} {
		opts := CommitOptions{Branch: "main", Subject: "c" + body}
		if i == 0 {
			opts.NoParent = true
		}
		cs = append(cs, commitTar(t, r, opts, reg("f", 0o644, body)))
	}
	return r, cs
}

func TestReadRefAndAliases(t *testing.T) {
	r, cs := refRepo(t)
	heads := filepath.Join(r.Path(), "refs", "heads")
	if err := r.SetRef("app/x86_64", &cs[1]); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRef("origin:main", &cs[0]); err != nil {
		t.Fatal(err)
	}
	if err := r.SetRef("mirror:org.example.Other:mirror/ref", &cs[2]); err != nil {
		t.Fatal(err)
	}
	// Alias refs are relative symlinks inside refs/, as ostree makes them.
	os.MkdirAll(filepath.Join(heads, "alias"), 0o755)
	if err := os.Symlink("../app/x86_64", filepath.Join(heads, "alias", "name")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("../remotes/origin/main", filepath.Join(heads, "to-remote")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("alias/name", filepath.Join(heads, "chain")); err != nil {
		t.Fatal(err)
	}
	good := []struct {
		ref  string
		want Checksum
	}{
		{"main", cs[2]},
		{"app/x86_64", cs[1]},
		{"alias/name", cs[1]},
		{"chain", cs[1]},
		{"to-remote", cs[0]},
		{"origin:main", cs[0]},
		{"mirror:org.example.Other:mirror/ref", cs[2]},
	}
	for _, g := range good {
		if got, err := r.ReadRef(g.ref); err != nil || got != g.want {
			t.Errorf("ReadRef(%q) = %s, %v; want %s", g.ref, got, err, g.want)
		}
	}
	refs, err := r.ListRefs()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, ref := range refs {
		names = append(names, ref.Name)
	}
	want := []string{"alias/name", "app/x86_64", "chain", "main", "mirror:org.example.Other:mirror/ref", "origin:main", "to-remote"}
	if strings.Join(names, " ") != strings.Join(want, " ") {
		t.Errorf("ListRefs = %v, want %v", names, want)
	}
	if _, err := r.ReadRef("nope"); !errors.Is(err, ErrRefNotFound) {
		t.Errorf("ReadRef(nope) = %v, want ErrRefNotFound", err)
	}
	if _, err := r.ReadRef("main/sub"); !errors.Is(err, ErrRefNotFound) {
		t.Errorf("ReadRef(main/sub) = %v, want ErrRefNotFound", err)
	}
	// A ref file without the trailing newline is accepted (spec §2.3).
	os.WriteFile(filepath.Join(heads, "nonl"), []byte(cs[0].String()), 0o644)
	if got, err := r.ReadRef("nonl"); err != nil || got != cs[0] {
		t.Errorf("ReadRef(nonl) = %s, %v", got, err)
	}
	os.WriteFile(filepath.Join(heads, "garbage"), []byte("not a checksum\n"), 0o644)
	if _, err := r.ReadRef("garbage"); err == nil {
		t.Error("ReadRef accepted a ref file that is not a checksum")
	}
}

func TestReadRefAliasOutsideRefs(t *testing.T) {
	r, cs := refRepo(t)
	heads := filepath.Join(r.Path(), "refs", "heads")
	// A file outside refs/ that looks like a ref.
	outside := filepath.Join(t.TempDir(), "outside")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "ref"), []byte(cs[0].String()+"\n"), 0o644)
	os.WriteFile(filepath.Join(r.Path(), "fake-ref"), []byte(cs[0].String()+"\n"), 0o644)
	tests := []struct{ name, target string }{
		{"up-to-repo", "../../fake-ref"},
		{"absolute", filepath.Join(outside, "ref")},
		{"far-up", "../../../outside/ref"},
		{"into-config", "../../config"},
	}
	for _, tc := range tests {
		if err := os.Symlink(tc.target, filepath.Join(heads, tc.name)); err != nil {
			t.Fatal(err)
		}
		if c, err := r.ReadRef(tc.name); err == nil {
			t.Errorf("ReadRef(%s -> %s) = %s, want a refusal", tc.name, tc.target, c)
		}
	}
	// Loops end.
	os.Symlink("loop2", filepath.Join(heads, "loop1"))
	os.Symlink("loop1", filepath.Join(heads, "loop2"))
	if _, err := r.ReadRef("loop1"); err == nil {
		t.Error("ReadRef followed an alias loop to a result")
	}
}

// TestReadRefDirAliasOutsideRefs: an alias may also be a directory symlink;
// a ref read through one must not come from outside refs/ either.
func TestReadRefDirAliasOutsideRefs(t *testing.T) {
	r, cs := refRepo(t)
	outside := filepath.Join(t.TempDir(), "outside")
	os.MkdirAll(outside, 0o755)
	os.WriteFile(filepath.Join(outside, "ref"), []byte(cs[0].String()+"\n"), 0o644)
	if err := os.Symlink(outside, filepath.Join(r.Path(), "refs", "heads", "dirlink")); err != nil {
		t.Fatal(err)
	}
	if c, err := r.ReadRef("dirlink/ref"); err == nil {
		t.Errorf("ReadRef(dirlink/ref) read %s from %s, outside refs/", c, outside)
	}
}

func TestResolveRev(t *testing.T) {
	r, cs := refRepo(t)
	if err := r.SetRef("origin:main", &cs[1]); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rev  string
		want Checksum
	}{
		{"main", cs[2]},
		{"main^", cs[1]},
		{"main^^", cs[0]},
		{cs[2].String(), cs[2]},
		{cs[2].String() + "^", cs[1]},
		{cs[1].String() + "^", cs[0]},
		{"origin:main", cs[1]},
		{"origin:main^", cs[0]},
		{"origin/main", cs[1]}, // ostree also accepts remote/ref
	}
	for _, tc := range tests {
		if got, err := r.ResolveRev(tc.rev); err != nil || got != tc.want {
			t.Errorf("ResolveRev(%q) = %s, %v; want %s", tc.rev, got, err, tc.want)
		}
	}
	for _, bad := range []string{"main^^^", cs[0].String() + "^", "nope", "nope^", "origin/nope", "bad name"} {
		if got, err := r.ResolveRev(bad); err == nil {
			t.Errorf("ResolveRev(%q) = %s, want an error", bad, got)
		}
	}
	if _, err := r.ResolveRev("nope"); !errors.Is(err, ErrRefNotFound) {
		t.Errorf("ResolveRev(nope) = %v, want ErrRefNotFound", err)
	}
}

func TestRepoSetRef(t *testing.T) {
	r, cs := refRepo(t)
	missing := mustChecksum(t, sumHello) // not a commit here
	if err := r.SetRef("x", &missing); err == nil {
		t.Error("SetRef to a missing commit succeeded")
	}
	if err := r.SetRef("a/b/c", &cs[0]); err != nil {
		t.Fatal(err)
	}
	if got, err := r.ReadRef("a/b/c"); err != nil || got != cs[0] {
		t.Errorf("nested ref = %s, %v", got, err)
	}
	if err := r.SetRef("a/b/c", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ReadRef("a/b/c"); !errors.Is(err, ErrRefNotFound) {
		t.Errorf("deleted ref: %v", err)
	}
	// Temp files of ref writes are not left behind.
	filepath.WalkDir(filepath.Join(r.Path(), "refs"), func(p string, d os.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), ".tmp-") {
			t.Errorf("temp file left: %s", p)
		}
		return nil
	})
}
