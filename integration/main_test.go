// Package integration holds end-to-end tests that run the ocitree CLI next
// to the real peers (ostree 2022.7, python3's http.server) and compare what
// they produce. Every golden value comes from running the peer in the same
// test; nothing is hard-coded.
//
// Environment:
//
//	OCITREE_TEST_TMP  base directory for all test files (must support user
//	                  xattrs); default: $TMPDIR or /tmp when it supports
//	                  them, else /var/tmp
//	CI=true           a missing tool (ostree, python3) or a non-root run is
//	                  a failure instead of a skip
package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocitree/ocitree/fixtures"
	"golang.org/x/sys/unix"
)

// buildTags are the tags the CLI is built with (containers/image without
// cgo dependencies).
const buildTags = "containers_image_openpgp containers_image_storage_stub containers_image_docker_daemon_stub"

var (
	ocitreeBin string // path of the built CLI, "" if the build failed
	buildErr   error  // why the build failed, with its output
	testBase   string // directory under which every test directory is created
	cacheDir   string // shared, read-only inputs (source trees, golden repos)
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	testBase = chooseTestBase()
	var err error
	cacheDir, err = os.MkdirTemp(testBase, "ocitree-integration-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "integration: %v\n", err)
		return 1
	}
	defer os.RemoveAll(cacheDir)
	buildCLI(filepath.Join(cacheDir, "bin", "ocitree"))
	return m.Run()
}

// chooseTestBase picks a directory on a filesystem with user xattrs, which
// bare-user repositories and EdgeTree need (tmpfs before Linux 6.6 has none).
func chooseTestBase() string {
	if d := os.Getenv("OCITREE_TEST_TMP"); d != "" {
		_ = os.MkdirAll(d, 0o755)
		return d
	}
	if d := os.TempDir(); fixtures.UserXattrsSupported(d) {
		return d
	}
	return "/var/tmp"
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return filepath.Join(runtime.GOROOT(), "bin", "go")
}

func buildCLI(out string) {
	cmd := exec.Command(goTool(), "build", "-tags", buildTags, "-o", out, "github.com/ocitree/ocitree/cmd/ocitree")
	cmd.Dir = ".." // the module root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	output, err := cmd.CombinedOutput()
	if err != nil {
		buildErr = fmt.Errorf("go build ./cmd/ocitree: %v\n%s", err, output)
		return
	}
	ocitreeBin = out
}

// needCLI fails the test when the CLI did not build.
func needCLI(t *testing.T) {
	t.Helper()
	if ocitreeBin == "" {
		t.Fatalf("the ocitree CLI did not build: %v", buildErr)
	}
}

// requireTools skips the test (fails it when CI=true) unless every tool is
// on PATH and the test runs as root.
func requireTools(t *testing.T, tools ...string) {
	t.Helper()
	inCI := os.Getenv("CI") == "true"
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if inCI {
				t.Fatalf("required tool %q not found on PATH (CI=true makes this a failure)", tool)
			}
			t.Skipf("required tool %q not found on PATH", tool)
		}
	}
	if os.Geteuid() != 0 {
		if inCI {
			t.Fatal("integration tests must run as root (bare repos with foreign owners); CI=true makes this a failure")
		}
		t.Skip("integration tests need root (bare repos with foreign owners)")
	}
}

// setup is the common preamble: tools present, CLI built, test parallel.
func setup(t *testing.T, tools ...string) {
	t.Helper()
	requireTools(t, append([]string{"ostree"}, tools...)...)
	needCLI(t)
}

var nameSanitizer = regexp.MustCompile(`[^A-Za-z0-9_.-]+`)

// workDir returns a fresh directory for the test on an xattr-capable
// filesystem, removed when the test ends.
func workDir(t *testing.T) string {
	t.Helper()
	name := nameSanitizer.ReplaceAllString(t.Name(), "_")
	if len(name) > 60 {
		name = name[:60]
	}
	d, err := os.MkdirTemp(testBase, "ocitree-it-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(d); err != nil {
			t.Logf("cleanup %s: %v", d, err)
		}
	})
	return d
}

// result is the outcome of one command.
type result struct {
	cmdline string
	stdout  string
	stderr  string
	code    int // exit status; -1 if it did not exit normally
	err     error
}

