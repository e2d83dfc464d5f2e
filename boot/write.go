package boot

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Deployment is one deployment as the boot configuration sees it.
type Deployment struct {
	Stateroot string
	// Checksum is the deployed commit (64 hex); Serial its deploy serial.
	Checksum string
	Serial   int
	// Kernel is the deployment's kernel layout (FindKernel on its tree).
	Kernel *Kernel
	// OSName is os-release's PRETTY_NAME (or ID); Version the commit's
	// version metadata ("" when none).
	OSName, Version string
	// Options are the kernel arguments; any ostree= (and, without an
	// initramfs, init=) is replaced when the entry is written.
	Options string
	// Bootserial is set by Write: the index among deployments sharing the
	// boot checksum, in list order.
	Bootserial int
}

// Dir is the deployment root relative to the sysroot.
func (d *Deployment) Dir() string {
	return fmt.Sprintf("ostree/deploy/%s/deploy/%s.%d", d.Stateroot, d.Checksum, d.Serial)
}

// State is the current boot version (which loader.N boot/loader points at)
// and sub-bootversion (which ostree/boot.N.M ostree/boot.N points at).
type State struct {
	Bootversion, Subbootversion int
}

// ReadState reads boot/loader and ostree/boot.N: a missing link means 0; a
// link to anything but loader.0/loader.1 is an error (libostree's rule).
func ReadState(root *os.Root) (State, error) {
	var st State
	t, err := root.Readlink("boot/loader")
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return st, fmt.Errorf("reading boot/loader: %w", err)
	case t == "loader.0":
	case t == "loader.1":
		st.Bootversion = 1
	default:
		return st, fmt.Errorf("boot/loader points to %q, not loader.0 or loader.1; this is not an ostree sysroot or it was edited by hand", t)
	}
	t, err = root.Readlink(fmt.Sprintf("ostree/boot.%d", st.Bootversion))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return st, fmt.Errorf("reading ostree/boot.%d: %w", st.Bootversion, err)
	case strings.HasSuffix(t, ".1"):
		st.Subbootversion = 1
	}
	return st, nil
}

// ReadEntries parses boot/loader.BV/entries/ostree-*.conf, sorted like
// libostree: by version, highest first (strverscmp); entries without a
// version last.
func ReadEntries(root *os.Root, bv int) ([]*Entry, error) {
	dir := fmt.Sprintf("boot/loader.%d/entries", bv)
	f, err := root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", dir, err)
	}
	var out []*Entry
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(n, "ostree-") || !strings.HasSuffix(n, ".conf") {
			continue
		}
		data, err := root.ReadFile(path.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("reading %s/%s: %w", dir, n, err)
		}
		out = append(out, ParseEntry(n, data))
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Get("version"), out[j].Get("version")
		if a == "" || b == "" {
			return a != "" && b == ""
		}
		return Strverscmp(a, b) > 0
	})
	return out, nil
}

var bootlinkRE = regexp.MustCompile(`^/ostree/boot\.([01])/([^/]+)/([^/]+)/([0-9]+)$`)

// Bootlink is what an entry's ostree= argument names.
type Bootlink struct {
	Stateroot, BootChecksum string
	Bootserial              int
	// Target is the deployment directory name ($CSUM.$SERIAL).
	Target string
}

// ResolveBootlink reads the first ostree= argument of e and follows its
// bootlink to the deployment directory name.
func ResolveBootlink(root *os.Root, e *Entry) (*Bootlink, error) {
	v, ok := ParseKargs(e.Get("options")).Get("ostree")
	if !ok {
		return nil, fmt.Errorf("boot entry %s has no ostree= argument", e.Name)
	}
	m := bootlinkRE.FindStringSubmatch(v)
	if m == nil {
		return nil, fmt.Errorf("boot entry %s: ostree=%s is not /ostree/boot.N/STATEROOT/BOOTCSUM/SERIAL", e.Name, v)
	}
	t, err := root.Readlink(strings.TrimPrefix(v, "/"))
	if err != nil {
		return nil, fmt.Errorf("boot entry %s: bootlink %s: %w", e.Name, v, err)
	}
	n, _ := strconv.Atoi(m[4])
	return &Bootlink{Stateroot: m[2], BootChecksum: m[3], Bootserial: n, Target: path.Base(t)}, nil
}

