package integration

// Host commands (install, switch, upgrade, rollback, status) against the
// stock ostree 2022.7 CLI on sysroot directories: ostree admin status must
// read what ocitree writes, ostree admin deploy must keep working on it,
// and an ocitree install must equal an ostree admin deploy of the same
// commit with the same kargs, file for file.

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"golang.org/x/sys/unix"
)

// hostImage builds MiniOS (changed by mutate), commits it with version (as
// the version metadata, so the image gets org.opencontainers.image.version)
// and encapsulates it to oci:layout:tag. bootable=false commits without
// --bootable (for trees ostree would refuse). It returns the image ref.
func hostImage(t *testing.T, work, layout, tag, version string, bootable bool, mutate func(root string)) string {
	t.Helper()
	root := filepath.Join(work, "tree-"+tag)
	copyDir(t, tree(t, "minios"), root)
	if mutate != nil {
		mutate(root)
	}
	repo := filepath.Join(work, "build-repo")
	if _, err := os.Stat(repo); err != nil {
		must(t, ocitree(t, "repo", "init", "--repo", repo, "--mode", "bare"))
	}
	o := commitOpts{subject: "host " + tag, metadata: []string{"version=" + version}, bootable: bootable}
	must(t, ocitree(t, append(o.ocitreeArgs(repo, "host/"+tag), root)...))
	ref := "oci:" + layout + ":" + tag
	must(t, ocitree(t, "encapsulate", "--repo", repo, "host/"+tag, ref))
	return ref
}

func writeFile(t *testing.T, p, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}

// sysrootDir returns a new directory for a sysroot; deployment roots get
// the immutable bit, so it is cleared before the directory is removed.
func sysrootDir(t *testing.T, work, name string) string {
	t.Helper()
	d := filepath.Join(work, name)
	t.Cleanup(func() { clearImmutable(d) })
	return d
}

func clearImmutable(sysroot string) {
	dirs, _ := filepath.Glob(filepath.Join(sysroot, "ostree/deploy/*/deploy/*"))
	for _, d := range dirs {
		fd, err := unix.Open(d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
		if err != nil {
			continue
		}
		if fl, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS); err == nil && fl&0x10 != 0 {
			unix.IoctlSetPointerInt(fd, unix.FS_IOC_SETFLAGS, int(fl&^0x10))
		}
		unix.Close(fd)
	}
}

// hostDeployment is one deployment as a status lists it.
type hostDeployment struct {
	Stateroot, Name, Version string
}

var ostreeStatusLine = regexp.MustCompile(`^[* ] (\S+) ([0-9a-f]{64}\.[0-9]+)(?: \(\w+\))?$`)

// ostreeAdminStatus runs stock `ostree admin status` and parses it.
func ostreeAdminStatus(t *testing.T, sysroot string) []hostDeployment {
	t.Helper()
	out := must(t, ostree(t, "admin", "status", "--sysroot="+sysroot))
	var ds []hostDeployment
	for _, l := range strings.Split(out, "\n") {
		if m := ostreeStatusLine.FindStringSubmatch(l); m != nil {
			ds = append(ds, hostDeployment{Stateroot: m[1], Name: m[2]})
		} else if v, ok := strings.CutPrefix(strings.TrimSpace(l), "Version: "); ok && len(ds) > 0 {
			ds[len(ds)-1].Version = v
		}
	}
	if len(ds) == 0 && !strings.Contains(out, "No deployments") {
		t.Fatalf("cannot parse ostree admin status:\n%s", out)
	}
	return ds
}

type statusDoc struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Spec       struct {
		Image *struct {
			Image     string `json:"image"`
			Transport string `json:"transport"`
		} `json:"image"`
	} `json:"spec"`
	Status struct {
		Booted      any `json:"booted"`
		Deployments []struct {
			Index        int     `json:"index"`
			Stateroot    string  `json:"stateroot"`
			Checksum     string  `json:"checksum"`
			DeploySerial int     `json:"deploySerial"`
			Pinned       bool    `json:"pinned"`
			Version      *string `json:"version"`
			Image        *struct {
				Reference string  `json:"reference"`
				Digest    string  `json:"digest"`
				Version   *string `json:"version"`
			} `json:"image"`
		} `json:"deployments"`
	} `json:"status"`
}

func ocitreeStatus(t *testing.T, sysroot string) (*statusDoc, []hostDeployment) {
	t.Helper()
	out := must(t, ocitree(t, "status", "--sysroot", sysroot, "--format", "json"))
	var doc statusDoc
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("status --format json: %v\n%s", err, out)
	}
	var ds []hostDeployment
	for i, d := range doc.Status.Deployments {
		if d.Index != i {
			t.Errorf("deployment %d has index %d", i, d.Index)
		}
		h := hostDeployment{Stateroot: d.Stateroot, Name: fmt.Sprintf("%s.%d", d.Checksum, d.DeploySerial)}
		if d.Version != nil {
			h.Version = *d.Version
		}
		if d.Image != nil && (d.Image.Version == nil) != (d.Version == nil) {
			t.Errorf("deployment %d: image.version %v but version %v", i, d.Image.Version, d.Version)
		}
		ds = append(ds, h)
	}
	return &doc, ds
}

// assertSameStatus checks that stock ostree admin status and ocitree
// status list the same deployments in the same order with the same
// versions; it returns them.
func assertSameStatus(t *testing.T, what, sysroot string) []hostDeployment {
	t.Helper()
	want := ostreeAdminStatus(t, sysroot)
	doc, got := ocitreeStatus(t, sysroot)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("%s: ocitree status lists\n%v\nostree admin status lists\n%v", what, got, want)
	}
	if doc.APIVersion != "org.containers.bootc/v1" || doc.Kind != "BootcHost" || doc.Status.Booted != nil {
		t.Errorf("%s: apiVersion %q kind %q booted %v; want a v1 BootcHost with booted null", what, doc.APIVersion, doc.Kind, doc.Status.Booted)
	}
	return want
}

func versions(ds []hostDeployment) string {
	var v []string
	for _, d := range ds {
		v = append(v, d.Version)
	}
	return strings.Join(v, ",")
}

