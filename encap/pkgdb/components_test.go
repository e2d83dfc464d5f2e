package pkgdb

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/ostree"
)

func gz(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	w, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
	w.Write([]byte(s))
	w.Close()
	return b.String()
}

func changelog(pkg string, dates ...string) string {
	var b strings.Builder
	for i, d := range dates {
		fmt.Fprintf(&b, "%s (1.%d) unstable; urgency=medium\n\n  * Change %d.\n\n -- Maint <m@example.org>  %s\n\n", pkg, len(dates)-i, i, d)
	}
	return b.String()
}

const dpkgStatus = `Package: coreutils
Status: install ok installed
Priority: required
Installed-Size: 18062
Architecture: amd64
Multi-Arch: foreign
Version: 9.1-1
Description: GNU core utilities
 This package contains the basic file, shell and text manipulation
 utilities which are expected to exist on every operating system.

Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Description: GNU C Library: Shared libraries

Package: hostname-ng
Status: install ok installed
Architecture: all
Source: hostname-ng (0.1)
Version: 0.1+b1

Package: linux-image-6.1.0-test
Status: install ok installed
Architecture: amd64
Source: linux-signed-amd64 (6.1.1+1)
Version: 6.1.1-1

Package: oldpkg
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0
`

// dpkgTree is a small usrmerged Debian-like tree: /etc lives at /usr/etc,
// /bin and /lib are symlinks into /usr, and dpkg's lists name the old paths.
func dpkgTree(t *testing.T) map[string]string {
	return map[string]string{
		"bin":  "->usr/bin",
		"lib":  "->usr/lib",
		"sbin": "->usr/sbin",
		// coreutils
		"usr/bin/ls":                                  "ls binary",
		"usr/bin/cat":                                 "cat binary",
		"usr/bin/hostname.coreutils":                  "coreutils hostname",
		"usr/share/doc/coreutils/copyright":           "GPL",
		"usr/share/doc/coreutils/changelog.Debian.gz": gz(t, changelog("coreutils", "Sat, 01 Jun 2024 10:00:00 +0000", "Wed, 10 Jan 2024 10:00:00 +0100", "Wed, 1 Mar 2023 10:00:00 +0000")),
		"usr/etc/coreutils.conf":                      "coreutils conf",
		// libc6 (Multi-Arch: same -> libc6:amd64.list)
		"usr/lib/x86_64-linux-gnu/libc.so.6":      "libc",
		"usr/etc/ld.so.conf.d/libc.conf":          "libc conf",
		"usr/share/doc/libc6/copyright":           "GPL",
		"usr/share/doc/libc6/changelog.Debian.gz": gz(t, changelog("glibc", "Sun, 01 May 2022 12:00:00 +0000")),
		// hostname-ng diverts /usr/bin/hostname away from coreutils
		"usr/bin/hostname":          "ng hostname",
		"usr/share/doc/hostname-ng": "->coreutils",
		// kernel package: vmlinuz goes to the kernel component anyway
		"usr/lib/modules/6.1.0-test/vmlinuz":       "kernel image",
		"usr/lib/modules/6.1.0-test/initramfs.img": "initramfs image",
		"usr/lib/modules/6.1.0-test/kernel/foo.ko": "foo module",
		// dpkg database
		"var/lib/dpkg/status":                           dpkgStatus,
		"var/lib/dpkg/diversions":                       "/usr/bin/hostname\n/usr/bin/hostname.coreutils\nhostname-ng\n",
		"var/lib/dpkg/info/coreutils.list":              "/.\n/bin\n/bin/ls\n/bin/cat\n/usr\n/usr/bin\n/usr/bin/hostname\n/usr/share/doc/coreutils/copyright\n/usr/share/doc/coreutils/changelog.Debian.gz\n/etc/coreutils.conf\n/usr/share/man/man1/ls.1.gz\n",
		"var/lib/dpkg/info/libc6:amd64.list":            "/.\n/etc\n/etc/ld.so.conf.d\n/etc/ld.so.conf.d/libc.conf\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libc.so.6\n/usr/share/doc/libc6/copyright\n/usr/share/doc/libc6/changelog.Debian.gz\n",
		"var/lib/dpkg/info/hostname-ng.list":            "/.\n/usr/bin/hostname\n/usr/share/doc/hostname-ng\n",
		"var/lib/dpkg/info/linux-image-6.1.0-test.list": "/boot/vmlinuz-6.1.0-test\n/usr/lib/modules/6.1.0-test/vmlinuz\n/lib/modules/6.1.0-test/kernel/foo.ko\n",
		"var/lib/dpkg/info/oldpkg.list":                 "/usr/bin/ls\n",
		// nobody's
		"usr/etc/passwd":       "root:x:0:0",
		"usr/bin/local-script": "#!/bin/sh",
	}
}

