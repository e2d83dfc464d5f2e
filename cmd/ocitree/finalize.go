package main

import (
	"github.com/ocitree/ocitree/deploy"
	"github.com/spf13/cobra"
)

// newFinalizeCmd is the hidden command ocitree-finalize.service runs at
// shutdown.
func newFinalizeCmd() *cobra.Command {
	var sysroot, booted string
	cmd := &cobra.Command{
		Use:   "finalize [--sysroot DIR]",
		Short: "Carry /etc changes made since the upgrade into the pending deployment (run at shutdown)",
		Long: `Carry into the pending deployment (the first in boot order, when it is
not the booted one) the /etc paths changed since upgrade or switch made it,
with the /etc merge's rules. Each change is applied on its own: one that
cannot be applied is logged and skipped, and the command still exits 0.
ocitree-finalize.service runs it at shutdown. --booted-deployment
CSUM.SERIAL (hidden, for tests) takes that deployment of a sysroot
directory as the booted one.`,
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withSysroot(sysroot, func(s *deploy.Sysroot) error {
				if booted != "" {
					if err := s.SimulateBooted(booted); err != nil {
						return err
					}
				}
				_, err := s.Finalize(cmd.ErrOrStderr())
				return err
			})
		},
	}
	sysrootFlag(cmd, &sysroot)
	cmd.Flags().StringVar(&booted, "booted-deployment", "", "take deployment CSUM.SERIAL as the booted one (tests)")
	cmd.Flags().MarkHidden("booted-deployment")
	return cmd
}