func TestHostLifecycleMatchesOstree(t *testing.T) {
	setup(t)
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	hostImage(t, work, layout, "1", "1.0", true, nil)
	ref2 := hostImage(t, work, layout, "2", "2.0", true, func(root string) {
		writeFile(t, filepath.Join(root, "usr/bin/newtool"), "#!/bin/sh\necho 2\n")
		writeFile(t, filepath.Join(root, "usr/etc/motd"), "Welcome to 2.0\n")
		writeFile(t, filepath.Join(root, "var/lib/newtool/state"), "from the image\n")
	})
	sys := sysrootDir(t, work, "sysroot")

	must(t, ocitree(t, "install", "--sysroot", sys, "--karg", "root=LABEL=root", "--karg", "rw", "oci:"+layout+":1"))
	ds := assertSameStatus(t, "after install", sys)
	if versions(ds) != "1.0" {
		t.Fatalf("after install: versions %s, want 1.0", versions(ds))
	}
	// --format yaml is the same document as --format json.
	var fromJSON, fromYAML any
	if err := json.Unmarshal([]byte(must(t, ocitree(t, "status", "--sysroot", sys, "--format", "json"))), &fromJSON); err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal([]byte(must(t, ocitree(t, "status", "--sysroot", sys, "--format", "yaml"))), &fromYAML); err != nil {
		t.Fatal(err)
	}
	if jb, yb := string(mustJSON(t, fromJSON)), string(mustJSON(t, fromYAML)); jb != yb {
		t.Errorf("status --format yaml differs from json:\n%s\n%s", yb, jb)
	}
	doc, _ := ocitreeStatus(t, sys)
	if doc.Spec.Image == nil || doc.Spec.Image.Transport != "oci" || doc.Status.Deployments[0].Image == nil ||
		!strings.HasPrefix(doc.Status.Deployments[0].Image.Digest, "sha256:") {
		t.Errorf("status after install: spec.image %+v, deployment image %+v", doc.Spec.Image, doc.Status.Deployments[0].Image)
	}

	// A local /etc change is carried to the next deployment.
	etc1 := filepath.Join(sys, "ostree/deploy/default/deploy", ds[0].Name, "etc")
	writeFile(t, filepath.Join(etc1, "local.conf"), "mine\n")
	writeFile(t, filepath.Join(etc1, "hostname"), "edited\n")
	diff := must(t, ocitree(t, "config-diff", "--sysroot", sys))
	for _, l := range []string{"M    hostname", "A    local.conf"} {
		if !strings.Contains(diff, l) {
			t.Errorf("config-diff lacks %q:\n%s", l, diff)
		}
	}

	mtime := func() time.Time {
		fi, err := os.Stat(filepath.Join(sys, "ostree/deploy"))
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime()
	}
	before := mtime()
	time.Sleep(20 * time.Millisecond)
	r := ocitree(t, "switch", "--sysroot", sys, ref2)
	must(t, r)
	// As ostree 2022.7: the image's /var is not copied; a note says so.
	if !strings.Contains(r.stderr, "contains content in /var/lib that will be ignored") {
		t.Errorf("switch to an image with /var/lib content: no note:\n%s", r)
	}
	if _, err := os.Stat(filepath.Join(sys, "ostree/deploy/default/var/lib/newtool")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the image's var/lib/newtool reached the stateroot's var (%v)", err)
	}
	if !mtime().After(before) {
		t.Errorf("switch did not bump the mtime of ostree/deploy (watched by rpm-ostreed and bootc)")
	}
	ds = assertSameStatus(t, "after switch", sys)
	if versions(ds) != "2.0,1.0" {
		t.Fatalf("after switch: versions %s, want 2.0,1.0", versions(ds))
	}
	etc2 := filepath.Join(sys, "ostree/deploy/default/deploy", ds[0].Name, "etc")
	for name, want := range map[string]string{"local.conf": "mine\n", "hostname": "edited\n", "motd": "Welcome to 2.0\n"} {
		if b, err := os.ReadFile(filepath.Join(etc2, name)); err != nil || string(b) != want {
			t.Errorf("new deployment etc/%s = %q, %v; want %q", name, b, err, want)
		}
	}

	// The tag the origin tracks moves to 3.0: upgrade deploys it, the
	// merge deployment (2.0) stays, 1.0 goes (ostree admin deploy retention).
	hostImage(t, work, layout, "2", "3.0", true, func(root string) {
		writeFile(t, filepath.Join(root, "usr/bin/newtool"), "#!/bin/sh\necho 3\n")
	})
	check := must(t, ocitree(t, "upgrade", "--sysroot", sys, "--check"))
	if !strings.Contains(check, "Update available: ") || !strings.Contains(check, "version: 3.0") || strings.Contains(check, "download: 0 layers") {
		t.Errorf("upgrade --check should report 3.0 and layers to fetch:\n%s", check)
	}
	if got := ostreeAdminStatus(t, sys); fmt.Sprint(got) != fmt.Sprint(ds) {
		t.Errorf("upgrade --check changed the deployments: %v", got)
	}
	must(t, ocitree(t, "upgrade", "--sysroot", sys))
	ds = assertSameStatus(t, "after upgrade", sys)
	if versions(ds) != "3.0,2.0" {
		t.Fatalf("after upgrade: versions %s, want 3.0,2.0", versions(ds))
	}
	if r := ocitree(t, "upgrade", "--sysroot", sys, "--unchanged-exit-77"); r.code != 77 {
		t.Errorf("upgrade with nothing new: exit %d, want 77\n%s", r.code, r)
	}
	if r := ocitree(t, "upgrade", "--sysroot", sys, "--check", "--unchanged-exit-77"); r.code != 77 || !strings.Contains(r.stdout, "No update available") {
		t.Errorf("upgrade --check with nothing new: want exit 77 and No update available\n%s", r)
	}

	must(t, ocitree(t, "rollback", "--sysroot", sys))
	ds = assertSameStatus(t, "after rollback", sys)
	if versions(ds) != "2.0,3.0" {
		t.Fatalf("after rollback: versions %s, want 2.0,3.0", versions(ds))
	}
	// The boot entry of 2.0 is the default one (highest version number).
	entries := readEntries(t, sys)
	if !strings.Contains(entries["ostree-2-default.conf"], " 2.0 (ostree:0)") {
		t.Errorf("after rollback, ostree-2-default.conf is not 2.0 at index 0:\n%v", entries)
	}

	// Stock ostree admin deploy works on the sysroot, and ocitree reads
	// what it wrote.
	csum3 := strings.SplitN(ds[1].Name, ".", 2)[0]
	must(t, ostree(t, "admin", "deploy", "--sysroot="+sys, "--os=default", csum3))
	ds = assertSameStatus(t, "after ostree admin deploy", sys)
	if versions(ds) != "3.0,2.0" || ds[0].Name != csum3+".1" {
		t.Fatalf("after ostree admin deploy: %v", ds)
	}
	// And ocitree can go on from there.
	must(t, ocitree(t, "rollback", "--sysroot", sys))
	assertSameStatus(t, "rollback after ostree admin deploy", sys)
	must(t, ostree(t, "fsck", "--repo="+filepath.Join(sys, "ostree/repo")))
}

