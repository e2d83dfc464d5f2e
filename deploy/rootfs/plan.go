package rootfs

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"strings"
)

// planDevices drops device nodes, sockets and fifos anywhere in the tree:
// an ostree commit holds only files, links and directories.
func planDevices(r *os.Root, p *plan, _ Options) error {
	var walk func(dir string) error
	walk = func(dir string) error {
		names, err := readDirNames(r, dir)
		if err != nil {
			return fmt.Errorf("reading %s: %w", dir, err)
		}
		for _, n := range names {
			name := path.Join(dir, n)
			fi, err := r.Lstat(name)
			if err != nil {
				return err
			}
			m := fi.Mode()
			switch {
			case m.IsDir():
				if err := walk(name); err != nil {
					return err
				}
			case m&fs.ModeDevice != 0:
				p.rep.Devices++
				p.ops = append(p.ops, op{kind: "remove", a: name})
			case m&(fs.ModeNamedPipe|fs.ModeSocket) != 0:
				p.rep.Special++
				p.ops = append(p.ops, op{kind: "remove", a: name})
			}
		}
		return nil
	}
	if err := walk("."); err != nil {
		return err
	}
	if p.rep.Devices > 0 {
		p.problem("%d device nodes (an image holds none; they are dropped)", p.rep.Devices)
	}
	if p.rep.Special > 0 {
		p.problem("%d sockets or fifos (dropped)", p.rep.Special)
	}
	return nil
}

// planKernel moves boot/vmlinuz-$KVER and its initramfs to
// usr/lib/modules/$KVER/{vmlinuz,initramfs.img}.
func planKernel(r *os.Root, p *plan, _ Options) error {
	kvers := map[string]bool{}
	mods, err := readDirNames(r, "usr/lib/modules")
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading usr/lib/modules: %w", err)
	}
	for _, k := range mods {
		if fi, _ := lstat(r, path.Join("usr/lib/modules", k, "vmlinuz")); fi != nil && fi.Mode().IsRegular() {
			kvers[k] = true
		}
	}
	bootNames, err := readDirNames(r, "boot")
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("reading boot: %w", err)
	}
	inBoot := map[string]bool{}
	for _, n := range bootNames {
		if k, ok := strings.CutPrefix(n, "vmlinuz-"); ok {
			if fi, _ := lstat(r, "boot/"+n); fi != nil && fi.Mode().IsRegular() {
				kvers[k] = true
				inBoot[k] = true
			}
		}
	}
	for _, l := range kernelLinks {
		if fi, _ := lstat(r, l); fi != nil && fi.Mode()&fs.ModeSymlink != 0 {
			p.problem("/%s: a kernel link at the top level (removed)", l)
			p.ops = append(p.ops, op{kind: "remove", a: l})
		}
	}
	switch len(kvers) {
	case 0:
		p.refuse("no kernel: neither usr/lib/modules/$KVER/vmlinuz nor boot/vmlinuz-$KVER")
		return nil
	case 1:
	default:
		var ks []string
		for k := range kvers {
			ks = append(ks, k)
		}
		sortStrings(ks)
		p.refuse("two kernels (%s): a deployment boots one kernel, remove all but one", strings.Join(ks, ", "))
		return nil
	}
	var k string
	for k = range kvers {
	}
	p.rep.Kernel = k
	dir := path.Join("usr/lib/modules", k)
	move := func(from, to string) {
		p.problem("kernel: %s is not at %s", from, to)
		p.ops = append(p.ops, op{kind: "rename", a: from, b: to})
		p.rep.Moves = append(p.rep.Moves, from+" -> "+to)
	}
	exists := func(n string) bool { fi, _ := lstat(r, n); return fi != nil }
	if inBoot[k] {
		if exists(dir + "/vmlinuz") {
			p.problem("kernel: boot/vmlinuz-%s duplicates %s/vmlinuz (removed)", k, dir)
			p.ops = append(p.ops, op{kind: "remove", a: "boot/vmlinuz-" + k})
		} else {
			move("boot/vmlinuz-"+k, dir+"/vmlinuz")
		}
	}
	haveInitramfs := exists(dir + "/initramfs.img")
	for _, n := range []string{"initrd.img-" + k, "initramfs-" + k + ".img"} {
		fi, _ := lstat(r, "boot/"+n)
		if fi == nil || !fi.Mode().IsRegular() {
			continue
		}
		if haveInitramfs {
			p.problem("kernel: boot/%s duplicates %s/initramfs.img (removed)", n, dir)
			p.ops = append(p.ops, op{kind: "remove", a: "boot/" + n})
			continue
		}
		move("boot/"+n, dir+"/initramfs.img")
		haveInitramfs = true
	}
	if !haveInitramfs {
		p.refuse("no initramfs for kernel %s: neither %s/initramfs.img nor boot/initrd.img-%s nor boot/initramfs-%s.img (build one, e.g. with dracut, in the tree first)", k, dir, k, k)
	}
	for _, f := range []struct{ from, to string }{{"config-" + k, "config"}, {"System.map-" + k, "System.map"}} {
		if fi, _ := lstat(r, "boot/"+f.from); fi != nil && fi.Mode().IsRegular() && !exists(dir+"/"+f.to) {
			move("boot/"+f.from, dir+"/"+f.to)
		}
	}
	return nil
}

