package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	"github.com/ocitree/ocitree/boot"
	"github.com/ocitree/ocitree/deploy"
	"github.com/ocitree/ocitree/deploy/etcmerge"
	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"
)

// exitCodeError ends the command with a specific exit status (77: nothing
// to do, the rpm-ostree convention) after printing nothing more.
type exitCodeError struct{ code int }

func (e exitCodeError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// tlsFlag adds the hidden --tls-verify (false: skip TLS verification and
// allow plain HTTP, for test registries), as image pull has.
func tlsFlag(cmd *cobra.Command, p *bool) {
	cmd.Flags().BoolVar(p, "tls-verify", true, "verify registry TLS certificates (false also allows plain HTTP)")
	cmd.Flags().MarkHidden("tls-verify")
}

func fetchOpts(tlsVerify bool) deploy.FetchOptions {
	return deploy.FetchOptions{InsecureSkipTLSVerify: !tlsVerify}
}

func sysrootFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "sysroot", "/", "the physical root holding boot/ and ostree/ (a running system: /)")
}

func withSysroot(dir string, fn func(*deploy.Sysroot) error) error {
	s, err := deploy.Open(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	return fn(s)
}

func newInstallCmd() *cobra.Command {
	var (
		sysroot, stateroot, bootloader string
		kargs                          []string
		tlsVerify                      bool
	)
	cmd := &cobra.Command{
		Use:   "install --sysroot DIR [--stateroot NAME] [--karg K[=V]]... IMGREF",
		Short: "Create a sysroot in DIR and deploy IMGREF as its only deployment",
		Long: `Create a sysroot in DIR and deploy IMGREF as its only deployment.

DIR gets the layout of ostree admin init-fs (boot, ostree/repo as a bare
repository, ostree/deploy) and the stateroot (default "default", as
ostree admin os-init). The image is pulled into DIR/ostree/repo and checked
(one kernel under usr/lib/modules, /etc only as usr/etc, valid
usr/lib/bootc/kargs.d/*.toml) before anything is written to boot/ or
ostree/deploy/; then it is deployed with the kernel arguments of its
kargs.d files followed by --karg, and the boot entries are written
(BLS, boot/loader swap). Nothing is installed on a disk: partitioning,
root= and the bootloader binary are the caller's. --bootloader grub2 also
writes boot/loader.N/grub.cfg as libostree's ostree-grub-generator does (for
GRUB without BLS support) and links boot/grub2/grub.cfg to
../loader/grub.cfg; later commands see that link and keep grub.cfg
current.`,
		Example: `  ocitree install --sysroot /mnt/root --karg root=LABEL=root --karg rw ostree-unverified-registry:quay.io/example/os:1.0
  ocitree install --sysroot /tmp/sysroot oci:/srv/images/os:latest`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if sysroot == "" || sysroot == "/" {
				return usagef("install needs --sysroot DIR (a directory to create the sysroot in, not /)")
			}
			bl := boot.BootloaderNone
			switch bootloader {
			case "none":
			case "grub2":
				bl = boot.BootloaderGrub2
			default:
				return usagef("--bootloader %q: use none (BLS entries only) or grub2", bootloader)
			}
			d, err := deploy.Install(context.Background(), sysroot, args[0], deploy.InstallOptions{Stateroot: stateroot, Kargs: kargs, Bootloader: bl, Log: cmd.ErrOrStderr(), Fetch: fetchOpts(tlsVerify)})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "installed %s as %s\n", args[0], d.Dir())
			return nil
		},
	}
	sysrootFlag(cmd, &sysroot)
	f := cmd.Flags()
	f.StringVar(&stateroot, "stateroot", deploy.DefaultStateroot, "name of the stateroot (ostree/deploy/NAME)")
	f.StringArrayVar(&kargs, "karg", nil, "kernel argument K or K=V to add (repeatable)")
	f.StringVar(&bootloader, "bootloader", "none", "bootloader configuration: none (BLS entries only) or grub2 (also grub.cfg as ostree-grub-generator writes it)")
	tlsFlag(cmd, &tlsVerify)
	return cmd
}

