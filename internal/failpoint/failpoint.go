// Package failpoint lets a test stop a real ocitree process at a named
// point of a write path, to prove what a crash there leaves behind.
//
// Points are declared once, as package variables of the package that owns
// the step:
//
//	var fpSynced = failpoint.New("txn-synced", "objects staged and synced, none renamed into objects/")
//
// and checked where the step is done:
//
//	if err := fpSynced.Hit(); err != nil {
//		return err
//	}
//
// A process enables points from the OCITREE_FAILPOINTS environment variable,
// parsed once at start (Setup, called by main): "name=action[,name=action]",
// where action is
//
//	kill       the process sends itself SIGKILL
//	exit(N)    the process exits with status N (0-255)
//	sleep(MS)  the call sleeps MS milliseconds, then goes on
//	error      the call returns an error wrapping ErrInjected
//	stop       the process sends itself SIGSTOP and goes on once continued
//	           (SIGCONT): a handshake with the test that started it
//
// An unknown point name or action is an error, so that a typo cannot make a
// crash test pass without reaching its point. With nothing enabled, Hit is
// one atomic load and a branch.
package failpoint

import (
	"errors"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Env is the environment variable read by the ocitree command.
const Env = "OCITREE_FAILPOINTS"

// ListSpec is the value of Env that makes ocitree print every point's name
// and exit.
const ListSpec = "list"

// ErrInjected is wrapped by the error an "error" action returns.
var ErrInjected = errors.New("injected failure")

// Point is one named failpoint. Its zero value is not usable; use New.
type Point struct {
	name string
	desc string
	on   atomic.Bool // act is set; the only thing Hit reads when off
	act  atomic.Pointer[action]
}

type kind int

const (
	actKill kind = iota
	actExit
	actSleep
	actError
	actStop
	actFunc
)

type action struct {
	kind kind
	n    int          // exit status or milliseconds
	fn   func() error // actFunc (in-process tests)
}

var (
	mu       sync.Mutex
	registry = map[string]*Point{}
)

var validName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// New declares the point name (lower-case words joined by '-') with a
// one-line description of the step it stands for. It panics when the name
// is malformed or already declared: points are package variables, so this
// happens at program start.
func New(name, desc string) *Point {
	if !validName.MatchString(name) {
		panic(fmt.Sprintf("failpoint: malformed name %q", name))
	}
	mu.Lock()
	defer mu.Unlock()
	if _, dup := registry[name]; dup {
		panic(fmt.Sprintf("failpoint: %q declared twice", name))
	}
	p := &Point{name: name, desc: desc}
	registry[name] = p
	return p
}

// Name returns the point's name.
func (p *Point) Name() string { return p.name }

// Description returns the step the point stands for.
func (p *Point) Description() string { return p.desc }

// Hit performs the point's action, if it has one: it does not return for
// kill and exit, and returns an error wrapping ErrInjected for error.
// Without an action it returns nil at the cost of one atomic load.
func (p *Point) Hit() error {
	if !p.on.Load() {
		return nil
	}
	return p.fire()
}

// fire performs the action (outside Hit, so that Hit stays inlinable).
func (p *Point) fire() error {
	a := p.act.Load()
	if a == nil {
		return nil
	}
	switch a.kind {
	case actKill:
		syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // SIGKILL is on its way; never return
	case actExit:
		os.Exit(a.n)
	case actSleep:
		time.Sleep(time.Duration(a.n) * time.Millisecond)
	case actError:
		return fmt.Errorf("failpoint %s: %w", p.name, ErrInjected)
	case actStop:
		if err := syscall.Kill(os.Getpid(), syscall.SIGSTOP); err != nil {
			return fmt.Errorf("failpoint %s: stopping: %w", p.name, err)
		}
	case actFunc:
		return a.fn()
	}
	return nil
}

// Points returns every declared point, sorted by name.
func Points() []*Point {
	mu.Lock()
	defer mu.Unlock()
	out := make([]*Point, 0, len(registry))
	for _, p := range registry {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// Names returns the names of every declared point, sorted.
func Names() []string {
	ps := Points()
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.name
	}
	return out
}

// Setup enables the points of spec ("name=action[,name=action]", see the
// package documentation) and disables every other one. It checks the whole
// spec first: on error nothing changes. An empty spec disables all points.
func Setup(spec string) error {
	acts, err := parse(spec)
	if err != nil {
		return err
	}
	mu.Lock()
	defer mu.Unlock()
	for name := range acts {
		if _, ok := registry[name]; !ok {
			return fmt.Errorf("%s: unknown failpoint %q (%s=%s prints the known ones)", Env, name, Env, ListSpec)
		}
	}
	for name, p := range registry {
		p.set(acts[name]) // nil for points not named
	}
	return nil
}

// EnableFunc makes the point call fn (in the calling process) each time it
// is hit and return fn's error; it is for in-process tests. The returned
// function disables the point again.
func (p *Point) EnableFunc(fn func() error) (disable func()) {
	p.set(&action{kind: actFunc, fn: fn})
	return func() { p.set(nil) }
}

func (p *Point) set(a *action) {
	p.act.Store(a)
	p.on.Store(a != nil)
}

// parse splits a spec into point names and actions, without looking the
// names up.
func parse(spec string) (map[string]*action, error) {
	out := map[string]*action{}
	if strings.TrimSpace(spec) == "" {
		return out, nil
	}
	for _, item := range strings.Split(spec, ",") {
		item = strings.TrimSpace(item)
		name, act, ok := strings.Cut(item, "=")
		name, act = strings.TrimSpace(name), strings.TrimSpace(act)
		if !ok || name == "" || act == "" {
			return nil, fmt.Errorf("%s: %q is not name=action", Env, item)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("%s: failpoint %q named twice", Env, name)
		}
		a, err := parseAction(act)
		if err != nil {
			return nil, fmt.Errorf("%s: failpoint %q: %w", Env, name, err)
		}
		out[name] = a
	}
	return out, nil
}

func parseAction(s string) (*action, error) {
	switch s {
	case "kill":
		return &action{kind: actKill}, nil
	case "error":
		return &action{kind: actError}, nil
	case "stop":
		return &action{kind: actStop}, nil
	}
	word, rest, ok := strings.Cut(s, "(")
	if !ok || !strings.HasSuffix(rest, ")") {
		return nil, fmt.Errorf("unknown action %q (want kill, exit(N), sleep(MS), error or stop)", s)
	}
	arg := strings.TrimSuffix(rest, ")")
	n, err := strconv.Atoi(arg)
	switch word {
	case "exit":
		if err != nil || n < 0 || n > 255 {
			return nil, fmt.Errorf("exit(%s): want a status from 0 to 255", arg)
		}
		return &action{kind: actExit, n: n}, nil
	case "sleep":
		if err != nil || n < 0 {
			return nil, fmt.Errorf("sleep(%s): want milliseconds, 0 or more", arg)
		}
		return &action{kind: actSleep, n: n}, nil
	}
	return nil, fmt.Errorf("unknown action %q (want kill, exit(N), sleep(MS), error or stop)", s)
}
