package pkgdb

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/ostree"
)

// dpkgAdminDirs are where a commit may keep the dpkg database: the usual
// place, and the read-only locations some ostree-based Debian derivatives
// move it to because /var is not part of a deployment.
var dpkgAdminDirs = []string{"/var/lib/dpkg", "/usr/share/dpkg/database", "/usr/lib/sysimage/dpkg"}

// findDpkgAdmin returns the dpkg database directory of the commit, or "".
func findDpkgAdmin(ix *treeIndex) string {
	for _, d := range dpkgAdminDirs {
		if ix.isFile(d + "/status") {
			return d
		}
	}
	return ""
}

// dpkgPackage is one stanza of the dpkg status file.
type dpkgPackage struct {
	name, arch, multiArch, version string
	source, sourceVersion          string
	state                          string // third word of Status
}

// statesWithFiles are the dpkg package states in which the package's files
// are on disk (config-files and not-installed have none).
var statesWithFiles = map[string]bool{
	"installed": true, "unpacked": true, "half-configured": true,
	"half-installed": true, "triggers-awaited": true, "triggers-pending": true,
}

// parseDpkgStatus reads the deb822 stanzas of var/lib/dpkg/status.
func parseDpkgStatus(data []byte) ([]dpkgPackage, error) {
	var (
		pkgs []dpkgPackage
		cur  dpkgPackage
		seen bool
	)
	flush := func() {
		if seen && cur.name != "" {
			if cur.source == "" {
				cur.source = cur.name
			}
			if cur.sourceVersion == "" {
				cur.sourceVersion = cur.version
			}
			pkgs = append(pkgs, cur)
		}
		cur, seen = dpkgPackage{}, false
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		if line[0] == ' ' || line[0] == '\t' || line[0] == '#' {
			continue // continuation of a multi-line field, or a comment
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("status: malformed line %q", line)
		}
		seen = true
		val = strings.TrimSpace(val)
		switch strings.ToLower(key) {
		case "package":
			cur.name = val
		case "architecture":
			cur.arch = val
		case "multi-arch":
			cur.multiArch = val
		case "version":
			cur.version = val
		case "source":
			// "Source: name" or "Source: name (version)"
			name, ver, _ := strings.Cut(val, " ")
			cur.source = name
			cur.sourceVersion = strings.Trim(strings.TrimSpace(ver), "()")
		case "status":
			f := strings.Fields(val)
			if len(f) == 3 {
				cur.state = f[2]
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	flush()
	return pkgs, nil
}

type diversion struct{ to, by string }

// parseDiversions reads dpkg's diversions file: groups of three lines
// (diverted path, where the diverted file now is, diverting package or ":"
// for a local diversion).
func parseDiversions(data []byte) map[string]diversion {
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	out := make(map[string]diversion)
	for i := 0; i+2 < len(lines); i += 3 {
		out[lines[i]] = diversion{to: lines[i+1], by: lines[i+2]}
	}
	return out
}

// attributeDpkg makes one component per installed package.
//
// Files come from ADMIN/info/PKG[:ARCH].list (one path per line; a line that
// is the parent of another line is a directory and is skipped, which also
// keeps the usrmerge compatibility symlinks /bin, /lib... out of every
// package). Each listed path is mapped as a checkout of the commit would see
// it: dpkg diversions applied (the file of a package whose path another
// package diverts is at the diverted-to path), /etc/... read as /usr/etc/...
// when the commit keeps /etc at /usr/etc, and symlinked parents followed
// (/lib/x86_64-linux-gnu/libc.so.6 with /lib -> usr/lib). Paths missing from
// the commit are ignored.
//
// From the status file: Name = package name (name:arch when several
// architectures of it are installed), Identifier = name_version_arch,
// SrcID = source_sourceversion. Change data comes from the package's
// /usr/share/doc/NAME/changelog.Debian[.ARCH].gz: ChangeFrequency = entries
// dated within the 365 days before the newest entry of any package in the
// commit, ChangeTimeOffset = hours from the oldest package's latest entry to
// this package's latest. A package without a changelog gets 0 for both. Both
// come from the commit only, so the result does not depend on when it runs.
func attributeDpkg(ix *treeIndex, admin string, objs []ostree.ContentObject, opts *AttributeOptions) ([]pack.Component, error) {
	status, err := ix.readFile(admin+"/status", 256<<20)
	if err != nil {
		return nil, fmt.Errorf("dpkg: %w", err)
	}
	all, err := parseDpkgStatus(status)
	if err != nil {
		return nil, fmt.Errorf("dpkg: %s/%w", admin, err)
	}
	var pkgs []dpkgPackage
	count := make(map[string]int)
	for _, p := range all {
		if statesWithFiles[p.state] {
			pkgs = append(pkgs, p)
			count[p.name]++
		}
	}
	var div map[string]diversion
	if ix.isFile(admin + "/diversions") {
		data, err := ix.readFile(admin+"/diversions", 64<<20)
		if err != nil {
			return nil, fmt.Errorf("dpkg: %w", err)
		}
		div = parseDiversions(data)
	}
	mapEtc := ix.dirs["/usr/etc"] && !ix.dirs["/etc"]
	if _, ok := ix.files["/etc"]; ok {
		mapEtc = false // /etc is a symlink (or a file); resolution handles it
	}

	o := newOwnership()
	cis := make([]int, len(pkgs))
	changes := make([][]time.Time, len(pkgs))
	logs := make(map[string][]time.Time) // resolved changelog path -> dates
	var noList []string
	for pi, p := range pkgs {
		name := p.name
		if count[p.name] > 1 {
			name += ":" + p.arch
		}
		ci := o.component(pack.Component{
			Name:       name,
			Identifier: p.name + "_" + p.version + "_" + p.arch,
			SrcID:      p.source + "_" + p.sourceVersion,
		})
		cis[pi] = ci
		list, err := readDpkgList(ix, admin, p)
		if err != nil {
			return nil, fmt.Errorf("dpkg: %w", err)
		}
		if list == nil {
			noList = append(noList, name)
		}
		lines := strings.Split(string(list), "\n")
		parents := make(map[string]bool)
		for _, l := range lines {
			for d := path.Dir(l); d != "/" && d != "." && !parents[d]; d = path.Dir(d) {
				parents[d] = true
			}
		}
		for _, l := range lines {
			if l == "" || l == "/." || parents[l] || !strings.HasPrefix(l, "/") {
				continue
			}
			if d, ok := div[l]; ok && d.by != p.name {
				l = d.to
			}
			if mapEtc && (l == "/etc" || strings.HasPrefix(l, "/etc/")) {
				l = "/usr" + l
			}
			rp, err := ix.resolve(l, false)
			if err != nil {
				continue // a symlink loop: nothing to own
			}
			if c, ok := ix.files[rp]; ok {
				o.claim(ci, c)
			}
		}
		// dpkg's own per-package files (info/NAME[:ARCH].list, .md5sums,
		// scripts) change with the package: they travel with it.
		for _, prefix := range []string{admin + "/info/" + p.name + ".", admin + "/info/" + p.name + ":" + p.arch + "."} {
			for f, c := range ix.files {
				if strings.HasPrefix(f, prefix) {
					o.claim(ci, c)
				}
			}
		}
		changes[pi], err = dpkgChangelogDates(ix, p, logs)
		if err != nil {
			return nil, fmt.Errorf("dpkg: %w", err)
		}
	}
	if len(noList) > 0 {
		opts.warnf("dpkg: no file list for %d installed packages (%s); their files count as unpackaged",
			len(noList), strings.Join(noList[:min(len(noList), 5)], ", "))
	}
	o.claimDatabase(ix, admin)
	freq, offset := changeData(changes)
	for pi, ci := range cis {
		o.comps[ci].ChangeFrequency = freq[pi]
		o.comps[ci].ChangeTimeOffset = offset[pi]
	}
	return o.assign(objs, true), nil
}

// readDpkgList returns the package's .list file, nil when it has none.
func readDpkgList(ix *treeIndex, admin string, p dpkgPackage) ([]byte, error) {
	for _, n := range []string{p.name + ":" + p.arch, p.name} {
		f := admin + "/info/" + n + ".list"
		if ix.isFile(f) {
			return ix.readFile(f, 256<<20)
		}
	}
	return nil, nil
}

// dpkgChangelogDates returns the dates of the entries of the package's Debian
// changelog (and binNMU changelog), memoized by resolved path since packages
// of one source often share a doc directory.
func dpkgChangelogDates(ix *treeIndex, p dpkgPackage, memo map[string][]time.Time) ([]time.Time, error) {
	var out []time.Time
	for _, f := range []string{"changelog.Debian.gz", "changelog.Debian." + p.arch + ".gz"} {
		rp, err := ix.resolve("/usr/share/doc/"+p.name+"/"+f, true)
		if err != nil {
			continue
		}
		if _, ok := ix.files[rp]; !ok {
			continue
		}
		dates, ok := memo[rp]
		if !ok {
			data, err := ix.readFile(rp, 64<<20)
			if err != nil {
				return nil, err
			}
			dates = parseChangelogDates(data)
			memo[rp] = dates
		}
		out = append(out, dates...)
	}
	return out, nil
}

// parseChangelogDates returns the dates of the trailer lines
// (" -- Name <mail>  Mon, 02 Jan 2006 15:04:05 -0700") of a gzip-compressed
// Debian changelog. Unreadable data or dates are skipped: the result only
// steers packing.
func parseChangelogDates(gz []byte) []time.Time {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil
	}
	defer zr.Close()
	var out []time.Time
	sc := bufio.NewScanner(io.LimitReader(zr, 64<<20))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, " -- ") {
			continue
		}
		i := strings.LastIndex(line, ">  ")
		if i < 0 {
			continue
		}
		if t, ok := parseChangelogDate(strings.TrimSpace(line[i+3:])); ok {
			out = append(out, t)
		}
	}
	return out
}

