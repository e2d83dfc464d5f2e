package integration

import (
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// bigTreeFiles and bigTreeFileSize size the tree of the kill test: big
// enough that a commit takes well over the kill delays.
const (
	bigTreeFiles    = 1500
	bigTreeFileSize = 6 << 10
)

// bigTree writes bigTreeFiles pseudo-random files (3 to 6 KiB) in 40
// directories: many small files, so that a commit takes a while everywhere
// without writing much data.
func bigTree(dir string) error {
	var seed [32]byte
	copy(seed[:], "integration/bigtree")
	r := rand.NewChaCha8(seed)
	buf := make([]byte, bigTreeFileSize)
	for i := 0; i < bigTreeFiles; i++ {
		p := filepath.Join(dir, fmt.Sprintf("d%02d", i%40), fmt.Sprintf("f%04d.bin", i))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		n := bigTreeFileSize/2 + i*7919%(bigTreeFileSize/2)
		_, _ = r.Read(buf[:n])
		if err := os.WriteFile(p, buf[:n], 0o644); err != nil {
			return err
		}
	}
	return os.Chmod(dir, 0o755)
}

func init() { treeGenerators["big"] = bigTree }

// TestKilledCommit SIGKILLs `ocitree repo commit` part-way through a commit
// of a big tree. The repository must still pass the real `ostree fsck` and
// `ocitree repo fsck`, have no ref, and accept a complete commit afterwards
// that matches ostree's checksum.
func TestKilledCommit(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	cases := []struct {
		name    string
		mode    string
		delay   time.Duration // 0: wait until waitSub holds waitMin files
		waitSub string
		waitMin int
	}{
		{"archive/200ms", "archive", 200 * time.Millisecond, "", 0},
		{"bare-user/200ms", "bare-user", 200 * time.Millisecond, "", 0},
		// While objects are being written (staged under tmp/).
		{"archive/while-staging", "archive", 0, "tmp", 300},
		// Once objects reach objects/: the publishing phase, before the ref.
		{"bare-user/while-publishing", "bare-user", 0, "objects", 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			setup(t)
			t.Parallel()
			src := tree(t, "big")
			repo := filepath.Join(workDir(t), "repo")
			ocitreeInit(t, repo, tc.mode)
			opts := commitOpts{subject: "big"}
			cmd := exec.Command(ocitreeBin, append(opts.ocitreeArgs(repo, "test/main"), src)...)
			cmd.Env = peerEnv()
			start := time.Now()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			if tc.delay == 0 {
				waitForFiles(repo, tc.waitSub, tc.waitMin, 60*time.Second, done)
			} else {
				time.Sleep(tc.delay)
			}
			_ = cmd.Process.Signal(syscall.SIGKILL)
			<-done
			elapsed := time.Since(start)
			ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
			if !ws.Signaled() {
				if os.Getenv("CI") == "true" {
					t.Fatalf("the commit finished (exit %d) in %v, before the kill: the test tested nothing (CI=true makes this a failure)", cmd.ProcessState.ExitCode(), elapsed)
				}
				t.Skipf("the commit finished (exit %d) in %v, before the kill; the tree is too small to test this", cmd.ProcessState.ExitCode(), elapsed)
			}
			t.Logf("killed after %v with %d files under objects/ and tmp/", elapsed, countFiles(repo, ""))

			if _, err := os.Lstat(refFile(repo, "test/main")); !os.IsNotExist(err) {
				t.Errorf("a killed commit left the ref refs/heads/test/main (%v)", err)
			}
			ostreeFsck(t, repo)
			if r := ocitree(t, "repo", "fsck", "--repo", repo); r.code != 0 {
				t.Errorf("ocitree repo fsck after a killed commit:\n%s", r)
			}

			// The interrupted repository accepts the full commit.
			_, want := golden(t, tc.mode, "big", opts)
			got := ocitreeCommit(t, repo, "test/main", src, opts)
			if got != want {
				t.Errorf("commit after the kill: ocitree %s, ostree %s", got, want)
			}
			ostreeFsck(t, repo)
		})
	}
}

// countFiles counts the files under repo/sub (sub: "objects" or "tmp"; ""
// for both).
func countFiles(repo, sub string) int {
	n := 0
	subs := []string{"objects", "tmp"}
	if sub != "" {
		subs = []string{sub}
	}
	for _, sub := range subs {
		_ = filepath.WalkDir(filepath.Join(repo, sub), func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				n++
			}
			return nil
		})
	}
	return n
}

// waitForFiles returns once repo/sub holds at least min files, the process
// ends, or the timeout passes.
func waitForFiles(repo, sub string, min int, timeout time.Duration, done chan error) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case err := <-done:
			done <- err
			return
		default:
		}
		if countFiles(repo, sub) >= min {
			return
		}
		time.Sleep(time.Millisecond)
	}
}
