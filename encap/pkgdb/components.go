package pkgdb

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"

	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/ostree"
)

// Names of the synthetic components Attribute creates.
const (
	// KernelComponent holds usr/lib/modules/*/vmlinuz and initramfs.img.
	KernelComponent = "kernel"
	// UnpackagedComponent holds the objects no package owns.
	UnpackagedComponent = "unpackaged"
	// PackageDatabaseComponent holds the package manager's own database
	// (dpkg's status, rpmdb.sqlite): it changes with every package update,
	// so it gets a small component of its own instead of dragging the
	// (large) unpackaged layer into every update.
	PackageDatabaseComponent = "package-database"
)

// AttributeOptions control Attribute.
type AttributeOptions struct {
	// ContentMeta is the path of a --contentmeta JSON file (gzip allowed).
	// ostree-ext's RawMeta form (an object with "layers" and "mapping")
	// replaces every other source; rpm-ostree's sized component list (an
	// array of {identifier,name,srcid,change_time_offset,change_frequency,
	// size}) carries no object mapping, so it only adds identifier, srcid and
	// change data to the components found in the commit with the same name.
	ContentMeta string
	// Warn receives notes that do not stop attribution (an unsupported
	// package database, contentmeta entries that match nothing). Nil drops
	// them.
	Warn func(msg string)
}

func (o *AttributeOptions) warnf(format string, args ...any) {
	if o.Warn != nil {
		o.Warn(fmt.Sprintf(format, args...))
	}
}

// Attribute groups the content objects of commit into components.
//
// Sources, first match wins:
//  1. opts.ContentMeta in ostree-ext's RawMeta form: one Exclusive component
//     per listed layer, in file order; objects the mapping misses go to
//     "unpackaged" (ostree-ext would fail).
//  2. a dpkg database in the commit (var/lib/dpkg, or usr/share/dpkg/database,
//     usr/lib/sysimage/dpkg): one component per installed package from
//     info/*.list and status; see attributeDpkg.
//  3. an rpm database rpmdb.sqlite (usr/lib/sysimage/rpm, usr/share/rpm,
//     var/lib/rpm): one component per installed package; see attributeRpm.
//  4. otherwise directory groups (see PathGroup). An older rpm database
//     (Berkeley DB Packages, ndb Packages.db), or an rpmdb.sqlite that
//     cannot be read, is reported through opts.Warn.
//
// In 2 to 4 the kernel and initramfs (usr/lib/modules/*/vmlinuz,
// usr/lib/modules/*/initramfs.img, usr/lib/ostree-boot/vmlinuz-*,
// initramfs-*) form the Exclusive component "kernel", whoever owns them.
// An object at several paths owned by different packages goes to the owner
// whose name sorts first (then identifier), as rpm-ostree does; objects no
// package owns form "unpackaged". Components without objects are left out,
// except contentmeta layers. The result is sorted by name, then identifier.
func Attribute(repo *ostree.Repo, commit ostree.Checksum, objs []ostree.ContentObject, opts AttributeOptions) ([]pack.Component, error) {
	ix := newTreeIndex(repo, objs)
	var enrich []pack.Component
	if opts.ContentMeta != "" {
		cm, err := ReadContentMeta(opts.ContentMeta)
		if err != nil {
			return nil, err
		}
		if cm.Raw != nil {
			return attributeRawMeta(cm.Raw, objs, &opts)
		}
		enrich = cm.Sized
	}
	var (
		comps []pack.Component
		err   error
	)
	if admin := findDpkgAdmin(ix); admin != "" {
		comps, err = attributeDpkg(ix, admin, objs, &opts)
	} else if db := findRpmdb(ix); strings.HasSuffix(db, "/rpmdb.sqlite") {
		comps, err = attributeRpm(ix, db, objs, &opts)
	} else {
		if db != "" {
			opts.warnf("%s: rpm database not supported yet; falling back to path-based grouping", db)
		}
		comps = attributePaths(objs)
	}
	if err != nil {
		return nil, fmt.Errorf("attribute objects of %s: %w", commit, err)
	}
	if enrich != nil {
		enrichComponents(comps, enrich, &opts)
		slices.SortFunc(comps, func(a, b pack.Component) int { return pack.CompareComponents(&a, &b) })
	}
	return comps, nil
}

