package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/ocitree/ocitree/deploy"
)

// The host crash matrix: every failpoint that `ocitree upgrade`, `switch`
// or `rollback` reaches (the pull's pull-* and txn-*, the deployment's
// deploy-*, the boot configuration's boot-*, the cleanup's and the prune's)
// is a case. A case copies a prepared sysroot (cp -a), runs the command
// with OCITREE_FAILPOINTS=point=kill and checks that it died by SIGKILL (so
// the point was reached) and that what is left is the old state or the new
// one, never a mix: stock `ostree admin status` reads the sysroot and lists
// exactly the old or the new deployments, `ocitree status` agrees,
// boot/loader's entries name exactly those deployments with every kernel
// and initramfs present; then that running the command again completes it
// (the new deployments, /etc changes carried, no unlisted deployment
// directory or kernel directory left) and `ostree fsck` passes.
// TestCrashMatrixCoversEveryPoint counts these cases too, so that every
// deploy-* and boot-* point must have one.

// hostCrashCommand is one host command of the matrix.
type hostCrashCommand struct {
	name string
	// rollback: the command starts from the rollback template (two
	// deployments with equal boot configurations), else from the update
	// template.
	rollback bool
	args     func(env *hostCrashEnv, sys string) []string
}

var (
	hostUpgrade = &hostCrashCommand{name: "upgrade", args: func(env *hostCrashEnv, sys string) []string {
		return []string{"upgrade", "--sysroot", sys}
	}}
	hostSwitch = &hostCrashCommand{name: "switch", args: func(env *hostCrashEnv, sys string) []string {
		return []string{"switch", "--sysroot", sys, env.otherRef}
	}}
	hostRollback = &hostCrashCommand{name: "rollback", rollback: true, args: func(env *hostCrashEnv, sys string) []string {
		return []string{"rollback", "--sysroot", sys}
	}}
)

// hostCrashCase is one point of one host command.
type hostCrashCase struct {
	point string
	cmd   *hostCrashCommand
}

// hostUpdatePoints are the points an upgrade and a switch reach, in order.
var hostUpdatePoints = []string{
	"pull-layer-mid",
	"txn-first-object-staged",
	"txn-all-objects-staged",
	"txn-synced",
	"txn-renames-halfway",
	"txn-commit-object-published",
	"txn-before-refs",
	"pull-layer-before-blob-ref",
	"pull-layer-committed",
	"pull-before-merge",
	"pull-before-image-ref",
	"txn-between-refs",
	"pull-before-layer-gc",
	"deploy-image-pulled",
	"deploy-checkout-done",
	"deploy-etc-copied",
	"deploy-etc-merged",
	"deploy-origin-written",
	"deploy-deployed",
	"boot-entries-cleared",
	"boot-kernel-copied",
	"boot-bls-written",
	"boot-bootlinks-written",
	"boot-bootlink-swapped",
	"boot-loader-tmp",
	"boot-loader-swapped",
	"deploy-boot-written",
	"deploy-cleanup-bootversions",
	"deploy-cleanup-origin-removed",
	"boot-cleanup-bootdir",
	"deploy-cleanup-before-refs",
	"deploy-prune-before-images",
	"deploy-prune-before-objects",
	"prune-halfway",
}

// hostCrashCases is the matrix.
var hostCrashCases = func() []hostCrashCase {
	var out []hostCrashCase
	for _, cmd := range []*hostCrashCommand{hostUpgrade, hostSwitch} {
		for _, p := range hostUpdatePoints {
			out = append(out, hostCrashCase{point: p, cmd: cmd})
		}
	}
	for _, p := range []string{"boot-subboot-bootlinks-written", "boot-subboot-swapped", "deploy-boot-written", "deploy-cleanup-before-refs"} {
		out = append(out, hostCrashCase{point: p, cmd: hostRollback})
	}
	return out
}()

// hostCrashEnv is what every case starts from.
type hostCrashEnv struct {
	otherRef string
	// update: [1.0, 0.9], each with its own initramfs; /etc/local.conf
	// changed in 1.0. An upgrade gives [2.0, 1.0], a switch to otherRef
	// [3.0, 1.0]: both drop 0.9's deployment and kernel directory.
	update string
	// rollback: [1.1, 1.0'] of the same kernel and version ("1.0"), so
	// that a rollback only swaps the sub-bootversion.
	rollback string
	// old and new deployment names of each command.
	old, new map[string][]string
}

