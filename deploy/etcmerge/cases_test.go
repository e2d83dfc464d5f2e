package etcmerge

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// etcCase is one /etc merge scenario: the defaults of v1 (written into a usr/etc), the
// local edits made to v1's /etc, the defaults of v2, and what the merged /etc of v2 must
// look like. The same table drives the unit tests (plain directories) and the tests
// against `ostree admin deploy`, where check also runs on libostree's own result, so
// every expectation is pinned against the real tool.
type etcCase struct {
	name  string
	v1    func(t *testing.T, etc string)
	edit  func(t *testing.T, etc string)
	v2    func(t *testing.T, etc string)
	diff  string // Format(Diff(v1 defaults, edited)), lines sorted within each group
	check func(t *testing.T, etc string)
	// wantErr: our Merge must fail with this (errors.Is) and change nothing, and
	// libostree's deploy must fail with libErr in its message.
	wantErr error
	libErr  string
	// outside, when set, returns a directory outside the sysroot that the case points a
	// symlink at; it must stay empty after our merge.
	outside string
}

// has fails unless the entry rel below root exists and its description contains every
// one of want (see describe: "file <digest> \"content\" 0644 0:0 [xattrs]").
func has(t *testing.T, root, rel string, want ...string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(root, rel)); err != nil {
		t.Errorf("%s: missing: %v", rel, err)
		return
	}
	d := describe(t, filepath.Join(root, rel))
	for _, w := range want {
		if !strings.Contains(d, w) {
			t.Errorf("%s: got %s, want it to contain %q", rel, d, w)
		}
	}
}

func absent(t *testing.T, root, rel string) {
	t.Helper()
	if _, err := os.Lstat(filepath.Join(root, rel)); err == nil {
		t.Errorf("%s: present (%s), want it absent", rel, describe(t, filepath.Join(root, rel)))
	}
}

func noop(*testing.T, string) {}

func keep(t *testing.T, etc string) { wfile(t, etc+"/keep.conf", "keep\n", 0o644) }