// ownership collects which components claim which objects and then gives
// every object to exactly one of them.
type ownership struct {
	comps  []pack.Component
	byName map[string]int // identifier -> index
	claims map[ostree.Checksum][]int
}

func newOwnership() *ownership {
	return &ownership{byName: make(map[string]int), claims: make(map[ostree.Checksum][]int)}
}

// component returns the index of the component with c's identifier, adding c
// when it is new.
func (o *ownership) component(c pack.Component) int {
	if i, ok := o.byName[c.ID()]; ok {
		return i
	}
	o.comps = append(o.comps, c)
	o.byName[c.ID()] = len(o.comps) - 1
	return len(o.comps) - 1
}

// claimDatabase gives every object below dir (a package database) that no
// package claims to the PackageDatabaseComponent.
func (o *ownership) claimDatabase(ix *treeIndex, dir string) {
	db := -1
	for _, p := range slices.Sorted(maps.Keys(ix.files)) {
		c := ix.files[p]
		if !strings.HasPrefix(p, dir+"/") || len(o.claims[c]) > 0 {
			continue
		}
		if db < 0 {
			db = o.component(pack.Component{Name: PackageDatabaseComponent, ChangeFrequency: pack.MaxFrequency, ChangeTimeOffset: pack.MaxFrequency})
		}
		o.claim(db, c)
	}
}

func (o *ownership) claim(comp int, c ostree.Checksum) {
	cl := o.claims[c]
	if !slices.Contains(cl, comp) {
		o.claims[c] = append(cl, comp)
	}
}

// assign gives each object to the kernel when it is at a kernel path, else to
// the claiming component that sorts first, else to unpackaged. It drops
// components left without objects and returns the rest sorted.
func (o *ownership) assign(objs []ostree.ContentObject, separateKernel bool) []pack.Component {
	kernel, unpackaged := -1, -1
	var kvers []string
	for _, obj := range objs {
		owner := -1
		if kv, ok := kernelObject(obj.Paths); ok && separateKernel {
			if kernel < 0 {
				kernel = o.component(pack.Component{Name: KernelComponent, ChangeFrequency: pack.MaxFrequency,
					ChangeTimeOffset: pack.MaxFrequency, Exclusive: true})
			}
			if kv != "" && !slices.Contains(kvers, kv) {
				kvers = append(kvers, kv)
			}
			owner = kernel
		} else {
			for _, ci := range o.claims[obj.Checksum] {
				if owner < 0 || pack.CompareComponents(&o.comps[ci], &o.comps[owner]) < 0 {
					owner = ci
				}
			}
		}
		if owner < 0 {
			if unpackaged < 0 {
				unpackaged = o.component(pack.Component{Name: UnpackagedComponent,
					ChangeFrequency: pack.MaxFrequency, ChangeTimeOffset: pack.MaxFrequency})
			}
			owner = unpackaged
		}
		c := &o.comps[owner]
		c.Objects = append(c.Objects, obj.Checksum)
		c.Size += obj.Size
	}
	if kernel >= 0 {
		slices.Sort(kvers)
		id := KernelComponent
		if len(kvers) > 0 {
			id += " (" + strings.Join(kvers, ", ") + ")"
		}
		o.comps[kernel].Identifier, o.comps[kernel].SrcID = id, id
	}
	var out []pack.Component
	for _, c := range o.comps {
		if len(c.Objects) == 0 {
			continue
		}
		slices.SortFunc(c.Objects, ostree.CompareChecksum)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b pack.Component) int { return pack.CompareComponents(&a, &b) })
	return out
}

