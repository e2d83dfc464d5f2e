package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// ofdLock takes an OFD lock (the kind libostree uses: fcntl F_OFD_SETLK on
// the whole of REPO/.lock) of type typ (unix.F_RDLCK or unix.F_WRLCK) and
// returns its release function.
func ofdLock(t *testing.T, repo string, typ int16) (release func()) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(repo, ".lock"), os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		t.Fatal(err)
	}
	lk := unix.Flock_t{Type: typ, Whence: 0, Start: 0, Len: 0}
	if err := unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		f.Close()
		t.Fatalf("F_OFD_SETLK on %s/.lock: %v", repo, err)
	}
	released := false
	release = func() {
		if released {
			return
		}
		released = true
		lk.Type = unix.F_UNLCK
		_ = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
		f.Close()
	}
	t.Cleanup(release)
	return release
}

// setLockTimeout sets [core] lock-timeout-secs in the repository config.
func setLockTimeout(t *testing.T, repo string, secs string) {
	t.Helper()
	p := filepath.Join(repo, "config")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if !strings.Contains(s, "[core]\n") {
		t.Fatalf("config has no [core] group:\n%s", s)
	}
	s = strings.Replace(s, "[core]\n", "[core]\nlock-timeout-secs="+secs+"\n", 1)
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestLockingInteroperates: ocitree's repository lock and libostree's are the
// same kind (OFD locks on REPO/.lock), so each side waits for the other.
func TestLockingInteroperates(t *testing.T) {
	t.Run("ostree-prune-waits-for-exclusive-lock", func(t *testing.T) {
		setup(t)
		t.Parallel()
		repo := filepath.Join(workDir(t), "repo")
		ocitreeInit(t, repo, "bare-user")
		ocitreeCommit(t, repo, "test/main", tree(t, "kernel"), commitOpts{subject: "lock"})
		setLockTimeout(t, repo, "1")
		release := ofdLock(t, repo, unix.F_WRLCK)
		r := ostree(t, "prune", "--repo="+repo, "--refs-only")
		if r.code == 0 || !strings.Contains(r.stderr, "Locking repo exclusive failed") {
			t.Errorf("sanity: want ostree prune to fail to take the exclusive lock held by ocitree's kind of lock:\n%s", r)
		}
		release()
		must(t, ostree(t, "prune", "--repo="+repo, "--refs-only"))
		// ocitree reads lock-timeout-secs from a config it wrote itself.
		must(t, ocitree(t, "repo", "fsck", "--repo", repo))
	})

	// ocitree must not write while someone holds the exclusive lock, and
	// must not prune while someone holds a shared (transaction) lock. The
	// repo-lock-busy failpoint stops the process (SIGSTOP) when it finds
	// the lock taken: the test sees that it got there, that it changed
	// nothing while the lock was held, and that, continued after the lock
	// was released, it completes. No clock decides anything.
	cases := []struct {
		name string
		typ  int16
		args func(repo, src string) []string
	}{
		{"commit-waits-for-exclusive-lock", unix.F_WRLCK, func(repo, src string) []string {
			return append(commitOpts{subject: "locked"}.ocitreeArgs(repo, "test/locked"), src)
		}},
		{"prune-waits-for-shared-lock", unix.F_RDLCK, func(repo, src string) []string {
			return []string{"repo", "prune", "--repo", repo, "--refs-only"}
		}},
		{"prune-waits-for-exclusive-lock", unix.F_WRLCK, func(repo, src string) []string {
			return []string{"repo", "prune", "--repo", repo, "--refs-only"}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setup(t)
			t.Parallel()
			repo, src, objectsBefore := lockTestRepo(t)
			isPrune := strings.Contains(tc.name, "prune")

			release := ofdLock(t, repo, tc.typ)
			cmd := exec.Command(ocitreeBin, tc.args(repo, src)...)
			cmd.Env = append(peerEnv(), "OCITREE_FAILPOINTS=repo-lock-busy=stop")
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if !waitStopped(t, cmd.Process.Pid) {
				err := cmd.Wait()
				t.Fatalf("`ocitree %s` ended (%v) without finding the lock taken by another process:\n%s",
					strings.Join(tc.args(repo, src), " "), err, out.String())
			}
			// Stopped while the lock is held: nothing may have changed.
			if _, err := os.Lstat(refFile(repo, "test/locked")); err == nil {
				t.Errorf("the waiting commit wrote its ref")
			}
			if n := len(listObjects(t, repo)); n != objectsBefore {
				t.Errorf("objects changed while the lock was held (%d -> %d)", objectsBefore, n)
			}
			release()
			if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			if err := cmd.Wait(); err != nil {
				t.Fatalf("after the lock was released, ocitree failed: %v\n%s", err, out.String())
			}
			if isPrune {
				if n := len(listObjects(t, repo)); n >= objectsBefore {
					t.Errorf("the prune deleted nothing once it had the lock (%d objects before, %d after)", objectsBefore, n)
				}
			} else if _, err := os.Lstat(refFile(repo, "test/locked")); err != nil {
				t.Errorf("the commit that waited for the lock wrote no ref: %v", err)
			}
			ostreeFsck(t, repo)
		})
	}

	// With core.lock-timeout-secs, ocitree gives up with a message that
	// says which lock it could not take. The failpoint proves the lock was
	// found taken; once continued, the lock still held, ocitree gives up.
	for _, tc := range []struct {
		name, secs, kind string
		typ              int16
		args             func(repo, src string) []string
	}{
		{"commit-gives-up", "1", "shared", unix.F_WRLCK, func(repo, src string) []string {
			return append(commitOpts{subject: "locked"}.ocitreeArgs(repo, "test/locked"), src)
		}},
		{"prune-gives-up-at-once", "0", "exclusive", unix.F_RDLCK, func(repo, src string) []string {
			return []string{"repo", "prune", "--repo", repo, "--refs-only"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			setup(t)
			t.Parallel()
			repo, src, objectsBefore := lockTestRepo(t)
			setLockTimeout(t, repo, tc.secs)
			ofdLock(t, repo, tc.typ)
			cmd := exec.Command(ocitreeBin, tc.args(repo, src)...)
			cmd.Env = append(peerEnv(), "OCITREE_FAILPOINTS=repo-lock-busy=stop")
			var stdout, stderr syncBuffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if !waitStopped(t, cmd.Process.Pid) {
				err := cmd.Wait()
				t.Fatalf("ocitree ended (%v) without finding the lock taken:\n%s", err, stderr.String())
			}
			if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
				t.Fatal(err)
			}
			err := cmd.Wait()
			want := fmt.Sprintf("error: taking the %s lock on %s/.lock: timed out after %ss; another process holds it\n", tc.kind, repo, tc.secs)
			if err == nil || cmd.ProcessState.ExitCode() != 1 || stderr.String() != want {
				t.Errorf("ocitree with the lock held elsewhere: %v, stderr %q; want exit 1 and %q", err, stderr.String(), want)
			}
			if _, err := os.Lstat(refFile(repo, "test/locked")); err == nil {
				t.Errorf("a commit that gave up wrote its ref")
			}
			if n := len(listObjects(t, repo)); n != objectsBefore {
				t.Errorf("objects changed although the lock was never taken (%d -> %d)", objectsBefore, n)
			}
			if left := stagingDirs(t, repo); len(left) > 0 {
				t.Errorf("staging left behind: %v", left)
			}
			ostreeFsck(t, repo)
		})
	}
}

// lockTestRepo is a bare-user store with one branch and the objects of a
// deleted one (something for prune to delete); it returns the store, the
// source tree to commit and the number of objects.
func lockTestRepo(t *testing.T) (repo, src string, objects int) {
	t.Helper()
	repo = filepath.Join(workDir(t), "repo")
	ocitreeInit(t, repo, "bare-user")
	src = tree(t, "kernel")
	ocitreeCommit(t, repo, "test/main", src, commitOpts{subject: "first"})
	ocitreeCommit(t, repo, "test/gone", tree(t, "minios"), commitOpts{subject: "gone"})
	must(t, ostree(t, "refs", "--repo="+repo, "--delete", "test/gone"))
	return repo, src, len(listObjects(t, repo))
}

// waitStopped blocks until the child pid stops or exits, without reaping
// it (WNOWAIT, so that exec.Cmd.Wait still can), and reports whether it
// stopped.
func waitStopped(t *testing.T, pid int) bool {
	t.Helper()
	for {
		var info unix.Siginfo
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WSTOPPED|unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("waitid %d: %v", pid, err)
		}
		return info.Code == cldStopped
	}
}

// cldStopped is the si_code CLD_STOPPED of waitid.
const cldStopped = 5
