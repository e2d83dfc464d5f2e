package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostUpgradeDownloadOnly: `upgrade --download-only` pulls the moved
// tag's image into the sysroot's store and deploys nothing; `cleanup` keeps
// the downloaded image (a deployment tracks its reference); with the image
// source gone, a plain upgrade fails and changes nothing, and `upgrade
// --from-downloaded` deploys the downloaded image from the store.
func TestHostUpgradeDownloadOnly(t *testing.T) {
	setup(t)
	t.Parallel()
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	ref := hostImage(t, work, layout, "stable", "1.0", true, nil)
	sys := sysrootDir(t, work, "sysroot")
	must(t, ocitree(t, "install", "--sysroot", sys, "--karg", "rw", ref))
	writeFile(t, filepath.Join(sys, "ostree/deploy/default/deploy", assertSameStatus(t, "install", sys)[0].Name, "etc/local.conf"), "mine\n")

	// Nothing downloaded yet: the stored image is the deployed one.
	r := must(t, ocitree(t, "upgrade", "--sysroot", sys, "--from-downloaded"))
	if got := assertSameStatus(t, "from-downloaded without a download", sys); versions(got) != "1.0" {
		t.Fatalf("upgrade --from-downloaded with nothing downloaded: %v (%s)", got, r)
	}

	hostImage(t, work, layout, "stable", "1.1", true, func(root string) {
		writeFile(t, filepath.Join(root, "usr/bin/newtool"), "1.1\n")
	})
	res := ocitree(t, "upgrade", "--sysroot", sys, "--download-only")
	if res.code != 0 || !strings.Contains(res.stderr, "nothing deployed") {
		t.Fatalf("upgrade --download-only:\n%s", res)
	}
	if got := assertSameStatus(t, "download-only", sys); versions(got) != "1.0" {
		t.Fatalf("after upgrade --download-only: %v, want only 1.0 deployed", got)
	}
	must(t, ocitree(t, "cleanup", "--sysroot", sys))

	// The source is gone: only the store has the update.
	if err := os.Rename(layout, layout+".gone"); err != nil {
		t.Fatal(err)
	}
	if r := ocitree(t, "upgrade", "--sysroot", sys); r.code == 0 {
		t.Fatalf("a plain upgrade without the image source succeeded:\n%s", r)
	}
	if got := assertSameStatus(t, "failed upgrade", sys); versions(got) != "1.0" {
		t.Fatalf("after a failed upgrade: %v", got)
	}
	must(t, ocitree(t, "upgrade", "--sysroot", sys, "--from-downloaded"))
	got := assertSameStatus(t, "from-downloaded", sys)
	if versions(got) != "1.1,1.0" {
		t.Fatalf("after upgrade --from-downloaded: %v, want 1.1,1.0", got)
	}
	dep := filepath.Join(sys, "ostree/deploy/default/deploy", got[0].Name)
	if b, err := os.ReadFile(filepath.Join(dep, "usr/bin/newtool")); err != nil || string(b) != "1.1\n" {
		t.Errorf("the new deployment's usr/bin/newtool: %q, %v", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(dep, "etc/local.conf")); err != nil || string(b) != "mine\n" {
		t.Errorf("the /etc change was not carried: %q, %v", b, err)
	}
	r = must(t, ocitree(t, "upgrade", "--sysroot", sys, "--from-downloaded"))
	if got2 := assertSameStatus(t, "from-downloaded again", sys); versions(got2) != "1.1,1.0" || got2[0].Name != got[0].Name {
		t.Errorf("a second --from-downloaded changed the deployments: %v (%s)", got2, r)
	}
	must(t, ostree(t, "fsck", "--repo="+filepath.Join(sys, "ostree/repo")))

	for _, args := range [][]string{{"--download-only", "--check"}, {"--download-only", "--from-downloaded"}, {"--download-only", "--apply"}} {
		r := ocitree(t, append([]string{"upgrade", "--sysroot", sys}, args...)...)
		if r.code != 2 || !strings.Contains(r.stderr, "exclude") {
			t.Errorf("upgrade %v: want a usage error (exit 2):\n%s", args, r)
		}
	}
}
