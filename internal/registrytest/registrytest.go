// Package registrytest runs a real Debian docker-registry on 127.0.0.1 for
// tests (filesystem storage in a temporary directory, plain HTTP). Push to
// it with skopeo copy --dest-tls-verify=false and pull with ocitree's
// hidden --tls-verify=false.
package registrytest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startTimeout bounds the wait for the registry to listen: a hang guard,
// not a measurement.
const startTimeout = 3 * time.Minute

// Start runs docker-registry with its config and storage under dir and
// returns its address (127.0.0.1:PORT). It is killed when the test ends.
// The caller checks that docker-registry is installed.
func Start(t testing.TB, dir string) string {
	t.Helper()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	config := fmt.Sprintf("version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: %s\n  delete:\n    enabled: true\nhttp:\n  addr: %s\n  secret: ocitree-test\n", data, addr)
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("docker-registry", "serve", cfg)
	cmd.Stdout = logf
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The registry logs "listening on ADDR" once its socket is bound: wait
	// for that line instead of polling.
	listening, logDone, exited := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() {
		defer close(logDone)
		sc := bufio.NewScanner(stderr)
		seen := false
		for sc.Scan() {
			fmt.Fprintln(logf, sc.Text())
			if !seen && strings.Contains(sc.Text(), `msg="listening on `+addr+`"`) {
				seen = true
				close(listening)
			}
		}
	}()
	go func() { <-logDone; cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		logf.Close()
	})
	logText := func() string { b, _ := os.ReadFile(logf.Name()); return string(b) }
	select {
	case <-listening:
	case <-exited:
		t.Fatalf("docker-registry exited before listening on %s:\n%s", addr, logText())
	case <-time.After(startTimeout):
		t.Fatalf("docker-registry neither listens on %s nor exits:\n%s", addr, logText())
	}
	return addr
}
