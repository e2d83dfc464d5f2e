package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/encap/imgstore"
	"golang.org/x/sys/unix"
)

// TestHostEtcMergeMatchesOstree makes the same local /etc changes (the
// cases of spec §4's table) in an ocitree sysroot and in one made by
// ostree admin deploy, deploys the same next image in both (ocitree switch,
// ostree admin deploy), and compares the new deployments' etc (content,
// modes, owners, xattrs) and config-diff.
func TestHostEtcMergeMatchesOstree(t *testing.T) {
	setup(t)
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	base := func(root string) {
		e := filepath.Join(root, "usr/etc")
		for _, n := range []string{"unchanged.conf", "tobemodified.conf", "toberemoved.conf", "modechange.conf",
			"ownerchange.conf", "xattrchange.conf", "ftd.conf", "droppedbynew_unmod.conf", "droppedbynew_mod.conf", "subdir/file.conf"} {
			writeFile(t, filepath.Join(e, n), n+" v1\n")
		}
		if err := os.Symlink("unchanged.conf", filepath.Join(e, "link1")); err != nil {
			t.Fatal(err)
		}
	}
	ref1 := hostImage(t, work, layout, "1", "1.0", true, base)
	ref2 := hostImage(t, work, layout, "2", "2.0", true, func(root string) {
		base(root)
		e := filepath.Join(root, "usr/etc")
		writeFile(t, filepath.Join(e, "unchanged.conf"), "unchanged v2\n")
		writeFile(t, filepath.Join(e, "tobemodified.conf"), "tobemodified v2\n")
		writeFile(t, filepath.Join(e, "newdefault.conf"), "new in v2\n")
		os.Remove(filepath.Join(e, "droppedbynew_unmod.conf"))
		os.Remove(filepath.Join(e, "droppedbynew_mod.conf"))
	})
	ours := sysrootDir(t, work, "ocitree")
	theirs := sysrootDir(t, work, "ostree")
	must(t, ocitree(t, "install", "--sysroot", ours, "--karg", "rw", ref1))
	ds := assertSameStatus(t, "install", ours)
	csum1 := strings.SplitN(ds[0].Name, ".", 2)[0]
	stockSysroot(t, theirs, filepath.Join(ours, "ostree/repo"), csum1)
	must(t, ostree(t, "admin", "deploy", "--sysroot="+theirs, "--os=default", "--karg=rw", csum1))

	edit := func(etc string) {
		writeFile(t, filepath.Join(etc, "tobemodified.conf"), "local edit\n")
		writeFile(t, filepath.Join(etc, "droppedbynew_mod.conf"), "local edit\n")
		os.Remove(filepath.Join(etc, "toberemoved.conf"))
		writeFile(t, filepath.Join(etc, "added.conf"), "added\n")
		writeFile(t, filepath.Join(etc, "addeddir/nested/n.conf"), "nested\n")
		os.Chmod(filepath.Join(etc, "addeddir"), 0o750)
		os.Chmod(filepath.Join(etc, "modechange.conf"), 0o600)
		os.Lchown(filepath.Join(etc, "ownerchange.conf"), 1000, 1000)
		unix.Lsetxattr(filepath.Join(etc, "xattrchange.conf"), "user.foo", []byte("bar"), 0)
		os.Remove(filepath.Join(etc, "link1"))
		os.Symlink("tobemodified.conf", filepath.Join(etc, "link1"))
		os.Remove(filepath.Join(etc, "ftd.conf"))
		writeFile(t, filepath.Join(etc, "ftd.conf/inner"), "was a file\n")
		unix.Mkfifo(filepath.Join(etc, "afifo"), 0o644)
		// A modified file's parent takes the local parent's mode.
		os.Chmod(filepath.Join(etc, "subdir"), 0o700)
		writeFile(t, filepath.Join(etc, "subdir/file.conf"), "local edit\n")
	}
	edit(filepath.Join(ours, "ostree/deploy/default/deploy", csum1+".0", "etc"))
	edit(filepath.Join(theirs, "ostree/deploy/default/deploy", csum1+".0", "etc"))

	sortedLines := func(s string) string {
		l := strings.Split(strings.TrimSpace(s), "\n")
		sort.Strings(l)
		return strings.Join(l, "\n")
	}
	want := must(t, ostree(t, "admin", "config-diff", "--sysroot="+theirs, "--os=default"))
	if got := must(t, ocitree(t, "config-diff", "--sysroot", ours)); sortedLines(got) != sortedLines(want) {
		t.Errorf("config-diff:\n%s\nostree admin config-diff:\n%s", got, want)
	}

	must(t, ocitree(t, "switch", "--sysroot", ours, ref2))
	ds = assertSameStatus(t, "switch", ours)
	csum2 := strings.SplitN(ds[0].Name, ".", 2)[0]
	must(t, ostree(t, "pull-local", "--repo="+filepath.Join(theirs, "ostree/repo"), filepath.Join(ours, "ostree/repo"), csum2))
	must(t, ostree(t, "admin", "deploy", "--sysroot="+theirs, "--os=default", csum2))
	rel := filepath.Join("ostree/deploy/default/deploy", ds[0].Name, "etc")
	assertSameTree(t, "etc after the merge", filepath.Join(theirs, rel), filepath.Join(ours, rel), cmpOpts{})
}