// planEtc moves etc to usr/etc.
func planEtc(r *os.Root, p *plan, _ Options) error {
	etc, err := lstat(r, "etc")
	if err != nil {
		return err
	}
	uetc, err := lstat(r, "usr/etc")
	if err != nil {
		return err
	}
	if etc != nil && !etc.IsDir() {
		p.refuse("/etc is not a directory (%s)", etc.Mode().Type())
		return nil
	}
	if uetc != nil && !uetc.IsDir() {
		p.refuse("/usr/etc is not a directory (%s)", uetc.Mode().Type())
		return nil
	}
	etcEmpty := etc == nil
	if etc != nil {
		if etcEmpty, err = isEmptyDir(r, "etc"); err != nil {
			return err
		}
	}
	uetcEmpty := uetc == nil
	if uetc != nil {
		if uetcEmpty, err = isEmptyDir(r, "usr/etc"); err != nil {
			return err
		}
	}
	switch {
	case !etcEmpty && !uetcEmpty:
		p.refuse("both /etc and /usr/etc are populated: keep the image's configuration in one of them (ostree deploys /etc from usr/etc)")
	case !etcEmpty:
		p.problem("/etc is not in /usr/etc (ostree deploys /etc from usr/etc)")
		p.ops = append(p.ops, op{kind: "rename", a: "etc", b: "usr/etc"})
		p.rep.Moves = append(p.rep.Moves, "etc -> usr/etc")
	case uetcEmpty:
		p.refuse("no configuration: /etc and /usr/etc are both missing or empty")
	case etc != nil:
		p.problem("an empty /etc beside /usr/etc (removed)")
		p.ops = append(p.ops, op{kind: "remove", a: "etc"})
	}
	return nil
}

// declared reads the paths the tree's usr/lib/tmpfiles.d already names.
func declared(r *os.Root) (map[string]bool, error) {
	d := map[string]bool{}
	names, err := readDirNames(r, "usr/lib/tmpfiles.d")
	if os.IsNotExist(err) {
		return d, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading usr/lib/tmpfiles.d: %w", err)
	}
	for _, n := range names {
		if !strings.HasSuffix(n, ".conf") {
			continue
		}
		fi, err := r.Lstat("usr/lib/tmpfiles.d/" + n)
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		b, err := r.ReadFile("usr/lib/tmpfiles.d/" + n)
		if err != nil {
			return nil, fmt.Errorf("reading usr/lib/tmpfiles.d/%s: %w", n, err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && !strings.HasPrefix(f[0], "#") {
				d[unescapePath(f[1])] = true
			}
		}
	}
	return d, nil
}

// varState collects the tmpfiles.d lines (type, path, mode, user, group,
// age "-", then the argument for L and C) of the /var conversion; owners
// are numeric, as the tree's passwd may not be the host's.
type varState struct {
	r        *os.Root
	p        *plan
	declared map[string]bool
	lines    []string
	dirs     int
}

func (v *varState) line(kind, p, mode, uid, gid, arg string) {
	if v.declared[p] {
		return
	}
	v.declared[p] = true
	l := fmt.Sprintf("%s %s %s %s %s -", kind, escapePath(p), mode, uid, gid)
	if arg != "" {
		l += " " + arg
	}
	v.lines = append(v.lines, l)
}

func modeString(m fs.FileMode) string {
	u := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		u |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		u |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		u |= 0o1000
	}
	return fmt.Sprintf("%04o", u)
}