func prepareHostCrash(t *testing.T) *hostCrashEnv {
	t.Helper()
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	initramfs := func(v string) func(root string) {
		return func(root string) {
			writeFile(t, filepath.Join(root, "usr/lib/modules/6.1.0-ocitree/initramfs.img"), "the initramfs of "+v+"\n")
			writeFile(t, filepath.Join(root, "usr/bin/tool"), v+"\n")
		}
	}
	env := &hostCrashEnv{old: map[string][]string{}, new: map[string][]string{}}
	names := func(sys string) []string {
		var out []string
		for _, d := range assertSameStatus(t, "prepare", sys) {
			out = append(out, d.Name)
		}
		return out
	}

	env.update = sysrootDir(t, work, "update")
	hostImage(t, work, layout, "stable", "0.9", true, initramfs("0.9"))
	must(t, ocitree(t, "install", "--sysroot", env.update, "--karg", "rw", "oci:"+layout+":stable"))
	hostImage(t, work, layout, "stable", "1.0", true, initramfs("1.0"))
	must(t, ocitree(t, "upgrade", "--sysroot", env.update))
	ds := assertSameStatus(t, "prepare", env.update)
	if versions(ds) != "1.0,0.9" {
		t.Fatalf("update template: %v", ds)
	}
	writeFile(t, filepath.Join(env.update, "ostree/deploy/default/deploy", ds[0].Name, "etc/local.conf"), "mine\n")
	hostImage(t, work, layout, "stable", "2.0", true, initramfs("2.0"))
	env.otherRef = hostImage(t, work, layout, "other", "3.0", true, initramfs("3.0"))

	env.rollback = sysrootDir(t, work, "rollback")
	hostImage(t, work, layout, "same", "1.0", true, nil)
	must(t, ocitree(t, "install", "--sysroot", env.rollback, "--karg", "rw", "oci:"+layout+":same"))
	hostImage(t, work, layout, "same", "1.0", true, func(root string) { writeFile(t, filepath.Join(root, "usr/bin/newtool"), "1.1\n") })
	must(t, ocitree(t, "upgrade", "--sysroot", env.rollback))
	if ds := assertSameStatus(t, "prepare", env.rollback); versions(ds) != "1.0,1.0" || ds[0].Name == ds[1].Name {
		t.Fatalf("rollback template: %v", ds)
	}

	for i, cmd := range []*hostCrashCommand{hostUpgrade, hostSwitch, hostRollback} {
		sys := env.copyStart(t, work, cmd, fmt.Sprintf("golden-%d", i))
		env.old[cmd.name] = names(sys)
		must(t, ocitree(t, cmd.args(env, sys)...))
		env.new[cmd.name] = names(sys)
	}
	want := map[string]string{"upgrade": "2.0,1.0", "switch": "3.0,1.0", "rollback": "1.0,1.0"}
	for name, v := range want {
		if len(env.new[name]) != 2 || slices.Equal(env.new[name], env.old[name]) {
			t.Fatalf("a complete %s: %v from %v (want versions %s)", name, env.new[name], env.old[name], v)
		}
	}
	return env
}

// copyStart copies the command's template to a new sysroot under dir.
func (env *hostCrashEnv) copyStart(t *testing.T, dir string, cmd *hostCrashCommand, name string) string {
	t.Helper()
	src := env.update
	if cmd.rollback {
		src = env.rollback
	}
	sys := sysrootDir(t, dir, name)
	must(t, runCmd(t, nil, "cp", "-a", src, sys))
	return sys
}

// TestHostCrash runs the host crash matrix.
func TestHostCrash(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	setup(t)
	env := prepareHostCrash(t)
	for _, c := range hostCrashCases {
		t.Run(c.cmd.name+"/"+c.point, func(t *testing.T) {
			t.Parallel()
			runHostCrashCase(t, env, c)
		})
	}
}

func runHostCrashCase(t *testing.T, env *hostCrashEnv, c hostCrashCase) {
	sys := env.copyStart(t, workDir(t), c.cmd, "sysroot")
	old, new := env.old[c.cmd.name], env.new[c.cmd.name]
	args := c.cmd.args(env, sys)
	r, ws := runFailpoint(t, c.point+"=kill", args)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s did not die by SIGKILL at %s, so the point was not reached:\n%s", c.cmd.name, c.point, r)
	}

	// The old state or the new one: stock ostree reads it, ocitree agrees,
	// the boot entries are one complete set.
	got := deploymentNames(assertSameStatus(t, "after the kill", sys))
	state := "old"
	switch {
	case slices.Equal(got, old):
	case slices.Equal(got, new):
		state = "new"
	default:
		t.Fatalf("after a kill at %s: deployments %v, want the old %v or the new %v", c.point, got, old, new)
	}
	if entries := entryDeployments(t, sys); !slices.Equal(entries, got) {
		t.Fatalf("after a kill at %s: boot/loader's entries name %v, the status (%s state) %v", c.point, entries, state, got)
	}
	t.Logf("killed at %s: the %s state", c.point, state)

	// Running the command again completes it. A rollback after one that
	// took effect undoes it; run it only from the old state.
	if !(c.cmd.rollback && state == "new") {
		must(t, ocitree(t, args...))
	}
	got = deploymentNames(assertSameStatus(t, "rerun", sys))
	if !slices.Equal(checksums(got), checksums(new)) {
		t.Fatalf("rerun after a kill at %s: deployments %v, want the commits of %v", c.point, got, new)
	}
	if entries := entryDeployments(t, sys); !slices.Equal(entries, got) {
		t.Fatalf("rerun: boot/loader's entries name %v, the status %v", entries, got)
	}
	if !c.cmd.rollback {
		b, err := os.ReadFile(filepath.Join(sys, "ostree/deploy/default/deploy", got[0], "etc/local.conf"))
		if err != nil || string(b) != "mine\n" {
			t.Errorf("rerun: etc/local.conf = %q, %v", b, err)
		}
	}
	checkNoStrayDeployments(t, sys, got)
	must(t, ostree(t, "fsck", "--repo="+filepath.Join(sys, "ostree/repo")))
}