func TestAttributeDpkg(t *testing.T) {
	repo, commit := commitTree(t, dpkgTree(t))
	objs, err := ostree.ListObjects(repo, commit)
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	comps, err := Attribute(repo, commit, objs, AttributeOptions{Warn: func(m string) { warnings = append(warnings, m) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) > 0 {
		t.Errorf("warnings: %q", warnings)
	}
	owner := pathsOwner(t, objs, comps)
	for _, tc := range []struct{ path, want string }{
		{"/usr/bin/ls", "coreutils"},                        // listed as /bin/ls, /bin -> usr/bin
		{"/usr/bin/cat", "coreutils"},                       //
		{"/usr/bin/hostname.coreutils", "coreutils"},        // diverted by hostname-ng
		{"/usr/etc/coreutils.conf", "coreutils"},            // /etc -> /usr/etc
		{"/usr/share/doc/coreutils/copyright", "coreutils"}, // shared "GPL": first owner by name
		{"/usr/share/doc/libc6/copyright", "coreutils"},     // the same object
		{"/usr/share/doc/coreutils/changelog.Debian.gz", "coreutils"},
		{"/usr/lib/x86_64-linux-gnu/libc.so.6", "libc6"}, // /lib -> usr/lib
		{"/usr/etc/ld.so.conf.d/libc.conf", "libc6"},
		{"/usr/share/doc/libc6/changelog.Debian.gz", "libc6"},
		{"/usr/bin/hostname", "hostname-ng"},          // the diverting package keeps the path
		{"/usr/share/doc/hostname-ng", "hostname-ng"}, // a listed symlink is owned
		{"/usr/lib/modules/6.1.0-test/kernel/foo.ko", "linux-image-6.1.0-test"},
		{"/usr/lib/modules/6.1.0-test/vmlinuz", KernelComponent}, // the kernel wins over its package
		{"/usr/lib/modules/6.1.0-test/initramfs.img", KernelComponent},
		{"/bin", UnpackagedComponent}, // usrmerge symlinks: directories in every list
		{"/lib", UnpackagedComponent},
		{"/sbin", UnpackagedComponent},
		{"/usr/etc/passwd", UnpackagedComponent},
		{"/usr/bin/local-script", UnpackagedComponent},
		{"/var/lib/dpkg/status", PackageDatabaseComponent},           // changes with every update: small layer of its own
		{"/var/lib/dpkg/info/oldpkg.list", PackageDatabaseComponent}, // a package that is not installed
		{"/var/lib/dpkg/info/coreutils.list", "coreutils"},           // dpkg's files of a package travel with it
	} {
		if got := owner[tc.path]; got != tc.want {
			t.Errorf("%s: in %q, want %q", tc.path, got, tc.want)
		}
	}
	byName := make(map[string]pack.Component)
	var names []string
	for _, c := range comps {
		byName[c.Name] = c
		names = append(names, c.Name)
	}
	wantNames := []string{"coreutils", "hostname-ng", KernelComponent, "libc6", "linux-image-6.1.0-test", PackageDatabaseComponent, UnpackagedComponent}
	if !slices.Equal(names, wantNames) {
		t.Errorf("components %q, want %q", names, wantNames)
	}
	k := byName[KernelComponent]
	if !k.Exclusive || len(k.Objects) != 2 || k.Identifier != "kernel (6.1.0-test)" || k.ChangeFrequency != pack.MaxFrequency {
		t.Errorf("kernel component %+v", k)
	}
	lc := byName["libc6"]
	if lc.Identifier != "libc6_2.36-9+deb12u4_amd64" || lc.SrcID != "glibc_2.36-9+deb12u4" {
		t.Errorf("libc6: identifier %q srcid %q", lc.Identifier, lc.SrcID)
	}
	if h := byName["hostname-ng"]; h.SrcID != "hostname-ng_0.1" {
		t.Errorf("hostname-ng srcid %q", h.SrcID)
	}
	// Changelogs: newest entry 2024-06-01; coreutils has two within the year
	// before it, libc6 none; hostname-ng shares coreutils' doc directory.
	cu := byName["coreutils"]
	wantOffset := uint32(time.Date(2024, 6, 1, 10, 0, 0, 0, time.UTC).Sub(time.Date(2022, 5, 1, 12, 0, 0, 0, time.UTC)).Hours())
	if cu.ChangeFrequency != 2 || cu.ChangeTimeOffset != wantOffset {
		t.Errorf("coreutils change data %d/%d, want 2/%d", cu.ChangeFrequency, cu.ChangeTimeOffset, wantOffset)
	}
	if lc.ChangeFrequency != 0 || lc.ChangeTimeOffset != 0 {
		t.Errorf("libc6 change data %d/%d, want 0/0", lc.ChangeFrequency, lc.ChangeTimeOffset)
	}
	if h := byName["hostname-ng"]; h.ChangeFrequency != 2 {
		t.Errorf("hostname-ng frequency %d, want 2 (shared changelog)", h.ChangeFrequency)
	}
	var total, sum int64
	for _, o := range objs {
		total += o.Size
	}
	for _, c := range comps {
		sum += c.Size
		if !slices.IsSortedFunc(c.Objects, ostree.CompareChecksum) {
			t.Errorf("%s: objects not sorted", c.Name)
		}
	}
	if sum != total {
		t.Errorf("component sizes sum to %d, objects to %d", sum, total)
	}

	// The kernel gets a layer of its own.
	layers, err := pack.Pack(comps, pack.MinMaxLayers, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(layers) > pack.MinMaxLayers-1 {
		t.Errorf("%d layers, want at most %d", len(layers), pack.MinMaxLayers-1)
	}
	if got := layers[0].Annotation(); got != KernelComponent {
		t.Errorf("first layer %q, want the kernel alone", got)
	}
	for _, l := range layers[1:] {
		if slices.Contains(l.Components, KernelComponent) {
			t.Errorf("kernel also in layer %q", l.Annotation())
		}
	}
}

func TestAttributeDpkgNoList(t *testing.T) {
	files := dpkgTree(t)
	delete(files, "var/lib/dpkg/info/hostname-ng.list")
	repo, commit := commitTree(t, files)
	objs, err := ostree.ListObjects(repo, commit)
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	comps, err := Attribute(repo, commit, objs, AttributeOptions{Warn: func(m string) { warnings = append(warnings, m) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "hostname-ng") {
		t.Errorf("warnings %q, want one naming hostname-ng", warnings)
	}
	if got := pathsOwner(t, objs, comps)["/usr/bin/hostname"]; got != UnpackagedComponent {
		t.Errorf("/usr/bin/hostname in %q", got)
	}
}

func TestPathGroup(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"/usr/bin/ls", "/usr/bin"},
		{"/usr/lib/x86_64-linux-gnu/libc.so.6", "/usr/lib/x86_64-linux-gnu"},
		{"/usr/lib/x86_64-linux-gnu/gconv/UTF-16.so", "/usr/lib/x86_64-linux-gnu"},
		{"/usr/share/locale/de/LC_MESSAGES/x.mo", "/usr/share/locale"},
		{"/usr/etc/ssh/sshd_config", "/usr/etc/ssh"},
		{"/usr/etc/passwd", "/usr/etc"},
		{"/usr/file", "/usr"},
		{"/usr/lib/modules/6.1.0-9-amd64/kernel/drivers/net/e1000/e1000.ko", "/usr/lib/modules/*/kernel/drivers/net"},
		{"/usr/lib/modules/6.1.0-9-amd64/kernel/fs/btrfs/btrfs.ko", "/usr/lib/modules/*/kernel/fs/btrfs"},
		{"/usr/lib/modules/6.1.0-9-amd64/kernel/x.ko", "/usr/lib/modules/*/kernel"},
		{"/usr/lib/modules/6.1.0-9-amd64/modules.dep", "/usr/lib/modules/*"},
		{"/usr/lib/modules/6.1.0-9-amd64/updates/dkms/x.ko", "/usr/lib/modules/*"},
		{"/usr/lib/modules/stray", "/usr/lib/modules"},
		{"/var/lib/apt/lists/x", "/var/lib"},
		{"/var/file", "/var"},
		{"/opt/app/bin/x", "/opt/app"},
		{"/bin", "/"},
	} {
		if got := PathGroup(tc.in); got != tc.want {
			t.Errorf("PathGroup(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAttributePaths(t *testing.T) {
	for _, tc := range []struct {
		name     string
		extra    map[string]string
		warnings int
	}{
		{"no database", nil, 0},
		{"rpm database", map[string]string{"usr/lib/sysimage/rpm/rpmdb.sqlite": "SQLite format 3"}, 1},
		{"old rpm database", map[string]string{"usr/share/rpm/Packages": "bdb"}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := map[string]string{
				"usr/bin/a":                                       "a",
				"usr/sbin/b":                                      "shared",
				"usr/lib/x86_64-linux-gnu/libx.so.1":              "libx",
				"usr/lib/x86_64-linux-gnu/libx.so":                "->libx.so.1",
				"usr/share/doc/x/README":                          "shared",
				"usr/lib/modules/6.1/vmlinuz":                     "kernel",
				"usr/lib/modules/6.1/initramfs.img":               "initrd",
				"usr/lib/modules/6.1/modules.dep":                 "deps",
				"usr/lib/modules/6.1/kernel/drivers/net/e1000.ko": "e1000",
				"var/lib/x":                                       "x",
				"topfile":                                         "top",
			}
			for k, v := range tc.extra {
				files[k] = v
			}
			repo, commit := commitTree(t, files)
			objs, err := ostree.ListObjects(repo, commit)
			if err != nil {
				t.Fatal(err)
			}
			var warnings []string
			comps, err := Attribute(repo, commit, objs, AttributeOptions{Warn: func(m string) { warnings = append(warnings, m) }})
			if err != nil {
				t.Fatal(err)
			}
			if len(warnings) != tc.warnings {
				t.Errorf("warnings %q, want %d", warnings, tc.warnings)
			}
			for _, w := range warnings {
				if !strings.Contains(w, "rpm database") || !strings.Contains(w, "; falling back to path-based grouping") {
					t.Errorf("warning %q", w)
				}
			}
			owner := pathsOwner(t, objs, comps)
			for p := range files {
				want := PathGroup("/" + p)
				switch p {
				case "usr/lib/modules/6.1/vmlinuz", "usr/lib/modules/6.1/initramfs.img":
					want = KernelComponent
				case "usr/share/doc/x/README", "usr/sbin/b":
					want = "/usr/sbin" // one object, two groups: the first by name
				}
				if got := owner["/"+p]; got != want {
					t.Errorf("%s in %q, want %q", p, got, want)
				}
			}
		})
	}
}

func TestParseDpkgStatus(t *testing.T) {
	pkgs, err := parseDpkgStatus([]byte(dpkgStatus + "\n\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := make([]string, len(pkgs))
	for i, p := range pkgs {
		got[i] = strings.Join([]string{p.name, p.arch, p.version, p.source, p.sourceVersion, p.state}, "|")
	}
	want := []string{
		"coreutils|amd64|9.1-1|coreutils|9.1-1|installed",
		"libc6|amd64|2.36-9+deb12u4|glibc|2.36-9+deb12u4|installed",
		"hostname-ng|all|0.1+b1|hostname-ng|0.1|installed",
		"linux-image-6.1.0-test|amd64|6.1.1-1|linux-signed-amd64|6.1.1+1|installed",
		"oldpkg|amd64|1.0|oldpkg|1.0|config-files",
	}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if _, err := parseDpkgStatus([]byte("Package: x\nno colon here\n")); err == nil {
		t.Error("malformed status accepted")
	}
}

func TestParseChangelogDates(t *testing.T) {
	text := changelog("x", "Mon, 02 Jan 2006 15:04:05 -0700", "Tue, 3 Jan 2006 00:00:00 +0000", "Fri, 99 Foo 2006 00:00:00 +0000") +
		" -- no date here\n -- Someone <a@b>  Thu, 01 Jan 1970 00:00:00 UTC\n"
	got := parseChangelogDates([]byte(gz(t, text)))
	want := []time.Time{
		time.Date(2006, 1, 2, 22, 4, 5, 0, time.UTC),
		time.Date(2006, 1, 3, 0, 0, 0, 0, time.UTC),
		time.Date(1970, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	if !slices.EqualFunc(got, want, time.Time.Equal) {
		t.Errorf("got %v, want %v", got, want)
	}
	if got := parseChangelogDates([]byte("not gzip")); got != nil {
		t.Errorf("non-gzip: %v", got)
	}
}

func TestAttributeRawMeta(t *testing.T) {
	files := map[string]string{
		"usr/bin/a":       "a",
		"usr/bin/b":       "bb",
		"usr/lib/c":       "ccc",
		"usr/etc/unknown": "dddd",
	}
	repo, commit := commitTree(t, files)
	objs, err := ostree.ListObjects(repo, commit)
	if err != nil {
		t.Fatal(err)
	}
	at := make(map[string]string)
	for _, o := range objs {
		at[o.Paths[0]] = o.Checksum.String()
	}
	meta := fmt.Sprintf(`{"version": 1, "created": "2024-01-01T00:00:00Z", "labels": {"k": "v"},
		"layers": {"zeta": "Zeta tools", "alpha": "Alpha", "empty": "Nothing"},
		"mapping": {%q: "alpha", %q: "zeta", %q: "zeta", %q: "alpha"},
		"ordered": false}`,
		at["/usr/bin/a"], at["/usr/bin/b"], at["/usr/lib/c"], strings.Repeat("ab", 32))
	dir := t.TempDir()
	plain := filepath.Join(dir, "meta.json")
	os.WriteFile(plain, []byte(meta), 0o644)
	zipped := filepath.Join(dir, "meta.json.gz")
	os.WriteFile(zipped, []byte(gz(t, meta)), 0o644)
	for _, file := range []string{plain, zipped} {
		var warnings []string
		comps, err := Attribute(repo, commit, objs, AttributeOptions{ContentMeta: file, Warn: func(m string) { warnings = append(warnings, m) }})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, c := range comps {
			got = append(got, fmt.Sprintf("%s=%s/%d/%d/%v/%d", c.Identifier, c.Name, len(c.Objects), c.Size, c.Exclusive, c.ChangeFrequency))
		}
		want := []string{
			"zeta=Zeta tools/2/5/true/1",
			"alpha=Alpha/1/1/true/1",
			"empty=Nothing/0/0/true/1",
			"unpackaged=unpackaged/1/4/true/4294967295",
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: components\n%s\nwant\n%s", file, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		if len(warnings) != 2 {
			t.Errorf("warnings %q, want the gap and the stray mapping", warnings)
		}
		// One layer per listed component in file order, then the reserved one.
		if n := pack.LayersNeeded(comps); n != len(comps)+2 {
			t.Errorf("LayersNeeded = %d, want %d", n, len(comps)+2)
		}
		layers, err := pack.Pack(comps, pack.LayersNeeded(comps), nil)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, l := range layers {
			names = append(names, l.Annotation())
		}
		if wantL := []string{"Zeta tools", "Alpha", "Nothing", "unpackaged", ""}; !slices.Equal(names, wantL) {
			t.Errorf("layers %q, want %q", names, wantL)
		}
	}
	cm, err := ReadContentMeta(plain)
	if err != nil || cm.Raw.Created != "2024-01-01T00:00:00Z" || cm.Raw.Labels["k"] != "v" {
		t.Errorf("ReadContentMeta: %+v, %v", cm, err)
	}
	for _, bad := range []string{
		`{"version": 2, "layers": {}, "mapping": {}}`,
		`{"version": 1, "layers": {}, "mapping": {}, "ordered": true}`,
		`{"version": 1, "layers": {"a": "A"}, "mapping": {"nothex": "a"}}`,
		fmt.Sprintf(`{"version": 1, "layers": {"a": "A"}, "mapping": {%q: "b"}}`, strings.Repeat("00", 32)),
		`{"version": 1, "layers": {"a": "A", "a": "B"}, "mapping": {}}`,
		`{"version": 1, "mapping": {}}`,
		`[{"name": "x"}]`,
	} {
		if _, err := ParseContentMeta([]byte(bad)); err == nil {
			t.Errorf("accepted %s", bad)
		}
	}
}

func TestAttributeEnrich(t *testing.T) {
	repo, commit := commitTree(t, dpkgTree(t))
	objs, err := ostree.ListObjects(repo, commit)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "sized.json")
	os.WriteFile(file, []byte(`[
		{"identifier": "libc6-custom", "name": "libc6", "srcid": "glibc-src", "change_time_offset": 7, "change_frequency": 40, "size": 1},
		{"identifier": "nothere-1", "name": "nothere", "srcid": "x", "change_time_offset": 0, "change_frequency": 0, "size": 1}]`), 0o644)
	var warnings []string
	comps, err := Attribute(repo, commit, objs, AttributeOptions{ContentMeta: file, Warn: func(m string) { warnings = append(warnings, m) }})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range comps {
		if c.Name == "libc6" && (c.Identifier != "libc6-custom" || c.SrcID != "glibc-src" || c.ChangeFrequency != 40 || c.ChangeTimeOffset != 7 || len(c.Objects) != 4) { // 3 files + its dpkg .list
			t.Errorf("libc6 not enriched: %+v", c)
		}
	}
	if len(warnings) != 1 {
		t.Errorf("warnings %q, want one about the unmatched entry", warnings)
	}
}
