package pkgdb

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/encap/pkgdb/internal/sqlite"
	"github.com/ocitree/ocitree/ostree"
)

// rpmdbMaxSize bounds the rpm database this reads into memory: SQLite is
// random access, and a full distribution's rpmdb.sqlite is tens of MiB.
const rpmdbMaxSize = 256 << 20

// attributeRpm makes one component per installed package from the rpm
// database db, an rpmdb.sqlite in the commit (read from the commit, never
// from the host; a -wal file next to it is ignored, see sqliteDB), the way
// rpm-ostree does for its chunked images (spec §4.7):
//
//   - Name = NAME, Identifier = NEVRA (name-[epoch:]version-release.arch),
//     SrcID = SOURCERPM (e.g. bash-5.2.15-1.fc38.src.rpm);
//   - ChangeTimeOffset = hours between the oldest BUILDTIME of all packages
//     and this package's BUILDTIME; ChangeFrequency = CHANGELOGTIME entries
//     no older than 365 days before the newest BUILDTIME of all packages.
//
// Files are BASENAMES/DIRNAMES/DIRINDEXES (OLDFILENAMES in old headers),
// without %ghost files (not in the package payload, so their content is
// whatever the compose made of them); each path maps into the commit as for
// dpkg: /etc/... read as /usr/etc/... when the commit keeps /etc at
// /usr/etc, symlinked parents followed (see commitObjectAt). Paths missing
// from the commit, and directories, own nothing. A database that cannot be
// parsed is reported through opts.Warn and the objects grouped by PathGroup.
func attributeRpm(ix *treeIndex, db string, objs []ostree.ContentObject, opts *AttributeOptions) ([]pack.Component, error) {
	for _, o := range objs {
		if o.Size > 0 && slices.Contains(o.Paths, db+"-wal") {
			opts.warnf("%s-wal: not empty, ignored; the database is read as of its last checkpoint", db)
		}
	}
	data, err := ix.readFile(db, rpmdbMaxSize)
	if err != nil {
		return nil, fmt.Errorf("rpm: %w", err)
	}
	pkgs, err := readRpmdbSQLite(data)
	if err != nil {
		// Package data only steers packing: a database this cannot read
		// (corrupt, or a format it does not know) costs layer reuse, not
		// the image.
		opts.warnf("%s: cannot read the rpm database (%v); falling back to path-based grouping", db, err)
		return attributePaths(objs), nil
	}
	mapEtc := etcAtUsr(ix)
	o := newOwnership()
	var oldest, newest int64
	for _, p := range pkgs {
		if p.buildTime <= 0 {
			continue
		}
		if oldest == 0 || p.buildTime < oldest {
			oldest = p.buildTime
		}
		newest = max(newest, p.buildTime)
	}
	start := newest - 365*24*3600
	for _, p := range pkgs {
		c := pack.Component{Name: p.name, Identifier: p.nevra(), SrcID: p.sourceRPM}
		if p.buildTime > 0 {
			c.ChangeTimeOffset = uint32(min((p.buildTime-oldest)/3600, pack.MaxFrequency-1))
			n := 0
			for _, t := range p.changelogTimes {
				if t >= start {
					n++
				}
			}
			c.ChangeFrequency = uint32(min(n, pack.MaxFrequency-1))
		}
		ci := o.component(c)
		for _, f := range p.files {
			if obj, ok := commitObjectAt(ix, mapEtc, f); ok {
				o.claim(ci, obj)
			}
		}
	}
	o.claimDatabase(ix, path.Dir(db))
	return o.assign(objs, true), nil
}

// readRpmdbSQLite returns the packages of an rpmdb.sqlite (rpm 4.16 and
// later: CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT,
// blob BLOB NOT NULL), one header blob per installed package).
func readRpmdbSQLite(data []byte) ([]*rpmPackage, error) {
	db, err := sqlite.Open(data)
	if err != nil {
		return nil, err
	}
	var pkgs []*rpmPackage
	err = db.SelectRows("Packages", []string{"hnum", "blob"}, func(v []sqlite.Value) error {
		if v[1].Type != sqlite.Blob {
			return fmt.Errorf("package %d: blob is %s, not a BLOB", v[0].Int, v[1].Type)
		}
		p, err := rpmPackageFromHeader(v[1].Bytes)
		if err != nil {
			return fmt.Errorf("package %d: %w", v[0].Int, err)
		}
		pkgs = append(pkgs, p)
		return nil
	})
	return pkgs, err
}

// etcAtUsr reports whether the commit keeps /etc at /usr/etc, as ostree
// commits do, so package paths /etc/... are found at /usr/etc/....
func etcAtUsr(ix *treeIndex) bool {
	if _, ok := ix.files["/etc"]; ok {
		return false // /etc is a symlink (or a file); resolution handles it
	}
	return ix.dirs["/usr/etc"] && !ix.dirs["/etc"]
}

// commitObjectAt returns the content object at the package path p as a
// checkout of the commit would see it: /etc mapped to /usr/etc when mapEtc,
// symlinked parents followed (/lib64/libc.so.6 with /lib64 -> usr/lib64),
// a symlink in the last component itself being the object.
func commitObjectAt(ix *treeIndex, mapEtc bool, p string) (ostree.Checksum, bool) {
	if mapEtc && (p == "/etc" || strings.HasPrefix(p, "/etc/")) {
		p = "/usr" + p
	}
	rp, err := ix.resolve(p, false)
	if err != nil {
		return ostree.Checksum{}, false // a symlink loop: nothing to own
	}
	c, ok := ix.files[rp]
	return c, ok
}
