package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// The host crash matrix of the commands that change a sysroot without an
// update: install (from nothing), pin, undeploy and kargs, each killed
// (OCITREE_FAILPOINTS=point=kill) at every point it passes through. As in
// TestHostCrash, what is left must be the old state or the new one: stock
// `ostree admin status` reads the sysroot and agrees with `ocitree status`,
// and boot/loader names one complete entry set. Here a state is more than
// the deployment list, since pin and kargs keep the list: it is also which
// deployments are pinned (in both tools' status) and each boot entry's
// kernel arguments. Finishing: from the old state the command again; from
// the new one `ocitree cleanup` (undeploy and kargs take indexes and
// arguments relative to the state they see, so running them again would be
// another change; install refuses a stateroot that has deployments, which
// is checked). Then the new state holds, no unlisted deployment or kernel
// directory is left, and `ostree fsck` passes.

// hostManageCommand is one command of this matrix.
type hostManageCommand struct {
	name string
	// fresh: the command starts from no sysroot, else from the template.
	fresh  bool
	args   func(env *hostManageEnv, sys string) []string
	points []string
}

// hostBootSwapPoints are the points of a full boot version swap and the
// cleanup after it.
var hostBootSwapPoints = []string{
	"boot-entries-cleared",
	"boot-kernel-copied",
	"boot-bls-written",
	"boot-bootlinks-written",
	"boot-bootlink-swapped",
	"boot-loader-tmp",
	"boot-loader-swapped",
	"deploy-boot-written",
	"deploy-cleanup-bootversions",
}

var hostManageCommands = []*hostManageCommand{
	{
		name: "install", fresh: true,
		args: func(env *hostManageEnv, sys string) []string {
			return []string{"install", "--sysroot", sys, "--karg", "rw", env.installRef}
		},
		points: append([]string{
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
			"deploy-checkout-done",
			"deploy-etc-copied",
			"deploy-origin-written",
		}, append(hostBootSwapPoints, "deploy-cleanup-before-refs")...),
	},
	{
		name: "pin",
		args: func(env *hostManageEnv, sys string) []string {
			return []string{"pin", "--sysroot", sys, "1"}
		},
		points: []string{"deploy-origin-written"},
	},
	{
		name: "undeploy",
		args: func(env *hostManageEnv, sys string) []string {
			return []string{"undeploy", "--sysroot", sys, "1"}
		},
		points: append(slices.Clone(hostBootSwapPoints), "deploy-cleanup-origin-removed", "boot-cleanup-bootdir", "deploy-cleanup-before-refs"),
	},
	{
		name: "kargs",
		args: func(env *hostManageEnv, sys string) []string {
			return []string{"kargs", "--sysroot", sys, "--append", "console=ttyS0,115200", "--delete", "rw"}
		},
		points: append(slices.Clone(hostBootSwapPoints), "deploy-cleanup-before-refs"),
	},
}

// hostManageEnv is what every case starts from.
type hostManageEnv struct {
	installRef string
	// template: [1.0, 0.9] with a kernel directory each, kargs "rw".
	template string
	// old and new states of each command.
	old, new map[string]hostState
}

// hostState is what a case compares: the deployments (as both tools list
// them), the pinned ones (both tools), and per boot entry in boot order the
// deployment its bootlink leads to and its kernel arguments but ostree=.
type hostState struct {
	Names   []string
	Pinned  []string
	Entries []string
}

func (s hostState) String() string {
	return fmt.Sprintf("deployments %v, pinned %v, entries %v", s.Names, s.Pinned, s.Entries)
}

// withoutSerials is the state with deployment names reduced to their
// commits (a rerun after a killed checkout takes the next serial).
func (s hostState) withoutSerials() hostState {
	strip := func(in []string) []string {
		var out []string
		for _, x := range in {
			c, rest, _ := strings.Cut(x, ".")
			if _, args, ok := strings.Cut(rest, " "); ok {
				c += " " + args
			}
			out = append(out, c)
		}
		return out
	}
	return hostState{strip(s.Names), strip(s.Pinned), strip(s.Entries)}
}