func readEntries(t *testing.T, sys string) map[string]string {
	t.Helper()
	m := map[string]string{}
	files, _ := filepath.Glob(filepath.Join(sys, "boot/loader/entries/*.conf"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m[filepath.Base(f)] = string(b)
	}
	return m
}

// bootFiles lists every file under boot/ and every ostree/boot.* link of a
// sysroot: path -> "link TARGET", "dir MODE" or "file MODE SHA".
func bootFiles(t *testing.T, sys string) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, top := range []string{"boot"} {
		filepath.Walk(filepath.Join(sys, top), func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(sys, p)
			if rel == "boot/grub2" && fi.IsDir() {
				return filepath.SkipDir // the bootloader's own files (compared where tested)
			}
			switch {
			case fi.Mode()&os.ModeSymlink != 0:
				tg, _ := os.Readlink(p)
				m[rel] = "link " + tg
			case fi.IsDir():
				m[rel] = fmt.Sprintf("dir %o", fi.Mode().Perm())
			default:
				b, _ := os.ReadFile(p)
				m[rel] = fmt.Sprintf("file %o %q", fi.Mode().Perm(), b)
			}
			return nil
		})
	}
	links, _ := filepath.Glob(filepath.Join(sys, "ostree/boot.*"))
	for _, l := range links {
		filepath.Walk(l, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				t.Fatal(err)
			}
			rel, _ := filepath.Rel(sys, p)
			if fi.Mode()&os.ModeSymlink != 0 {
				tg, _ := os.Readlink(p)
				m[rel] = "link " + tg
			} else if fi.IsDir() {
				m[rel] = fmt.Sprintf("dir %o", fi.Mode().Perm())
			}
			return nil
		})
	}
	return m
}

