package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/ocitree/ocitree/encap/imgstore"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/spf13/cobra"
)

func newImageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Pull, inspect, remove and copy container images",
	}
	cmd.AddCommand(newImagePullCmd(), newImageListCmd(), newImageInspectCmd(), newImageHistoryCmd(),
		newImageRemoveCmd(), newImagePruneCmd(), newImageCopyCmd(), newImagePushCmd())
	requireSubcommand(cmd)
	return cmd
}

func newImagePullCmd() *cobra.Command {
	var (
		repo, progress string
		check, quiet   bool
		tlsVerify      bool
	)
	cmd := &cobra.Command{
		Use:   "pull --repo DIR IMGREF [--check] [--quiet] [--progress auto|always|never]",
		Short: "Pull an ostree container image into a repository; prints the merge commit",
		Long: `Pull an ostree container image into a repository; prints the merge commit.

Layers already stored (ostree/container/blob/ refs) are not downloaded again;
the image ref ostree/container/image/<IMGREF escaped> points at the merge
commit. With --check only the manifest and config are fetched and the layers
and bytes a pull would download are printed; when the image is stored and
the registry has another manifest, that manifest and its config are recorded
as the image's cached update (shown by image list), as ostree-ext does;
nothing else is written.

While layers are downloaded one progress line on stderr shows the layers and
compressed bytes fetched so far, the rate and the time left; when the pull
ends it is replaced by the totals and the time taken. --progress=auto (the
default) draws it only when stderr is a terminal and --quiet is not given;
--progress=always draws it anyway (for logs and tests), --progress=never
never does.

Signatures: ostree-image-signed: references are checked against
containers-policy.json; ostree-remote-image:REMOTE:TRANSPORT:REF and
ostree-remote-registry:REMOTE:NAME instead require the image's ostree commit
to be signed for the OSTree remote REMOTE of the repository's config (GPG
unless gpg-verify=false, ed25519 with sign-verify), as ostree pull would
check it; ostree-unverified-* and plain references check nothing.`,
		Example: `  ocitree image pull --repo /srv/repo docker://quay.io/example/os:stable
  ocitree image pull --repo /srv/repo --check ostree-unverified-registry:quay.io/example/os:stable
  ocitree image pull --repo /srv/repo --progress=never docker://quay.io/example/os:stable
  ocitree image pull --repo /srv/repo ostree-remote-registry:fedora:quay.io/fedora/fedora-coreos:stable`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			stdout, stderr := cmd.OutOrStdout(), cmd.ErrOrStderr()
			show, err := wantProgress(progress, quiet, check, isTerminal(stderr))
			if err != nil {
				return err
			}
			src, err := oci.ParseRef(args[0])
			if err != nil {
				return usageError{err}
			}
			return withRepo(repo, func(r *ostree.Repo) error {
				// ostree-remote-*: the ostree commit must be signed for the
				// OSTree remote's keys; the container is not checked.
				remote, err := imgstore.NewRemoteVerifier(r, src)
				if err != nil {
					return err
				}
				var opts []oci.Option
				if !tlsVerify {
					opts = append(opts, oci.WithInsecureSkipTLSVerify(true))
				}
				ctx := context.Background()
				rd, err := oci.NewReader(ctx, src, opts...)
				if err != nil {
					return err
				}
				defer rd.Close()
				pullOpts := imgstore.PullOptions{Check: check}
				if remote != nil {
					pullOpts.VerifyCommit = remote.Verify
				}
				var bar *pullProgress
				if show {
					bar = newPullProgress(stderr)
					pullOpts.Progress = bar
				}
				res, err := imgstore.Pull(ctx, r, rd, src.ImageString(), pullOpts)
				if bar != nil {
					// Finish the line before anything else is printed, the
					// error included.
					bar.Stop()
				}
				if err != nil {
					return err
				}
				for _, w := range res.Warnings {
					fmt.Fprintf(stderr, "warning: %s\n", w)
				}
				status := fmt.Sprintf("layers already present: %d; layers needed: %d (%d bytes)", res.LayersPresent, res.LayersFetched, res.BytesFetched)
				if check {
					fmt.Fprintln(stdout, status)
					return nil
				}
				if !quiet {
					if remote != nil {
						reportSignatures(stderr, src.Remote, remote.Accepted())
					}
					if res.AlreadyPresent {
						fmt.Fprintf(stderr, "image %s is already stored (%s)\n", src.ImageString(), res.ManifestDigest)
					} else {
						fmt.Fprintln(stderr, status)
					}
				}
				fmt.Fprintln(stdout, res.MergeCommit)
				return nil
			})
		},
	}
	repoFlag(cmd, &repo)
	f := cmd.Flags()
	f.BoolVar(&check, "check", false, "only fetch the manifest and config and print what would be downloaded")
	f.BoolVarP(&quiet, "quiet", "q", false, "print only the merge commit")
	f.StringVar(&progress, "progress", progressAuto, "progress line on stderr: auto (on a terminal, not with --quiet), always or never")
	f.BoolVar(&tlsVerify, "tls-verify", true, "verify registry TLS certificates (false also allows plain HTTP)")
	f.MarkHidden("tls-verify")
	return cmd
}

// updateColumn describes a cached update for image list: its version, else
// its manifest digest; "-" when there is none.
func updateColumn(u *imgstore.CachedUpdate) string {
	switch {
	case u == nil:
		return "-"
	case u.Version != "":
		return u.Version
	}
	return u.ManifestDigest
}

func newImageListCmd() *cobra.Command {
	var repo, format string
	cmd := &cobra.Command{
		Use:     "list --repo DIR [--format table|json]",
		Short:   "List the images stored in a repository",
		Example: "  ocitree image list --repo /srv/repo --format json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "table" && format != "json" {
				return usagef("--format %q: want table or json", format)
			}
			return withRepo(repo, func(r *ostree.Repo) error {
				imgs, err := imgstore.List(r)
				if err != nil {
					return err
				}
				if format == "json" {
					if imgs == nil {
						imgs = []imgstore.ImageInfo{}
					}
					enc := json.NewEncoder(os.Stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(imgs)
				}
				tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "IMAGE\tVERSION\tCREATED\tMANIFEST DIGEST\tMERGE COMMIT\tUPDATE")
				for _, i := range imgs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", i.ImageRef, dash(i.Version), dash(i.Created), i.ManifestDigest, i.MergeCommit, updateColumn(i.CachedUpdate))
				}
				return tw.Flush()
			})
		},
	}
	repoFlag(cmd, &repo)
	cmd.Flags().StringVar(&format, "format", "table", "table or json")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// reportSignatures writes one line per line of each accepted signature's
// description.
func reportSignatures(w io.Writer, remote string, accepted []string) {
	for _, text := range accepted {
		for _, l := range strings.Split(text, "\n") {
			fmt.Fprintf(w, "OSTree remote %s: %s\n", remote, l)
		}
	}
}