func deploymentNames(ds []hostDeployment) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.Name)
	}
	return out
}

// checksums drops the serials of deployment names.
func checksums(names []string) []string {
	var out []string
	for _, n := range names {
		c, _, _ := strings.Cut(n, ".")
		out = append(out, c)
	}
	return out
}

// entryDeployments reads boot/loader/entries in boot order (ostree-K-*.conf,
// highest K first) and returns the deployment each entry's ostree= bootlink
// leads to; it fails the test when a bootlink does not lead to a
// deployment directory or a kernel or initramfs named is missing.
func entryDeployments(t *testing.T, sys string) []string {
	t.Helper()
	type ent struct {
		k    int
		name string
	}
	var ents []ent
	for file, e := range readEntries(t, sys) {
		var k int
		if f := strings.SplitN(file, "-", 3); len(f) == 3 {
			k, _ = strconv.Atoi(f[1])
		}
		dep := ""
		for _, l := range strings.Split(e, "\n") {
			if v, ok := strings.CutPrefix(l, "options "); ok {
				for _, a := range strings.Fields(v) {
					if p, ok := strings.CutPrefix(a, "ostree="); ok {
						real, err := filepath.EvalSymlinks(filepath.Join(sys, p))
						fi, serr := os.Stat(real)
						if err != nil || serr != nil || !fi.IsDir() {
							t.Fatalf("%s: bootlink %s does not lead to a deployment: %v %v", file, p, err, serr)
						}
						dep = filepath.Base(real)
					}
				}
			}
			for _, key := range []string{"linux ", "initrd "} {
				if p, ok := strings.CutPrefix(l, key); ok {
					if _, err := os.Stat(filepath.Join(sys, "boot", p)); err != nil {
						t.Fatalf("%s: %s%s missing: %v", file, key, p, err)
					}
				}
			}
		}
		if dep == "" {
			t.Fatalf("%s has no ostree= argument:\n%s", file, e)
		}
		ents = append(ents, ent{k, dep})
	}
	if len(ents) == 0 {
		t.Fatalf("no boot entries under boot/loader")
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].k > ents[j].k })
	var out []string
	for _, e := range ents {
		out = append(out, e.name)
	}
	return out
}

// checkNoStrayDeployments: the deployment directories (with their origins,
// and the /etc records finalize reads, which only deployments written with a
// merge have) are exactly listed ones, and boot/ostree has one kernel
// directory per boot checksum in use.
func checkNoStrayDeployments(t *testing.T, sys string, listed []string) {
	t.Helper()
	ents, _ := os.ReadDir(filepath.Join(sys, "ostree/deploy/default/deploy"))
	var names, want []string
	isListed := map[string]bool{}
	for _, n := range listed {
		isListed[n] = true
	}
	for _, e := range ents {
		if base, ok := strings.CutSuffix(e.Name(), deploy.EtcSnapSuffix); ok && isListed[base] {
			continue
		}
		names = append(names, e.Name())
	}
	for _, n := range listed {
		want = append(want, n, n+".origin")
	}
	sort.Strings(names)
	sort.Strings(want)
	if !slices.Equal(names, want) {
		t.Errorf("ostree/deploy/default/deploy holds %v, want %v", names, want)
	}
	kdirs, _ := filepath.Glob(filepath.Join(sys, "boot/ostree/*"))
	used := map[string]bool{}
	for _, e := range readEntries(t, sys) {
		for _, l := range strings.Split(e, "\n") {
			if p, ok := strings.CutPrefix(l, "linux "); ok {
				used[strings.Split(strings.TrimPrefix(p, "/"), "/")[1]] = true
			}
		}
	}
	if len(kdirs) != len(used) {
		t.Errorf("boot/ostree holds %v, the entries use %v", kdirs, used)
	}
}
