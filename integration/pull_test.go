package integration

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for a process writing while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serveHTTP serves dir with `python3 -m http.server` bound to 127.0.0.1 on a
// free port and returns the base URL and the server's log. The server is
// stopped (by its PID) when the test ends.
func serveHTTP(t *testing.T, dir string) (url string, log *syncBuffer) {
	t.Helper()
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		url, log, stop, err := tryServe(dir)
		if err == nil {
			t.Cleanup(stop)
			return url, log
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return "", nil
}

func tryServe(dir string) (url string, log *syncBuffer, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, nil, err
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	log = &syncBuffer{}
	cmd := exec.Command("python3", "-m", "http.server", fmt.Sprint(port), "--bind", "127.0.0.1", "--directory", dir)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = peerEnv()
	if err := cmd.Start(); err != nil {
		return "", nil, nil, err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop = func() {
		_ = cmd.Process.Kill()
		<-exited
	}
	url = fmt.Sprintf("http://127.0.0.1:%d", port)
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: time.Second}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		select {
		case <-exited:
			return "", nil, nil, fmt.Errorf("http.server on port %d exited early: %s", port, log.String())
		default:
		}
		if resp, err := client.Get(url + "/config"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url, log, stop, nil
			}
		}
	}
	stop()
	return "", nil, nil, fmt.Errorf("http.server on port %d did not answer in 10s: %s", port, log.String())
}

// TestPullFromOcitreeArchive serves an archive repository written by ocitree
// over HTTP and pulls it with the real `ostree pull` (the one path where
// ostree checks GVariant normal form) into archive and bare-user
// repositories; the pulled commit must fsck and check out to the source.
func TestPullFromOcitreeArchive(t *testing.T) {
	setup(t, "python3")
	t.Parallel()
	dir := workDir(t)
	srcRepo := filepath.Join(dir, "served")
	ocitreeInit(t, srcRepo, "archive")
	edge := tree(t, "edge")
	c1 := ocitreeCommit(t, srcRepo, "os/edge", edge, commitOpts{subject: "edge"})
	// A second branch with history: two commits.
	c2 := ocitreeCommit(t, srcRepo, "os/minios", tree(t, "minios"), commitOpts{subject: "minios v1"})
	c3 := ocitreeCommit(t, srcRepo, "os/minios", tree(t, "kernel"), commitOpts{subject: "minios v2", timestamp: defaultTimestamp.Add(86400e9)})
	url, serverLog := serveHTTP(t, srcRepo)

	for _, mode := range []string{"archive", "bare-user", "bare"} {
		t.Run(mode, func(t *testing.T) {
			dest := filepath.Join(dir, "pulled-"+mode)
			ostreeInit(t, dest, mode)
			must(t, ostree(t, "remote", "add", "--repo="+dest, "--no-gpg-verify", "origin", url))
			for _, want := range []struct{ branch, csum string }{{"os/edge", c1}, {"os/minios", c3}} {
				r := ostree(t, "pull", "--repo="+dest, "origin", want.branch)
				if r.code != 0 {
					t.Fatalf("ostree pull %s from ocitree's archive repo failed:\n%s\nhttp.server log:\n%s", want.branch, r, clip(serverLog.String(), 3000))
				}
				got := strings.TrimSpace(must(t, ostree(t, "rev-parse", "--repo="+dest, "origin:"+want.branch)))
				if got != want.csum {
					t.Errorf("pulled origin:%s = %s, want %s", want.branch, got, want.csum)
				}
				if d := lineDiff(ostreeLs(t, srcRepo, want.csum), ostreeLs(t, dest, want.csum)); d != "" {
					t.Errorf("ostree ls of pulled %s differs from the served repo:\n%s", want.branch, d)
				}
			}
			ostreeFsck(t, dest)
			if a, b := sortedLines(must(t, ostree(t, "refs", "--repo="+dest))), sortedLines(must(t, ocitree(t, "repo", "refs", "--repo", dest))); !slices.Equal(a, b) {
				t.Errorf("remote refs: ostree refs %q, ocitree repo refs %q", a, b)
			}
			co := filepath.Join(dir, "co-"+mode)
			must(t, ostree(t, "checkout", "--repo="+dest, "origin:os/edge", co))
			assertSameTree(t, "checkout of the pulled commit", edge, co, cmpOpts{})
			// ocitree reads the pulled (ostree-written) repo: fsck, and a
			// checkout of the remote ref by its REMOTE:REF name.
			must(t, ocitree(t, "repo", "fsck", "--repo", dest))
			co2 := filepath.Join(dir, "co-ocitree-"+mode)
			if r := ocitree(t, "repo", "checkout", "--repo", dest, "origin:os/edge", co2); r.code != 0 {
				t.Errorf("ocitree repo checkout origin:os/edge (a ref `ocitree repo refs` lists):\n%s", r)
			} else {
				assertSameTree(t, "ocitree checkout of the pulled remote ref", edge, co2, cmpOpts{})
			}

			// Pull the older commit of os/minios by checksum as well: it is
			// in the repo but no ref points to it.
			must(t, ostree(t, "pull", "--repo="+dest, "origin", c2))
			ostreeFsck(t, dest)

			// Prune parity on a repo with remote refs and an unreferenced
			// commit: ostree prune --refs-only on a copy, ocitree on dest.
			cp := filepath.Join(dir, "pulled-copy-"+mode)
			must(t, runCmd(t, nil, "cp", "-a", dest, cp))
			must(t, ostree(t, "prune", "--repo="+cp, "--refs-only"))
			must(t, ocitree(t, "repo", "prune", "--repo", dest, "--refs-only"))
			if a, b := listObjects(t, cp), listObjects(t, dest); !slices.Equal(a, b) {
				t.Errorf("prune --refs-only with remote refs: object sets differ (- ostree, + ocitree):\n%s",
					lineDiff(strings.Join(a, "\n"), strings.Join(b, "\n")))
			}
			ostreeFsck(t, dest)
		})
	}
}
