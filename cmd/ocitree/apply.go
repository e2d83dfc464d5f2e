package main

import (
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/ocitree/ocitree/deploy"
	"github.com/spf13/cobra"
)

// rebootEnv names the command --apply runs instead of systemctl reboot: a
// command line split at white space (no quoting), for tests and hosts that
// reboot another way.
const rebootEnv = "OCITREE_REBOOT_COMMAND"

// applyUpdate reboots, after the sysroot is closed, when --apply was given
// and res wrote a new deployment; otherwise it does nothing.
func applyUpdate(cmd *cobra.Command, apply bool, res *deploy.UpdateResult) error {
	if !apply || res == nil || res.Deployment == nil {
		return nil
	}
	argv := []string{"systemctl", "reboot"}
	if v := strings.Fields(os.Getenv(rebootEnv)); len(v) > 0 {
		argv = v
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "Rebooting into %s: %s\n", res.Deployment.Dir(), strings.Join(argv, " "))
	c := exec.Command(argv[0], argv[1:]...)
	c.Stdout, c.Stderr = cmd.ErrOrStderr(), cmd.ErrOrStderr()
	if err := c.Run(); err != nil {
		return fmt.Errorf("--apply: %s: %w (the new deployment is queued for the next boot)", strings.Join(argv, " "), err)
	}
	return nil
}