func assertSameBoot(t *testing.T, what, want, got string) {
	t.Helper()
	w, g := bootFiles(t, want), bootFiles(t, got)
	var keys []string
	for k := range w {
		keys = append(keys, k)
	}
	for k := range g {
		if _, ok := w[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var diffs []string
	for _, k := range keys {
		if w[k] != g[k] {
			diffs = append(diffs, fmt.Sprintf("%s:\n  ostree:  %s\n  ocitree: %s", k, clip(w[k], 400), clip(g[k], 400)))
		}
	}
	if len(diffs) > 0 {
		t.Errorf("%s: boot/ and ostree/boot.* differ from ostree admin deploy's:\n%s", what, strings.Join(diffs, "\n"))
	}
}

// TestHostInstallMatchesOstreeDeploy deploys the same commit with the same
// kargs with ocitree install and with stock ostree admin init-fs, os-init
// and deploy, then a second image with ocitree switch and ostree admin
// deploy, and compares boot/, the bootlinks and the deployment trees.
func TestHostInstallMatchesOstreeDeploy(t *testing.T) {
	setup(t)
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	ref1 := hostImage(t, work, layout, "1", "1.0", true, nil)
	ref2 := hostImage(t, work, layout, "2", "2.0", true, func(root string) {
		writeFile(t, filepath.Join(root, "usr/etc/motd"), "Welcome to 2.0\n")
	})
	ref3 := hostImage(t, work, layout, "3", "3.0", true, func(root string) {
		writeFile(t, filepath.Join(root, "usr/lib/modules/6.1.0-ocitree/initramfs.img"), "initramfs 3\n")
	})
	ours := sysrootDir(t, work, "ocitree")
	theirs := sysrootDir(t, work, "ostree")

	kargs := []string{"root=LABEL=root", "rw", "console=ttyS0,115200"}
	args := []string{"install", "--sysroot", ours}
	deployArgs := []string{"admin", "deploy", "--sysroot=" + theirs, "--os=default"}
	for _, k := range kargs {
		args = append(args, "--karg", k)
		deployArgs = append(deployArgs, "--karg="+k)
	}
	must(t, ocitree(t, append(args, ref1)...))
	ds := assertSameStatus(t, "ocitree install", ours)
	csum1 := strings.SplitN(ds[0].Name, ".", 2)[0]

	stockSysroot(t, theirs, filepath.Join(ours, "ostree/repo"), csum1)
	must(t, ostree(t, append(deployArgs, csum1)...))

	compareSysroots(t, "first deployment", theirs, ours, ds)

	// Same local edit in both, then the second image.
	for _, s := range []string{ours, theirs} {
		writeFile(t, filepath.Join(s, "ostree/deploy/default/deploy", csum1+".0", "etc/local.conf"), "mine\n")
	}
	must(t, ocitree(t, "switch", "--sysroot", ours, ref2))
	ds = assertSameStatus(t, "ocitree switch", ours)
	csum2 := strings.SplitN(ds[0].Name, ".", 2)[0]
	must(t, ostree(t, "pull-local", "--repo="+filepath.Join(theirs, "ostree/repo"), filepath.Join(ours, "ostree/repo"), csum2))
	must(t, ostree(t, "admin", "deploy", "--sysroot="+theirs, "--os=default", csum2))
	compareSysroots(t, "second deployment", theirs, ours, ds)

	// A third image with another initramfs (another boot checksum): the
	// oldest deployment goes in both, and its kernel directory with it.
	must(t, ocitree(t, "switch", "--sysroot", ours, ref3))
	ds = assertSameStatus(t, "ocitree switch to 3.0", ours)
	csum3 := strings.SplitN(ds[0].Name, ".", 2)[0]
	must(t, ostree(t, "pull-local", "--repo="+filepath.Join(theirs, "ostree/repo"), filepath.Join(ours, "ostree/repo"), csum3))
	must(t, ostree(t, "admin", "deploy", "--sysroot="+theirs, "--os=default", csum3))
	if versions(ds) != "3.0,2.0" {
		t.Fatalf("after the third image: %v", ds)
	}
	compareSysroots(t, "third deployment", theirs, ours, ds)

	// A second stateroot: its deployment goes first, the others stay;
	// titles then name the stateroot, bootserials count per kernel.
	must(t, ocitree(t, "install", "--sysroot", ours, "--stateroot", "other", "--karg", "rw", ref1))
	ds = assertSameStatus(t, "install of a second stateroot", ours)
	must(t, ostree(t, "admin", "os-init", "--sysroot="+theirs, "other"))
	// (1.0 was pruned from both repositories with its deployment)
	must(t, ostree(t, "pull-local", "--repo="+filepath.Join(theirs, "ostree/repo"), filepath.Join(ours, "ostree/repo"), csum1))
	must(t, ostree(t, "admin", "deploy", "--sysroot="+theirs, "--os=other", "--karg=rw", csum1))
	if got := ostreeAdminStatus(t, theirs); fmt.Sprint(got) != fmt.Sprint(ds) {
		t.Fatalf("second stateroot: ostree admin deploy made %v, ocitree %v", got, ds)
	}
	if !strings.Contains(fmt.Sprint(readEntries(t, ours)), "(ostree:other:0)") {
		t.Errorf("titles do not name the stateroot: %v", readEntries(t, ours))
	}
	assertSameBoot(t, "second stateroot", theirs, ours)
	assertSameTree(t, "second stateroot: deployment", filepath.Join(theirs, "ostree/deploy/other/deploy", ds[0].Name),
		filepath.Join(ours, "ostree/deploy/other/deploy", ds[0].Name), cmpOpts{})
}

func compareSysroots(t *testing.T, what, theirs, ours string, ds []hostDeployment) {
	t.Helper()
	if got := ostreeAdminStatus(t, theirs); fmt.Sprint(got) != fmt.Sprint(ds) {
		t.Fatalf("%s: ostree admin deploy made %v, ocitree %v", what, got, ds)
	}
	if n := len(readEntries(t, ours)); n != len(ds) {
		t.Errorf("%s: %d BLS entries for %d deployments", what, n, len(ds))
	}
	assertSameBoot(t, what, theirs, ours)
	for _, d := range ds {
		rel := filepath.Join("ostree/deploy/default/deploy", d.Name)
		assertSameTree(t, what+": deployment "+d.Name, filepath.Join(theirs, rel), filepath.Join(ours, rel), cmpOpts{})
		if w, g := immutable(t, filepath.Join(theirs, rel)), immutable(t, filepath.Join(ours, rel)); w != g {
			t.Errorf("%s: deployment %s immutable bit %v, ostree's %v", what, d.Name, g, w)
		}
	}
	// The layout of init-fs/os-init, the stateroot var and the refs.
	for _, rel := range []string{".", "ostree/deploy/default/var"} {
		w, g := topLevel(t, filepath.Join(theirs, rel)), topLevel(t, filepath.Join(ours, rel))
		if w != g {
			t.Errorf("%s: %s differs:\nostree:  %s\nocitree: %s", what, rel, w, g)
		}
	}
	wr := deployRefs(t, theirs)
	if gr := deployRefs(t, ours); gr != wr {
		t.Errorf("%s: deployment refs %s, ostree wrote %s", what, gr, wr)
	}
}

// immutable reports whether dir has FS_IMMUTABLE_FL (lsattr's i).
func immutable(t *testing.T, dir string) bool {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	fl, err := unix.IoctlGetUint32(fd, unix.FS_IOC_GETFLAGS)
	if err != nil {
		t.Fatalf("%s: FS_IOC_GETFLAGS: %v", dir, err)
	}
	return fl&0x10 != 0
}

func topLevel(t *testing.T, dir string) string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		fi, err := os.Lstat(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%s:%v", e.Name(), fi.Mode()))
	}
	sort.Strings(out)
	return strings.Join(out, " ")
}

func deployRefs(t *testing.T, sys string) string {
	t.Helper()
	out := must(t, ostree(t, "refs", "--repo="+filepath.Join(sys, "ostree/repo")))
	var refs []string
	for _, r := range strings.Fields(out) {
		if regexp.MustCompile(`^ostree/[01]/[01]/[0-9]+$`).MatchString(r) {
			c := must(t, ostree(t, "rev-parse", "--repo="+filepath.Join(sys, "ostree/repo"), r))
			refs = append(refs, r+"="+strings.TrimSpace(c))
		}
	}
	sort.Strings(refs)
	return strings.Join(refs, " ")
}

// TestHostRefusesBadImages: images that cannot be deployed are refused,
// with a message that names the problem, before anything is written to
// boot/ or ostree/deploy/ — at install and at switch.
func TestHostRefusesBadImages(t *testing.T) {
	setup(t)
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	good := hostImage(t, work, layout, "good", "1.0", true, nil)
	kdir := "usr/lib/modules/6.1.0-ocitree"
	cases := []struct {
		name, want string
		mutate     func(root string)
	}{
		{"nokernel", "no kernel", func(root string) { os.Remove(filepath.Join(root, kdir, "vmlinuz")) }},
		{"twokernels", "two kernels", func(root string) {
			writeFile(t, filepath.Join(root, "usr/lib/modules/6.2.0-other/vmlinuz"), "other kernel\n")
		}},
		{"etc", "both /etc and /usr/etc", func(root string) { writeFile(t, filepath.Join(root, "etc/passwd"), "root:x:0:0::/:/bin/sh\n") }},
		{"kargsd", "kargs.d/bad.toml", func(root string) {
			writeFile(t, filepath.Join(root, "usr/lib/bootc/kargs.d/bad.toml"), "kargs = [\"quiet\"\n")
		}},
		{"kargsd-key", "unknown key", func(root string) {
			writeFile(t, filepath.Join(root, "usr/lib/bootc/kargs.d/10-x.toml"), "kargs = [\"quiet\"]\nkarg = [\"x\"]\n")
		}},
	}
	// Aimed at / (the default), host commands refuse: this machine is not
	// booted from a deployment.
	for _, args := range [][]string{{"status"}, {"upgrade"}, {"rollback"}} {
		if r := ocitree(t, args...); r.code != 1 || !strings.Contains(r.stderr, "/ is not a system booted from an ostree deployment") {
			t.Errorf("%s on /: want exit 1 and a clear refusal:\n%s", args[0], r)
		}
	}
	installed := sysrootDir(t, work, "installed")
	must(t, ocitree(t, "install", "--sysroot", installed, good))
	before := bootFiles(t, installed)
	deployBefore := topLevel(t, filepath.Join(installed, "ostree/deploy/default/deploy"))
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ref := hostImage(t, work, layout, c.name, "9.0", false, c.mutate)
			sys := sysrootDir(t, work, "sys-"+c.name)
			r := ocitree(t, "install", "--sysroot", sys, ref)
			if r.code != 1 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("install of a bad image: want exit 1 and %q in the message:\n%s", c.want, r)
			}
			for _, d := range []string{"boot", "ostree/deploy"} {
				ents, err := os.ReadDir(filepath.Join(sys, d))
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					t.Fatal(err)
				}
				if len(ents) != 0 {
					t.Errorf("install of a bad image wrote into %s: %v", d, ents)
				}
			}
			r = ocitree(t, "switch", "--sysroot", installed, ref)
			if r.code != 1 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("switch to a bad image: want exit 1 and %q in the message:\n%s", c.want, r)
			}
			if after := bootFiles(t, installed); fmt.Sprint(after) != fmt.Sprint(before) {
				t.Errorf("switch to a bad image changed boot/")
			}
			if got := topLevel(t, filepath.Join(installed, "ostree/deploy/default/deploy")); got != deployBefore {
				t.Errorf("switch to a bad image changed ostree/deploy: %s, was %s", got, deployBefore)
			}
		})
	}
}

