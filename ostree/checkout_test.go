package ostree

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func checkoutTree() []tarEnt {
	d := dirEnt("d/", 0o750)
	d.hdr.Uid, d.hdr.Gid = 1000, 1000
	d.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.dir": "d"}
	owned := reg("owned", 0o644, "owned\n")
	owned.hdr.Uid, owned.hdr.Gid = 1000, 1000
	owned.hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.alpha": "first"}
	return []tarEnt{
		d,
		reg("d/f", 0o644, "hello\n"),
		reg("suid", 0o4755, "suid\n"),
		owned,
		symEnt("link", "owned"),
		dirEnt("sg/", 0o2775), // setgid dirs stay setgid, -U or not
	}
}

func lstat(t *testing.T, p string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

func getxattr(p, name string) (string, bool) {
	buf := make([]byte, 256)
	n, err := unix.Lgetxattr(p, name, buf)
	if err != nil {
		return "", false
	}
	return string(buf[:n]), true
}

func readString(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// leftovers lists the entries of dir other than the given names.
func leftovers(t *testing.T, dir string, except ...string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
next:
	for _, e := range ents {
		for _, x := range except {
			if e.Name() == x {
				continue next
			}
		}
		out = append(out, e.Name())
	}
	return out
}

func TestCheckout(t *testing.T) {
	requireRoot(t) // uid 1000 owners, chown on checkout
	forModes(t, func(t *testing.T, m Mode) {
		r := newRepo(t, m)
		c := commitTar(t, r, CommitOptions{Branch: "main"}, checkoutTree()...)
		objPath := func(rel string) string {
			_, _, f := lookupPath(t, r, c, rel)
			return filepath.Join(r.Path(), handObjectPath(f, fileExt(m)))
		}
		for _, user := range []bool{false, true} {
			name := "full"
			if user {
				name = "user"
			}
			t.Run(name, func(t *testing.T) {
				dest := filepath.Join(t.TempDir(), "co")
				if err := r.Checkout(c, dest, CheckoutOptions{UserMode: user}); err != nil {
					t.Fatal(err)
				}
				if got := readString(t, filepath.Join(dest, "d", "f")); got != "hello\n" {
					t.Errorf("d/f = %q", got)
				}
				if got := readString(t, filepath.Join(dest, "owned")); got != "owned\n" {
					t.Errorf("owned = %q", got)
				}
				if target, err := os.Readlink(filepath.Join(dest, "link")); err != nil || target != "owned" {
					t.Errorf("link -> %q, %v", target, err)
				}
				root := lstat(t, dest)
				if root.Mode&modePermMask != 0o755 {
					t.Errorf("root mode %o, want 0755", root.Mode&modePermMask)
				}
				d := lstat(t, filepath.Join(dest, "d"))
				owned := lstat(t, filepath.Join(dest, "owned"))
				suid := lstat(t, filepath.Join(dest, "suid"))
				if d.Mode&modePermMask != 0o750 {
					t.Errorf("d mode %o, want 0750", d.Mode&modePermMask)
				}
				if sg := lstat(t, filepath.Join(dest, "sg")); sg.Mode&modePermMask != 0o2775 {
					t.Errorf("sg mode %o, want 02775", sg.Mode&modePermMask)
				}
				me := uint32(os.Geteuid())
				if !user {
					if owned.Uid != 1000 || owned.Gid != 1000 || d.Uid != 1000 || d.Gid != 1000 {
						t.Errorf("owners: owned %d:%d, d %d:%d; want 1000:1000", owned.Uid, owned.Gid, d.Uid, d.Gid)
					}
					if suid.Mode&modePermMask != 0o4755 {
						t.Errorf("suid mode %o, want 04755", suid.Mode&modePermMask)
					}
					if v, ok := getxattr(filepath.Join(dest, "owned"), "user.alpha"); !ok || v != "first" {
						t.Errorf("owned: user.alpha = %q, %v", v, ok)
					}
					if v, ok := getxattr(filepath.Join(dest, "d"), "user.dir"); !ok || v != "d" {
						t.Errorf("d: user.dir = %q, %v", v, ok)
					}
				} else {
					if owned.Uid != me || d.Uid != me {
						t.Errorf("user mode owners: owned %d, d %d; want the caller %d", owned.Uid, d.Uid, me)
					}
					if suid.Mode&modePermMask != 0o755 {
						t.Errorf("user mode suid mode %o, want 0755 (setuid dropped)", suid.Mode&modePermMask)
					}
					if _, ok := getxattr(filepath.Join(dest, "owned"), "user.alpha"); ok {
						t.Error("user mode: owned carries user.alpha")
					}
					if _, ok := getxattr(filepath.Join(dest, "d"), "user.dir"); ok {
						t.Error("user mode: d carries user.dir")
					}
				}
				// Hardlinks exactly when the object is stored as the
				// checkout needs it (ostree: bare+full, bare-user+user).
				wantLink := m == ModeBare && !user || m == ModeBareUser && user
				for _, rel := range []string{"owned", "suid", "d/f"} {
					linked := lstat(t, filepath.Join(dest, rel)).Ino == lstat(t, objPath(rel)).Ino
					if linked != wantLink {
						t.Errorf("%s hardlinked to its object: %v, want %v", rel, linked, wantLink)
					}
				}
				if lstat(t, filepath.Join(dest, "link")).Mode&modeTypeMask != modeLnk {
					t.Error("link is not a symlink")
				}
				if left := leftovers(t, filepath.Dir(dest), "co"); len(left) != 0 {
					t.Errorf("left beside the checkout: %v", left)
				}
			})
		}
		t.Run("no-hardlinks", func(t *testing.T) {
			dest := filepath.Join(t.TempDir(), "co")
			if err := r.Checkout(c, dest, CheckoutOptions{NoHardlinks: true}); err != nil {
				t.Fatal(err)
			}
			if lstat(t, filepath.Join(dest, "owned")).Ino == lstat(t, objPath("owned")).Ino {
				t.Error("NoHardlinks checkout hardlinked")
			}
			if got := lstat(t, filepath.Join(dest, "suid")).Mode & modePermMask; got != 0o4755 {
				t.Errorf("suid mode %o", got)
			}
		})
	})
}

func TestCheckoutSubpath(t *testing.T) {
	forModes(t, func(t *testing.T, m Mode) {
		if m == ModeBare {
			requireRoot(t)
		}
		r := newRepo(t, m)
		c := commitTar(t, r, CommitOptions{Branch: "main"}, dirEnt("d/", 0o750), reg("d/f", 0o644, "hello\n"), dirEnt("d/e/", 0o700), reg("d/e/g", 0o600, "g\n"), symEnt("d/l", "f"), reg("top", 0o644, "top\n"))
		dir := t.TempDir()
		// A directory subpath.
		for _, sub := range []string{"d", "/d/", "./d"} {
			dest := filepath.Join(dir, "sub-"+strings.Trim(sub, "/."))
			os.RemoveAll(dest)
			if err := r.Checkout(c, dest, CheckoutOptions{UserMode: true, Subpath: sub}); err != nil {
				t.Fatalf("Subpath %q: %v", sub, err)
			}
			if got := lstat(t, dest).Mode & modePermMask; got != 0o750 {
				t.Errorf("Subpath %q: mode %o, want d's 0750", sub, got)
			}
			if got := readString(t, filepath.Join(dest, "e", "g")); got != "g\n" {
				t.Errorf("Subpath %q: e/g = %q", sub, got)
			}
			if _, err := os.Lstat(filepath.Join(dest, "top")); err == nil {
				t.Errorf("Subpath %q: top checked out too", sub)
			}
		}
		// A single file, and a symlink.
		fdest := filepath.Join(dir, "single")
		if err := r.Checkout(c, fdest, CheckoutOptions{UserMode: true, Subpath: "d/e/g"}); err != nil {
			t.Fatal(err)
		}
		if got := readString(t, fdest); got != "g\n" {
			t.Errorf("single file = %q", got)
		}
		if got := lstat(t, fdest).Mode & modePermMask; got != 0o600 {
			t.Errorf("single file mode %o, want 0600", got)
		}
		ldest := filepath.Join(dir, "single-link")
		if err := r.Checkout(c, ldest, CheckoutOptions{UserMode: true, Subpath: "d/l"}); err != nil {
			t.Fatal(err)
		}
		if target, err := os.Readlink(ldest); err != nil || target != "f" {
			t.Errorf("single symlink -> %q, %v", target, err)
		}
		// Missing paths.
		for _, bad := range []string{"nope", "d/nope", "top/x", "d/f/x"} {
			dest := filepath.Join(dir, "bad")
			if err := r.Checkout(c, dest, CheckoutOptions{UserMode: true, Subpath: bad}); err == nil {
				t.Errorf("Subpath %q succeeded", bad)
			}
			if _, err := os.Lstat(dest); err == nil {
				t.Errorf("Subpath %q created the destination", bad)
				os.RemoveAll(dest)
			}
		}
	})
}

func TestCheckoutDestExists(t *testing.T) {
	r := newRepo(t, ModeArchive)
	c := commitTar(t, r, CommitOptions{Branch: "main"}, reg("d/f", 0o644, "hello\n"))
	dir := t.TempDir()
	dest := filepath.Join(dir, "co")
	mkfile(t, filepath.Join(dest, "marker"), 0o644, "mine\n")
	if err := r.Checkout(c, dest, CheckoutOptions{UserMode: true}); err == nil {
		t.Error("Checkout over an existing directory succeeded")
	}
	if left := leftovers(t, dest, "marker"); len(left) != 0 {
		t.Errorf("existing destination changed: %v", left)
	}
	if got := readString(t, filepath.Join(dest, "marker")); got != "mine\n" {
		t.Errorf("marker = %q", got)
	}
	// An existing file for a single-file checkout.
	fdest := filepath.Join(dir, "file")
	mkfile(t, fdest, 0o644, "orig\n")
	if err := r.Checkout(c, fdest, CheckoutOptions{UserMode: true, Subpath: "d/f"}); err == nil {
		t.Error("single-file Checkout over an existing file succeeded")
	}
	if got := readString(t, fdest); got != "orig\n" {
		t.Errorf("existing file now %q", got)
	}
	// A dangling symlink counts as existing too.
	ldest := filepath.Join(dir, "dangling")
	os.Symlink("nowhere", ldest)
	if err := r.Checkout(c, ldest, CheckoutOptions{UserMode: true}); err == nil {
		t.Error("Checkout over a dangling symlink succeeded")
	}
	if _, err := os.Stat(filepath.Join(dir, "nowhere")); err == nil {
		t.Error("Checkout followed the dangling symlink")
	}
	if left := leftovers(t, dir, "co", "file", "dangling"); len(left) != 0 {
		t.Errorf("left beside the destinations: %v", left)
	}
}

// TestCheckoutFailureLeavesNothing: a checkout that fails midway leaves no
// destination and no temp directory beside it.
func TestCheckoutFailureLeavesNothing(t *testing.T) {
	forModes(t, func(t *testing.T, m Mode) {
		if m == ModeBare {
			requireRoot(t)
		}
		r := newRepo(t, m)
		var ents []tarEnt
		for i := 0; i < 20; i++ {
			ents = append(ents, reg("dir"+string(rune('a'+i))+"/file", 0o644, "content "+string(rune('a'+i))))
		}
		ents = append(ents, reg("zz/victim", 0o644, "victim\n"))
		c := commitTar(t, r, CommitOptions{Branch: "main"}, ents...)
		_, _, victim := lookupPath(t, r, c, "zz/victim")
		if err := os.Remove(filepath.Join(r.Path(), handObjectPath(victim, fileExt(m)))); err != nil {
			t.Fatal(err)
		}
		for _, user := range []bool{false, true} {
			dir := t.TempDir()
			dest := filepath.Join(dir, "co")
			if err := r.Checkout(c, dest, CheckoutOptions{UserMode: user}); err == nil {
				t.Fatal("Checkout with a missing object succeeded")
			}
			if left := leftovers(t, dir); len(left) != 0 {
				t.Errorf("user=%v: left after a failed checkout: %v", user, left)
			}
			fdest := filepath.Join(dir, "single")
			if err := r.Checkout(c, fdest, CheckoutOptions{UserMode: user, Subpath: "zz/victim"}); err == nil {
				t.Fatal("single-file Checkout of a missing object succeeded")
			}
			if left := leftovers(t, dir); len(left) != 0 {
				t.Errorf("user=%v: left after a failed single-file checkout: %v", user, left)
			}
		}
		if err := r.Checkout(Checksum{1}, filepath.Join(t.TempDir(), "co"), CheckoutOptions{}); err == nil {
			t.Error("Checkout of a missing commit succeeded")
		}
	})
}

// TestCheckoutCorruptArchiveLeavesNothing: a payload that fails while being
// copied (truncated deflate stream) must not leave a partial file.
func TestCheckoutCorruptArchiveLeavesNothing(t *testing.T) {
	r := newRepo(t, ModeArchive)
	payload := strings.Repeat("incompressible? no, but long enough. ", 2000)
	c := commitTar(t, r, CommitOptions{Branch: "main"}, reg("ok", 0o644, "ok\n"), reg("sub/big", 0o644, payload))
	_, _, big := lookupPath(t, r, c, "sub/big")
	p := filepath.Join(r.Path(), handObjectPath(big, "filez"))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	hlen := len(handZHeaderPrefixed(uint64(len(payload)), 0, 0, 0o100644))
	if err := os.WriteFile(p, b[:hlen+(len(b)-hlen)/2], 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := r.Checkout(c, filepath.Join(dir, "co"), CheckoutOptions{UserMode: true}); err == nil {
		t.Error("Checkout of a truncated object succeeded")
	}
	if left := leftovers(t, dir); len(left) != 0 {
		t.Errorf("left after a failed checkout: %v", left)
	}
	if err := r.Checkout(c, filepath.Join(dir, "single"), CheckoutOptions{UserMode: true, Subpath: "sub/big"}); err == nil {
		t.Error("single-file Checkout of a truncated object succeeded")
	}
	if left := leftovers(t, dir); len(left) != 0 {
		t.Errorf("left after a failed single-file checkout: %v", left)
	}
}

func TestList(t *testing.T) {
	r := newRepo(t, ModeArchive)
	c := commitTar(t, r, CommitOptions{}, dirEnt("d/", 0o750), reg("d/f", 0o644, "hello\n"), reg("b", 0o600, "bb"), symEnt("a", "b"), dirEnt("c/", 0o755))
	var got []string
	var entries []ListEntry
	err := r.List(c, "/", true, func(e ListEntry) error {
		got = append(got, e.Path)
		entries = append(entries, e)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/", "/a", "/b", "/c", "/d", "/d/f"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("List -R = %v, want %v (files, then dirs)", got, want)
	}
	byPath := map[string]ListEntry{}
	for _, e := range entries {
		byPath[e.Path] = e
	}
	if e := byPath["/a"]; e.Target != "b" || e.Mode != 0o120777 {
		t.Errorf("/a = %+v", e)
	}
	if e := byPath["/b"]; e.Size != 2 || e.Mode != 0o100600 || e.IsDir {
		t.Errorf("/b = %+v", e)
	}
	if e := byPath["/d"]; !e.IsDir || e.Mode != 0o040750 {
		t.Errorf("/d = %+v", e)
	}
	if e := byPath["/d/f"]; e.Checksum.String() != sumHello {
		t.Errorf("/d/f = %+v", e)
	}
	got = nil
	r.List(c, "/", false, func(e ListEntry) error { got = append(got, e.Path); return nil })
	if strings.Join(got, " ") != "/ /a /b /c /d" {
		t.Errorf("List without -R = %v", got)
	}
	got = nil
	if err := r.List(c, "d/f", false, func(e ListEntry) error { got = append(got, e.Path); return nil }); err != nil || strings.Join(got, " ") != "/d/f" {
		t.Errorf("List(d/f) = %v, %v", got, err)
	}
	if err := r.List(c, "nope", false, func(ListEntry) error { return nil }); err == nil {
		t.Error("List of a missing path succeeded")
	}
}