// Strverscmp compares like glibc's strverscmp for the plain version
// strings BLS entries carry: runs of digits compare as numbers.
func Strverscmp(a, b string) int {
	for a != "" && b != "" {
		if isDigit(a[0]) && isDigit(b[0]) {
			i, j := digits(a), digits(b)
			na, nb := strings.TrimLeft(a[:i], "0"), strings.TrimLeft(b[:j], "0")
			if len(na) != len(nb) {
				return cmp(len(na), len(nb))
			}
			if c := strings.Compare(na, nb); c != 0 {
				return c
			}
			a, b = a[i:], b[j:]
			continue
		}
		if a[0] != b[0] {
			return cmp(int(a[0]), int(b[0]))
		}
		a, b = a[1:], b[1:]
	}
	return cmp(len(a), len(b))
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
func digits(s string) int {
	i := 0
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	return i
}
func cmp(a, b int) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// bootconfigsEqual is libostree's rule for "only the order changed": same
// boot checksum, options without ostree=, version and stateroot.
func bootconfigsEqual(a, b *Deployment) bool {
	return a.Kernel.Checksum == b.Kernel.Checksum &&
		ParseKargs(a.Options).WithoutKey("ostree").String() == ParseKargs(b.Options).WithoutKey("ostree").String() &&
		a.Version == b.Version && a.Stateroot == b.Stateroot
}

// NeedsNewBootversion reports whether going from cur to list needs a full
// bootversion swap (new BLS entries) rather than new bootlinks only.
func NeedsNewBootversion(cur, list []*Deployment) bool {
	if len(cur) != len(list) {
		return true
	}
	for i := range cur {
		if !bootconfigsEqual(cur[i], list[i]) {
			return true
		}
	}
	return false
}

// Write makes list (index 0 boots by default) the boot configuration of the
// sysroot root, currently in state st with deployments cur, and returns the
// new state. When only the order of equal boot configurations changes it
// swaps the sub-bootversion (new ostree/boot.N.M, then the ostree/boot.N
// symlink); otherwise it writes loader.N' and boot.N'.M' completely, syncs,
// and renames boot/loader.tmp over boot/loader: that rename is the single
// commit point. Every deployment directory must exist.
//
// With BootloaderGrub2 loader.N'/grub.cfg is written too, before the swap.
func Write(root *os.Root, st State, cur, list []*Deployment, bl Bootloader) (State, error) {
	counters := map[string]int{}
	for _, d := range list {
		d.Bootserial = counters[d.Kernel.Checksum]
		counters[d.Kernel.Checksum]++
	}
	if !NeedsNewBootversion(cur, list) {
		nst := State{st.Bootversion, 1 - st.Subbootversion}
		if err := writeBootlinks(root, nst, list); err != nil {
			return st, err
		}
		if err := fullSync(root); err != nil {
			return st, err
		}
		if err := fpSubbootBootlinksWritten.Hit(); err != nil {
			return st, err
		}
		if err := replaceSymlink(root, fmt.Sprintf("ostree/boot.%d", nst.Bootversion), fmt.Sprintf("boot.%d.%d", nst.Bootversion, nst.Subbootversion)); err != nil {
			return st, err
		}
		if err := fpSubbootSwapped.Hit(); err != nil {
			return nst, err
		}
		return nst, fullSync(root)
	}
	nbv := 1 - st.Bootversion
	nsbv := 0
	if t, err := root.Readlink(fmt.Sprintf("ostree/boot.%d", nbv)); err == nil && strings.HasSuffix(t, ".1") {
		nsbv = 1
	}
	nst := State{nbv, 1 - nsbv}
	entries := fmt.Sprintf("boot/loader.%d/entries", nbv)
	if err := root.RemoveAll(entries); err != nil {
		return st, fmt.Errorf("removing %s: %w", entries, err)
	}
	if err := root.MkdirAll(entries, 0o755); err != nil {
		return st, fmt.Errorf("creating %s: %w", entries, err)
	}
	if err := fpEntriesCleared.Hit(); err != nil {
		return st, err
	}
	multi := false
	for _, d := range list {
		if d.Stateroot != list[0].Stateroot {
			multi = true
		}
	}
	var written []*Entry
	for i, d := range list {
		if err := InstallKernel(root, d); err != nil {
			return st, err
		}
		if err := fpKernelCopied.Hit(); err != nil {
			return st, err
		}
		e := entryFor(d, nst, i, len(list), multi)
		if err := writeFileAtomic(root, path.Join(entries, e.Name), e.Bytes(), 0o644); err != nil {
			return st, err
		}
		if err := fpBLSWritten.Hit(); err != nil {
			return st, err
		}
		written = append(written, e)
	}
	if bl == BootloaderGrub2 {
		cfg := fmt.Sprintf("boot/loader.%d/grub.cfg", nbv)
		if err := writeFileAtomic(root, cfg, GrubConfig(written, GrubPrefix), 0o644); err != nil {
			return st, err
		}
	}
	if err := writeBootlinks(root, nst, list); err != nil {
		return st, err
	}
	if err := fpBootlinksWritten.Hit(); err != nil {
		return st, err
	}
	if err := replaceSymlink(root, fmt.Sprintf("ostree/boot.%d", nbv), fmt.Sprintf("boot.%d.%d", nbv, nst.Subbootversion)); err != nil {
		return st, err
	}
	if err := fpBootlinkSwapped.Hit(); err != nil {
		return st, err
	}
	if err := root.Symlink(".", "boot/boot"); err != nil && !errors.Is(err, fs.ErrExist) {
		return st, fmt.Errorf("creating boot/boot: %w", err)
	}
	if err := root.Remove("boot/loader.tmp"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return st, fmt.Errorf("removing boot/loader.tmp: %w", err)
	}
	if err := root.Symlink(fmt.Sprintf("loader.%d", nbv), "boot/loader.tmp"); err != nil {
		return st, fmt.Errorf("creating boot/loader.tmp: %w", err)
	}
	if err := fullSync(root); err != nil {
		return st, err
	}
	if err := fpLoaderTmp.Hit(); err != nil {
		return st, err
	}
	if err := root.Rename("boot/loader.tmp", "boot/loader"); err != nil {
		return st, fmt.Errorf("switching boot/loader to loader.%d (the commit point): %w", nbv, err)
	}
	if err := fpLoaderSwapped.Hit(); err != nil {
		return nst, err
	}
	if err := fullSync(root); err != nil {
		return nst, err
	}
	return nst, nil
}

// entryFor builds the BLS entry of list[i] (libostree 2022.7: file
// ostree-$K-$SR.conf with K = N - i; title, version, options, devicetree,
// linux, initrd, then fdtdir).
func entryFor(d *Deployment, st State, i, n int, multi bool) *Entry {
	k := n - i
	title := d.OSName
	if d.Version != "" && !strings.Contains(d.OSName, d.Version) {
		title += " " + d.Version
	}
	title += " (ostree"
	if multi {
		title += ":" + d.Stateroot
	}
	title += ":" + strconv.Itoa(i) + ")"
	bootpath := fmt.Sprintf("/ostree/boot.%d/%s/%s/%d", st.Bootversion, d.Stateroot, d.Kernel.Checksum, d.Bootserial)
	ka := ParseKargs(d.Options)
	if d.Kernel.Initramfs == "" {
		ka.Replace("init=" + bootpath + "/usr/lib/ostree/ostree-prepare-root")
	}
	ka.Replace("ostree=" + bootpath)
	bootdir := fmt.Sprintf("/ostree/%s-%s/", d.Stateroot, d.Kernel.Checksum)
	e := &Entry{Name: fmt.Sprintf("ostree-%d-%s.conf", k, d.Stateroot)}
	add := func(k, v string) { e.Lines = append(e.Lines, [2]string{k, v}) }
	add("title", title)
	add("version", strconv.Itoa(k))
	add("options", ka.String())
	if d.Kernel.Devicetree != "" {
		add("devicetree", bootdir+d.Kernel.Devicetree)
	}
	add("linux", bootdir+d.Kernel.Kernel)
	if d.Kernel.Initramfs != "" {
		add("initrd", bootdir+d.Kernel.Initramfs)
	}
	if d.Kernel.Dtb {
		add("fdtdir", bootdir+"dtb")
	}
	return e
}

// writeBootlinks creates ostree/boot.BV.SBV/$SR/$BC/$bootserial ->
// ../../../deploy/$SR/deploy/$CSUM.$SERIAL for every deployment.
func writeBootlinks(root *os.Root, st State, list []*Deployment) error {
	dir := fmt.Sprintf("ostree/boot.%d.%d", st.Bootversion, st.Subbootversion)
	if err := root.RemoveAll(dir); err != nil {
		return fmt.Errorf("removing %s: %w", dir, err)
	}
	if err := root.Mkdir(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	for _, d := range list {
		sub := path.Join(dir, d.Stateroot, d.Kernel.Checksum)
		if err := root.MkdirAll(sub, 0o755); err != nil {
			return fmt.Errorf("creating %s: %w", sub, err)
		}
		target := fmt.Sprintf("../../../deploy/%s/deploy/%s.%d", d.Stateroot, d.Checksum, d.Serial)
		if err := root.Symlink(target, path.Join(sub, strconv.Itoa(d.Bootserial))); err != nil {
			return fmt.Errorf("creating bootlink %s/%d: %w", sub, d.Bootserial, err)
		}
	}
	return nil
}

// InstallKernel puts the kernel files of d under boot/ostree/$SR-$BC/,
// hardlinked from the deployment (copied across filesystems); files that
// exist already are kept, as libostree does.
func InstallKernel(root *os.Root, d *Deployment) error {
	bdir := fmt.Sprintf("boot/ostree/%s-%s", d.Stateroot, d.Kernel.Checksum)
	if err := root.MkdirAll(bdir, 0o775); err != nil {
		return fmt.Errorf("creating %s: %w", bdir, err)
	}
	src := path.Join(d.Dir(), d.Kernel.Dir)
	for _, f := range d.Kernel.Files {
		if err := linkOrCopy(root, path.Join(src, f.Src), path.Join(bdir, f.Dest)); err != nil {
			return err
		}
	}
	if d.Kernel.Dtb {
		if _, err := root.Lstat(path.Join(bdir, "dtb")); err == nil {
			return nil
		}
		if err := copyTree(root, path.Join(src, "dtb"), path.Join(bdir, "dtb")); err != nil {
			return err
		}
	}
	return nil
}

func linkOrCopy(root *os.Root, src, dst string) error {
	if _, err := root.Lstat(dst); err == nil {
		return nil
	}
	err := root.Link(src, dst)
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EXDEV) && !errors.Is(err, unix.EMLINK) && !errors.Is(err, unix.EPERM) {
		return fmt.Errorf("installing %s: %w", dst, err)
	}
	return copyFile(root, src, dst)
}

// copyFile copies a regular file with owner and mode, via a temp file.
func copyFile(root *os.Root, src, dst string) error {
	in, err := root.OpenFile(src, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return fmt.Errorf("installing %s: %w", dst, err)
	}
	defer in.Close()
	var st unix.Stat_t
	if err := unix.Fstat(int(in.Fd()), &st); err != nil {
		return err
	}
	tmp := dst + ".tmp"
	out, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("installing %s: %w", dst, err)
	}
	_, err = io.Copy(out, in)
	if err == nil {
		err = out.Chown(int(st.Uid), int(st.Gid))
	}
	if err == nil {
		err = out.Chmod(fs.FileMode(st.Mode & 0o7777))
	}
	if err == nil {
		err = unix.Fdatasync(int(out.Fd()))
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, dst)
	}
	if err != nil {
		root.Remove(tmp)
		return fmt.Errorf("installing %s: %w", dst, err)
	}
	return nil
}