// TestHostPinUndeployKargsCleanup: a reorder of equal boot configurations
// is a sub-bootversion swap (entries untouched, ostree/boot.N flips), pins
// survive switch and show in ostree admin status, undeploy, kargs and
// cleanup keep the sysroot readable by ostree.
func TestHostPinUndeployKargsCleanup(t *testing.T) {
	setup(t)
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	ref1 := hostImage(t, work, layout, "1", "1.0", true, nil)
	ref2 := hostImage(t, work, layout, "2", "2.0", true, func(root string) {
		writeFile(t, filepath.Join(root, "usr/bin/newtool"), "2\n")
	})
	sys := sysrootDir(t, work, "sysroot")
	must(t, ocitree(t, "install", "--sysroot", sys, "--karg", "rw", ref1))
	ds := assertSameStatus(t, "install", sys)
	csum1 := strings.SplitN(ds[0].Name, ".", 2)[0]

	// Two deployments of one commit with the same kargs (stock ostree),
	// then a rollback: only the order changes.
	must(t, ostree(t, "admin", "deploy", "--sysroot="+sys, "--os=default", "--retain", csum1))
	ds = assertSameStatus(t, "ostree admin deploy --retain", sys)
	entriesBefore := readEntries(t, sys)
	loaderBefore, _ := os.Readlink(filepath.Join(sys, "boot/loader"))
	bv := strings.TrimPrefix(loaderBefore, "loader.")
	linkBefore, _ := os.Readlink(filepath.Join(sys, "ostree/boot."+bv))
	must(t, ocitree(t, "rollback", "--sysroot", sys))
	got := assertSameStatus(t, "rollback of equal configurations", sys)
	if got[0] != ds[1] || got[1] != ds[0] {
		t.Fatalf("rollback: %v, want %v swapped", got, ds)
	}
	loaderAfter, _ := os.Readlink(filepath.Join(sys, "boot/loader"))
	linkAfter, _ := os.Readlink(filepath.Join(sys, "ostree/boot."+bv))
	if loaderAfter != loaderBefore || linkAfter == linkBefore || fmt.Sprint(readEntries(t, sys)) != fmt.Sprint(entriesBefore) {
		t.Errorf("not a sub-bootversion swap: loader %s -> %s, ostree/boot.%s %s -> %s, entries changed: %v",
			loaderBefore, loaderAfter, bv, linkBefore, linkAfter, fmt.Sprint(readEntries(t, sys)) != fmt.Sprint(entriesBefore))
	}
	if _, err := os.Lstat(filepath.Join(sys, "ostree", linkBefore)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the old bootlink farm ostree/%s was not cleaned up (%v)", linkBefore, err)
	}

	// Pin 1; a switch keeps it (and the merge deployment 0).
	must(t, ocitree(t, "pin", "--sysroot", sys, "1"))
	if out := must(t, ostree(t, "admin", "status", "--sysroot="+sys)); strings.Count(out, "Pinned: yes") != 1 {
		t.Errorf("ostree admin status after pin:\n%s", out)
	}
	must(t, ocitree(t, "switch", "--sysroot", sys, ref2))
	ds = assertSameStatus(t, "switch with a pinned deployment", sys)
	if versions(ds) != "2.0,1.0,1.0" {
		t.Fatalf("after switch: %v; want the pinned deployment kept", ds)
	}
	doc, _ := ocitreeStatus(t, sys)
	if !doc.Status.Deployments[2].Pinned || doc.Status.Deployments[1].Pinned {
		t.Errorf("pinned flags: %+v", doc.Status.Deployments)
	}
	must(t, ocitree(t, "pin", "--sysroot", sys, "--unpin", "2"))
	if out := must(t, ostree(t, "admin", "status", "--sysroot="+sys)); strings.Contains(out, "Pinned") {
		t.Errorf("ostree admin status after unpin:\n%s", out)
	}

	// Undeploy the last one.
	must(t, ocitree(t, "undeploy", "--sysroot", sys, "2"))
	ds = assertSameStatus(t, "undeploy", sys)
	if len(ds) != 2 {
		t.Fatalf("after undeploy: %v", ds)
	}
	if dirs, _ := filepath.Glob(filepath.Join(sys, "ostree/deploy/default/deploy/*.origin")); len(dirs) != 2 {
		t.Errorf("after undeploy: origins %v", dirs)
	}

	// Kernel arguments.
	must(t, ocitree(t, "kargs", "--sysroot", sys, "--append", "quiet", "--replace", "console=ttyS0"))
	if out := strings.TrimSpace(must(t, ocitree(t, "kargs", "--sysroot", sys))); out != "rw console=ttyS0 quiet" {
		t.Errorf("kargs: %q", out)
	}
	ents := readEntries(t, sys)
	if e := ents["ostree-2-default.conf"]; !regexp.MustCompile(`(?m)^options rw ostree=/ostree/boot\.[01]/default/[0-9a-f]{64}/0 console=ttyS0 quiet$`).MatchString(e) {
		t.Errorf("default entry after kargs:\n%s", e)
	}
	assertSameStatus(t, "kargs", sys)
	if r := ocitree(t, "kargs", "--sysroot", sys, "--delete", "nosuch"); r.code != 1 {
		t.Errorf("deleting a missing karg: %s", r)
	}

	// What an interrupted deploy leaves (a checkout's temp dir, an origin's
	// temp file) goes at the next cleanup; ostree's own cleanup would stop
	// at a directory name it cannot parse.
	depDir := filepath.Join(sys, "ostree/deploy/default/deploy")
	writeFile(t, filepath.Join(depDir, "."+csum1+".9.ocitree-checkout-x1/usr/bin/sh"), "partial\n")
	writeFile(t, filepath.Join(depDir, "."+csum1+".9.origin.tmp"), "[origin]\n")
	must(t, ocitree(t, "cleanup", "--sysroot", sys))
	assertSameStatus(t, "cleanup", sys)
	if left, _ := filepath.Glob(filepath.Join(depDir, ".*")); len(left) != 0 {
		t.Errorf("cleanup left %v", left)
	}
	must(t, ostree(t, "fsck", "--repo="+filepath.Join(sys, "ostree/repo")))
	// ostree's own cleanup finds nothing of ours to complain about.
	must(t, ostree(t, "admin", "cleanup", "--sysroot="+sys))
	before := assertSameStatus(t, "ostree admin cleanup", sys)

	// switch --retain keeps every deployment.
	must(t, ocitree(t, "switch", "--sysroot", sys, "--retain", ref1))
	if got := assertSameStatus(t, "switch --retain", sys); len(got) != len(before)+1 || fmt.Sprint(got[1:]) != fmt.Sprint(before) {
		t.Errorf("switch --retain: %v, want a new deployment before %v", got, before)
	}
}