func newStatusCmd() *cobra.Command {
	var (
		sysroot, format string
		booted          bool
	)
	cmd := &cobra.Command{
		Use:   "status [--sysroot DIR] [--format human|json|yaml] [--booted]",
		Short: "Show the deployments of a host as a BootcHost document",
		Long: `Show the deployments of a host.

--format json and yaml print bootc's BootcHost document
(apiVersion org.containers.bootc/v1) with one more key, status.deployments:
every deployment in boot order with index, stateroot, checksum,
deploySerial, pinned, booted and image (reference, digest, version,
timestamp). On a sysroot that is not the running system, booted, staged
and rollback are null and deployments[0] is the entry that boots next.
--booted nulls staged and rollback, as bootc does.`,
		Example: `  ocitree status
  ocitree status --sysroot /mnt/root --format json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch format {
			case "human", "humanreadable", "json", "yaml":
			default:
				return usagef("--format %q: use human, json or yaml", format)
			}
			return withSysroot(sysroot, func(s *deploy.Sysroot) error {
				h, err := s.Status(booted)
				if err != nil {
					return err
				}
				out := cmd.OutOrStdout()
				switch format {
				case "json":
					enc := json.NewEncoder(out)
					enc.SetIndent("", "  ")
					return enc.Encode(h)
				case "yaml":
					enc := yaml.NewEncoder(out)
					enc.SetIndent(2)
					if err := enc.Encode(h); err != nil {
						return err
					}
					return enc.Close()
				}
				printHumanStatus(out, s, h)
				return nil
			})
		},
	}
	sysrootFlag(cmd, &sysroot)
	cmd.Flags().StringVar(&format, "format", "human", "output format: human, json or yaml")
	cmd.Flags().BoolVar(&booted, "booted", false, "only the booted deployment (staged and rollback null)")
	return cmd
}

func printHumanStatus(w io.Writer, s *deploy.Sysroot, h *deploy.Host) {
	if len(h.Status.Deployments) == 0 {
		fmt.Fprintf(w, "No deployments in %s.\n", s.Path)
		return
	}
	if s.Booted == nil {
		fmt.Fprintf(w, "Sysroot %s (not the running system); deployments in boot order:\n", s.Path)
	}
	for _, d := range h.Status.Deployments {
		mark := " "
		if d.Booted {
			mark = "●"
		}
		fmt.Fprintf(w, "%s %d: %s %s.%d\n", mark, d.Index, d.Stateroot, d.Checksum, d.DeploySerial)
		if d.Image != nil {
			fmt.Fprintf(w, "      Image: %s\n", d.Image.Reference)
			if d.Image.Version != nil {
				fmt.Fprintf(w, "    Version: %s\n", *d.Image.Version)
			}
			fmt.Fprintf(w, "     Digest: %s\n", d.Image.Digest)
			if d.Image.Timestamp != nil {
				fmt.Fprintf(w, "    Created: %s\n", *d.Image.Timestamp)
			}
		}
		if d.Pinned {
			fmt.Fprintf(w, "     Pinned: yes\n")
		}
	}
}

func newSwitchCmd() *cobra.Command {
	var (
		sysroot                             string
		retain, apply, tlsVerify, sigpolicy bool
	)
	cmd := &cobra.Command{
		Use:     "switch [--sysroot DIR] [--retain] IMGREF",
		Aliases: []string{"rebase"},
		Short:   "Deploy another image as the next boot, carrying /etc changes and kernel arguments",
		Long: `Pull IMGREF and deploy it as the default deployment of the next boot.

The merge deployment (the booted one, else deployment 0) gives the /etc
changes (three-way merge against its usr/etc) and the kernel arguments
(changes of usr/lib/bootc/kargs.d between the images are applied). The
origin then tracks IMGREF, so upgrade follows it. Retention is that of
ostree admin deploy: the new deployment, the booted or merge deployment,
pinned ones and other stateroots; --retain keeps every deployment. Images
no deployment uses are removed from the store and unreachable objects
pruned. --apply then reboots (systemctl reboot, or the command line in
$OCITREE_REBOOT_COMMAND), only when a new deployment was written.`,
		Example: `  ocitree switch ostree-unverified-registry:quay.io/example/os:2.0
  ocitree rebase --sysroot /mnt/root oci:/srv/images/os:latest`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var res *deploy.UpdateResult
			err := withSysroot(sysroot, func(s *deploy.Sysroot) error {
				var err error
				res, err = s.Switch(context.Background(), args[0], deploy.UpdateOptions{Retain: retain, Log: cmd.ErrOrStderr(),
					Fetch: deploy.FetchOptions{InsecureSkipTLSVerify: !tlsVerify, EnforceSigPolicy: sigpolicy}})
				if err != nil {
					return err
				}
				reportUpdate(cmd, res)
				return nil
			})
			if err != nil {
				return err
			}
			return applyUpdate(cmd, apply, res)
		},
	}
	sysrootFlag(cmd, &sysroot)
	cmd.Flags().BoolVar(&retain, "retain", false, "keep every current deployment")
	cmd.Flags().BoolVar(&apply, "apply", false, "reboot (systemctl reboot, or $"+rebootEnv+") when a new deployment was written")
	cmd.Flags().BoolVar(&sigpolicy, "enforce-container-sigpolicy", false, "verify the image with containers-policy.json (the origin then records ostree-image-signed:)")
	tlsFlag(cmd, &tlsVerify)
	return cmd
}

func reportUpdate(cmd *cobra.Command, res *deploy.UpdateResult) {
	w := cmd.ErrOrStderr()
	if res.Deployment == nil {
		fmt.Fprintf(w, "No changes in %s (already deployed as %s)\n", res.Image.Origin, res.Image.Commit)
		return
	}
	fmt.Fprintf(w, "Copying /etc changes: %d\n", len(res.EtcChanges))
	etcmerge.Format(w, res.EtcChanges)
	fmt.Fprintf(w, "Queued for next boot: %s (%s)\n", res.Image.Origin, res.Deployment.Dir())
	fmt.Fprintln(cmd.OutOrStdout(), res.Deployment.Checksum)
}

func newUpgradeCmd() *cobra.Command {
	var (
		sysroot, format           string
		check, apply, unchanged77 bool
		tlsVerify                 bool
		downloadOnly              bool
		fromDownloaded            bool
	)
	cmd := &cobra.Command{
		Use:   "upgrade [--sysroot DIR] [--check | --download-only | --from-downloaded]",
		Short: "Pull the tracked image and deploy it when it changed",
		Long: `Pull the image the merge deployment's origin tracks
(container-image-reference) and, when its merge commit differs from the
deployed one, deploy it as switch does. --check fetches only the manifest
and config and prints the new version and digest, the layers and bytes the
store lacks, and the packages whose layers change (from the
ostree.components annotations of the deployed and the new manifest:
"changed: libssl3; added: foo; removed: bar"); --format json gives the same.
Nothing in the sysroot changes except the image's cached-update metadata
(shown as cachedUpdate by status). With
--unchanged-exit-77 a run with nothing to do exits 77. --apply reboots
(systemctl reboot, or the command line in $OCITREE_REBOOT_COMMAND) when a
new deployment was written, and only then. --download-only pulls the image
into the sysroot's store (layers, merge commit) and deploys nothing; the
store keeps it while a deployment tracks its reference, and
--from-downloaded later deploys it without any network access (a plain
upgrade then fetches only the manifest and config).`,
		Example: `  ocitree upgrade
  ocitree upgrade --download-only && ocitree upgrade --from-downloaded --apply
  ocitree upgrade --check --sysroot /mnt/root`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if apply && check {
				return usagef("--apply and --check exclude each other")
			}
			if n := countTrue(check, downloadOnly, fromDownloaded); n > 1 {
				return usagef("--check, --download-only and --from-downloaded exclude each other")
			}
			if apply && downloadOnly {
				return usagef("--apply and --download-only exclude each other (--download-only deploys nothing)")
			}
			var res *deploy.UpdateResult
			err := withSysroot(sysroot, func(s *deploy.Sysroot) error {
				ctx := context.Background()
				if check {
					uc, err := s.CheckUpdate(ctx, fetchOpts(tlsVerify))
					if err != nil {
						return err
					}
					out := cmd.OutOrStdout()
					switch format {
					case "json":
						enc := json.NewEncoder(out)
						enc.SetIndent("", "  ")
						if err := enc.Encode(uc); err != nil {
							return err
						}
					case "human":
						printUpdateCheck(out, uc)
					default:
						return usagef("--format %q: use human or json", format)
					}
					if !uc.UpdateAvailable && unchanged77 {
						return exitCodeError{77}
					}
					return nil
				}
				uo := deploy.UpdateOptions{Log: cmd.ErrOrStderr(), Fetch: fetchOpts(tlsVerify)}
				if downloadOnly {
					r, err := s.DownloadUpdate(ctx, uo)
					if err != nil {
						return err
					}
					fmt.Fprintf(cmd.ErrOrStderr(), "Downloaded %s (%s, %d layers, %d bytes fetched); nothing deployed: `ocitree upgrade --from-downloaded` deploys it without fetching\n",
						r.Image.Origin, r.Image.ManifestDigest, r.Image.LayersFetched, r.Image.BytesFetched)
					return nil
				}
				var err error
				if fromDownloaded {
					res, err = s.UpgradeFromDownloaded(uo)
				} else {
					res, err = s.Upgrade(ctx, uo)
				}
				if err != nil {
					return err
				}
				reportUpdate(cmd, res)
				if res.Deployment == nil && unchanged77 {
					return exitCodeError{77}
				}
				return nil
			})
			if err != nil {
				return err
			}
			return applyUpdate(cmd, apply, res)
		},
	}
	sysrootFlag(cmd, &sysroot)
	f := cmd.Flags()
	f.BoolVar(&check, "check", false, "only fetch the manifest and config and print what an upgrade would download")
	f.BoolVar(&apply, "apply", false, "reboot (systemctl reboot, or $"+rebootEnv+") when a new deployment was written")
	f.BoolVar(&downloadOnly, "download-only", false, "pull the image into the store and deploy nothing")
	f.BoolVar(&fromDownloaded, "from-downloaded", false, "deploy the image --download-only pulled, without fetching")
	f.BoolVar(&unchanged77, "unchanged-exit-77", false, "exit 77 when there is nothing to do")
	f.StringVar(&format, "format", "human", "output of --check: human or json")
	tlsFlag(cmd, &tlsVerify)
	return cmd
}

func newRollbackCmd() *cobra.Command {
	var sysroot string
	cmd := &cobra.Command{
		Use:   "rollback [--sysroot DIR]",
		Short: "Boot the rollback deployment next (run again to undo)",
		Long: `Make the rollback deployment the default: the list becomes
[rollback, booted] + the others, as bootc rollback does. On a sysroot that is
not the running system, deployments 0 and 1 swap. /etc is not rolled back:
each deployment keeps its own.`,
		Example: `  ocitree rollback
  ocitree rollback --sysroot /mnt/root`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withSysroot(sysroot, func(s *deploy.Sysroot) error {
				if err := s.Rollback(); err != nil {
					return err
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Next boot: %s\n", s.Deployments[0].Dir())
				return nil
			})
		},
	}
	sysrootFlag(cmd, &sysroot)
	return cmd
}

func newConfigDiffCmd() *cobra.Command {
	var sysroot string
	cmd := &cobra.Command{
		Use:   "config-diff [--sysroot DIR]",
		Short: "Print the local /etc changes a switch or upgrade carries over",
		Long: `Print the changes of the merge deployment's /etc against its
usr/etc (the image default), one "M|A|D    path" line each, like ostree
admin config-diff.`,
		Example: `  ocitree config-diff --sysroot /mnt/root`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withSysroot(sysroot, func(s *deploy.Sysroot) error {
				ch, err := s.ConfigDiff()
				if err != nil {
					return err
				}
				etcmerge.Format(cmd.OutOrStdout(), ch)
				return nil
			})
		},
	}
	sysrootFlag(cmd, &sysroot)
	return cmd
}

func hostCommands() []*cobra.Command {
	return []*cobra.Command{newInstallCmd(), newStatusCmd(), newSwitchCmd(), newUpgradeCmd(), newRollbackCmd(), newConfigDiffCmd(),
		newPinCmd(), newUndeployCmd(), newCleanupCmd(), newKargsCmd()}
}

func printUpdateCheck(w io.Writer, uc *deploy.UpdateCheck) {
	if !uc.UpdateAvailable {
		fmt.Fprintf(w, "No update available: %s is deployed (%s).\n", uc.Image, uc.Digest)
		return
	}
	v := uc.Version
	if v == "" {
		v = "(no version)"
	}
	fmt.Fprintf(w, "Update available: %s\n  version: %s\n  digest: %s\n  download: %d layers, %d bytes\n", uc.Image, v, uc.Digest, uc.LayersNeeded, uc.BytesNeeded)
	list := func(s []string) string {
		if len(s) == 0 {
			return "-"
		}
		return strings.Join(s, ", ")
	}
	fmt.Fprintf(w, "  changed: %s; added: %s; removed: %s\n", list(uc.Changed), list(uc.Added), list(uc.Removed))
	l := uc.Layers
	fmt.Fprintf(w, "  layers: %d total (%d bytes); added: %d (%d bytes); removed: %d (%d bytes)\n", l.Total, l.TotalSize, l.NAdded, l.AddedSize, l.NRemoved, l.RemovedSize)
}

// countTrue counts the flags that are set.
func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}