func (s hostState) equal(o hostState) bool { return s.String() == o.String() }

// readHostState reads a sysroot's state, failing the test when the tools
// disagree or an entry is incomplete (see entryDeployments). A sysroot
// without boot/loader (install killed before its first swap) has no
// entries.
func readHostState(t *testing.T, what, sys string) hostState {
	t.Helper()
	var st hostState
	st.Names = deploymentNames(assertSameStatus(t, what, sys))
	doc, _ := ocitreeStatus(t, sys)
	for _, d := range doc.Status.Deployments {
		if d.Pinned {
			st.Pinned = append(st.Pinned, fmt.Sprintf("%s.%d", d.Checksum, d.DeploySerial))
		}
	}
	if out := must(t, ostree(t, "admin", "status", "--sysroot="+sys)); strings.Count(out, "Pinned: yes") != len(st.Pinned) {
		t.Fatalf("%s: ocitree status pins %v, ostree admin status says:\n%s", what, st.Pinned, out)
	}
	if _, err := os.Lstat(filepath.Join(sys, "boot/loader")); os.IsNotExist(err) {
		if len(st.Names) != 0 {
			t.Fatalf("%s: no boot/loader but deployments %v", what, st.Names)
		}
		return st
	}
	deps := entryDeployments(t, sys)
	type ent struct {
		file, opts string
	}
	var ents []ent
	for file, e := range readEntries(t, sys) {
		var opts []string
		for _, l := range strings.Split(e, "\n") {
			if v, ok := strings.CutPrefix(l, "options "); ok {
				for _, a := range strings.Fields(v) {
					if !strings.HasPrefix(a, "ostree=") {
						opts = append(opts, a)
					}
				}
			}
		}
		ents = append(ents, ent{file, strings.Join(opts, " ")})
	}
	// entryDeployments' order: ostree-K-*.conf, highest K first.
	sort.Slice(ents, func(i, j int) bool { return entryK(ents[i].file) > entryK(ents[j].file) })
	for i, d := range deps {
		st.Entries = append(st.Entries, d+" "+ents[i].opts)
	}
	if !slices.Equal(deps, st.Names) {
		t.Fatalf("%s: boot/loader's entries name %v, the status %v", what, deps, st.Names)
	}
	return st
}

func entryK(file string) int {
	var k int
	if f := strings.SplitN(file, "-", 3); len(f) == 3 {
		fmt.Sscan(f[1], &k)
	}
	return k
}

func prepareHostManage(t *testing.T) *hostManageEnv {
	t.Helper()
	work := workDir(t)
	layout := filepath.Join(work, "oci")
	initramfs := func(v string) func(root string) {
		return func(root string) {
			writeFile(t, filepath.Join(root, "usr/lib/modules/6.1.0-ocitree/initramfs.img"), "the initramfs of "+v+"\n")
		}
	}
	env := &hostManageEnv{old: map[string]hostState{}, new: map[string]hostState{}}
	env.template = sysrootDir(t, work, "template")
	env.installRef = hostImage(t, work, layout, "stable", "0.9", true, initramfs("0.9"))
	must(t, ocitree(t, "install", "--sysroot", env.template, "--karg", "rw", env.installRef))
	hostImage(t, work, layout, "stable", "1.0", true, initramfs("1.0"))
	must(t, ocitree(t, "upgrade", "--sysroot", env.template))
	if ds := assertSameStatus(t, "prepare", env.template); versions(ds) != "1.0,0.9" {
		t.Fatalf("template: %v", ds)
	}
	// The image install takes: 2.0 (the tag moved after the template).
	hostImage(t, work, layout, "stable", "2.0", true, initramfs("2.0"))

	for i, cmd := range hostManageCommands {
		sys := env.copyStart(t, work, cmd, fmt.Sprintf("golden-%d", i))
		if cmd.fresh {
			env.old[cmd.name] = hostState{}
		} else {
			env.old[cmd.name] = readHostState(t, "prepare", sys)
		}
		must(t, ocitree(t, cmd.args(env, sys)...))
		env.new[cmd.name] = readHostState(t, "prepare", sys)
		if env.new[cmd.name].equal(env.old[cmd.name]) {
			t.Fatalf("a complete %s changed nothing: %v", cmd.name, env.new[cmd.name])
		}
	}
	return env
}

