package integration

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
		start := time.Now()
		r := ostree(t, "prune", "--repo="+repo, "--refs-only")
		if r.code == 0 {
			t.Errorf("sanity: ostree prune succeeded while the repository was locked exclusively:\n%s", r)
		} else {
			t.Logf("ostree prune refused after %v: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(r.stderr))
		}
		release()
		must(t, ostree(t, "prune", "--repo="+repo, "--refs-only"))
		// ocitree reads lock-timeout-secs from a config it wrote itself.
		must(t, ocitree(t, "repo", "fsck", "--repo", repo))
	})

	// ocitree must not write while someone holds the exclusive lock, and
	// must not prune while someone holds a shared (transaction) lock.
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
			return []string{"repo", "prune", "--repo", repo}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setup(t)
			t.Parallel()
			repo := filepath.Join(workDir(t), "repo")
			ocitreeInit(t, repo, "bare-user")
			src := tree(t, "kernel")
			ocitreeCommit(t, repo, "test/main", src, commitOpts{subject: "first"})
			// Something for prune to delete.
			ocitreeCommit(t, repo, "test/gone", tree(t, "minios"), commitOpts{subject: "gone"})
			must(t, ostree(t, "refs", "--repo="+repo, "--delete", "test/gone"))
			setLockTimeout(t, repo, "1")
			objectsBefore := len(listObjects(t, repo))

			release := ofdLock(t, repo, tc.typ)
			cmd := exec.Command(ocitreeBin, tc.args(repo, src)...)
			cmd.Env = peerEnv()
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatalf("`ocitree %s` completed while another process held a conflicting OFD lock on .lock:\n%s",
						strings.Join(tc.args(repo, src), " "), out.String())
				}
				t.Logf("ocitree refused while locked (%v): %s", err, strings.TrimSpace(out.String()))
				if _, err := os.Lstat(refFile(repo, "test/locked")); err == nil {
					t.Errorf("a refused commit wrote its ref")
				}
				if n := len(listObjects(t, repo)); n != objectsBefore && strings.Contains(tc.name, "prune") {
					t.Errorf("prune removed objects while locked (%d -> %d)", objectsBefore, n)
				}
				release()
			case <-time.After(8 * time.Second):
				// libostree gives up after lock-timeout-secs (1 here).
				t.Errorf("ocitree still waits for the lock after 8s although [core] lock-timeout-secs=1; releasing")
				if n := len(listObjects(t, repo)); n != objectsBefore && strings.Contains(tc.name, "prune") {
					t.Errorf("prune removed objects while locked (%d -> %d)", objectsBefore, n)
				}
				release()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("after the lock was released, ocitree failed: %v\n%s", err, out.String())
					}
				case <-time.After(60 * time.Second):
					_ = cmd.Process.Kill()
					<-done
					t.Errorf("ocitree still blocked 60s after the lock was released")
				}
			}
			ostreeFsck(t, repo)
		})
	}
}