// TestHostEtcMergeFileBecameDir: a locally modified file that the new image
// turns into a directory stops the deployment, in ostree admin deploy and
// in ocitree switch, which then leaves the sysroot as it was.
func TestHostEtcMergeFileBecameDir(t *testing.T) {
	setup(t)
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	ref1 := hostImage(t, work, layout, "1", "1.0", true, func(root string) {
		writeFile(t, filepath.Join(root, "usr/etc/thing.conf"), "a file\n")
	})
	ref2 := hostImage(t, work, layout, "2", "2.0", true, func(root string) {
		writeFile(t, filepath.Join(root, "usr/etc/thing.conf/part.conf"), "now a directory\n")
	})
	ours := sysrootDir(t, work, "ocitree")
	theirs := sysrootDir(t, work, "ostree")
	must(t, ocitree(t, "install", "--sysroot", ours, ref1))
	ds := assertSameStatus(t, "install", ours)
	csum1 := strings.SplitN(ds[0].Name, ".", 2)[0]
	stockSysroot(t, theirs, filepath.Join(ours, "ostree/repo"), csum1)
	must(t, ostree(t, "admin", "deploy", "--sysroot="+theirs, "--os=default", csum1))
	for _, s := range []string{ours, theirs} {
		writeFile(t, filepath.Join(s, "ostree/deploy/default/deploy", csum1+".0", "etc/thing.conf"), "local edit\n")
	}
	bootBefore := bootFiles(t, ours)
	r := ocitree(t, "switch", "--sysroot", ours, ref2)
	if r.code != 1 || !strings.Contains(r.stderr, "thing.conf") {
		t.Fatalf("switch: want exit 1 naming thing.conf:\n%s", r)
	}
	if got := assertSameStatus(t, "refused switch", ours); versions(got) != "1.0" {
		t.Errorf("after the refused switch: %v", got)
	}
	if fmt.Sprint(bootFiles(t, ours)) != fmt.Sprint(bootBefore) {
		t.Errorf("the refused switch changed boot/")
	}
	if ents, _ := os.ReadDir(filepath.Join(ours, "ostree/deploy/default/deploy")); len(ents) != 2 {
		t.Errorf("the refused switch left entries in ostree/deploy/default/deploy: %d", len(ents))
	}
	imageRef, err := imgstore.ImageRefName(ref2)
	if err != nil {
		t.Fatal(err)
	}
	csum2 := strings.TrimSpace(must(t, ostree(t, "rev-parse", "--repo="+filepath.Join(ours, "ostree/repo"), imageRef)))
	must(t, ostree(t, "pull-local", "--repo="+filepath.Join(theirs, "ostree/repo"), filepath.Join(ours, "ostree/repo"), csum2))
	if r := ostree(t, "admin", "deploy", "--sysroot="+theirs, "--os=default", csum2); r.code == 0 || !strings.Contains(r.stderr, "newly defaults to directory") {
		t.Errorf("ostree admin deploy was expected to refuse the same merge:\n%s", r)
	}
}
