package integration

import (
	"bytes"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
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

// serveHTTP serves dir with python3's http.server on a socket the test has
// already bound and listens on (passed as fd 3), so requests made before
// python accepts wait in the listen backlog: no readiness polling, no port
// race. The server is stopped when the test ends. log collects its
// request log.
func serveHTTP(t *testing.T, dir string) (url string, log *syncBuffer) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := l.(*net.TCPListener).File()
	l.Close() // lf keeps the listening socket open
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	log = &syncBuffer{}
	cmd := exec.Command("python3", "-c", httpServerPy, dir)
	cmd.ExtraFiles = []*os.File{lf} // fd 3
	cmd.Stdout, cmd.Stderr = log, log
	cmd.Env = peerEnv()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	return "http://" + l.Addr().String(), log
}

// httpServerPy is http.server's SimpleHTTPRequestHandler serving argv[1] on
// the listening socket at fd 3.
const httpServerPy = `
import functools, http.server, socket, sys
sock = socket.socket(fileno=3)
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[1])
srv = http.server.ThreadingHTTPServer(sock.getsockname(), handler, bind_and_activate=False)
srv.socket = sock
srv.serve_forever()
`

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
