// Command ocitree ships operating systems the way containers are shipped: an
// OSTree-compatible store, OCI images of its commits, and hosts that deploy
// them. This package is the command line only; the work is in the library
// packages.
package main

import (
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"runtime/trace"
	"strings"

	"github.com/ocitree/ocitree/internal/failpoint"
	"github.com/spf13/cobra"
)

// usageError marks errors in how a command was called (exit status 2).
type usageError struct{ error }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "ocitree",
		Short:         "Ship operating systems the way containers are shipped",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newRepoCmd(), newEncapsulateCmd(), newUnencapsulateCmd(), newImageCmd())
	root.AddCommand(hostCommands()...)
	root.AddCommand(newRootfsCmd(), newFinalizeCmd())
	root.AddCommand(newRechunkCmd())
	requireSubcommand(root)
	return root
}

// requireSubcommand makes a command group fail with a usage error (exit 2)
// when called without a known subcommand, instead of printing help and
// exiting 0.
func requireSubcommand(cmd *cobra.Command) {
	cmd.Args = cobra.ArbitraryArgs
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) == 0 {
			cmd.Help()
			return usagef("%s needs a subcommand", cmd.CommandPath())
		}
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
}

// setupFailpoints reads OCITREE_FAILPOINTS once, before any command runs:
// "list" prints every failpoint's name and exits 0; anything else enables
// the named points, and a spec naming an unknown point or action stops
// the process (status 2) before it does anything.
func setupFailpoints() {
	spec, ok := os.LookupEnv(failpoint.Env)
	if !ok {
		return
	}
	if strings.TrimSpace(spec) == failpoint.ListSpec {
		for _, name := range failpoint.Names() {
			fmt.Println(name)
		}
		os.Exit(0)
	}
	if err := failpoint.Setup(spec); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(2)
	}
}

// defaultMemoryLimit is the Go runtime's soft memory limit unless GOMEMLIMIT
// says otherwise. Without one the collector lets the heap grow to twice what
// is live: a layer of 200,000 entries keeps ~120 MiB live (its tree, its
// record) and peaked at 250 MiB RSS. With the limit the collector runs more
// often near it instead; it is soft, so a larger live set is still served.
const defaultMemoryLimit = 160 << 20

func main() {
	setupFailpoints()
	if _, set := os.LookupEnv("GOMEMLIMIT"); !set {
		debug.SetMemoryLimit(defaultMemoryLimit)
	}
	if path := os.Getenv("OCITREE_CPUPROFILE"); path != "" {
		// For performance work: a CPU profile of the whole command.
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
		}
	}
	if path := os.Getenv("OCITREE_TRACE"); path != "" {
		// For performance work: an execution trace (go tool trace), to see
		// which goroutine is on the critical path.
		if f, err := os.Create(path); err == nil {
			trace.Start(f)
		}
	}
	err := newRootCmd().Execute()
	// Stopped here, not deferred: the exits below skip deferred calls.
	pprof.StopCPUProfile()
	trace.Stop()
	if err == nil {
		return
	}
	var ec exitCodeError
	if errors.As(err, &ec) {
		os.Exit(ec.code)
	}
	fmt.Fprintln(os.Stderr, "error:", err)
	var ue usageError
	if errors.As(err, &ue) || isCobraUsageError(err) {
		os.Exit(2)
	}
	os.Exit(1)
}

// isCobraUsageError recognises cobra's own argument errors.
func isCobraUsageError(err error) bool {
	msg := err.Error()
	for _, p := range []string{"unknown command", "unknown flag", "unknown shorthand flag", "accepts ", "requires at least", "requires exactly", "required flag"} {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}
