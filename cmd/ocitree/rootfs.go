package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/ocitree/ocitree/contrib"
	"github.com/ocitree/ocitree/deploy/rootfs"
	"github.com/spf13/cobra"
)

func newRootfsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "rootfs", Short: "Prepare plain root filesystems for deployment"}
	requireSubcommand(cmd)
	cmd.AddCommand(newRootfsPrepareCmd())
	return cmd
}

func newRootfsPrepareCmd() *cobra.Command {
	var check, noUnits bool
	cmd := &cobra.Command{
		Use:   "prepare [--check] [--no-units] DIR",
		Short: "Lay a plain root filesystem out the way ostree hosts deploy it",
		Long: `Lay the root filesystem DIR (debootstrap, podman export of a Containerfile
build) out for deployment, as ostree-based distributions ship theirs:

  - the kernel and initramfs (boot/vmlinuz-$KVER, boot/initrd.img-$KVER or
    boot/initramfs-$KVER.img) moved to usr/lib/modules/$KVER/{vmlinuz,initramfs.img}
  - etc moved to usr/etc
  - var/lib/dpkg moved to usr/share/dpkg/database, var/lib/dpkg a link to it
  - the rest of /var turned into usr/lib/tmpfiles.d/ocitree-var.conf lines:
    d for directories, L for links, f for empty files; other file content
    is moved to usr/share/factory/var/... with a C line, except under
    var/cache, var/log and var/tmp, whose files are dropped
  - home, root, srv, opt, mnt as links to var/home, var/roothome, var/srv,
    var/opt, var/mnt (their content converted like /var's), media -> run/media
  - sysroot/ and ostree -> sysroot/ostree; empty dev, proc, sys, run, tmp
  - device nodes, sockets and fifos dropped, with a count
  - the ocitree systemd units (ocitree-finalize.service, enabled;
    ocitree-update.service and its timer, enabled) installed into
    usr/lib/systemd/system when the tree has usr/lib/systemd (--no-units:
    not)

Everything is checked before anything is moved: a tree with two kernels,
a kernel without initramfs, or both etc and usr/etc populated is refused
unchanged. --check changes nothing and lists what prepare would change;
it exits 1 when there is anything.`,
		Example: `  podman export $(podman create localhost/myos) | tar -x -C rootfs
  ocitree rootfs prepare rootfs
  ocitree repo commit --repo repo --branch os --bootable rootfs`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			out := cmd.OutOrStdout()
			if check {
				rep, err := rootfs.Check(args[0])
				if rep != nil {
					for _, p := range rep.Problems {
						fmt.Fprintln(out, p)
					}
				}
				var re *rootfs.RefusedError
				if errors.As(err, &re) {
					for _, r := range re.Reasons {
						fmt.Fprintln(out, "cannot prepare:", r)
					}
					return exitCodeError{1}
				}
				if err != nil {
					return err
				}
				if len(rep.Problems) > 0 {
					return exitCodeError{1}
				}
				fmt.Fprintln(cmd.ErrOrStderr(), "prepared: nothing to change")
				return nil
			}
			var opts rootfs.Options
			if fi, err := os.Lstat(args[0] + "/usr/lib/systemd"); !noUnits && err == nil && fi.IsDir() {
				opts.Units, opts.Links = contrib.Units(), contrib.Enabled()
			}
			rep, err := rootfs.Prepare(args[0], opts)
			if err != nil {
				return err
			}
			for _, m := range rep.Moves {
				fmt.Fprintln(out, "moved:", m)
			}
			for _, l := range rep.Tmpfiles {
				fmt.Fprintln(out, "tmpfiles:", l)
			}
			for _, f := range rep.Factory {
				fmt.Fprintln(out, "factory:", f)
			}
			fmt.Fprintf(out, "kernel %s; %d tmpfiles.d lines, %d files kept in %s, %d files dropped, %d device nodes and %d sockets/fifos dropped\n",
				rep.Kernel, len(rep.Tmpfiles), len(rep.Factory), rootfs.FactoryDir, len(rep.Dropped), rep.Devices, rep.Special)
			return nil
		},
	}
	cmd.Flags().BoolVar(&check, "check", false, "change nothing; list what prepare would change (exit 1 when anything)")
	cmd.Flags().BoolVar(&noUnits, "no-units", false, "do not install the ocitree systemd units")
	return cmd
}