// walk converts the tree directory dir, which the host sees at host.
func (v *varState) walk(dir, host string) error {
	fi, err := v.r.Lstat(dir)
	if err != nil {
		return err
	}
	uid, gid := owner(fi)
	v.line("d", host, modeString(fi.Mode()), fmt.Sprint(uid), fmt.Sprint(gid), "")
	v.dirs++
	names, err := readDirNames(v.r, dir)
	if err != nil {
		return fmt.Errorf("reading %s: %w", dir, err)
	}
	for _, n := range names {
		name, hp := path.Join(dir, n), path.Join(host, n)
		if name == "var/lib/dpkg" {
			continue
		}
		fi, err := v.r.Lstat(name)
		if err != nil {
			return err
		}
		uid, gid := owner(fi)
		m := fi.Mode()
		switch {
		case m.IsDir():
			if err := v.walk(name, hp); err != nil {
				return err
			}
		case m&fs.ModeSymlink != 0:
			t, err := v.r.Readlink(name)
			if err != nil {
				return err
			}
			v.line("L", hp, "-", "-", "-", escapePath(t))
		case m.IsRegular():
			if isTransient(hp) {
				v.p.rep.Dropped = append(v.p.rep.Dropped, hp)
				continue
			}
			if fi.Size() == 0 {
				v.line("f", hp, modeString(m), fmt.Sprint(uid), fmt.Sprint(gid), "")
				continue
			}
			fac := path.Join(FactoryDir, strings.TrimPrefix(hp, "/"))
			if f, _ := lstat(v.r, fac); f != nil {
				v.p.refuse("%s: %s already exists", name, fac)
				continue
			}
			v.p.ops = append(v.p.ops, op{kind: "rename", a: name, b: fac})
			v.p.rep.Factory = append(v.p.rep.Factory, hp)
			v.line("C", hp, "-", "-", "-", "/"+escapePath(fac))
		}
	}
	return nil
}

func isTransient(host string) bool {
	for _, t := range transient {
		if strings.HasPrefix(host, t) {
			return true
		}
	}
	return false
}

