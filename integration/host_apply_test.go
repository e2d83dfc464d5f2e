package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostApplyRebootsOnlyOnNewDeployment: upgrade --apply and switch
// --apply run the reboot command ($OCITREE_REBOOT_COMMAND here, a script
// that records its calls) exactly when they wrote a new deployment: not
// for an upgrade with nothing new, once for a switch to another image,
// not for the same switch again. A failing reboot command is an error
// that says the deployment is queued.
func TestHostApplyRebootsOnlyOnNewDeployment(t *testing.T) {
	setup(t)
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	hostImage(t, work, layout, "1", "1.0", true, nil)
	hostImage(t, work, layout, "2", "2.0", true, func(root string) {
		writeFile(t, filepath.Join(root, "usr/bin/newtool"), "#!/bin/sh\n")
	})
	sys := sysrootDir(t, work, "sysroot")
	must(t, ocitree(t, "install", "--sysroot", sys, "oci:"+layout+":1"))

	calls := filepath.Join(work, "reboots")
	script := filepath.Join(work, "reboot.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho \"$@\" >> "+calls+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	env := []string{"OCITREE_REBOOT_COMMAND=" + script + " now"}
	count := func() int {
		b, err := os.ReadFile(calls)
		if os.IsNotExist(err) {
			return 0
		}
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(b)) != strings.TrimSpace(strings.Repeat("now\n", strings.Count(string(b), "\n"))) {
			t.Errorf("reboot command called with %q", b)
		}
		return strings.Count(string(b), "\n")
	}
	run := func(args ...string) result {
		return runCmdEnv(t, env, nil, ocitreeBin, args...)
	}

	must(t, run("upgrade", "--sysroot", sys, "--apply"))
	if n := count(); n != 0 {
		t.Errorf("upgrade --apply with nothing new rebooted %d times", n)
	}
	must(t, run("switch", "--sysroot", sys, "--apply", "oci:"+layout+":2"))
	if n := count(); n != 1 {
		t.Errorf("switch --apply to a new image: %d reboots, want 1", n)
	}
	must(t, run("switch", "--sysroot", sys, "--apply", "oci:"+layout+":2"))
	must(t, run("upgrade", "--sysroot", sys, "--apply"))
	if n := count(); n != 1 {
		t.Errorf("switch and upgrade --apply with nothing new: %d reboots in all, want still 1", n)
	}
	assertSameStatus(t, "after --apply runs", sys)

	env = []string{"OCITREE_REBOOT_COMMAND=false"}
	r := run("switch", "--sysroot", sys, "--apply", "oci:"+layout+":1")
	if r.code != 1 || !strings.Contains(r.stderr, "queued for the next boot") {
		t.Errorf("a failing reboot command: want exit 1 saying the deployment is queued:\n%s", r)
	}
	if r := run("upgrade", "--sysroot", sys, "--apply", "--check"); r.code != 2 {
		t.Errorf("upgrade --apply --check: want a usage error:\n%s", r)
	}
}