// copyStart copies the template (or, for install, nothing) to a new
// sysroot under dir.
func (env *hostManageEnv) copyStart(t *testing.T, dir string, cmd *hostManageCommand, name string) string {
	t.Helper()
	sys := sysrootDir(t, dir, name)
	if !cmd.fresh {
		must(t, runCmd(t, nil, "cp", "-a", env.template, sys))
	}
	return sys
}

// TestHostCrashManage runs the matrix of install, pin, undeploy and kargs.
func TestHostCrashManage(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	setup(t)
	env := prepareHostManage(t)
	for _, cmd := range hostManageCommands {
		for _, p := range cmd.points {
			t.Run(cmd.name+"/"+p, func(t *testing.T) {
				t.Parallel()
				runHostManageCase(t, env, cmd, p)
			})
		}
	}
}

func runHostManageCase(t *testing.T, env *hostManageEnv, cmd *hostManageCommand, point string) {
	sys := env.copyStart(t, workDir(t), cmd, "sysroot")
	old, new := env.old[cmd.name], env.new[cmd.name]
	args := cmd.args(env, sys)
	r, ws := runFailpoint(t, point+"=kill", args)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("%s did not die by SIGKILL at %s, so the point was not reached:\n%s", cmd.name, point, r)
	}

	got := readHostState(t, "after the kill", sys)
	state := "old"
	switch {
	case got.equal(old):
	case got.equal(new):
		state = "new"
	default:
		t.Fatalf("after a kill at %s: %v; want the old state (%v) or the new one (%v)", point, got, old, new)
	}
	t.Logf("killed at %s: the %s state", point, state)

	if state == "old" {
		must(t, ocitree(t, args...))
	} else {
		if cmd.fresh {
			r := ocitree(t, args...)
			if r.code == 0 || !strings.Contains(r.stderr, "already has deployments") {
				t.Errorf("install again on the installed sysroot: want a refusal naming the deployments:\n%s", r)
			}
		}
		must(t, ocitree(t, "cleanup", "--sysroot", sys))
	}
	got = readHostState(t, "finished", sys)
	if !got.withoutSerials().equal(new.withoutSerials()) {
		t.Fatalf("finished after a kill at %s (%s state): %v, want %v", point, state, got, new)
	}
	checkNoStrayDeployments(t, sys, got.Names)
	must(t, ostree(t, "fsck", "--repo="+filepath.Join(sys, "ostree/repo")))
}

// TestHostErrorAtCommitPoint: a boot configuration write that fails after
// its commit point (failpoint action error at boot-loader-swapped) says
// that the new configuration is in place and how to finish; one that fails
// just before it (boot-loader-tmp) says that the previous one is.
func TestHostErrorAtCommitPoint(t *testing.T) {
	setup(t)
	t.Parallel()
	env := prepareHostManage(t)
	undeploy := hostManageCommands[2]
	for _, c := range []struct {
		point, say, notSay string
		state              hostState
	}{
		{"boot-loader-tmp", "the previous one is still in place", "boots next", env.old["undeploy"]},
		{"boot-loader-swapped", "the new boot configuration is in place", "still in place", env.new["undeploy"]},
	} {
		sys := env.copyStart(t, workDir(t), undeploy, "sysroot-"+c.point)
		r, _ := runFailpoint(t, c.point+"=error", undeploy.args(env, sys))
		if r.code != 1 || !strings.Contains(r.stderr, c.say) || strings.Contains(r.stderr, c.notSay) {
			t.Errorf("%s=error: want exit 1 and a message saying %q:\n%s", c.point, c.say, r)
		}
		if got := readHostState(t, "after the error", sys); !got.equal(c.state) {
			t.Errorf("%s=error: %v, want %v", c.point, got, c.state)
		}
	}
}
