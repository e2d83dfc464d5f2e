package boot

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"
)

// Kernel is the kernel layout of a deployment tree (spec §2): where its
// boot files are in the tree and the names they get under
// boot/ostree/$SR-$BC/.
type Kernel struct {
	// Version is the kernel version ($KVER): the modules directory name, or
	// the part of a legacy file name after "vmlinuz-".
	Version string
	// Dir is the tree directory holding the files (usr/lib/modules/$KVER,
	// usr/lib/ostree-boot or boot).
	Dir string
	// Files are the boot files, each a source name in Dir and the name it is
	// installed as; the kernel is first.
	Files []BootFile
	// Initramfs, Devicetree are the installed names ("" when absent); Dtb is
	// true when a dtb/ directory is installed.
	Kernel, Initramfs, Devicetree string
	Dtb                           bool
	// Checksum is the boot checksum $BC (64 hex).
	Checksum string
}

// BootFile is one file of a kernel layout.
type BootFile struct {
	Src, Dest string
}

// ModulesDir is where modern trees keep their kernel.
const ModulesDir = "usr/lib/modules"

var legacyCsumRE = regexp.MustCompile(`^(.*)-([0-9a-f]{64})$`)

func isNotExist(err error) bool { return errors.Is(err, fs.ErrNotExist) }

func isRegular(fsys fs.FS, p string) bool {
	fi, err := fs.Stat(fsys, p)
	return err == nil && fi.Mode().IsRegular()
}

// FindKernel finds the kernel of the tree fsys (a deployment root or a
// commit) and computes its boot checksum, as libostree's
// get_kernel_from_tree does. Unlike libostree, which takes the first
// modules directory in readdir order, it refuses a tree with kernels in two
// modules directories, and it refuses a tree without any kernel.
func FindKernel(fsys fs.FS) (*Kernel, error) {
	k, err := FindKernelLayout(fsys)
	if err != nil || k.Checksum != "" {
		return k, err
	}
	if err := k.computeChecksum(fsys); err != nil {
		return nil, err
	}
	return k, nil
}

// FindKernelLayout is FindKernel without computing the boot checksum of a
// modules layout (Checksum is then empty): for a deployment whose checksum
// its bootlink already names.
func FindKernelLayout(fsys fs.FS) (*Kernel, error) {
	mod, err := findModulesKernel(fsys)
	if err != nil {
		return nil, err
	}
	legacy, err := findLegacyKernel(fsys)
	if err != nil {
		return nil, err
	}
	switch {
	case mod == nil && legacy == nil:
		return nil, errors.New("no kernel: the tree has no usr/lib/modules/$KVER/vmlinuz (nor a legacy usr/lib/ostree-boot or boot/vmlinuz-*); a bootable image must ship its kernel there")
	case mod == nil:
		return legacy, nil
	case mod.Initramfs == "" && legacy != nil && legacy.Initramfs != "":
		return legacy, nil
	}
	return mod, nil
}