func copyTree(root *os.Root, src, dst string) error {
	if err := root.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	f, err := root.Open(src)
	if err != nil {
		return err
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range ents {
		s, d := path.Join(src, e.Name()), path.Join(dst, e.Name())
		switch {
		case e.IsDir():
			err = copyTree(root, s, d)
		case e.Type().IsRegular():
			err = copyFile(root, s, d)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// writeFileAtomic writes data to name through name.tmp and a rename.
func writeFileAtomic(root *os.Root, name string, data []byte, perm fs.FileMode) error {
	tmp := name + ".tmp"
	f, err := root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|unix.O_NOFOLLOW, perm)
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = root.Rename(tmp, name)
	}
	if err != nil {
		root.Remove(tmp)
		return fmt.Errorf("writing %s: %w", name, err)
	}
	return nil
}

// replaceSymlink points name at target atomically (name.tmp, rename).
func replaceSymlink(root *os.Root, name, target string) error {
	tmp := name + ".tmp"
	if err := root.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", tmp, err)
	}
	if err := root.Symlink(target, tmp); err != nil {
		return fmt.Errorf("creating %s: %w", tmp, err)
	}
	if err := root.Rename(tmp, name); err != nil {
		return fmt.Errorf("switching %s to %s: %w", name, target, err)
	}
	return nil
}

// fullSync flushes the filesystems of the sysroot and of boot/ (syncfs on
// each; libostree 2022.7 also freezes /boot and calls sync(), which a tool
// that may run on a shared build host does not do).
//
// boot/ is synced only when it is another filesystem: a second syncfs of
// the same one would wait for the journal again for nothing.
func fullSync(root *os.Root) error {
	var first uint64
	for i, p := range []string{".", "boot"} {
		f, err := root.Open(p)
		if err != nil {
			return fmt.Errorf("sync %s: %w", p, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			f.Close()
			return fmt.Errorf("sync %s: %w", p, err)
		}
		if i == 1 && st.Dev == first {
			f.Close()
			break
		}
		first = st.Dev
		err = unix.Syncfs(int(f.Fd()))
		f.Close()
		if err != nil {
			return fmt.Errorf("syncfs %s: %w", p, err)
		}
	}
	return nil
}

// CleanOtherBootversions removes what the boot version not in use left:
// boot/loader.N', ostree/boot.N', ostree/boot.N'.{0,1} and the unused
// ostree/boot.N.M' (libostree's cleanup_other_bootversions).
func CleanOtherBootversions(root *os.Root, st State) error {
	o := 1 - st.Bootversion
	for _, p := range []string{
		fmt.Sprintf("boot/loader.%d", o),
		fmt.Sprintf("ostree/boot.%d", o),
		fmt.Sprintf("ostree/boot.%d.0", o),
		fmt.Sprintf("ostree/boot.%d.1", o),
		fmt.Sprintf("ostree/boot.%d.%d", st.Bootversion, 1-st.Subbootversion),
	} {
		if err := root.RemoveAll(p); err != nil {
			return fmt.Errorf("removing %s: %w", p, err)
		}
	}
	return nil
}

var bootDirRE = regexp.MustCompile(`^.+-([0-9a-f]{64})$`)

// CleanBootDirs removes every boot/ostree/<x>-<64 hex> directory whose
// checksum is not in keep (libostree's cleanup_bootfs).
func CleanBootDirs(root *os.Root, keep map[string]bool) error {
	f, err := root.Open("boot/ostree")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ents, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, e := range ents {
		m := bootDirRE.FindStringSubmatch(e.Name())
		if !e.IsDir() || m == nil || keep[m[1]] {
			continue
		}
		if err := fpCleanupBootDir.Hit(); err != nil {
			return err
		}
		if err := root.RemoveAll("boot/ostree/" + e.Name()); err != nil {
			return fmt.Errorf("removing boot/ostree/%s: %w", e.Name(), err)
		}
	}
	return nil
}
