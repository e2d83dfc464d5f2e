package failpoint

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

var (
	fpTestA = New("test-a", "unit test point a")
	fpTestB = New("test-b", "unit test point b")
)

func TestParse(t *testing.T) {
	cases := []struct {
		spec    string
		want    map[string]action
		wantErr string
	}{
		{"", map[string]action{}, ""},
		{"  ", map[string]action{}, ""},
		{"a=kill", map[string]action{"a": {kind: actKill}}, ""},
		{"a=error", map[string]action{"a": {kind: actError}}, ""},
		{"a=stop", map[string]action{"a": {kind: actStop}}, ""},
		{"a=exit(3)", map[string]action{"a": {kind: actExit, n: 3}}, ""},
		{"a=exit(0)", map[string]action{"a": {kind: actExit, n: 0}}, ""},
		{"a=exit(255)", map[string]action{"a": {kind: actExit, n: 255}}, ""},
		{"a=sleep(250)", map[string]action{"a": {kind: actSleep, n: 250}}, ""},
		{"a=kill, b = exit(7) ", map[string]action{"a": {kind: actKill}, "b": {kind: actExit, n: 7}}, ""},
		{"a=exit(256)", nil, "want a status from 0 to 255"},
		{"a=exit(-1)", nil, "want a status from 0 to 255"},
		{"a=exit()", nil, "want a status"},
		{"a=exit(x)", nil, "want a status"},
		{"a=sleep(-5)", nil, "want milliseconds"},
		{"a=sleep(1", nil, "unknown action"},
		{"a=panic", nil, `unknown action "panic"`},
		{"a=abort(1)", nil, `unknown action "abort(1)"`},
		{"a", nil, `"a" is not name=action`},
		{"=kill", nil, "is not name=action"},
		{"a=", nil, "is not name=action"},
		{"a=kill,", nil, `"" is not name=action`},
		{"a=kill,a=error", nil, `"a" named twice`},
	}
	for _, tc := range cases {
		got, err := parse(tc.spec)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("parse(%q): error %v, want one containing %q", tc.spec, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("parse(%q): %v", tc.spec, err)
			continue
		}
		if len(got) != len(tc.want) {
			t.Errorf("parse(%q): %d actions, want %d", tc.spec, len(got), len(tc.want))
		}
		for name, w := range tc.want {
			if g, ok := got[name]; !ok || g.kind != w.kind || g.n != w.n {
				t.Errorf("parse(%q)[%q] = %+v, want %+v", tc.spec, name, g, w)
			}
		}
	}
}

func TestSetupUnknownName(t *testing.T) {
	t.Cleanup(func() { Setup("") })
	if err := Setup("test-a=error"); err != nil {
		t.Fatal(err)
	}
	err := Setup("test-b=error,test-bogus=kill")
	if err == nil || !strings.Contains(err.Error(), `unknown failpoint "test-bogus"`) {
		t.Fatalf("Setup with an unknown name: %v", err)
	}
	// A failed Setup changes nothing.
	if fpTestA.Hit() == nil {
		t.Error("test-a was disabled by a failed Setup")
	}
	if err := fpTestB.Hit(); err != nil {
		t.Errorf("test-b was enabled by a failed Setup: %v", err)
	}
}

func TestHitError(t *testing.T) {
	t.Cleanup(func() { Setup("") })
	if err := fpTestA.Hit(); err != nil {
		t.Fatalf("disabled point: %v", err)
	}
	if err := Setup("test-a=error"); err != nil {
		t.Fatal(err)
	}
	err := fpTestA.Hit()
	if !errors.Is(err, ErrInjected) || !strings.Contains(err.Error(), "test-a") {
		t.Errorf("error action: %v", err)
	}
	if err := fpTestB.Hit(); err != nil {
		t.Errorf("point not named in the spec: %v", err)
	}
	if err := Setup("test-a=sleep(0)"); err != nil {
		t.Fatal(err)
	}
	if err := fpTestA.Hit(); err != nil {
		t.Errorf("sleep action: %v", err)
	}
	if err := Setup(""); err != nil {
		t.Fatal(err)
	}
	if err := fpTestA.Hit(); err != nil {
		t.Errorf("after Setup(\"\"): %v", err)
	}
}

