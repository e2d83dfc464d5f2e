package main

import (
	"fmt"
	"strconv"

	"github.com/ocitree/ocitree/boot"
	"github.com/ocitree/ocitree/deploy"
	"github.com/spf13/cobra"
)

func parseIndex(s string) (int, error) {
	i, err := strconv.Atoi(s)
	if err != nil || i < 0 {
		return 0, usagef("INDEX %q: give the deployment's index as ocitree status shows it (0, 1, …)", s)
	}
	return i, nil
}

func newPinCmd() *cobra.Command {
	var (
		sysroot string
		unpin   bool
	)
	cmd := &cobra.Command{
		Use:   "pin [--sysroot DIR] [--unpin] INDEX",
		Short: "Keep a deployment through switch and upgrade (ostree admin pin)",
		Long: `Mark deployment INDEX as pinned ([libostree-transient] pinned=true in
its origin, as ostree admin pin does), so that switch and upgrade keep it;
--unpin removes the mark. Boot entries do not change.`,
		Example: `  ocitree pin 1
  ocitree pin --unpin --sysroot /mnt/root 1`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := parseIndex(args[0])
			if err != nil {
				return err
			}
			return withSysroot(sysroot, func(s *deploy.Sysroot) error { return s.Pin(i, !unpin) })
		},
	}
	sysrootFlag(cmd, &sysroot)
	cmd.Flags().BoolVar(&unpin, "unpin", false, "remove the pin")
	return cmd
}

func newUndeployCmd() *cobra.Command {
	var sysroot string
	cmd := &cobra.Command{
		Use:   "undeploy [--sysroot DIR] INDEX",
		Short: "Remove a deployment (ostree admin undeploy)",
		Long: `Remove deployment INDEX from the boot entries and delete it, as ostree
admin undeploy does. The booted deployment cannot be removed; a pin does not
protect a deployment from undeploy.`,
		Example: `  ocitree undeploy 1`,
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			i, err := parseIndex(args[0])
			if err != nil {
				return err
			}
			return withSysroot(sysroot, func(s *deploy.Sysroot) error { return s.Undeploy(i) })
		},
	}
	sysrootFlag(cmd, &sysroot)
	return cmd
}

func newCleanupCmd() *cobra.Command {
	var sysroot string
	cmd := &cobra.Command{
		Use:   "cleanup [--sysroot DIR]",
		Short: "Delete what no deployment uses (ostree admin cleanup, plus unused images)",
		Long: `Remove the other boot version's entries and links, deployment
directories and boot/ostree kernel directories no boot entry uses, rewrite
the deployment refs, then drop stored images no deployment runs, their layer
refs, and prune unreachable objects from ostree/repo.`,
		Example: `  ocitree cleanup --sysroot /mnt/root`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withSysroot(sysroot, func(s *deploy.Sysroot) error {
				res, removed, err := s.FullCleanup()
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "images removed: %d; objects pruned: %d (%d bytes)\n", len(removed), res.Deleted, res.Freed)
				return nil
			})
		},
	}
	sysrootFlag(cmd, &sysroot)
	return cmd
}

func newKargsCmd() *cobra.Command {
	var (
		sysroot                 string
		index                   int
		appends, deletes, repls []string
	)
	cmd := &cobra.Command{
		Use:   "kargs [--sysroot DIR] [--append K[=V]] [--delete K[=V]] [--replace K=V]",
		Short: "Show or change the kernel arguments of a deployment",
		Long: `Without options, print the kernel arguments of deployment --index (0,
the next boot, by default; ostree= left out). With --replace (every value of
K becomes V), --delete (K, or exactly K=V) and --append, change them in that
order: the boot entries are rewritten with a boot version swap, as ostree
admin instutil set-kargs does; no new deployment is made.`,
		Example: `  ocitree kargs
  ocitree kargs --append quiet --replace console=ttyS0,115200 --delete rhgb`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withSysroot(sysroot, func(s *deploy.Sysroot) error {
				opts := ""
				if len(appends)+len(deletes)+len(repls) == 0 {
					if index < 0 || index >= len(s.Deployments) {
						return usagef("--index %d: %s has %d deployments", index, s.Path, len(s.Deployments))
					}
					opts = s.Deployments[index].Options
				} else {
					var err error
					if opts, err = s.SetKargs(index, deploy.KargsEdit{Append: appends, Delete: deletes, Replace: repls}); err != nil {
						return err
					}
				}
				fmt.Fprintln(cmd.OutOrStdout(), boot.ParseKargs(opts).WithoutKey("ostree").String())
				return nil
			})
		},
	}
	sysrootFlag(cmd, &sysroot)
	f := cmd.Flags()
	f.IntVar(&index, "index", 0, "deployment to show or change")
	f.StringArrayVar(&appends, "append", nil, "append K or K=V (repeatable)")
	f.StringArrayVar(&deletes, "delete", nil, "delete K (all values) or K=V (repeatable)")
	f.StringArrayVar(&repls, "replace", nil, "set K=V, replacing every value of K (repeatable)")
	return cmd
}