// etcCases: rows 1–13 are the table of spec §4; the rest are extras.
func etcCases() []etcCase {
	return []etcCase{
		{
			name: "01-unchanged-follows-new-default",
			v1:   func(t *testing.T, e string) { keep(t, e); wfile(t, e+"/unchanged.conf", "v1\n", 0o644) },
			edit: noop,
			v2:   func(t *testing.T, e string) { keep(t, e); wfile(t, e+"/unchanged.conf", "v2\n", 0o644) },
			diff: "",
			check: func(t *testing.T, e string) {
				has(t, e, "unchanged.conf", `"v2\n" 0644 0:0`)
				has(t, e, "keep.conf", `"keep\n"`)
			},
		},
		{
			name: "02-local-edit-wins",
			v1:   func(t *testing.T, e string) { wfile(t, e+"/tobemodified.conf", "v1\n", 0o644) },
			edit: func(t *testing.T, e string) { wfile(t, e+"/tobemodified.conf", "local\n", 0o644) },
			v2:   func(t *testing.T, e string) { wfile(t, e+"/tobemodified.conf", "v2\n", 0o644) },
			diff: "M    tobemodified.conf\n",
			check: func(t *testing.T, e string) {
				has(t, e, "tobemodified.conf", `"local\n" 0644 0:0`)
			},
		},
		{
			name: "03-local-delete-wins",
			v1:   func(t *testing.T, e string) { keep(t, e); wfile(t, e+"/toberemoved.conf", "v1\n", 0o644) },
			edit: func(t *testing.T, e string) { rmrf(t, e+"/toberemoved.conf") },
			v2:   func(t *testing.T, e string) { keep(t, e); wfile(t, e+"/toberemoved.conf", "v2\n", 0o644) },
			diff: "D    toberemoved.conf\n",
			check: func(t *testing.T, e string) {
				absent(t, e, "toberemoved.conf")
				has(t, e, "keep.conf")
			},
		},
		{
			name: "04-added-file-and-nested-dir",
			v1:   keep,
			edit: func(t *testing.T, e string) {
				wfile(t, e+"/added.conf", "added\n", 0o640)
				mkdir(t, e+"/addeddir", 0o750)
				mkdir(t, e+"/addeddir/nested", 0o700)
				wfile(t, e+"/addeddir/nested/n.conf", "n\n", 0o600)
				lchown(t, e+"/addeddir/nested", 1000, 1001)
			},
			v2:   keep,
			diff: "A    added.conf\nA    addeddir\nA    addeddir/nested\nA    addeddir/nested/n.conf\n",
			check: func(t *testing.T, e string) {
				has(t, e, "added.conf", `"added\n" 0640 0:0`)
				has(t, e, "addeddir", "dir 0750 0:0")
				has(t, e, "addeddir/nested", "dir 0700 1000:1001")
				has(t, e, "addeddir/nested/n.conf", `"n\n" 0600 0:0`)
			},
		},
		{
			name: "05-mode-change-kept",
			v1:   func(t *testing.T, e string) { wfile(t, e+"/modechange.conf", "m\n", 0o644) },
			edit: func(t *testing.T, e string) { chmod(t, e+"/modechange.conf", 0o600) },
			v2:   func(t *testing.T, e string) { wfile(t, e+"/modechange.conf", "m\n", 0o644) },
			diff: "M    modechange.conf\n",
			check: func(t *testing.T, e string) {
				has(t, e, "modechange.conf", `"m\n" 0600 0:0`)
			},
		},
		{
			name: "06-owner-change-kept",
			v1:   func(t *testing.T, e string) { wfile(t, e+"/ownerchange.conf", "o\n", 0o644) },
			edit: func(t *testing.T, e string) { lchown(t, e+"/ownerchange.conf", 1000, 1000) },
			v2:   func(t *testing.T, e string) { wfile(t, e+"/ownerchange.conf", "o\n", 0o644) },
			diff: "M    ownerchange.conf\n",
			check: func(t *testing.T, e string) {
				has(t, e, "ownerchange.conf", `"o\n" 0644 1000:1000`)
			},
		},
		{
			// libostree ignores xattrs in the diff (OSTREE_DIFF_FLAGS_IGNORE_XATTRS): an
			// xattr-only change is not a change and is lost on upgrade.
			name: "07-xattr-only-change-lost",
			v1:   func(t *testing.T, e string) { wfile(t, e+"/xattrchange.conf", "x\n", 0o644) },
			edit: func(t *testing.T, e string) { setxattr(t, e+"/xattrchange.conf", "user.foo", "bar") },
			v2:   func(t *testing.T, e string) { wfile(t, e+"/xattrchange.conf", "x\n", 0o644) },
			diff: "",
			check: func(t *testing.T, e string) {
				has(t, e, "xattrchange.conf", `"x\n" 0644 0:0 []`)
			},
		},
		{
			name: "08-symlink-retarget-kept",
			v1:   func(t *testing.T, e string) { symlink(t, "target1", e+"/link1") },
			edit: func(t *testing.T, e string) { symlink(t, "target2", e+"/link1") },
			v2:   func(t *testing.T, e string) { symlink(t, "target1", e+"/link1") },
			diff: "M    link1\n",
			check: func(t *testing.T, e string) {
				has(t, e, "link1", "symlink -> target2 0777 0:0")
			},
		},
		{
			name: "09-local-file-to-dir",
			v1:   func(t *testing.T, e string) { wfile(t, e+"/ftd.conf", "file\n", 0o644) },
			edit: func(t *testing.T, e string) {
				rmrf(t, e+"/ftd.conf")
				mkdir(t, e+"/ftd.conf", 0o755)
				wfile(t, e+"/ftd.conf/inner.conf", "inner\n", 0o644)
			},
			v2:   func(t *testing.T, e string) { wfile(t, e+"/ftd.conf", "file v2\n", 0o644) },
			diff: "M    ftd.conf\n",
			check: func(t *testing.T, e string) {
				has(t, e, "ftd.conf", "dir 0755 0:0")
				has(t, e, "ftd.conf/inner.conf", `"inner\n" 0644`)
			},
		},
		{
			name: "10-dropped-by-new-unmodified",
			v1:   func(t *testing.T, e string) { keep(t, e); wfile(t, e+"/droppedbynew_unmod.conf", "d\n", 0o644) },
			edit: noop,
			v2:   keep,
			diff: "",
			check: func(t *testing.T, e string) {
				absent(t, e, "droppedbynew_unmod.conf")
			},
		},
		{
			name: "11-dropped-by-new-modified",
			v1:   func(t *testing.T, e string) { keep(t, e); wfile(t, e+"/droppedbynew_mod.conf", "d\n", 0o644) },
			edit: func(t *testing.T, e string) { wfile(t, e+"/droppedbynew_mod.conf", "local\n", 0o644) },
			v2:   keep,
			diff: "M    droppedbynew_mod.conf\n",
			check: func(t *testing.T, e string) {
				has(t, e, "droppedbynew_mod.conf", `"local\n" 0644`)
			},
		},
		{
			name: "12-new-default-added",
			v1:   keep,
			edit: noop,
			v2:   func(t *testing.T, e string) { keep(t, e); wfile(t, e+"/newdefault.conf", "new\n", 0o644) },
			diff: "",
			check: func(t *testing.T, e string) {
				has(t, e, "newdefault.conf", `"new\n"`)
			},
		},
		{
			name: "13-local-fifo-skipped",
			v1:   keep,
			edit: func(t *testing.T, e string) { mkfifo(t, e+"/afifo") },
			v2:   keep,
			diff: "A    afifo\n",
			check: func(t *testing.T, e string) {
				absent(t, e, "afifo")
				has(t, e, "keep.conf")
			},
		},
		// Extras.
		{
			name: "14-xattr-carried-with-content-change",
			v1:   func(t *testing.T, e string) { wfile(t, e+"/x.conf", "x\n", 0o644) },
			edit: func(t *testing.T, e string) {
				wfile(t, e+"/x.conf", "local\n", 0o644)
				setxattr(t, e+"/x.conf", "user.foo", "bar")
			},
			v2:   func(t *testing.T, e string) { wfile(t, e+"/x.conf", "x2\n", 0o644) },
			diff: "M    x.conf\n",
			check: func(t *testing.T, e string) {
				has(t, e, "x.conf", `"local\n" 0644 0:0 [user.foo="bar"]`)
			},
		},
		{
			name: "15-dir-mode-change-lost-when-dir-exists",
			v1:   func(t *testing.T, e string) { mkdir(t, e+"/subdir", 0o755); wfile(t, e+"/subdir/f", "f\n", 0o644) },
			edit: func(t *testing.T, e string) { chmod(t, e+"/subdir", 0o750); lchown(t, e+"/subdir", 0, 1000) },
			v2:   func(t *testing.T, e string) { mkdir(t, e+"/subdir", 0o755); wfile(t, e+"/subdir/f", "f2\n", 0o644) },
			diff: "M    subdir\n",
			check: func(t *testing.T, e string) {
				has(t, e, "subdir", "dir 0755 0:0")
				has(t, e, "subdir/f", `"f2\n"`)
			},
		},
		{
			name: "16-parent-attrs-copied-with-changed-child",
			v1:   func(t *testing.T, e string) { mkdir(t, e+"/dir1", 0o755); wfile(t, e+"/dir1/file.conf", "a\n", 0o644) },
			edit: func(t *testing.T, e string) {
				chmod(t, e+"/dir1", 0o700)
				setxattr(t, e+"/dir1", "user.dir", "yes")
				wfile(t, e+"/dir1/file.conf", "local\n", 0o644)
			},
			v2: func(t *testing.T, e string) {
				mkdir(t, e+"/dir1", 0o755)
				wfile(t, e+"/dir1/file.conf", "b\n", 0o644)
				wfile(t, e+"/dir1/other.conf", "o\n", 0o644)
			},
			diff: "M    dir1\nM    dir1/file.conf\n",
			check: func(t *testing.T, e string) {
				has(t, e, "dir1", `dir 0700 0:0 [user.dir="yes"]`)
				has(t, e, "dir1/file.conf", `"local\n"`)
				has(t, e, "dir1/other.conf", `"o\n"`)
			},
		},
		{
			name: "17-deleted-dir-removed-although-new-adds-inside",
			v1:   func(t *testing.T, e string) { keep(t, e); wfile(t, e+"/dir1/a.conf", "a\n", 0o644) },
			edit: func(t *testing.T, e string) { rmrf(t, e+"/dir1") },
			v2: func(t *testing.T, e string) {
				keep(t, e)
				wfile(t, e+"/dir1/a.conf", "a\n", 0o644)
				wfile(t, e+"/dir1/newfile.conf", "n\n", 0o644)
			},
			diff: "D    dir1\n",
			check: func(t *testing.T, e string) {
				absent(t, e, "dir1")
			},
		},
		{
			name: "18-dir-dropped-by-new-recreated-from-modified",
			v1: func(t *testing.T, e string) {
				mkdir(t, e+"/subdir/deep", 0o711)
				wfile(t, e+"/subdir/deep/x.conf", "x\n", 0o644)
				wfile(t, e+"/subdir/deep/y.conf", "y\n", 0o644)
			},
			edit: func(t *testing.T, e string) { wfile(t, e+"/subdir/deep/x.conf", "local\n", 0o644) },
			v2:   func(t *testing.T, e string) { mkdir(t, e+"/subdir", 0o755); wfile(t, e+"/subdir/s.conf", "s\n", 0o644) },
			diff: "M    subdir/deep/x.conf\n",
			check: func(t *testing.T, e string) {
				has(t, e, "subdir/deep", "dir 0711 0:0")
				has(t, e, "subdir/deep/x.conf", `"local\n"`)
				absent(t, e, "subdir/deep/y.conf")
				has(t, e, "subdir/s.conf")
			},
		},
		{
			name:    "19-error-modified-file-newly-defaults-to-dir",
			v1:      func(t *testing.T, e string) { keep(t, e); wfile(t, e+"/x.conf", "x\n", 0o644) },
			edit:    func(t *testing.T, e string) { wfile(t, e+"/x.conf", "local\n", 0o644) },
			v2:      func(t *testing.T, e string) { keep(t, e); wfile(t, e+"/x.conf/inner", "i\n", 0o644) },
			diff:    "M    x.conf\n",
			wantErr: ErrNewDefaultIsDirectory,
			libErr:  "Modified config file newly defaults to directory 'x.conf', cannot merge",
		},
		{
			name:    "20-error-change-below-dir-that-newly-defaults-to-file",
			v1:      func(t *testing.T, e string) { wfile(t, e+"/d/f.conf", "f\n", 0o644) },
			edit:    func(t *testing.T, e string) { wfile(t, e+"/d/f.conf", "local\n", 0o644) },
			v2:      func(t *testing.T, e string) { wfile(t, e+"/d", "now a file\n", 0o644) },
			diff:    "M    d/f.conf\n",
			wantErr: ErrNotDirectory,
			libErr:  "Not a directory",
		},
		{
			name: "21-error-fifo-inside-added-dir",
			v1:   keep,
			edit: func(t *testing.T, e string) {
				mkdir(t, e+"/fdir", 0o755)
				mkfifo(t, e+"/fdir/p")
			},
			v2:      keep,
			diff:    "A    fdir\nA    fdir/p\n",
			wantErr: ErrSpecialFile,
			libErr:  "Cannot copy non-regular/non-symlink file",
		},
		{
			name: "22-hostile-symlinks-copied-not-followed",
			v1:   keep,
			edit: func(t *testing.T, e string) {
				symlink(t, "../../../../../../../etc/shadow", e+"/evil-rel")
				symlink(t, "/etc/passwd", e+"/evil-abs")
				mkdir(t, e+"/evildir", 0o755)
				symlink(t, "/", e+"/evildir/root")
				symlink(t, "..", e+"/evildir/up")
			},
			v2:   keep,
			diff: "A    evil-abs\nA    evil-rel\nA    evildir\nA    evildir/root\nA    evildir/up\n",
			check: func(t *testing.T, e string) {
				has(t, e, "evil-rel", "symlink -> ../../../../../../../etc/shadow")
				has(t, e, "evil-abs", "symlink -> /etc/passwd")
				has(t, e, "evildir/root", "symlink -> / ")
				has(t, e, "evildir/up", "symlink -> .. ")
			},
		},
		{
			name: "23-error-local-dir-to-symlink-while-new-keeps-dir",
			v1:   func(t *testing.T, e string) { wfile(t, e+"/confd/a.conf", "a\n", 0o644) },
			edit: func(t *testing.T, e string) {
				rmrf(t, e+"/confd")
				symlink(t, "/usr/share/confd", e+"/confd")
			},
			v2: func(t *testing.T, e string) {
				wfile(t, e+"/confd/a.conf", "a\n", 0o644)
				wfile(t, e+"/confd/b.conf", "b\n", 0o644)
			},
			diff:    "M    confd\n",
			wantErr: ErrNewDefaultIsDirectory,
			libErr:  "Modified config file newly defaults to directory 'confd', cannot merge",
		},
		{
			name: "24-new-default-symlink-replaced-by-local-file",
			v1:   func(t *testing.T, e string) { wfile(t, e+"/f.conf", "f\n", 0o644) },
			edit: func(t *testing.T, e string) { wfile(t, e+"/f.conf", "local\n", 0o644) },
			v2:   func(t *testing.T, e string) { symlink(t, "/etc/passwd", e+"/f.conf") },
			diff: "M    f.conf\n",
			check: func(t *testing.T, e string) {
				has(t, e, "f.conf", `"local\n" 0644`)
			},
		},
		{
			name: "25-local-symlink-to-dir-hidden-files-owners",
			v1:   func(t *testing.T, e string) { symlink(t, "elsewhere", e+"/ld") },
			edit: func(t *testing.T, e string) {
				rmrf(t, e+"/ld")
				mkdir(t, e+"/ld", 0o750)
				lchown(t, e+"/ld", 1000, 1000)
				wfile(t, e+"/ld/.hidden", "h\n", 0o600)
				lchown(t, e+"/ld/.hidden", 1000, 1000)
				symlink(t, ".hidden", e+"/ld/lnk")
				lchown(t, e+"/ld/lnk", 1000, 1000)
			},
			v2:   func(t *testing.T, e string) { symlink(t, "elsewhere2", e+"/ld") },
			diff: "M    ld\n",
			check: func(t *testing.T, e string) {
				has(t, e, "ld", "dir 0750 1000:1000")
				has(t, e, "ld/.hidden", `"h\n" 0600 1000:1000`)
				has(t, e, "ld/lnk", "symlink -> .hidden 0777 1000:1000")
			},
		},
		{
			name: "26-selinux-and-trusted-xattrs-copied",
			v1: func(t *testing.T, e string) {
				wfile(t, e+"/sel.conf", "s\n", 0o644)
				symlink(t, "a", e+"/sel-link")
			},
			edit: func(t *testing.T, e string) {
				wfile(t, e+"/sel.conf", "local\n", 0o644)
				setxattr(t, e+"/sel.conf", "security.selinux", "system_u:object_r:etc_t:s0")
				symlink(t, "b", e+"/sel-link")
				setxattr(t, e+"/sel-link", "security.selinux", "system_u:object_r:etc_t:s0")
				setxattr(t, e+"/sel-link", "trusted.t", "1")
				mkdir(t, e+"/seldir", 0o755)
				setxattr(t, e+"/seldir", "security.selinux", "system_u:object_r:etc_t:s0")
				wfile(t, e+"/seldir/in.conf", "in\n", 0o644)
				setxattr(t, e+"/seldir/in.conf", "trusted.t", "2")
			},
			v2: func(t *testing.T, e string) {
				wfile(t, e+"/sel.conf", "s2\n", 0o644)
				symlink(t, "a", e+"/sel-link")
			},
			diff: "M    sel-link\nM    sel.conf\nA    seldir\nA    seldir/in.conf\n",
			check: func(t *testing.T, e string) {
				has(t, e, "sel.conf", `"local\n" 0644 0:0 [security.selinux="system_u:object_r:etc_t:s0"]`)
				has(t, e, "sel-link", `symlink -> b 0777 0:0 [security.selinux="system_u:object_r:etc_t:s0" trusted.t="1"]`)
				has(t, e, "seldir", `dir 0755 0:0 [security.selinux="system_u:object_r:etc_t:s0"]`)
				has(t, e, "seldir/in.conf", `"in\n" 0644 0:0 [trusted.t="2"]`)
			},
		},
		{
			// A directory whose own mode changed is "modified"; when the new defaults
			// dropped it, it is copied whole, so its unchanged files come back too.
			name: "27-modified-dir-dropped-by-new-copied-whole",
			v1: func(t *testing.T, e string) {
				keep(t, e)
				mkdir(t, e+"/cd", 0o755)
				wfile(t, e+"/cd/a.conf", "a\n", 0o644)
				wfile(t, e+"/cd/sub/b.conf", "b\n", 0o644)
			},
			edit: func(t *testing.T, e string) { chmod(t, e+"/cd", 0o700) },
			v2:   keep,
			diff: "M    cd\n",
			check: func(t *testing.T, e string) {
				has(t, e, "cd", "dir 0700 0:0")
				has(t, e, "cd/a.conf", `"a\n" 0644`)
				has(t, e, "cd/sub", "dir 0755")
				has(t, e, "cd/sub/b.conf", `"b\n" 0644`)
			},
		},
		{
			// Both added the same directory: the new defaults' directory is kept ("do
			// nothing" for nd itself) and the local files are copied into it one by one;
			// each copy gives nd the local owner and mode again (a parent always gets
			// its attributes from modified), so nd ends up 0700 after all.
			name: "28-added-dir-also-added-by-new",
			v1:   keep,
			edit: func(t *testing.T, e string) {
				mkdir(t, e+"/nd", 0o700)
				wfile(t, e+"/nd/x.conf", "local x\n", 0o644)
				wfile(t, e+"/nd/y.conf", "local y\n", 0o644)
			},
			v2: func(t *testing.T, e string) {
				keep(t, e)
				mkdir(t, e+"/nd", 0o755)
				wfile(t, e+"/nd/x.conf", "new x\n", 0o644)
				wfile(t, e+"/nd/z.conf", "new z\n", 0o644)
			},
			diff: "A    nd\nA    nd/x.conf\nA    nd/y.conf\n",
			check: func(t *testing.T, e string) {
				has(t, e, "nd", "dir 0700")
				has(t, e, "nd/x.conf", `"local x\n"`)
				has(t, e, "nd/y.conf", `"local y\n"`)
				has(t, e, "nd/z.conf", `"new z\n"`)
			},
		},
	}
}