// planVar moves the dpkg database under usr, turns the rest of var and
// the directories that become links into var into tmpfiles.d lines, and
// makes the links.
func planVar(r *os.Root, p *plan, _ Options) error {
	decl, err := declared(r)
	if err != nil {
		return err
	}
	v := &varState{r: r, p: p, declared: decl}
	varFi, err := lstat(r, "var")
	if err != nil {
		return err
	}
	if varFi != nil && !varFi.IsDir() {
		p.refuse("/var is not a directory")
		return nil
	}
	dpkg, err := lstat(r, "var/lib/dpkg")
	if err != nil {
		return err
	}
	if dpkg != nil {
		switch {
		case dpkg.IsDir():
			if fi, _ := lstat(r, DpkgDB); fi != nil {
				if empty, _ := isEmptyDir(r, DpkgDB); !empty {
					p.refuse("both var/lib/dpkg and %s exist", DpkgDB)
					return nil
				}
			}
			p.problem("var/lib/dpkg is not in %s (the package database must ship in /usr)", DpkgDB)
			p.ops = append(p.ops, op{kind: "rename", a: "var/lib/dpkg", b: DpkgDB})
			p.rep.Moves = append(p.rep.Moves, "var/lib/dpkg -> "+DpkgDB)
			defer func() { p.ops = append(p.ops, op{kind: "symlink", a: "var/lib/dpkg", b: dpkgLink}) }()
		case dpkg.Mode()&fs.ModeSymlink != 0:
			if t, _ := r.Readlink("var/lib/dpkg"); t != dpkgLink {
				p.refuse("var/lib/dpkg is a link to %q, not to %s", t, dpkgLink)
				return nil
			}
		default:
			p.refuse("var/lib/dpkg is a %s", dpkg.Mode().Type())
			return nil
		}
		v.line("L", "/var/lib/dpkg", "-", "-", "-", dpkgLink)
	}
	if varFi != nil {
		if err := v.walk("var", "/var"); err != nil {
			return err
		}
		// Everything but var/lib/dpkg leaves the tree.
		names, err := readDirNames(r, "var")
		if err != nil {
			return err
		}
		content := 0
		for _, n := range names {
			if n == "lib" {
				continue
			}
			content++
			p.ops = append(p.ops, op{kind: "removeall", a: "var/" + n})
		}
		if libNames, err := readDirNames(r, "var/lib"); err == nil {
			for _, n := range libNames {
				if n != "dpkg" {
					content++
					p.ops = append(p.ops, op{kind: "removeall", a: "var/lib/" + n})
				}
			}
		}
		if content > 0 {
			p.problem("/var has content (%d entries at its top levels): on a host /var is per-host state, so it becomes usr/lib/tmpfiles.d lines", content)
		}
	} else {
		p.ops = append(p.ops, op{kind: "mkdir", a: "var", mode: 0o755})
	}
	for _, l := range varLinks {
		fi, err := lstat(r, l.name)
		if err != nil {
			return err
		}
		switch {
		case fi == nil:
			p.problem("/%s is not a link to %s", l.name, l.target)
			p.ops = append(p.ops, op{kind: "symlink", a: l.name, b: l.target})
		case fi.Mode()&fs.ModeSymlink != 0:
			if t, _ := r.Readlink(l.name); t != l.target {
				p.refuse("/%s is a link to %q, not to %s", l.name, t, l.target)
				continue
			}
		case fi.IsDir():
			if l.varPath == "" {
				if empty, _ := isEmptyDir(r, l.name); !empty {
					p.refuse("/%s has content; it becomes a link to %s (runtime state)", l.name, l.target)
					continue
				}
			} else if err := v.walk(l.name, l.varPath); err != nil {
				return err
			}
			p.problem("/%s is a directory, not a link to %s", l.name, l.target)
			p.ops = append(p.ops, op{kind: "removeall", a: l.name}, op{kind: "symlink", a: l.name, b: l.target})
		default:
			p.refuse("/%s is a %s", l.name, fi.Mode().Type())
			continue
		}
		switch {
		case l.varPath == "":
			v.line("d", "/"+l.target, "0755", "0", "0", "")
		case l.name == "root":
			v.line("d", l.varPath, "0700", "0", "0", "")
		default:
			v.line("d", l.varPath, "0755", "0", "0", "")
		}
	}
	if len(v.lines) > 0 {
		old, err := r.ReadFile(TmpfilesConf)
		if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("reading %s: %w", TmpfilesConf, err)
		}
		if len(old) == 0 {
			old = []byte("# Written by ocitree rootfs prepare: the /var content of the image.\n")
		}
		data := append(old, []byte(strings.Join(v.lines, "\n")+"\n")...)
		p.ops = append(p.ops, op{kind: "write", a: TmpfilesConf, data: data, mode: 0o644})
		p.rep.Tmpfiles = v.lines
		if len(p.rep.Problems) == 0 || !strings.HasPrefix(p.rep.Problems[len(p.rep.Problems)-1], "/var has content") {
			p.problem("%d tmpfiles.d lines missing (for /var and the targets of the links into it)", len(v.lines))
		}
	}
	return nil
}

