package pkgdb

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/ostree"
)

// rpmSpec is a tiny noarch package: files maps a path to its content
// ("->target" makes a symlink); ghosts are %ghost paths.
type rpmSpec struct {
	name, epoch, version, release string
	buildTime                     time.Time
	files                         map[string]string
	configs, ghosts               []string
	changelog                     []time.Time
}

func (s rpmSpec) text() string {
	var b strings.Builder
	b.WriteString("Name: " + s.name + "\nVersion: " + s.version + "\nRelease: " + s.release + "\n")
	if s.epoch != "" {
		b.WriteString("Epoch: " + s.epoch + "\n")
	}
	b.WriteString("Summary: test package\nLicense: MIT\nBuildArch: noarch\n%description\ntest package\n%install\n")
	var paths []string
	for p := range s.files {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		c := s.files[p]
		b.WriteString("mkdir -p %{buildroot}" + filepath.Dir(p) + "\n")
		if target, ok := strings.CutPrefix(c, "->"); ok {
			b.WriteString("ln -s " + target + " %{buildroot}" + p + "\n")
		} else {
			b.WriteString("printf '%s' '" + c + "' > %{buildroot}" + p + "\n")
		}
	}
	b.WriteString("%files\n")
	for _, p := range paths {
		if slices.Contains(s.configs, p) {
			b.WriteString("%config ")
		}
		b.WriteString(p + "\n")
	}
	for _, g := range s.ghosts {
		b.WriteString("%ghost " + g + "\n")
	}
	if len(s.changelog) > 0 {
		b.WriteString("%changelog\n")
		for _, d := range s.changelog {
			b.WriteString("* " + d.Format("Mon Jan 02 2006") + " Test <test@example.org> - " + s.version + "\n- change\n\n")
		}
	}
	return b.String()
}

func day(s string) time.Time {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		panic(err)
	}
	return t
}

// buildRpmTree builds the packages with rpmbuild and installs them with rpm
// into a new directory whose /lib is a symlink to usr/lib, with an sqlite
// rpmdb at usr/lib/sysimage/rpm; it returns the directory with etc moved to
// usr/etc, as in an ostree commit.
func buildRpmTree(t *testing.T, specs []rpmSpec) string {
	t.Helper()
	requireTool(t, "rpm", "rpmbuild")
	requireRoot(t) // rpm --root installs files with their owners
	work := t.TempDir()
	top := filepath.Join(work, "top")
	var rpms []string
	for _, s := range specs {
		specFile := filepath.Join(work, s.name+".spec")
		if err := os.WriteFile(specFile, []byte(s.text()), 0o644); err != nil {
			t.Fatal(err)
		}
		runTool(t, []string{"TZ=UTC", "SOURCE_DATE_EPOCH=" + strconv.FormatInt(s.buildTime.Unix(), 10), "HOME=" + work}, "rpmbuild",
			"--define", "_topdir "+top,
			"--define", "use_source_date_epoch_as_buildtime 1",
			"--define", "source_date_epoch_from_changelog 0",
			"--define", "_buildhost test",
			"--define", "_build_id_links none",
			"-bb", specFile)
		matches, _ := filepath.Glob(filepath.Join(top, "RPMS", "noarch", s.name+"-*.noarch.rpm"))
		if len(matches) != 1 {
			t.Fatalf("%s: built %v", s.name, matches)
		}
		rpms = append(rpms, matches[0])
	}
	tree := filepath.Join(work, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "usr", "lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/lib", filepath.Join(tree, "lib")); err != nil {
		t.Fatal(err)
	}
	// Debian's rpm 4.18 defaults to the sqlite backend; say so anyway.
	runTool(t, []string{"HOME=" + work}, "rpm", append([]string{"--root", tree, "--dbpath", "/usr/lib/sysimage/rpm",
		"--define", "_db_backend sqlite", "-i", "--nodeps", "--noscripts", "--ignorearch", "--ignoreos"}, rpms...)...)
	if _, err := os.Stat(filepath.Join(tree, "usr/lib/sysimage/rpm/rpmdb.sqlite")); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(tree, "etc"), filepath.Join(tree, "usr", "etc")); err != nil {
		t.Fatal(err)
	}
	return tree
}

