package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHostKilledUpgrade SIGKILLs `ocitree upgrade` at spread-out moments
// of its run (pull, checkout, /etc merge, boot entries, cleanup). After
// each kill the sysroot must be the old state or the new one, never a
// mix: stock ostree admin status reads it, every boot entry's bootlink
// leads to a deployment, ocitree status agrees; and a rerun of upgrade
// completes, leaving only listed deployments and a repository that passes
// ostree fsck.
func TestHostKilledUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	setup(t)
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	hostImage(t, work, layout, "stable", "1.0", true, nil)
	pristine := sysrootDir(t, work, "pristine")
	must(t, ocitree(t, "install", "--sysroot", pristine, "--karg", "rw", "oci:"+layout+":stable"))
	etc := filepath.Join(pristine, "ostree/deploy/default/deploy", assertSameStatus(t, "install", pristine)[0].Name, "etc")
	writeFile(t, filepath.Join(etc, "local.conf"), "mine\n")
	hostImage(t, work, layout, "stable", "2.0", true, func(root string) {
		writeFile(t, filepath.Join(root, "usr/bin/newtool"), "2\n")
		writeFile(t, filepath.Join(root, "usr/lib/modules/6.1.0-ocitree/initramfs.img"), "a new initramfs\n")
	})

	copySys := func(name string) string {
		d := sysrootDir(t, work, name)
		must(t, runCmd(t, nil, "cp", "-a", pristine, d))
		return d
	}
	// How long a whole upgrade takes here.
	full := copySys("timing")
	start := time.Now()
	must(t, ocitree(t, "upgrade", "--sysroot", full))
	total := time.Since(start)
	if got := assertSameStatus(t, "upgrade", full); versions(got) != "2.0,1.0" {
		t.Fatalf("upgrade: %v", got)
	}
	t.Logf("a whole upgrade takes %v", total)

	outcomes := map[string]int{}
	for i := 1; i <= 8; i++ {
		delay := total * time.Duration(i) / 9
		t.Run(fmt.Sprintf("kill-%02d", i), func(t *testing.T) {
			sys := copySys(fmt.Sprintf("kill-%02d", i))
			cmd := exec.Command(ocitreeBin, "upgrade", "--sysroot", sys)
			cmd.Env = peerEnv()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			time.Sleep(delay)
			cmd.Process.Signal(syscall.SIGKILL)
			cmd.Wait()

			ds := assertSameStatus(t, "after the kill", sys)
			v := versions(ds)
			switch v {
			case "1.0", "2.0,1.0":
			default:
				t.Fatalf("after a kill at %v: versions %s, want the old (1.0) or the new (2.0,1.0) state", delay, v)
			}
			outcomes[v]++
			checkBootEntries(t, sys)

			must(t, ocitree(t, "upgrade", "--sysroot", sys))
			ds = assertSameStatus(t, "rerun", sys)
			if versions(ds) != "2.0,1.0" {
				t.Fatalf("rerun after a kill at %v: %v", delay, ds)
			}
			checkBootEntries(t, sys)
			b, err := os.ReadFile(filepath.Join(sys, "ostree/deploy/default/deploy", ds[0].Name, "etc/local.conf"))
			if err != nil || string(b) != "mine\n" {
				t.Errorf("rerun: etc/local.conf = %q, %v", b, err)
			}
			// Each listed deployment has its directory and .origin, the
			// upgraded one also its .etcsnap; nothing else is left.
			ents, _ := os.ReadDir(filepath.Join(sys, "ostree/deploy/default/deploy"))
			allowed := map[string]bool{ds[0].Name + ".etcsnap": true}
			for _, d := range ds {
				allowed[d.Name], allowed[d.Name+".origin"] = true, true
			}
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			if len(ents) != len(allowed) {
				t.Errorf("rerun left entries in ostree/deploy/default/deploy: %v", names)
			}
			for _, n := range names {
				if !allowed[n] {
					t.Errorf("rerun left %s in ostree/deploy/default/deploy: %v", n, names)
				}
			}
			must(t, ostree(t, "fsck", "--repo="+filepath.Join(sys, "ostree/repo")))
		})
	}
	t.Logf("states after a kill: %v", outcomes)
}

// checkBootEntries: boot/loader points at a loader.N whose every entry's
// ostree= bootlink resolves to a deployment directory with its kernel in
// boot/ostree.
func checkBootEntries(t *testing.T, sys string) {
	t.Helper()
	entries := readEntries(t, sys)
	if len(entries) == 0 {
		t.Fatalf("no boot entries under boot/loader")
	}
	for name, e := range entries {
		for _, l := range strings.Split(e, "\n") {
			if v, ok := strings.CutPrefix(l, "options "); ok {
				for _, a := range strings.Fields(v) {
					if p, ok := strings.CutPrefix(a, "ostree="); ok {
						if fi, err := os.Stat(filepath.Join(sys, p)); err != nil || !fi.IsDir() {
							t.Errorf("%s: bootlink %s does not lead to a deployment: %v", name, p, err)
						}
					}
				}
			}
			for _, k := range []string{"linux ", "initrd "} {
				if p, ok := strings.CutPrefix(l, k); ok {
					if _, err := os.Stat(filepath.Join(sys, "boot", p)); err != nil {
						t.Errorf("%s: %s%s missing: %v", name, k, p, err)
					}
				}
			}
		}
	}
}