// TestHostKargsD: install takes usr/lib/bootc/kargs.d (sorted, per
// architecture) before --karg, equal to ostree admin deploy given the same
// arguments; a switch applies only the kargs.d difference and keeps the
// rest.
func TestHostKargsD(t *testing.T) {
	setup(t)
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	arch := map[string]string{"amd64": "x86_64", "arm64": "aarch64"}[runtime.GOARCH]
	if arch == "" {
		arch = runtime.GOARCH
	}
	kd := "usr/lib/bootc/kargs.d/"
	ref1 := hostImage(t, work, layout, "1", "1.0", true, func(root string) {
		writeFile(t, filepath.Join(root, kd+"20-arch.toml"), "kargs = [\"archonly\"]\nmatch-architectures = [\""+arch+"\"]\n")
		writeFile(t, filepath.Join(root, kd+"10-base.toml"), "kargs = [\"console=tty0\", \"nosmt\"]\n")
		writeFile(t, filepath.Join(root, kd+"30-other.toml"), "kargs = [\"otherarch\"]\nmatch-architectures = [\"nosucharch\"]\n")
		writeFile(t, filepath.Join(root, kd+"README"), "not a toml file\n")
	})
	ref2 := hostImage(t, work, layout, "2", "2.0", true, func(root string) {
		writeFile(t, filepath.Join(root, kd+"20-arch.toml"), "kargs = [\"archonly\"]\nmatch-architectures = [\""+arch+"\"]\n")
		writeFile(t, filepath.Join(root, kd+"10-base.toml"), "kargs = [\"console=tty0\", \"quiet\"]\n")
	})
	ours := sysrootDir(t, work, "ocitree")
	theirs := sysrootDir(t, work, "ostree")
	must(t, ocitree(t, "install", "--sysroot", ours, "--karg", "root=LABEL=r", ref1))
	ds := assertSameStatus(t, "install", ours)
	csum1 := strings.SplitN(ds[0].Name, ".", 2)[0]
	stockSysroot(t, theirs, filepath.Join(ours, "ostree/repo"), csum1)
	must(t, ostree(t, "admin", "deploy", "--sysroot="+theirs, "--os=default",
		"--karg=console=tty0", "--karg=nosmt", "--karg=archonly", "--karg=root=LABEL=r", csum1))
	compareSysroots(t, "install with kargs.d", theirs, ours, ds)

	must(t, ocitree(t, "switch", "--sysroot", ours, ref2))
	assertSameStatus(t, "switch", ours)
	opts := regexp.MustCompile(`(?m)^options (.*)$`).FindStringSubmatch(readEntries(t, ours)["ostree-2-default.conf"])
	want := regexp.MustCompile(`^console=tty0 archonly root=LABEL=r ostree=/ostree/boot\.[01]/default/[0-9a-f]{64}/0 quiet$`)
	if opts == nil || !want.MatchString(opts[1]) {
		t.Errorf("after switch to an image whose kargs.d drops nosmt and adds quiet: options %q, want %s", opts, want)
	}
}

