// Command fsfloor measures the file-system floor of importing N small files
// into a transactional object store: what any importer of such a layer must
// do at least, with no tar, hashing or tree work. Per file it looks the
// object up (fstatat), creates it in a flat staging directory, writes a few
// bytes and a user.ostreemeta-sized xattr (bare-user), and closes it; then
// it renames every file into objects/XX/ and syncs the file system, as
// libostree and ocitree commit a transaction. bench/rows_hostile.sh uses it
// as the second peer of the hostile-many row.
//
// Usage: fsfloor DIR N (DIR must not exist).
package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: fsfloor DIR N")
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[2])
	if err != nil || n < 1 {
		fmt.Fprintln(os.Stderr, "fsfloor: N must be a positive integer")
		os.Exit(2)
	}
	if err := run(os.Args[1], n); err != nil {
		fmt.Fprintln(os.Stderr, "fsfloor:", err)
		os.Exit(1)
	}
}

func run(dir string, n int) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	for _, d := range []string{"staging", "objects"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	for i := 0; i < 256; i++ {
		if err := os.Mkdir(filepath.Join(dir, "objects", fmt.Sprintf("%02x", i)), 0o755); err != nil {
			return err
		}
	}
	stage, err := unix.Open(filepath.Join(dir, "staging"), unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	objs, err := unix.Open(filepath.Join(dir, "objects"), unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	meta := make([]byte, 40)
	names := make([]string, n)
	for i := range names {
		sum := sha256.Sum256([]byte(strconv.Itoa(i)))
		name := hex.EncodeToString(sum[:]) + ".file"
		names[i] = name
		var st unix.Stat_t
		if err := unix.Fstatat(objs, name[:2]+"/"+name[2:], &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			return fmt.Errorf("%s exists", name)
		}
		fd, err := unix.Openat(stage, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return err
		}
		if _, err := unix.Write(fd, []byte(strconv.Itoa(i)+"\n")); err != nil {
			return err
		}
		if err := unix.Fsetxattr(fd, "user.ostreemeta", meta, 0); err != nil {
			return err
		}
		if err := unix.Close(fd); err != nil {
			return err
		}
	}
	if err := unix.Syncfs(objs); err != nil {
		return err
	}
	for _, name := range names {
		if err := unix.Renameat2(stage, name, objs, name[:2]+"/"+name[2:], unix.RENAME_NOREPLACE); err != nil {
			return err
		}
	}
	return unix.Syncfs(objs)
}
