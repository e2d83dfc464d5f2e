package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ocitree/ocitree/encap/imgstore"
	"golang.org/x/term"
)

// The values of image pull's --progress flag.
const (
	progressAuto   = "auto"   // on a terminal, unless --quiet
	progressAlways = "always" // also when stderr is not a terminal, and with --quiet
	progressNever  = "never"
)

// Defaults of the progress line.
const (
	progressInterval   = 200 * time.Millisecond // at most 5 redraws a second
	progressRateWindow = 5 * time.Second        // the rate is averaged over this long
	progressMinSpan    = time.Second            // no rate (and no ETA) before this much has been seen
)

// wantProgress decides whether image pull draws its progress line: mode is
// the --progress value, terminal whether stderr is a terminal. --check
// fetches no layers, so there is never anything to show.
func wantProgress(mode string, quiet, check, terminal bool) (bool, error) {
	switch mode {
	case progressAuto:
		return terminal && !quiet && !check, nil
	case progressAlways:
		return !check, nil
	case progressNever:
		return false, nil
	}
	return false, usagef("--progress %q: want %s, %s or %s", mode, progressAuto, progressAlways, progressNever)
}

// isTerminal reports whether w is a file open on a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// progressState is what one progress line shows.
type progressState struct {
	Layers, LayersDone int64
	Total, Fetched     int64 // compressed bytes; Total 0 when unknown
	// Rate is the recent download rate in bytes a second; negative while
	// it is not known yet.
	Rate    float64
	Elapsed time.Duration // since Begin; used by the final line
}

// shown returns the layers and bytes to show: never more than the totals (a
// derived layer can be read twice).
func (s progressState) shown() (layers, bytes int64) {
	layers, bytes = s.LayersDone, s.Fetched
	if layers > s.Layers {
		layers = s.Layers
	}
	if s.Total > 0 && bytes > s.Total {
		bytes = s.Total
	}
	return layers, bytes
}

// bytesPart is "fetched / total", or only "fetched" when the total is not
// known.
func (s progressState) bytesPart(fetched int64) string {
	if s.Total <= 0 {
		return formatBytes(fetched)
	}
	return formatBytes(fetched) + " / " + formatBytes(s.Total)
}

// formatProgress renders the line drawn while layers are fetched, e.g.
// "Fetching 12/64 layers  312.4 MB / 851.0 MB  87.1 MB/s  ETA 6s".
func formatProgress(s progressState) string {
	layers, fetched := s.shown()
	parts := []string{fmt.Sprintf("Fetching %d/%d layers", layers, s.Layers), s.bytesPart(fetched)}
	if s.Rate >= 0 {
		parts = append(parts, formatBytes(int64(s.Rate))+"/s")
		if s.Rate > 0 && s.Total > 0 {
			eta := time.Duration(float64(s.Total-fetched) / s.Rate * float64(time.Second))
			parts = append(parts, "ETA "+formatDuration(eta))
		}
	}
	return strings.Join(parts, "  ")
}

// formatFinal renders the line left behind when the pull ends: the totals,
// the time taken and the average rate, or how far it got when it stopped
// early.
func formatFinal(s progressState) string {
	layers, fetched := s.shown()
	if layers < s.Layers {
		return fmt.Sprintf("Stopped after %d/%d layers  %s in %s", layers, s.Layers, s.bytesPart(fetched), formatElapsed(s.Elapsed))
	}
	noun := "layers"
	if s.Layers == 1 {
		noun = "layer"
	}
	line := fmt.Sprintf("Fetched %d %s  %s in %s", s.Layers, noun, formatBytes(fetched), formatElapsed(s.Elapsed))
	if s.Elapsed > 0 {
		line += fmt.Sprintf(" (%s/s)", formatBytes(int64(float64(fetched)/s.Elapsed.Seconds())))
	}
	return line
}

// formatBytes renders n bytes in decimal units, as podman and skopeo do:
// "999 B", "1.0 kB", "312.4 MB".
func formatBytes(n int64) string {
	if n < 1000 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"kB", "MB", "GB", "TB", "PB", "EB"}
	v := float64(n) / 1000
	i := 0
	// 999.95 would print as 1000.0 in the smaller unit.
	for v >= 999.95 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return fmt.Sprintf("%.1f %s", v, units[i])
}

// formatDuration renders an ETA in whole seconds: "6s", "4m05s", "2h03m".
func formatDuration(d time.Duration) string {
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%02ds", s/60, s%60)
	default:
		return fmt.Sprintf("%dh%02dm", s/3600, s%3600/60)
	}
}

