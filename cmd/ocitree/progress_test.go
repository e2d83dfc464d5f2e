package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
)

func TestFormatBytes(t *testing.T) {
	cases := []struct {
		n    int64
		want string
	}{
		{0, "0 B"},
		{999, "999 B"},
		{1000, "1.0 kB"},
		{1536, "1.5 kB"},
		{999_949, "999.9 kB"},
		{999_950, "1.0 MB"}, // not "1000.0 kB"
		{312_400_000, "312.4 MB"},
		{851_000_000, "851.0 MB"},
		{1_500_000_000, "1.5 GB"},
		{2_000_000_000_000, "2.0 TB"},
	}
	for _, tc := range cases {
		if got := formatBytes(tc.n); got != tc.want {
			t.Errorf("formatBytes(%d) = %q, want %q", tc.n, got, tc.want)
		}
	}
}

func TestFormatProgress(t *testing.T) {
	cases := []struct {
		name string
		s    progressState
		want string
	}{
		{"rate not known yet: no rate, no ETA",
			progressState{Layers: 64, LayersDone: 0, Total: 851_000_000, Fetched: 12_000, Rate: -1},
			"Fetching 0/64 layers  12.0 kB / 851.0 MB"},
		{"rate and ETA",
			progressState{Layers: 64, LayersDone: 12, Total: 851_000_000, Fetched: 312_400_000, Rate: 87_100_000},
			"Fetching 12/64 layers  312.4 MB / 851.0 MB  87.1 MB/s  ETA 6s"},
		{"ETA in minutes",
			progressState{Layers: 3, LayersDone: 1, Total: 100_000_000, Fetched: 10_000_000, Rate: 300_000},
			"Fetching 1/3 layers  10.0 MB / 100.0 MB  300.0 kB/s  ETA 5m00s"},
		{"ETA in hours",
			progressState{Layers: 3, LayersDone: 0, Total: 10_000_000_000, Fetched: 0, Rate: 1_000_000},
			"Fetching 0/3 layers  0 B / 10.0 GB  1.0 MB/s  ETA 2h46m"},
		{"stalled: rate 0, no ETA",
			progressState{Layers: 2, LayersDone: 1, Total: 2000, Fetched: 1000, Rate: 0},
			"Fetching 1/2 layers  1.0 kB / 2.0 kB  0 B/s"},
		{"re-read bytes are clamped to the total",
			progressState{Layers: 2, LayersDone: 1, Total: 2_000_000, Fetched: 2_600_000, Rate: 1_000_000},
			"Fetching 1/2 layers  2.0 MB / 2.0 MB  1.0 MB/s  ETA 0s"},
		{"layers done are clamped too",
			progressState{Layers: 2, LayersDone: 3, Total: 2000, Fetched: 2000, Rate: -1},
			"Fetching 2/2 layers  2.0 kB / 2.0 kB"},
		{"total 0: no total, no ETA, no clamping",
			progressState{Layers: 1, LayersDone: 0, Total: 0, Fetched: 5000, Rate: 1000},
			"Fetching 0/1 layers  5.0 kB  1.0 kB/s"},
	}
	for _, tc := range cases {
		if got := formatProgress(tc.s); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestFormatFinal(t *testing.T) {
	cases := []struct {
		name string
		s    progressState
		want string
	}{
		{"complete",
			progressState{Layers: 64, LayersDone: 64, Total: 851_000_000, Fetched: 851_000_000, Elapsed: 9800 * time.Millisecond},
			"Fetched 64 layers  851.0 MB in 9.8s (86.8 MB/s)"},
		{"one layer, long",
			progressState{Layers: 1, LayersDone: 1, Total: 90_000_000, Fetched: 90_000_000, Elapsed: 90 * time.Second},
			"Fetched 1 layer  90.0 MB in 1m30s (1.0 MB/s)"},
		{"re-read bytes clamped",
			progressState{Layers: 2, LayersDone: 2, Total: 4_000_000, Fetched: 5_000_000, Elapsed: 2 * time.Second},
			"Fetched 2 layers  4.0 MB in 2.0s (2.0 MB/s)"},
		{"no time elapsed: no rate",
			progressState{Layers: 2, LayersDone: 2, Total: 4000, Fetched: 4000},
			"Fetched 2 layers  4.0 kB in 0.0s"},
		{"stopped early (an error)",
			progressState{Layers: 64, LayersDone: 12, Total: 851_000_000, Fetched: 312_400_000, Elapsed: 12 * time.Second},
			"Stopped after 12/64 layers  312.4 MB / 851.0 MB in 12s"},
		{"stopped early, total 0",
			progressState{Layers: 3, LayersDone: 0, Total: 0, Fetched: 0, Elapsed: time.Second},
			"Stopped after 0/3 layers  0 B in 1.0s"},
	}
	for _, tc := range cases {
		if got := formatFinal(tc.s); got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

func TestWantProgress(t *testing.T) {
	cases := []struct {
		mode                   string
		quiet, check, terminal bool
		want                   bool
		wantErr                bool
	}{
		{mode: "auto", terminal: true, want: true},
		{mode: "auto", terminal: false, want: false},
		{mode: "auto", terminal: true, quiet: true, want: false},
		{mode: "auto", terminal: true, check: true, want: false},
		{mode: "always", terminal: false, want: true},
		{mode: "always", terminal: false, quiet: true, want: true},
		{mode: "always", terminal: true, check: true, want: false},
		{mode: "never", terminal: true, want: false},
		{mode: "sometimes", terminal: true, wantErr: true},
		{mode: "", terminal: true, wantErr: true},
	}
	for _, tc := range cases {
		got, err := wantProgress(tc.mode, tc.quiet, tc.check, tc.terminal)
		if tc.wantErr {
			var ue usageError
			if !errors.As(err, &ue) {
				t.Errorf("wantProgress(%q): error %v, want a usage error", tc.mode, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("wantProgress(%q, quiet=%v, check=%v, terminal=%v) = %v, %v; want %v",
				tc.mode, tc.quiet, tc.check, tc.terminal, got, err, tc.want)
		}
	}
}

// fakeClock is a clock the test moves forward.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// signalWriter is a buffer that tells the test of every write, so that it
// can wait for a redraw.
type signalWriter struct {
	buf   bytes.Buffer
	wrote chan struct{}
}

func newSignalWriter() *signalWriter { return &signalWriter{wrote: make(chan struct{}, 100)} }

func (w *signalWriter) Write(b []byte) (int, error) {
	n, err := w.buf.Write(b)
	w.wrote <- struct{}{}
	return n, err
}

// testProgress returns a progress line on w driven by a fake clock and by
// ticks the test sends.
func testProgress(w io.Writer) (*pullProgress, *fakeClock, chan time.Time) {
	clock := &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
	tick := make(chan time.Time)
	p := newPullProgress(w)
	p.now = clock.now
	p.newTick = func() (<-chan time.Time, func()) { return tick, func() {} }
	return p, clock, tick
}

// fetchFrom calls Fetched and LayerDone from several goroutines at once:
// each of them reads perLayer bytes in 1000-byte pieces and then finishes one
// layer.
func fetchFrom(p *pullProgress, goroutines int, perLayer int64) {
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for left := perLayer; left > 0; left -= 1000 {
				p.Fetched(min(left, 1000))
			}
			p.LayerDone()
		}()
	}
	wg.Wait()
}

// TestPullProgressConcurrent drives a progress line from several goroutines
// and checks each redraw and the final line: one redraw at Begin and one per
// tick (none for the thousands of Fetched calls), the rate over the sliding
// window, bytes clamped when a layer is read again, and one newline at the
// very end.
func TestPullProgressConcurrent(t *testing.T) {
	w := newSignalWriter()
	p, clock, tick := testProgress(w)
	redraw := func(d time.Duration) {
		clock.advance(d)
		tick <- clock.now()
		<-w.wrote // the redraw has been written
	}
	p.Begin(8, 8_000_000)
	<-w.wrote

	fetchFrom(p, 4, 1_000_000)
	redraw(2 * time.Second)

	// The other four layers, each read one and a half times (as a derived
	// layer may be): 6 MB more, 10 MB read for 8 MB of layers.
	fetchFrom(p, 4, 1_500_000)
	redraw(2 * time.Second)

	// Nothing read for 6 s: the window (5 s) no longer holds any bytes.
	redraw(6 * time.Second)

	p.Stop()
	p.Stop() // a second Stop prints nothing more

	out := w.buf.String()
	if strings.Count(out, "\n") != 1 || !strings.HasSuffix(out, "\x1b[K\n") {
		t.Fatalf("want exactly one newline, at the end after clear-to-end-of-line: %q", out)
	}
	want := []string{
		"Fetching 0/8 layers  0 B / 8.0 MB",
		"Fetching 4/8 layers  4.0 MB / 8.0 MB  2.0 MB/s  ETA 2s",
		"Fetching 8/8 layers  8.0 MB / 8.0 MB  2.5 MB/s  ETA 0s",
		"Fetching 8/8 layers  8.0 MB / 8.0 MB  0 B/s",
		"Fetched 8 layers  8.0 MB in 10s (800.0 kB/s)",
	}
	got := strings.Split(strings.TrimSuffix(out, "\n"), "\r")
	if got[0] != "" {
		t.Errorf("output does not start with a carriage return: %q", out)
	}
	got = got[1:]
	if len(got) != len(want) {
		t.Fatalf("got %d lines, want %d: %q", len(got), len(want), out)
	}
	for i := range want {
		if got[i] != want[i]+"\x1b[K" {
			t.Errorf("line %d: got %q, want %q", i, got[i], want[i]+"\x1b[K")
		}
	}
}

// TestPullProgressSilent checks that nothing is printed when there is
// nothing to fetch or Begin never came.
func TestPullProgressSilent(t *testing.T) {
	cases := []struct {
		name  string
		drive func(p *pullProgress)
	}{
		{"Begin with no layers", func(p *pullProgress) { p.Begin(0, 0) }},
		{"no Begin (already stored, or an error before fetching)", func(p *pullProgress) {}},
		{"Begin after Stop", func(p *pullProgress) { p.Stop(); p.Begin(3, 100) }},
	}
	for _, tc := range cases {
		var buf bytes.Buffer
		p, _, _ := testProgress(&buf)
		tc.drive(p)
		p.Stop()
		if buf.Len() != 0 {
			t.Errorf("%s: printed %q", tc.name, buf.String())
		}
	}
}

// TestPullProgressStoppedEarly checks the final line of a pull that failed
// half way.
func TestPullProgressStoppedEarly(t *testing.T) {
	var buf bytes.Buffer
	p, clock, _ := testProgress(&buf)
	p.Begin(3, 3000)
	p.Fetched(1000)
	p.LayerDone()
	p.Fetched(400)
	clock.advance(1200 * time.Millisecond)
	p.Stop()
	want := "\rStopped after 1/3 layers  1.4 kB / 3.0 kB in 1.2s\x1b[K\n"
	if out := buf.String(); !strings.HasSuffix(out, want) {
		t.Errorf("got %q, want it to end with %q", out, want)
	}
}

// testImage encapsulates a small commit into an oci: layout and returns its
// reference.
func testImage(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	files := map[string]string{
		"usr/bin/tool":        "#!/bin/sh\necho tool\n",
		"usr/lib/libfoo.so.1": strings.Repeat("\x7fELF foo ", 5000),
		"usr/etc/os-release":  "ID=test\n",
	}
	for name, content := range files {
		p := filepath.Join(src, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r, err := ostree.Init(filepath.Join(dir, "build"), ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	commit, err := r.CommitDir(src, ostree.CommitOptions{Branch: "os/main", Timestamp: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		t.Fatal(err)
	}
	ref := "oci:" + filepath.Join(dir, "oci") + ":v1"
	dest, err := oci.ParseRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w, err := oci.NewWriter(ctx, dest)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := encap.Encapsulate(ctx, r, commit, w, encap.Options{}); err != nil {
		t.Fatal(err)
	}
	return ref
}

// TestImagePullProgress runs `ocitree image pull` in-process, stderr being a
// buffer (not a terminal), and checks when the progress line is drawn and
// that it is finished before the status line.
func TestImagePullProgress(t *testing.T) {
	img := testImage(t)
	cases := []struct {
		name     string
		flags    []string
		wantBar  bool
		wantCode string // "" for success, else "usage"
	}{
		{"auto, not a terminal", nil, false, ""},
		{"always", []string{"--progress=always"}, true, ""},
		{"always, quiet", []string{"--progress=always", "--quiet"}, true, ""},
		{"never", []string{"--progress=never"}, false, ""},
		{"always, check", []string{"--progress=always", "--check"}, false, ""},
		{"bad value", []string{"--progress=loud"}, false, "usage"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			repo := filepath.Join(t.TempDir(), "repo")
			r, err := ostree.Init(repo, ostree.ModeArchive)
			if err != nil {
				t.Fatal(err)
			}
			r.Close()
			var stdout, stderr bytes.Buffer
			root := newRootCmd()
			root.SetOut(&stdout)
			root.SetErr(&stderr)
			root.SetArgs(append([]string{"image", "pull", "--repo", repo, img}, tc.flags...))
			err = root.Execute()
			if tc.wantCode == "usage" {
				var ue usageError
				if !errors.As(err, &ue) || !strings.Contains(err.Error(), "loud") {
					t.Fatalf("error %v, want a usage error naming the value", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("pull: %v\nstderr: %q", err, stderr.String())
			}
			if strings.TrimSpace(stdout.String()) == "" {
				t.Errorf("nothing on stdout")
			}
			errOut := stderr.String()
			hasBar := strings.Contains(errOut, "\r")
			if hasBar != tc.wantBar {
				t.Fatalf("progress drawn: %v, want %v; stderr %q", hasBar, tc.wantBar, errOut)
			}
			if !tc.wantBar {
				if strings.Contains(errOut, "Fetch") {
					t.Errorf("progress text without the bar: %q", errOut)
				}
				return
			}
			_, last, _ := strings.Cut(errOut[strings.LastIndex(errOut, "\r"):], "\r")
			final, rest, ok := strings.Cut(last, "\n")
			if !ok || !strings.HasPrefix(final, "Fetched ") || !strings.HasSuffix(final, "\x1b[K") {
				t.Errorf("final line %q is not a finished totals line; stderr %q", final, errOut)
			}
			if quiet := len(tc.flags) > 1; quiet && rest != "" {
				t.Errorf("--quiet printed %q after the progress line", rest)
			} else if !quiet && !strings.HasPrefix(rest, "layers already present: ") {
				t.Errorf("the status line does not follow the progress line on a line of its own: %q", rest)
			}
		})
	}
}
