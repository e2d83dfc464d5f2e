package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// goodFiles writes a handful of valid files so that a refused commit has had
// the chance to write some objects before it meets the bad entry.
func goodFiles(t *testing.T, dir string) {
	t.Helper()
	for i := 0; i < 40; i++ {
		p := filepath.Join(dir, fmt.Sprintf("a%02d", i%4), fmt.Sprintf("f%02d", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(strings.Repeat(fmt.Sprintf("line %d\n", i), i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
}

// badEntries are source trees that must be refused: each function adds one
// entry (in a sub-directory "z/", after the good files) and returns a
// fragment of its name that the error message must contain.
var badEntries = []struct {
	name  string
	add   func(dir string) error
	inTar bool // also representable in a tar stream
	want  string
}{
	{"char-device", func(d string) error {
		return unix.Mknod(filepath.Join(d, "z", "devnull"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
	}, true, "devnull"},
	{"block-device", func(d string) error {
		return unix.Mknod(filepath.Join(d, "z", "blockdev"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0)))
	}, true, "blockdev"},
	{"fifo", func(d string) error { return unix.Mkfifo(filepath.Join(d, "z", "pipe"), 0o644) }, true, "pipe"},
	{"socket", func(d string) error {
		fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Bind(fd, &unix.SockaddrUnix{Name: filepath.Join(d, "z", "sock")})
	}, false, "sock"},
	{"non-utf8-symlink-target", func(d string) error {
		return os.Symlink("target-\xff\xfe-invalid", filepath.Join(d, "z", "badlink"))
	}, true, "badlink"},
	{"non-utf8-filename", func(d string) error {
		return os.WriteFile(filepath.Join(d, "z", "bad-\xff-name"), []byte("x"), 0o644)
	}, true, "bad-"},
}

// TestCommitRefusesBadInput: a device node, FIFO, socket, non-UTF-8 symlink
// target or non-UTF-8 file name in the source is refused with an error that
// names the entry; no ref is written and the repository stays valid.
func TestCommitRefusesBadInput(t *testing.T) {
	for _, bad := range badEntries {
		for _, viaTar := range []bool{false, true} {
			if viaTar && !bad.inTar {
				continue
			}
			name := bad.name + "/dir"
			if viaTar {
				name = bad.name + "/tar"
			}
			t.Run(name, func(t *testing.T) {
				setup(t)
				t.Parallel()
				dir := workDir(t)
				src := filepath.Join(dir, "src")
				goodFiles(t, src)
				if err := os.MkdirAll(filepath.Join(src, "z"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := bad.add(src); err != nil {
					t.Fatal(err)
				}
				mode := "bare-user"
				if viaTar {
					mode = "archive"
				}
				repo := filepath.Join(dir, "repo")
				ocitreeInit(t, repo, mode)
				args := commitOpts{subject: "bad"}.ocitreeArgs(repo, "test/bad")
				var r result
				if viaTar {
					r = ocitree(t, append(args, "--tar", tarOf(t, src))...)
				} else {
					r = ocitree(t, append(args, src)...)
				}
				if r.code == 0 {
					t.Errorf("commit of a tree with a %s succeeded:\n%s", bad.name, r)
				} else if r.code != 1 {
					t.Errorf("commit of a tree with a %s: exit %d, want 1:\n%s", bad.name, r.code, r)
				}
				if !strings.Contains(r.stderr, bad.want) {
					t.Errorf("the error does not name the bad entry (%q):\n%s", bad.want, r)
				}
				if strings.TrimSpace(r.stdout) != "" {
					t.Errorf("a refused commit printed on stdout: %q", r.stdout)
				}
				assertNoRef(t, repo, "test/bad")
				ostreeFsck(t, repo)
			})
		}
	}
}

// assertNoRef checks that branch does not exist, by the file, by ocitree and
// by ostree.
func assertNoRef(t *testing.T, repo, branch string) {
	t.Helper()
	if _, err := os.Lstat(refFile(repo, branch)); !os.IsNotExist(err) {
		t.Errorf("ref file for %s exists after a failed commit (%v)", branch, err)
	}
	if out := must(t, ocitree(t, "repo", "refs", "--repo", repo)); strings.Contains(out, branch) {
		t.Errorf("ocitree repo refs lists %s after a failed commit: %q", branch, out)
	}
	if out := must(t, ostree(t, "refs", "--repo="+repo)); strings.Contains(out, branch) {
		t.Errorf("ostree refs lists %s after a failed commit: %q", branch, out)
	}
}

// TestFsckReportsCorruption corrupts objects of a repository ocitree wrote
// and expects `ocitree repo fsck` to exit 1 naming each bad object (its path
// and expected checksum, and the actual checksum where the test can compute
// it). The real `ostree fsck` must agree that the repository is corrupt.
func TestFsckReportsCorruption(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			setup(t)
			t.Parallel()
			src := tree(t, "edge")
			dir := workDir(t)
			repo := filepath.Join(dir, "repo")
			ocitreeInit(t, repo, mode)
			csum := ocitreeCommit(t, repo, "test/main", src, commitOpts{subject: "fsck"})
			must(t, ocitree(t, "repo", "fsck", "--repo", repo))
			ls := ostreeLs(t, repo, csum)
			ext := contentExt(mode)

			type bad struct{ path, expected, actual string }
			var bads []bad

			// 1. Content of hello.txt ("hello\n" -> "Jello\n").
			hello := lsChecksum(t, ls, "/hello.txt")
			helloObj := objectPath(repo, hello, ext)
			if mode == "archive" {
				// Replace the .filez by the one of script.sh: a valid object
				// whose checksum is known.
				script := lsChecksum(t, ls, "/script.sh")
				data, err := os.ReadFile(objectPath(repo, script, ext))
				if err != nil {
					t.Fatal(err)
				}
				overwrite(t, helloObj, data, 0)
				bads = append(bads, bad{helloObj, hello, script})
			} else {
				overwrite(t, helloObj, []byte("J"), 0)
				bads = append(bads, bad{helloObj, hello, checksumOf(t, dir, "Jello\n")})
			}

			// 2. A second content object: flip the last byte of large.bin's
			// object (for archive, part of the deflate stream or its end).
			large := lsChecksum(t, ls, "/large.bin")
			largeObj := objectPath(repo, large, ext)
			if mode != "archive" {
				st, err := os.Stat(largeObj)
				if err != nil {
					t.Fatal(err)
				}
				data := make([]byte, 1)
				f, err := os.Open(largeObj)
				if err != nil {
					t.Fatal(err)
				}
				_, err = f.ReadAt(data, st.Size()-1)
				f.Close()
				if err != nil {
					t.Fatal(err)
				}
				overwrite(t, largeObj, []byte{data[0] ^ 0xff}, st.Size()-1)
			} else {
				// Set the mode in the archive header to 0100755: a wellformed
				// object with another checksum.
				overwrite(t, largeObj, []byte{0x00, 0x00, 0x81, 0xed}, 24)
			}
			bads = append(bads, bad{largeObj, large, ""})

			// 3. A dirtree object: flip a byte inside it.
			linksTree := lsDirtree(t, ls, "/links")
			treeObj := objectPath(repo, linksTree, "dirtree")
			overwrite(t, treeObj, []byte{'L'}, 0)
			bads = append(bads, bad{treeObj, linksTree, ""})

			r := ocitree(t, "repo", "fsck", "--repo", repo)
			if r.code != 1 {
				t.Errorf("ocitree repo fsck of a corrupted repo: exit %d, want 1\n%s", r.code, r)
			}
			out := r.stdout + r.stderr
			for _, b := range bads {
				rel, _ := filepath.Rel(repo, b.path)
				if !strings.Contains(out, rel) {
					t.Errorf("fsck output does not name the corrupted object %s", rel)
				}
				if !strings.Contains(out, b.expected) {
					t.Errorf("fsck output does not give the expected checksum %s of %s", b.expected, rel)
				}
				if b.actual != "" && !strings.Contains(out, b.actual) {
					t.Errorf("fsck output does not give the actual checksum %s of %s", b.actual, rel)
				}
			}
			if t.Failed() {
				t.Logf("ocitree repo fsck:\n%s", r)
			}
			if o := ostree(t, "fsck", "--repo="+repo); o.code == 0 {
				t.Errorf("sanity: the real ostree fsck accepts the corrupted repo:\n%s", o)
			}
		})
	}
}

// TestFsckReportsMissingObject deletes a content object; fsck must fail and
// name it.
func TestFsckReportsMissingObject(t *testing.T) {
	setup(t)
	t.Parallel()
	dir := workDir(t)
	repo := filepath.Join(dir, "repo")
	ocitreeInit(t, repo, "bare-user")
	csum := ocitreeCommit(t, repo, "test/main", tree(t, "kernel"), commitOpts{subject: "missing"})
	obj := lsChecksum(t, ostreeLs(t, repo, csum), "/usr/lib/os-release")
	if err := os.Remove(objectPath(repo, obj, "file")); err != nil {
		t.Fatal(err)
	}
	r := ocitree(t, "repo", "fsck", "--repo", repo)
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, obj) {
		t.Errorf("ocitree repo fsck with a missing object %s: want exit 1 naming it\n%s", obj, r)
	}
}

// TestFsckReportsCorruptCommit flips a byte of a commit object's subject.
func TestFsckReportsCorruptCommit(t *testing.T) {
	setup(t)
	t.Parallel()
	repo := filepath.Join(workDir(t), "repo")
	ocitreeInit(t, repo, "archive")
	csum := ocitreeCommit(t, repo, "test/main", tree(t, "kernel"), commitOpts{subject: "Subject to corrupt"})
	obj := objectPath(repo, csum, "commit")
	data, err := os.ReadFile(obj)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(data), "Subject")
	if i < 0 {
		t.Fatalf("subject not found in %s", obj)
	}
	overwrite(t, obj, []byte{'s'}, int64(i))
	r := ocitree(t, "repo", "fsck", "--repo", repo)
	rel, _ := filepath.Rel(repo, obj)
	if r.code != 1 || !strings.Contains(r.stdout+r.stderr, csum) || !strings.Contains(r.stdout+r.stderr, rel) {
		t.Errorf("ocitree repo fsck with a corrupt commit: want exit 1 naming %s and %s\n%s", rel, csum, r)
	}
	if o := ostree(t, "fsck", "--repo="+repo); o.code == 0 {
		t.Errorf("sanity: ostree fsck accepts the corrupt commit:\n%s", o)
	}
}

// overwrite writes data at off into an existing object file in place. It
// refuses files with other hard links, so that a source tree is never
// touched through the repository.
func overwrite(t *testing.T, path string, data []byte, off int64) {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		t.Fatal(err)
	}
	if st.Nlink != 1 {
		t.Fatalf("%s has %d links; refusing to corrupt it in place", path, st.Nlink)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if off == 0 && len(data) > 1 {
		if err := f.Truncate(0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WriteAt(data, off); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// checksumOf is the ostree content checksum of a 0644 root-owned regular
// file with content, as computed by the real `ostree checksum`.
func checksumOf(t *testing.T, dir, content string) string {
	t.Helper()
	p := filepath.Join(dir, "checksum-input")
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	out := strings.TrimSpace(must(t, ostree(t, "checksum", p)))
	os.Remove(p)
	return out
}

// lsDirtree finds the dirtree checksum of directory path in `ostree ls -R -C`.
func lsDirtree(t *testing.T, ls, path string) string {
	t.Helper()
	for _, line := range strings.Split(ls, "\n") {
		f := strings.Fields(line)
		if len(f) >= 7 && strings.HasPrefix(f[0], "d") && f[len(f)-1] == path {
			return f[4]
		}
	}
	t.Fatalf("directory %s not found in ostree ls output", path)
	return ""
}