func TestEnableFunc(t *testing.T) {
	n := 0
	disable := fpTestB.EnableFunc(func() error { n++; return nil })
	fpTestB.Hit()
	fpTestB.Hit()
	disable()
	fpTestB.Hit()
	if n != 2 {
		t.Errorf("func called %d times, want 2", n)
	}
}

func TestNames(t *testing.T) {
	names := Names()
	var a, b bool
	for i, n := range names {
		if i > 0 && names[i-1] >= n {
			t.Errorf("names not sorted: %q before %q", names[i-1], n)
		}
		a = a || n == "test-a"
		b = b || n == "test-b"
	}
	if !a || !b {
		t.Errorf("Names() = %v, want test-a and test-b in it", names)
	}
}

func TestNewPanics(t *testing.T) {
	for _, name := range []string{"test-a", "Bad", "a_b", "-a", "a-", ""} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("New(%q) did not panic", name)
				}
			}()
			New(name, "")
		}()
	}
}

// TestProcessActions runs this test binary as a child that hits test-a
// with kill, exit(N) and stop, and checks how the child ended.
func TestProcessActions(t *testing.T) {
	if os.Getenv("FAILPOINT_CHILD") == "1" {
		if err := Setup(os.Getenv(Env)); err != nil {
			os.Exit(100)
		}
		fpTestA.Hit()
		os.Exit(0)
	}
	run := func(spec string) *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^TestProcessActions$")
		cmd.Env = append(os.Environ(), "FAILPOINT_CHILD=1", Env+"="+spec)
		return cmd
	}
	err := run("test-a=kill").Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("kill: %v", err)
	}
	if ws := ee.Sys().(syscall.WaitStatus); !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Errorf("kill: child ended with %v, want SIGKILL", err)
	}
	err = run("test-a=exit(42)").Run()
	if !errors.As(err, &ee) || ee.ExitCode() != 42 {
		t.Errorf("exit(42): child ended with %v", err)
	}
	if err := run("test-b=exit(42)").Run(); err != nil {
		t.Errorf("a point not hit: child ended with %v", err)
	}
	if err := run("test-a=bogus").Run(); !errors.As(err, &ee) || ee.ExitCode() != 100 {
		t.Errorf("bad spec: child ended with %v, want Setup to fail", err)
	}

	// stop: the child stops itself; continued, it exits 0. Once, in a
	// full suite on a loaded machine, waitid reported the child gone
	// without a stop (cause not found yet): up to three children are tried,
	// and every failed try is logged with what waitid said.
	stoppedOnce := false
	for try := 0; try < 3 && !stoppedOnce; try++ {
		cmd := run("test-a=stop")
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		code, errno := waitStopped(t, cmd.Process.Pid)
		if code != cldStopped {
			t.Logf("stop, try %d: waitid si_code %d, si_errno %d; want CLD_STOPPED", try+1, code, errno)
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			continue
		}
		stoppedOnce = true
		if err := cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Wait(); err != nil {
			t.Errorf("stop: after SIGCONT the child ended with %v", err)
		}
	}
	if !stoppedOnce {
		t.Errorf("stop: the child never stopped itself")
	}
}

// waitStopped blocks until the child pid stops or exits, without reaping
// it (WNOWAIT), and reports whether it stopped.
func waitStopped(t *testing.T, pid int) (code, errno int32) {
	t.Helper()
	var info unix.Siginfo
	for {
		err := unix.Waitid(unix.P_PID, pid, &info, unix.WSTOPPED|unix.WEXITED|unix.WNOWAIT, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			t.Fatalf("waitid %d: %v", pid, err)
		}
		return info.Code, info.Errno
	}
}

// cldStopped is si_code CLD_STOPPED.
const cldStopped = 5

// BenchmarkHitDisabled is the cost of a check on a hot path with nothing
// enabled (the b.N loop lets the compiler inline Hit, as at real call
// sites).
func BenchmarkHitDisabled(b *testing.B) {
	Setup("")
	for i := 0; i < b.N; i++ {
		if err := fpTestA.Hit(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkHitOtherEnabled is the same check while another point is
// enabled.
func BenchmarkHitOtherEnabled(b *testing.B) {
	Setup("test-b=error")
	b.Cleanup(func() { Setup("") })
	for i := 0; i < b.N; i++ {
		if err := fpTestA.Hit(); err != nil {
			b.Fatal(err)
		}
	}
}