func (r result) String() string {
	return fmt.Sprintf("$ %s\nexit %d (%v)\nstdout:\n%s\nstderr:\n%s", r.cmdline, r.code, r.err, clip(r.stdout, 4000), clip(r.stderr, 4000))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("\n... (%d more bytes)", len(s)-n)
}

// cmdTimeout bounds every command so that a hang fails one test instead of
// the whole run.
const cmdTimeout = 3 * time.Minute

// peerEnv is the environment for commands: proxies removed so that
// loopback HTTP never goes through one.
func peerEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch strings.ToLower(k) {
		case "http_proxy", "https_proxy", "all_proxy", "no_proxy", "ftp_proxy":
			continue
		}
		env = append(env, kv)
	}
	return append(env, "no_proxy=127.0.0.1,localhost", "NO_PROXY=127.0.0.1,localhost")
}

func quoteArgs(name string, args []string) string {
	parts := []string{name}
	for _, a := range args {
		if a == "" || strings.ContainsAny(a, " \t\n'\"$\\*?;&|<>()") {
			a = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}

// runCmd runs name with args, stdin from stdin (may be nil).
func runCmd(t *testing.T, stdin []byte, name string, args ...string) result {
	t.Helper()
	return runCmdEnv(t, nil, stdin, name, args...)
}

// runCmdEnv is runCmd with extra environment variables (KEY=VALUE).
func runCmdEnv(t *testing.T, env []string, stdin []byte, name string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(peerEnv(), env...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var so, se bytes.Buffer
	cmd.Stdout, cmd.Stderr = &so, &se
	err := cmd.Run()
	display := name
	if name == ocitreeBin {
		display = "ocitree"
	}
	r := result{cmdline: quoteArgs(display, args), stdout: so.String(), stderr: se.String(), err: err, code: -1}
	if cmd.ProcessState != nil {
		r.code = cmd.ProcessState.ExitCode()
	}
	if ctx.Err() != nil {
		r.err = fmt.Errorf("timed out after %v: %w", cmdTimeout, err)
	}
	return r
}

func ocitree(t *testing.T, args ...string) result {
	t.Helper()
	return runCmd(t, nil, ocitreeBin, args...)
}

func ostree(t *testing.T, args ...string) result {
	t.Helper()
	return runCmd(t, nil, "ostree", args...)
}

// must fails the test now unless r succeeded; it returns stdout.
func must(t *testing.T, r result) string {
	t.Helper()
	if r.err != nil || r.code != 0 {
		t.Fatalf("command failed:\n%s", r)
	}
	return r.stdout
}

var hex64 = regexp.MustCompile(`^[0-9a-f]{64}$`)

// sharedOnce caches one expensive read-only input per key for the whole run.
type sharedOnce struct {
	once sync.Once
	val  string
	err  error
}

var (
	sharedMu sync.Mutex
	shared   = map[string]*sharedOnce{}
)

// cached runs make once per key and returns its result; the value must be
// treated as read-only by every test.
func cached(t *testing.T, key string, make func() (string, error)) string {
	t.Helper()
	v, err := cachedErr(key, make)
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	return v
}

func cachedErr(key string, make func() (string, error)) (string, error) {
	sharedMu.Lock()
	s, ok := shared[key]
	if !ok {
		s = &sharedOnce{}
		shared[key] = s
	}
	sharedMu.Unlock()
	s.once.Do(func() { s.val, s.err = make() })
	return s.val, s.err
}

// envError marks a failure of the environment (missing privilege or
// filesystem feature) rather than of ocitree: skipped, or fatal when CI=true.
type envError struct{ err error }

func (e envError) Error() string { return e.err.Error() }

// tree returns the path of a read-only source tree built by gen, shared by
// all tests. Known names: "edge" (fixtures.EdgeTree), "minios"
// (fixtures.MiniOS), "kernel" (a tree with usr/lib/modules/6.1.0-test).
func tree(t *testing.T, name string) string {
	t.Helper()
	gen, ok := treeGenerators[name]
	if !ok {
		t.Fatalf("unknown tree %q", name)
	}
	dir, err := cachedErr("tree:"+name, func() (string, error) {
		dir := filepath.Join(cacheDir, "trees", name)
		if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
			return "", err
		}
		return dir, gen(dir)
	})
	var envErr envError
	if errors.As(err, &envErr) && os.Getenv("CI") != "true" {
		t.Skipf("tree %s: %v", name, err)
	}
	if err != nil {
		t.Fatalf("tree %s: %v", name, err)
	}
	return dir
}

var treeGenerators = map[string]func(string) error{
	"edge":              fixtures.EdgeTree,
	"minios":            fixtures.MiniOS,
	"busybox":           fixtures.BusyboxOS,
	"kernel":            kernelTree,
	"privileged-xattrs": privilegedXattrTree,
	"wide":              wideTree,
}

// wideTree has directories whose dirtree objects exceed 64 KiB, so that
// GVariant framing offsets are 4 bytes wide: 2500 files in one directory
// and 1200 sub-directories in another (all sharing a few content objects).
func wideTree(dir string) error {
	for _, d := range []string{"files", "dirs"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	for i := 0; i < 2500; i++ {
		p := filepath.Join(dir, "files", fmt.Sprintf("a-rather-long-file-name-to-grow-the-dirtree-%05d", i))
		if err := os.WriteFile(p, []byte(fmt.Sprintf("%d\n", i%3)), 0o644); err != nil {
			return err
		}
	}
	for i := 0; i < 1200; i++ {
		if err := os.Mkdir(filepath.Join(dir, "dirs", fmt.Sprintf("subdir-%04d", i)), 0o755); err != nil {
			return err
		}
	}
	return nil
}

// kernelTree is a minimal tree that `ostree commit --bootable` accepts.
func kernelTree(dir string) error {
	files := map[string]string{
		"usr/lib/modules/6.1.0-test/vmlinuz":       "fake kernel\n",
		"usr/lib/modules/6.1.0-test/initramfs.img": "fake initramfs\n",
		"usr/lib/os-release":                       "ID=test\n",
		"usr/bin/true":                             "#!/bin/sh\n",
	}
	for p, c := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			return err
		}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	return os.Symlink("usr/bin", filepath.Join(dir, "bin"))
}

// privilegedXattrTree has the xattrs real OS trees carry besides user.*:
// file capabilities (security.capability), trusted.*, and POSIX ACLs
// (system.posix_acl_access/default). Setting them needs root with
// CAP_SETFCAP and CAP_SYS_ADMIN.
func privilegedXattrTree(dir string) error {
	if err := os.MkdirAll(filepath.Join(dir, "usr/bin"), 0o755); err != nil {
		return err
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return err
	}
	write := func(rel string, perm os.FileMode) (string, error) {
		p := filepath.Join(dir, rel)
		if err := os.WriteFile(p, []byte(rel+"\n"), perm); err != nil {
			return "", err
		}
		return p, os.Chmod(p, perm)
	}
	// VFS_CAP_REVISION_2, permitted+effective cap_net_raw (13).
	capV2 := []byte{0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	// POSIX ACL: user::rw- user:1000:rw- group::r-- mask::rw- other::r--
	acl := []byte{2, 0, 0, 0,
		0x01, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		0x02, 0, 6, 0, 0xe8, 0x03, 0, 0,
		0x04, 0, 4, 0, 0xff, 0xff, 0xff, 0xff,
		0x10, 0, 6, 0, 0xff, 0xff, 0xff, 0xff,
		0x20, 0, 4, 0, 0xff, 0xff, 0xff, 0xff}
	steps := []struct {
		rel, name string
		value     []byte
		dir       bool
	}{
		{"usr/bin/ping", "security.capability", capV2, false},
		{"trusted-file", "trusted.overlay.test", []byte("y"), false},
		{"acl-file", "system.posix_acl_access", acl, false},
		{"acl-dir", "system.posix_acl_default", acl, true},
	}
	for _, s := range steps {
		p := filepath.Join(dir, s.rel)
		var err error
		if s.dir {
			err = os.Mkdir(p, 0o755)
		} else {
			_, err = write(s.rel, 0o755)
		}
		if err != nil {
			return err
		}
		if err := unix.Lsetxattr(p, s.name, s.value, 0); err != nil {
			return envError{fmt.Errorf("setting %s on %s (needs root with CAP_SETFCAP/CAP_SYS_ADMIN and ACL support): %w", s.name, p, err)}
		}
	}
	return nil
}

// tarOf writes fixtures.TarOf(src) to a file in the test's work dir.
func tarOf(t *testing.T, src string) string {
	t.Helper()
	var buf bytes.Buffer
	if err := fixtures.TarOf(src, &buf); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(workDir(t), "tree.tar")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