// formatElapsed renders the time a pull took, with a tenth of a second
// below ten seconds: "4.5s", "42s", "1m30s".
func formatElapsed(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return formatDuration(d)
}

// rateSample is the byte count seen at one time.
type rateSample struct {
	at time.Time
	n  int64
}

// pullProgress is an imgstore.PullProgress that draws one progress line,
// redrawn in place ("\r" and clear to end of line) a few times a second by a
// goroutine of its own, and leaves a final line with the totals when
// stopped. Fetched and LayerDone only count, so they are cheap and may be
// called from any goroutine.
type pullProgress struct {
	w        io.Writer
	now      func() time.Time
	newTick  func() (<-chan time.Time, func()) // the redraw ticks and how to stop them
	window   time.Duration
	minSpan  time.Duration
	layers   atomic.Int64
	total    atomic.Int64
	done     atomic.Int64 // layers
	fetched  atomic.Int64 // bytes
	mu       sync.Mutex   // guards the fields below
	started  bool
	stopped  bool
	start    time.Time
	quit     chan struct{} // closed by Stop
	finished chan struct{} // closed when the drawing goroutine returns
	samples  []rateSample  // Begin's, then the drawing goroutine's only
}

var _ imgstore.PullProgress = (*pullProgress)(nil)

// newPullProgress returns a progress line drawn on w with the real clock.
func newPullProgress(w io.Writer) *pullProgress {
	return &pullProgress{
		w:   w,
		now: time.Now,
		newTick: func() (<-chan time.Time, func()) {
			t := time.NewTicker(progressInterval)
			return t.C, t.Stop
		},
		window:  progressRateWindow,
		minSpan: progressMinSpan,
	}
}

// Begin starts drawing, unless there is nothing to fetch.
func (p *pullProgress) Begin(layers int, bytes int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.started || p.stopped || layers <= 0 {
		return
	}
	p.started = true
	p.layers.Store(int64(layers))
	p.total.Store(bytes)
	p.start = p.now()
	p.samples = nil
	p.quit = make(chan struct{})
	p.finished = make(chan struct{})
	p.draw(p.start) // at once, then from run
	tick, stopTick := p.newTick()
	go p.run(tick, stopTick)
}

// Fetched counts n more bytes read.
func (p *pullProgress) Fetched(n int64) { p.fetched.Add(n) }

// LayerDone counts one more layer imported.
func (p *pullProgress) LayerDone() { p.done.Add(1) }

// Stop ends the drawing and finishes the line with the totals and a
// newline, so whatever is printed next starts on a line of its own. It is
// called once the pull has returned, successfully or not; it prints nothing
// when Begin was not called or had nothing to fetch, and nothing more when
// called again.
func (p *pullProgress) Stop() {
	p.mu.Lock()
	if !p.started || p.stopped {
		p.stopped = true
		p.mu.Unlock()
		return
	}
	p.stopped = true
	close(p.quit)
	p.mu.Unlock()
	<-p.finished
	s := p.state(-1)
	s.Elapsed = p.now().Sub(p.start)
	fmt.Fprintf(p.w, "\r%s\x1b[K\n", formatFinal(s))
}

// run redraws on every tick until Stop.
func (p *pullProgress) run(tick <-chan time.Time, stopTick func()) {
	defer close(p.finished)
	defer stopTick()
	for {
		select {
		case <-p.quit:
			return
		case <-tick:
			p.draw(p.now())
		}
	}
}

// draw records a rate sample taken at now and redraws the line.
func (p *pullProgress) draw(now time.Time) {
	n := p.fetched.Load()
	p.samples = append(p.samples, rateSample{at: now, n: n})
	// Keep one sample at or before the window's start, so the rate spans
	// the whole window.
	for len(p.samples) > 2 && !p.samples[1].at.After(now.Add(-p.window)) {
		p.samples = p.samples[1:]
	}
	rate := -1.0
	if first := p.samples[0]; now.Sub(first.at) >= p.minSpan {
		rate = float64(n-first.n) / now.Sub(first.at).Seconds()
	}
	s := p.state(rate)
	s.Fetched = n
	fmt.Fprintf(p.w, "\r%s\x1b[K", formatProgress(s))
}

// state reads the counters.
func (p *pullProgress) state(rate float64) progressState {
	return progressState{
		Layers:     p.layers.Load(),
		LayersDone: p.done.Load(),
		Total:      p.total.Load(),
		Fetched:    p.fetched.Load(),
		Rate:       rate,
	}
}