// TestHostUpgradeCheckPackages: the registry tag moves to an image that
// differs in one package; upgrade --check names it, with the bytes to
// download, and changes nothing; upgrade then deploys it.
func TestHostUpgradeCheckPackages(t *testing.T) {
	setup(t)
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	repo := filepath.Join(work, "build-repo")
	must(t, ocitree(t, "repo", "init", "--repo", repo, "--mode", "bare"))
	o1 := commitOpts{subject: "1.0", metadata: []string{"version=1.0"}, bootable: true}
	must(t, ocitree(t, append(o1.ocitreeArgs(repo, "os/1"), tree(t, "dpkgos"))...))
	o2 := commitOpts{subject: "1.1", metadata: []string{"version=1.1"}, bootable: true}
	must(t, ocitree(t, append(o2.ocitreeArgs(repo, "os/2"), tree(t, "dpkgos-bumped"))...))
	encapsulate(t, repo, "os/1", "oci:"+layout+":1.0")
	encapsulate(t, repo, "os/1", "oci:"+layout+":stable")
	sys := sysrootDir(t, work, "sysroot")
	must(t, ocitree(t, "install", "--sysroot", sys, "oci:"+layout+":stable"))
	before := assertSameStatus(t, "install", sys)

	newDigest := encapsulate(t, repo, "os/2", "oci:"+layout+":stable", "--previous-build", "oci:"+layout+":1.0")
	out := must(t, ocitree(t, "upgrade", "--sysroot", sys, "--check", "--format", "json"))
	var uc struct {
		Digest          string   `json:"digest"`
		Version         string   `json:"version"`
		UpdateAvailable bool     `json:"updateAvailable"`
		LayersNeeded    int      `json:"layersNeeded"`
		BytesNeeded     int64    `json:"bytesNeeded"`
		Changed         []string `json:"changed"`
		Added           []string `json:"added"`
		Removed         []string `json:"removed"`
	}
	if err := json.Unmarshal([]byte(out), &uc); err != nil {
		t.Fatalf("upgrade --check --format json: %v\n%s", err, out)
	}
	if !uc.UpdateAvailable || uc.Digest != newDigest || uc.Version != "1.1" || uc.BytesNeeded <= 0 || uc.LayersNeeded == 0 {
		t.Errorf("upgrade --check: %+v; want an update to %s, version 1.1, with bytes to download", uc, newDigest)
	}
	if !slices.Contains(uc.Changed, bumpedPackage) || len(uc.Added) != 0 || len(uc.Removed) != 0 {
		t.Errorf("upgrade --check: changed %v added %v removed %v; want %s changed and nothing added or removed", uc.Changed, uc.Added, uc.Removed, bumpedPackage)
	}
	human := must(t, ocitree(t, "upgrade", "--sysroot", sys, "--check"))
	if !strings.Contains(human, "changed: ") || !strings.Contains(human, bumpedPackage) {
		t.Errorf("upgrade --check (human) does not name %s:\n%s", bumpedPackage, human)
	}
	if got := assertSameStatus(t, "after --check", sys); fmt.Sprint(got) != fmt.Sprint(before) {
		t.Errorf("upgrade --check changed the deployments: %v", got)
	}
	must(t, ocitree(t, "upgrade", "--sysroot", sys))
	if got := assertSameStatus(t, "upgrade", sys); versions(got) != "1.1,1.0" {
		t.Errorf("after upgrade: %v", got)
	}
}

// TestHostUpgradeCheckRegistry: install from a real registry, move the tag
// to an image that differs in one package; upgrade --check downloads no
// layer (only the new config blob besides manifests) and reports exactly
// the bytes of the layers the new manifest adds.
func TestHostUpgradeCheckRegistry(t *testing.T) {
	setup(t, "skopeo", "docker-registry")
	reg := startRegistry(t)
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	repo := filepath.Join(work, "build-repo")
	must(t, ocitree(t, "repo", "init", "--repo", repo, "--mode", "bare"))
	o1 := commitOpts{subject: "1.0", metadata: []string{"version=1.0"}, bootable: true}
	must(t, ocitree(t, append(o1.ocitreeArgs(repo, "os/1"), tree(t, "dpkgos"))...))
	o2 := commitOpts{subject: "1.1", metadata: []string{"version=1.1"}, bootable: true}
	must(t, ocitree(t, append(o2.ocitreeArgs(repo, "os/2"), tree(t, "dpkgos-bumped"))...))
	encapsulate(t, repo, "os/1", "oci:"+layout+":1.0")
	encapsulate(t, repo, "os/2", "oci:"+layout+":1.1", "--previous-build", "oci:"+layout+":1.0")
	push := func(tag string) {
		must(t, runCmd(t, nil, "skopeo", "copy", "--dest-tls-verify=false", "oci:"+layout+":"+tag, "docker://"+reg.addr+"/os:stable"))
	}
	push("1.0")
	img := "docker://" + reg.proxyAddr + "/os:stable"
	sys := sysrootDir(t, work, "sysroot")
	must(t, ocitree(t, "install", "--tls-verify=false", "--sysroot", sys, img))
	assertSameStatus(t, "install from a registry", sys)

	push("1.1")
	m1, m2 := layoutManifest(t, "oci:"+layout+":1.0"), layoutManifest(t, "oci:"+layout+":1.1")
	old := map[string]bool{}
	for _, l := range m1.Layers {
		old[l.Digest.String()] = true
	}
	var want int64
	for _, l := range m2.Layers {
		if !old[l.Digest.String()] {
			want += l.Size
		}
	}
	reg.served()
	out := must(t, ocitree(t, "upgrade", "--tls-verify=false", "--sysroot", sys, "--check", "--format", "json"))
	for d := range reg.served() {
		if d != m2.Config.Digest.String() {
			t.Errorf("upgrade --check downloaded blob %s (only the config may be fetched)", d)
		}
	}
	var uc struct {
		BytesNeeded int64    `json:"bytesNeeded"`
		Changed     []string `json:"changed"`
		Version     string   `json:"version"`
	}
	if err := json.Unmarshal([]byte(out), &uc); err != nil {
		t.Fatal(err)
	}
	if uc.BytesNeeded != want || uc.Version != "1.1" || !slices.Contains(uc.Changed, bumpedPackage) {
		t.Errorf("upgrade --check: %s\nwant %d bytes (the layers 1.1 adds), version 1.1, %s changed", out, want, bumpedPackage)
	}
	must(t, ocitree(t, "upgrade", "--tls-verify=false", "--sysroot", sys))
	if got := assertSameStatus(t, "upgrade from the registry", sys); versions(got) != "1.1,1.0" {
		t.Errorf("after upgrade: %v", got)
	}
	var fetched int64
	for _, n := range reg.served() {
		fetched += n
	}
	if fetched > want+int64(m2.Config.Size) {
		t.Errorf("upgrade downloaded %d bytes; the new layers and config are %d", fetched, want+m2.Config.Size)
	}
	// Up to date: --check fetches the manifest only (the image store
	// knows the image by its digest), not even the config.
	out = must(t, ocitree(t, "upgrade", "--tls-verify=false", "--sysroot", sys, "--check", "--format", "json"))
	for d, n := range reg.served() {
		t.Errorf("upgrade --check with nothing new downloaded blob %s (%d bytes)", d, n)
	}
	if !strings.Contains(out, `"updateAvailable": false`) {
		t.Errorf("upgrade --check after the upgrade: %s; want no update", out)
	}
}