// kernelObject reports whether one of paths is a kernel or initramfs image,
// and the kernel version it belongs to.
func kernelObject(paths []string) (string, bool) {
	for _, p := range paths {
		dir, base := path.Split(p)
		switch {
		case strings.HasPrefix(dir, "/usr/lib/modules/") && (base == "vmlinuz" || base == "initramfs.img"):
			v := strings.TrimSuffix(strings.TrimPrefix(dir, "/usr/lib/modules/"), "/")
			if v != "" && !strings.Contains(v, "/") {
				return v, true
			}
		case dir == "/usr/lib/ostree-boot/":
			for _, pre := range []string{"vmlinuz-", "initramfs-"} {
				if v, ok := strings.CutPrefix(base, pre); ok {
					// vmlinuz-VERSION-BOOTCSUM: keep it whole, it is only a label.
					return strings.TrimSuffix(v, ".img"), true
				}
			}
		}
	}
	return "", false
}

// findRpmdb returns the path of an rpm database in the commit, or "".
func findRpmdb(ix *treeIndex) string {
	for _, dir := range []string{"/usr/lib/sysimage/rpm", "/usr/share/rpm", "/var/lib/rpm"} {
		for _, f := range []string{"rpmdb.sqlite", "Packages", "Packages.db"} {
			if p := dir + "/" + f; ix.isFile(p) {
				return p
			}
		}
	}
	return ""
}

// PathGroup is the component a path belongs to when there is no package
// database: a directory at a fixed depth, so names do not depend on sizes and
// stay the same from build to build.
//
//   - /usr/A/B/... -> "/usr/A/B" (e.g. /usr/lib/x86_64-linux-gnu, /usr/share/locale,
//     /usr/etc/ssh); a file directly in /usr/A -> "/usr/A";
//   - kernel modules, the largest tree: /usr/lib/modules/V/kernel/A/B/... ->
//     "/usr/lib/modules/*/kernel/A/B" (e.g. .../kernel/drivers/net), the
//     version replaced by "*" so a kernel update keeps the names; other files
//     of a module directory -> "/usr/lib/modules/*";
//   - elsewhere /T/A/... -> "/T/A" (e.g. /var/lib, /opt/app); a file
//     directly in /T -> "/T"; a file in / -> "/".
func PathGroup(p string) string {
	parts := splitPath(p)
	dirs := parts[:len(parts)-1] // directories above the file
	if len(dirs) >= 3 && dirs[0] == "usr" && dirs[1] == "lib" && dirs[2] == "modules" {
		if len(dirs) >= 4 {
			dirs = slices.Clone(dirs)
			dirs[3] = "*"
			if len(dirs) >= 5 && dirs[4] == "kernel" {
				return "/" + strings.Join(dirs[:min(len(dirs), 7)], "/")
			}
			return "/" + strings.Join(dirs[:4], "/")
		}
		return "/usr/lib/modules"
	}
	depth := 2
	if len(dirs) > 0 && dirs[0] == "usr" {
		depth = 3
	}
	return "/" + strings.Join(dirs[:min(len(dirs), depth)], "/")
}

// attributePaths groups objects by PathGroup; an object at several paths goes
// to the group that sorts first.
func attributePaths(objs []ostree.ContentObject) []pack.Component {
	o := newOwnership()
	for _, obj := range objs {
		for _, p := range obj.Paths {
			g := PathGroup(p)
			o.claim(o.component(pack.Component{Name: g, SrcID: g}), obj.Checksum)
		}
	}
	return o.assign(objs, true)
}

// enrichComponents copies identifier, srcid and change data from a sized
// component list (matched by name) into comps.
func enrichComponents(comps []pack.Component, meta []pack.Component, opts *AttributeOptions) {
	byName := make(map[string]*pack.Component, len(meta))
	for i := range meta {
		if _, dup := byName[meta[i].Name]; !dup {
			byName[meta[i].Name] = &meta[i]
		}
	}
	used := make(map[string]bool)
	for i := range comps {
		m, ok := byName[comps[i].Name]
		if !ok {
			continue
		}
		used[m.Name] = true
		comps[i].Identifier = m.Identifier
		comps[i].SrcID = m.SrcID
		comps[i].ChangeFrequency = m.ChangeFrequency
		comps[i].ChangeTimeOffset = m.ChangeTimeOffset
	}
	if n := len(byName) - len(used); n > 0 {
		opts.warnf("contentmeta: %d of %d components match nothing in the commit", n, len(byName))
	}
}
