package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostFinalizeCarriesEditsAfterUpgrade: switch records the merge
// source's /etc beside the new deployment ($CSUM.$SERIAL.etcsnap, 0600;
// stock ostree admin status and cleanup work with it there), and finalize,
// with the old deployment taken as booted, carries into the pending one
// the /etc edits made after the switch: a modified, an added and a
// removed file, and an edit undone (the new default comes back). A change
// that cannot be applied (a file where the new /etc has a directory) is
// logged and skipped, with exit 0. A second finalize carries nothing, and
// ocitree cleanup removes a snapshot whose deployment libostree undeployed.
func TestHostFinalizeCarriesEditsAfterUpgrade(t *testing.T) {
	setup(t)
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	hostImage(t, work, layout, "1", "1.0", true, nil)
	hostImage(t, work, layout, "2", "2.0", true, func(root string) {
		writeFile(t, filepath.Join(root, "usr/etc/motd"), "Welcome to 2.0\n")
		writeFile(t, filepath.Join(root, "usr/etc/newdir/conf"), "new default\n")
	})
	sys := sysrootDir(t, work, "sysroot")
	must(t, ocitree(t, "install", "--sysroot", sys, "oci:"+layout+":1"))
	ds := assertSameStatus(t, "after install", sys)
	d1 := ds[0].Name
	etc1 := filepath.Join(sys, "ostree/deploy/default/deploy", d1, "etc")
	writeFile(t, filepath.Join(etc1, "motd"), "edited before the upgrade\n")

	must(t, ocitree(t, "switch", "--sysroot", sys, "oci:"+layout+":2"))
	ds = assertSameStatus(t, "after switch", sys)
	d2 := ds[0].Name
	etc2 := filepath.Join(sys, "ostree/deploy/default/deploy", d2, "etc")
	snap := filepath.Join(sys, "ostree/deploy/default/deploy", d2+".etcsnap")
	if fi, err := os.Stat(snap); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("etc snapshot beside the new deployment: %v %v, want mode 0600", fi, err)
	}
	must(t, ostree(t, "admin", "cleanup", "--sysroot="+sys))
	assertSameStatus(t, "after ostree admin cleanup", sys)
	if _, err := os.Stat(snap); err != nil {
		t.Fatalf("ostree admin cleanup removed the snapshot: %v", err)
	}
	read := func(p string) string {
		b, err := os.ReadFile(p)
		if err != nil {
			return "<" + err.Error() + ">"
		}
		return string(b)
	}
	if read(filepath.Join(etc2, "motd")) != "edited before the upgrade\n" {
		t.Fatalf("switch did not carry the motd edit")
	}

	// Edits after the upgrade, before the reboot.
	writeFile(t, filepath.Join(etc1, "hostname"), "edited-after\n")
	writeFile(t, filepath.Join(etc1, "after.conf"), "added after\n")
	if err := os.Remove(filepath.Join(etc1, "fstab")); err != nil {
		t.Fatal(err)
	}
	v1motd := read(filepath.Join(sys, "ostree/deploy/default/deploy", d1, "usr/etc/motd"))
	writeFile(t, filepath.Join(etc1, "motd"), v1motd) // undone
	writeFile(t, filepath.Join(etc1, "newdir"), "a file where 2.0 has a directory\n")

	r := ocitree(t, "finalize", "--sysroot", sys, "--booted-deployment", d1)
	if r.code != 0 {
		t.Fatalf("finalize: want exit 0:\n%s", r)
	}
	for _, w := range []string{"carried M /etc/hostname", "carried A /etc/after.conf", "carried D /etc/fstab", "/etc/motd back to the default", "skipped A /etc/newdir"} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("finalize log lacks %q:\n%s", w, r.stderr)
		}
	}
	if got := read(filepath.Join(etc2, "hostname")); got != "edited-after\n" {
		t.Errorf("hostname: %q", got)
	}
	if got := read(filepath.Join(etc2, "after.conf")); got != "added after\n" {
		t.Errorf("after.conf: %q", got)
	}
	if _, err := os.Lstat(filepath.Join(etc2, "fstab")); !os.IsNotExist(err) {
		t.Errorf("fstab still in the pending /etc (%v)", err)
	}
	if got := read(filepath.Join(etc2, "motd")); got != "Welcome to 2.0\n" {
		t.Errorf("motd: %q, want 2.0's default back", got)
	}
	if got := read(filepath.Join(etc2, "newdir/conf")); got != "new default\n" {
		t.Errorf("newdir/conf: %q, want 2.0's default kept", got)
	}
	assertSameStatus(t, "after finalize", sys)

	r = ocitree(t, "finalize", "--sysroot", sys, "--booted-deployment", d1)
	if r.code != 0 || strings.Contains(r.stderr, "carried") {
		t.Errorf("second finalize: want exit 0 carrying nothing:\n%s", r)
	}
	// Without a booted deployment, finalize refuses.
	if r := ocitree(t, "finalize", "--sysroot", sys); r.code != 1 || !strings.Contains(r.stderr, "not the running system") {
		t.Errorf("finalize on a sysroot directory: want exit 1:\n%s", r)
	}

	// libostree undeploys the pending deployment and leaves its snapshot;
	// ocitree cleanup removes it.
	clearImmutable(sys)
	must(t, ostree(t, "admin", "undeploy", "--sysroot="+sys, "0"))
	if _, err := os.Stat(snap); err != nil {
		t.Fatalf("ostree admin undeploy removed the snapshot (then the cleanup case is moot): %v", err)
	}
	must(t, ocitree(t, "cleanup", "--sysroot", sys))
	if _, err := os.Stat(snap); !os.IsNotExist(err) {
		t.Errorf("ocitree cleanup left the orphaned snapshot (%v)", err)
	}
	assertSameStatus(t, "after undeploy and cleanup", sys)
}