// planLinks makes sysroot/ and ostree -> sysroot/ostree.
func planLinks(r *os.Root, p *plan, _ Options) error {
	fi, err := lstat(r, "sysroot")
	if err != nil {
		return err
	}
	switch {
	case fi == nil:
		p.problem("no /sysroot directory (where the host's physical root is mounted)")
		p.ops = append(p.ops, op{kind: "mkdir", a: "sysroot", mode: 0o755})
	case !fi.IsDir():
		p.refuse("/sysroot is a %s, not a directory", fi.Mode().Type())
	}
	fi, err = lstat(r, "ostree")
	if err != nil {
		return err
	}
	switch {
	case fi == nil:
		p.problem("/ostree is not a link to sysroot/ostree")
		p.ops = append(p.ops, op{kind: "symlink", a: "ostree", b: "sysroot/ostree"})
	case fi.Mode()&fs.ModeSymlink != 0:
		if t, _ := r.Readlink("ostree"); t != "sysroot/ostree" {
			p.refuse("/ostree is a link to %q, not to sysroot/ostree", t)
		}
	case fi.IsDir():
		if empty, _ := isEmptyDir(r, "ostree"); !empty {
			p.refuse("/ostree is a directory with content; it must be the link sysroot/ostree")
			return nil
		}
		p.problem("/ostree is a directory, not a link to sysroot/ostree")
		p.ops = append(p.ops, op{kind: "remove", a: "ostree"}, op{kind: "symlink", a: "ostree", b: "sysroot/ostree"})
	default:
		p.refuse("/ostree is a %s", fi.Mode().Type())
	}
	return nil
}

// planAPIDirs makes dev, proc, sys, run and tmp empty directories.
func planAPIDirs(r *os.Root, p *plan, _ Options) error {
	for _, d := range apiDirs {
		mode := fs.FileMode(0o755)
		if d == "tmp" {
			mode = 0o777 | fs.ModeSticky
		}
		fi, err := lstat(r, d)
		if err != nil {
			return err
		}
		switch {
		case fi == nil:
			p.problem("no /%s directory", d)
			p.ops = append(p.ops, op{kind: "mkdir", a: d, mode: mode})
			continue
		case !fi.IsDir():
			p.refuse("/%s is a %s, not a directory", d, fi.Mode().Type())
			continue
		}
		names, err := readDirNames(r, d)
		if err != nil {
			return fmt.Errorf("reading %s: %w", d, err)
		}
		if len(names) > 0 {
			p.problem("/%s has content (%d entries; a mount point must be empty)", d, len(names))
			for _, n := range names {
				p.ops = append(p.ops, op{kind: "removeall", a: d + "/" + n})
				p.rep.Dropped = append(p.rep.Dropped, "/"+d+"/"+n)
			}
		}
		if fi.Mode()&(fs.ModePerm|fs.ModeSticky) != mode {
			p.problem("/%s has mode %s, want %s", d, modeString(fi.Mode()), modeString(mode))
			p.ops = append(p.ops, op{kind: "mkdir", a: d, mode: mode})
		}
	}
	return nil
}

// planUnits writes opts.Units and makes opts.Links.
func planUnits(r *os.Root, p *plan, opts Options) error {
	var names []string
	for n := range opts.Units {
		names = append(names, n)
	}
	sortStrings(names)
	for _, n := range names {
		fi, err := lstat(r, n)
		if err != nil {
			return err
		}
		if fi != nil {
			b, err := r.ReadFile(n)
			if err != nil || !bytes.Equal(b, opts.Units[n]) {
				p.refuse("%s exists with other content", n)
			}
			continue
		}
		p.ops = append(p.ops, op{kind: "write", a: n, data: opts.Units[n], mode: 0o644})
		p.rep.Moves = append(p.rep.Moves, "installed "+n)
	}
	names = names[:0]
	for n := range opts.Links {
		names = append(names, n)
	}
	sortStrings(names)
	for _, n := range names {
		fi, err := lstat(r, n)
		if err != nil {
			return err
		}
		if fi != nil {
			if t, err := r.Readlink(n); err != nil || t != opts.Links[n] {
				p.refuse("%s exists and is not a link to %s", n, opts.Links[n])
			}
			continue
		}
		p.ops = append(p.ops, op{kind: "symlink", a: n, b: opts.Links[n]})
		p.rep.Moves = append(p.rep.Moves, "enabled "+n+" -> "+opts.Links[n])
	}
	return nil
}