func findModulesKernel(fsys fs.FS) (*Kernel, error) {
	ents, err := fs.ReadDir(fsys, ModulesDir)
	if err != nil {
		if isNotExist(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("reading %s: %w", ModulesDir, err)
	}
	var found []string
	for _, e := range ents {
		if e.IsDir() && isRegular(fsys, path.Join(ModulesDir, e.Name(), "vmlinuz")) {
			found = append(found, e.Name())
		}
	}
	if len(found) == 0 {
		return nil, nil
	}
	if len(found) > 1 {
		sort.Strings(found)
		return nil, fmt.Errorf("two kernels: %s/{%s}/vmlinuz; a deployment boots one kernel, remove all but one from the image", ModulesDir, strings.Join(found, ","))
	}
	kver := found[0]
	dir := path.Join(ModulesDir, kver)
	k := &Kernel{Version: kver, Dir: dir, Kernel: "vmlinuz-" + kver}
	k.Files = append(k.Files, BootFile{"vmlinuz", k.Kernel})
	for _, n := range []string{"initramfs.img", "initramfs"} {
		if isRegular(fsys, path.Join(dir, n)) {
			k.Initramfs = "initramfs-" + kver + ".img"
			k.Files = append(k.Files, BootFile{n, k.Initramfs})
			break
		}
	}
	if isRegular(fsys, path.Join(dir, "devicetree")) {
		k.Devicetree = "devicetree-" + kver
		k.Files = append(k.Files, BootFile{"devicetree", k.Devicetree})
	} else if fi, err := fs.Stat(fsys, path.Join(dir, "dtb")); err == nil && fi.IsDir() {
		k.Dtb = true
	}
	if isRegular(fsys, path.Join(dir, ".vmlinuz.hmac")) {
		k.Files = append(k.Files, BootFile{".vmlinuz.hmac", ".vmlinuz-" + kver + ".hmac"})
	}
	if isRegular(fsys, path.Join(dir, "aboot.img")) {
		k.Files = append(k.Files, BootFile{"aboot.img", "aboot-" + kver + ".img"})
	}
	return k, nil
}

// computeChecksum is SHA-256 over vmlinuz, initramfs, then the devicetree
// file or every regular file under dtb/ (strcmp order, recursing in place).
func (k *Kernel) computeChecksum(fsys fs.FS) error {
	h := sha256.New()
	add := func(p string) error {
		f, err := fsys.Open(p)
		if err != nil {
			return fmt.Errorf("boot checksum: %w", err)
		}
		defer f.Close()
		if _, err := io.Copy(h, f); err != nil {
			return fmt.Errorf("boot checksum: reading %s: %w", p, err)
		}
		return nil
	}
	for _, f := range k.Files {
		if f.Dest == k.Kernel || f.Dest == k.Initramfs || (k.Devicetree != "" && f.Dest == k.Devicetree) {
			if err := add(path.Join(k.Dir, f.Src)); err != nil {
				return err
			}
		}
	}
	if k.Dtb {
		var walk func(dir string) error
		walk = func(dir string) error {
			ents, err := fs.ReadDir(fsys, dir)
			if err != nil {
				return fmt.Errorf("boot checksum: %w", err)
			}
			sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
			for _, e := range ents {
				p := path.Join(dir, e.Name())
				switch {
				case e.IsDir():
					if err := walk(p); err != nil {
						return err
					}
				case e.Type().IsRegular():
					if err := add(p); err != nil {
						return err
					}
				}
			}
			return nil
		}
		if err := walk(path.Join(k.Dir, "dtb")); err != nil {
			return err
		}
	}
	k.Checksum = hex.EncodeToString(h.Sum(nil))
	return nil
}

// findLegacyKernel reads usr/lib/ostree-boot or boot: vmlinuz-*-$C,
// initramfs-*-$C, devicetree-*-$C with one checksum $C, which is $BC.
func findLegacyKernel(fsys fs.FS) (*Kernel, error) {
	for _, dir := range []string{"usr/lib/ostree-boot", "boot"} {
		ents, err := fs.ReadDir(fsys, dir)
		if err != nil {
			if isNotExist(err) {
				continue
			}
			return nil, fmt.Errorf("reading %s: %w", dir, err)
		}
		k := &Kernel{Dir: dir}
		var files []BootFile
		for _, e := range ents {
			n := e.Name()
			var kind string
			switch {
			case strings.HasPrefix(n, "vmlinuz-"):
				kind = "k"
			case strings.HasPrefix(n, "initramfs-"):
				kind = "i"
			case strings.HasPrefix(n, "devicetree-"):
				kind = "d"
			default:
				continue
			}
			m := legacyCsumRE.FindStringSubmatch(n)
			if m == nil || !e.Type().IsRegular() {
				continue
			}
			if k.Checksum != "" && k.Checksum != m[2] {
				return nil, fmt.Errorf("%s: boot files carry different checksums (%s, %s); rebuild the image's kernel files", dir, k.Checksum, m[2])
			}
			k.Checksum = m[2]
			bf := BootFile{n, m[1]}
			switch kind {
			case "k":
				k.Kernel = m[1]
				k.Version = strings.TrimPrefix(m[1], "vmlinuz-")
				files = append([]BootFile{bf}, files...)
			case "i":
				k.Initramfs = m[1]
				files = append(files, bf)
			case "d":
				k.Devicetree = m[1]
				files = append(files, bf)
			}
		}
		if k.Kernel == "" {
			continue
		}
		k.Files = files
		return k, nil
	}
	return nil, nil
}