func parseChangelogDate(s string) (time.Time, bool) {
	if _, rest, ok := strings.Cut(s, ", "); ok && len(s) > 0 && s[0] >= 'A' && s[0] <= 'Z' {
		s = rest // the weekday is often wrong in old entries; ignore it
	}
	for _, layout := range []string{"2 Jan 2006 15:04:05 -0700", "2 Jan 2006 15:04:05 MST"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), true
		}
	}
	return time.Time{}, false
}

// changeData turns per-component change dates into rpm-ostree-style
// change_frequency (changes within the year before the newest date of all)
// and change_time_offset (hours since the oldest latest-change).
func changeData(changes [][]time.Time) (freq, offset []uint32) {
	freq = make([]uint32, len(changes))
	offset = make([]uint32, len(changes))
	latest := make([]time.Time, len(changes))
	var newest, oldest time.Time
	for i, ds := range changes {
		for _, d := range ds {
			if d.After(latest[i]) {
				latest[i] = d
			}
		}
		if latest[i].IsZero() {
			continue
		}
		if latest[i].After(newest) {
			newest = latest[i]
		}
		if oldest.IsZero() || latest[i].Before(oldest) {
			oldest = latest[i]
		}
	}
	start := newest.AddDate(0, 0, -365)
	for i, ds := range changes {
		if latest[i].IsZero() {
			continue
		}
		n := 0
		for _, d := range ds {
			if d.After(start) {
				n++
			}
		}
		freq[i] = uint32(min(n, pack.MaxFrequency-1))
		offset[i] = uint32(min(latest[i].Sub(oldest).Hours(), pack.MaxFrequency-1))
	}
	return freq, offset
}