func TestAttributeRpm(t *testing.T) {
	specs := []rpmSpec{
		{
			name: "alpha", version: "1.0", release: "1", buildTime: day("2024-06-01"),
			files: map[string]string{
				"/usr/bin/alpha":                "alpha binary",
				"/etc/alpha.conf":               "alpha conf",
				"/usr/share/doc/alpha/LICENSE":  "MIT license text",
				"/usr/lib/alpha/plugins/one.so": "alpha plugin",
			},
			configs:   []string{"/etc/alpha.conf"},
			ghosts:    []string{"/etc/alpha.state"},
			changelog: []time.Time{day("2024-05-01"), day("2024-01-02"), day("2023-01-02")},
		},
		{
			name: "beta", epoch: "2", version: "2.0", release: "3", buildTime: day("2024-01-01"),
			files: map[string]string{
				"/usr/lib/beta/libbeta.so.1":  "beta library",
				"/usr/lib/beta/libbeta.so":    "->libbeta.so.1",
				"/usr/share/doc/beta/LICENSE": "MIT license text", // same object as alpha's
				"/usr/bin/beta":               "beta binary",
			},
			changelog: []time.Time{day("2023-12-01"), day("2023-03-01")},
		},
		{
			name: "gamma", version: "0.1", release: "1", buildTime: day("2022-01-01"),
			files: map[string]string{
				"/lib/gamma/gamma.so":  "gamma library", // /lib -> usr/lib in the tree
				"/etc/gamma/gamma.d/x": "gamma conf",
			},
		},
	}
	tree := buildRpmTree(t, specs)
	for p, c := range map[string]string{
		"usr/etc/passwd":       "root:x:0:0",
		"usr/bin/local-script": "#!/bin/sh",
		"usr/etc/alpha.state":  "ghost content",
	} {
		if err := os.WriteFile(filepath.Join(tree, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	repo := newRepo(t, ostree.ModeBareUser)
	commit := commitDir(t, repo, tree)
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
		{"/usr/bin/alpha", "alpha"},
		{"/usr/etc/alpha.conf", "alpha"}, // /etc -> /usr/etc
		{"/usr/lib/alpha/plugins/one.so", "alpha"},
		{"/usr/share/doc/alpha/LICENSE", "alpha"}, // shared object: first owner by name
		{"/usr/share/doc/beta/LICENSE", "alpha"},
		{"/usr/lib/beta/libbeta.so.1", "beta"},
		{"/usr/lib/beta/libbeta.so", "beta"}, // a packaged symlink
		{"/usr/bin/beta", "beta"},
		{"/usr/lib/gamma/gamma.so", "gamma"}, // listed as /lib/gamma/gamma.so
		{"/usr/etc/gamma/gamma.d/x", "gamma"},
		{"/usr/etc/alpha.state", UnpackagedComponent}, // %ghost
		{"/lib", UnpackagedComponent},
		{"/usr/etc/passwd", UnpackagedComponent},
		{"/usr/bin/local-script", UnpackagedComponent},
		{"/usr/lib/sysimage/rpm/rpmdb.sqlite", PackageDatabaseComponent},
	} {
		if got, ok := owner[tc.path]; !ok || got != tc.want {
			t.Errorf("%s: in %q, want %q", tc.path, got, tc.want)
		}
	}
	byName := make(map[string]pack.Component)
	var names []string
	for _, c := range comps {
		byName[c.Name] = c
		names = append(names, c.Name)
	}
	if want := []string{"alpha", "beta", "gamma", PackageDatabaseComponent, UnpackagedComponent}; !slices.Equal(names, want) {
		t.Errorf("components %q, want %q", names, want)
	}
	hours := func(a, b string) uint32 { return uint32(day(a).Sub(day(b)).Hours()) }
	for _, want := range []pack.Component{
		// newest build 2024-06-01: changelog entries since 2023-06-02 count
		{Name: "alpha", Identifier: "alpha-1.0-1.noarch", SrcID: "alpha-1.0-1.src.rpm",
			ChangeTimeOffset: hours("2024-06-01", "2022-01-01"), ChangeFrequency: 2},
		{Name: "beta", Identifier: "beta-2:2.0-3.noarch", SrcID: "beta-2.0-3.src.rpm",
			ChangeTimeOffset: hours("2024-01-01", "2022-01-01"), ChangeFrequency: 1},
		{Name: "gamma", Identifier: "gamma-0.1-1.noarch", SrcID: "gamma-0.1-1.src.rpm"},
		{Name: UnpackagedComponent, ChangeTimeOffset: pack.MaxFrequency, ChangeFrequency: pack.MaxFrequency},
	} {
		got := byName[want.Name]
		if got.Identifier != want.Identifier || got.SrcID != want.SrcID ||
			got.ChangeTimeOffset != want.ChangeTimeOffset || got.ChangeFrequency != want.ChangeFrequency {
			t.Errorf("%s: identifier %q srcid %q offset %d frequency %d, want %q %q %d %d", want.Name,
				got.Identifier, got.SrcID, got.ChangeTimeOffset, got.ChangeFrequency,
				want.Identifier, want.SrcID, want.ChangeTimeOffset, want.ChangeFrequency)
		}
	}
	var total, sum int64
	for _, o := range objs {
		total += o.Size
	}
	for _, c := range comps {
		sum += c.Size
	}
	if sum != total {
		t.Errorf("component sizes sum to %d, objects to %d", sum, total)
	}
}