// TestHostExampleOSRefusedLikeOstree: ostree-ext's exampleos (a kernel and
// initramfs but no usr/etc and no os-release) cannot be deployed by
// ostree admin deploy; ocitree refuses it too, before writing anything,
// and says why.
func TestHostExampleOSRefusedLikeOstree(t *testing.T) {
	setup(t, "zstd")
	work := workDir(t)
	tarFile := filepath.Join(work, "exampleos.tar")
	must(t, runCmd(t, nil, "zstd", "-q", "-d", "-o", tarFile, "../testdata/exampleos.tar.zst"))
	repo := filepath.Join(work, "repo")
	must(t, ocitree(t, "repo", "init", "--repo", repo, "--mode", "bare"))
	csum := strings.TrimSpace(must(t, ocitree(t, "repo", "commit", "--repo", repo, "--branch", "exampleos", "--bootable", "--tar", tarFile)))
	layout := filepath.Join(work, "oci")
	encapsulate(t, repo, "exampleos", "oci:"+layout+":1")

	sys := sysrootDir(t, work, "ocitree")
	r := ocitree(t, "install", "--sysroot", sys, "oci:"+layout+":1")
	if r.code != 1 || !strings.Contains(r.stderr, "no /usr/etc") || !strings.Contains(r.stderr, "ocitree rootfs prepare DIR") {
		t.Fatalf("install of exampleos: want exit 1 naming the missing /usr/etc and rootfs prepare:\n%s", r)
	}
	for _, d := range []string{"boot", "ostree/deploy"} {
		if ents, _ := os.ReadDir(filepath.Join(sys, d)); len(ents) != 0 {
			t.Errorf("install of exampleos wrote into %s: %v", d, ents)
		}
	}
	theirs := sysrootDir(t, work, "ostree")
	stockSysroot(t, theirs, repo, csum)
	if r := ostree(t, "admin", "deploy", "--sysroot="+theirs, "--os=default", csum); r.code == 0 {
		t.Errorf("ostree admin deploy accepted exampleos; ocitree's refusal is then wrong:\n%s", r)
	}
}

// TestHostGrub2MatchesGenerator: install --bootloader grub2 (then a switch)
// writes boot/loader.N/grub.cfg byte for byte as the real ostree admin
// deploy does with libostree 2022.7's ostree-grub-generator (run through
// OSTREE_GRUB2_EXEC, boot prefix /boot), beside identical BLS entries.
func TestHostGrub2MatchesGenerator(t *testing.T) {
	setup(t)
	work := workDir(t)
	gen := filepath.Join(work, "bin", "ostree-grub-generator")
	if err := os.MkdirAll(filepath.Dir(gen), 0o755); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("../testdata/ostree-grub-generator")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(gen, src, 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"OSTREE_GRUB2_EXEC=" + gen, "OSTREE_BOOT_PARTITION=/boot"}
	layout := filepath.Join(work, "oci")
	ref1 := hostImage(t, work, layout, "1", "1.0", true, nil)
	ref2 := hostImage(t, work, layout, "2", "2.0", true, func(root string) {
		writeFile(t, filepath.Join(root, "usr/lib/modules/6.1.0-ocitree/initramfs.img"), "initramfs 2\n")
	})
	ours := sysrootDir(t, work, "ocitree")
	theirs := sysrootDir(t, work, "ostree")
	must(t, ocitree(t, "install", "--sysroot", ours, "--bootloader", "grub2", "--karg", "root=LABEL=r", ref1))
	if tg, err := os.Readlink(filepath.Join(ours, "boot/grub2/grub.cfg")); err != nil || tg != "../loader/grub.cfg" {
		t.Errorf("boot/grub2/grub.cfg: %q, %v; want a link to ../loader/grub.cfg", tg, err)
	}
	ds := assertSameStatus(t, "install --bootloader grub2", ours)
	csum1 := strings.SplitN(ds[0].Name, ".", 2)[0]
	if err := os.MkdirAll(filepath.Join(theirs, "boot/grub2"), 0o755); err != nil {
		t.Fatal(err)
	}
	must(t, ostree(t, "admin", "init-fs", theirs))
	must(t, ostree(t, "admin", "os-init", "--sysroot="+theirs, "default"))
	// A regular grub.cfg makes libostree pick its grub2 backend.
	writeFile(t, filepath.Join(theirs, "boot/grub2/grub.cfg"), "")
	must(t, ostree(t, "pull-local", "--repo="+filepath.Join(theirs, "ostree/repo"), filepath.Join(ours, "ostree/repo"), csum1))
	must(t, runCmdEnv(t, env, nil, "ostree", "admin", "deploy", "--sysroot="+theirs, "--os=default", "--karg=root=LABEL=r", csum1))
	compareGrub := func(what string) {
		t.Helper()
		w, err := os.ReadFile(filepath.Join(theirs, "boot/loader/grub.cfg"))
		if err != nil {
			t.Fatalf("%s: ostree wrote no grub.cfg: %v", what, err)
		}
		g, err := os.ReadFile(filepath.Join(ours, "boot/loader/grub.cfg"))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if string(g) != string(w) || !strings.Contains(string(w), "menuentry") {
			t.Errorf("%s: grub.cfg differs:\n%s\nostree-grub-generator wrote:\n%s", what, g, w)
		}
	}
	compareGrub("install")
	assertSameBoot(t, "install --bootloader grub2", theirs, ours)

	// The next deployment keeps grub.cfg current (detected from the link).
	must(t, ocitree(t, "switch", "--sysroot", ours, ref2))
	ds = assertSameStatus(t, "switch", ours)
	csum2 := strings.SplitN(ds[0].Name, ".", 2)[0]
	must(t, ostree(t, "pull-local", "--repo="+filepath.Join(theirs, "ostree/repo"), filepath.Join(ours, "ostree/repo"), csum2))
	must(t, runCmdEnv(t, env, nil, "ostree", "admin", "deploy", "--sysroot="+theirs, "--os=default", csum2))
	compareGrub("switch")
	assertSameBoot(t, "switch with grub2", theirs, ours)
}

// stockSysroot makes theirs a sysroot with the real ostree (init-fs, os-init
// of the stateroot "default") and pulls commit csum into its repository from
// the repository repo, ready for a stock `ostree admin deploy`.
func stockSysroot(t *testing.T, theirs, repo, csum string) {
	t.Helper()
	if err := os.Mkdir(theirs, 0o755); err != nil {
		t.Fatal(err)
	}
	must(t, ostree(t, "admin", "init-fs", theirs))
	must(t, ostree(t, "admin", "os-init", "--sysroot="+theirs, "default"))
	must(t, ostree(t, "pull-local", "--repo="+filepath.Join(theirs, "ostree/repo"), repo, csum))
}
