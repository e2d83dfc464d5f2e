package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/ocitree/ocitree/encap/imgstore"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/spf13/cobra"
)

// storedImageRef turns an IMGREF argument into the plain image reference the
// image was stored under (image pull stores src.ImageString()).
func storedImageRef(arg string) (string, error) {
	ref, err := oci.ParseRef(arg)
	if err != nil {
		return "", usageError{err}
	}
	return ref.ImageString(), nil
}

func newImageInspectCmd() *cobra.Command {
	var (
		repo   string
		config bool
	)
	cmd := &cobra.Command{
		Use:   "inspect --repo DIR IMGREF [--config]",
		Short: "Print the manifest (or config) of an image stored in a repository",
		Long: `Print the manifest JSON of an image stored in a repository, as its merge
commit records it (ostree.manifest); with --config the image config JSON
(ostree.container.image-config).`,
		Example: "  ocitree image inspect --repo /srv/repo --config docker://quay.io/example/os:stable",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := storedImageRef(args[0])
			if err != nil {
				return err
			}
			return withRepo(repo, func(r *ostree.Repo) error {
				si, err := imgstore.Image(r, img)
				if err != nil {
					return err
				}
				out := si.Manifest
				if config {
					if si.Config == nil {
						return fmt.Errorf("image %s: the merge commit stores no config", img)
					}
					out = si.Config
				}
				if !bytes.HasSuffix(out, []byte("\n")) {
					out = append(out[:len(out):len(out)], '\n')
				}
				_, err = os.Stdout.Write(out)
				return err
			})
		},
	}
	repoFlag(cmd, &repo)
	cmd.Flags().BoolVar(&config, "config", false, "print the image config instead of the manifest")
	return cmd
}

func newImageHistoryCmd() *cobra.Command {
	var repo string
	cmd := &cobra.Command{
		Use:   "history --repo DIR IMGREF",
		Short: "List the layers of an image stored in a repository",
		Long: `List the layers of an image stored in a repository, one line each: index,
layer digest, compressed size, created and created_by from the config history,
and the layer's kind: commit (the ostree commit layer), component (an ostree
component layer) or derived (a layer built on top of the ostree image).`,
		Example: "  ocitree image history --repo /srv/repo docker://quay.io/example/os:stable",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			img, err := storedImageRef(args[0])
			if err != nil {
				return err
			}
			return withRepo(repo, func(r *ostree.Repo) error {
				hist, err := imgstore.History(r, img)
				if err != nil {
					return err
				}
				tw := tabwriter.NewWriter(os.Stdout, 0, 8, 2, ' ', 0)
				fmt.Fprintln(tw, "INDEX\tDIGEST\tSIZE\tCREATED\tKIND\tCREATED BY")
				for _, h := range hist {
					fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\t%s\n", h.Index, shortDigest(h.Digest.String()), h.Size, dash(h.Created), h.Kind, dash(oneLine(h.CreatedBy)))
				}
				return tw.Flush()
			})
		},
	}
	repoFlag(cmd, &repo)
	return cmd
}

// shortDigest keeps the algorithm and the first 12 hex digits.
func shortDigest(d string) string {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok || len(hex) <= 12 {
		return d
	}
	return alg + ":" + hex[:12]
}

// oneLine keeps a table row on one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

func newImageRemoveCmd() *cobra.Command {
	var repo string
	cmd := &cobra.Command{
		Use:   "remove --repo DIR IMGREF...",
		Short: "Remove images from a repository",
		Long: `Remove images from a repository: delete their image refs, then the layer
refs no stored image lists any more. Images that are not stored are named in
the error after the others have been removed. Objects stay until
"ocitree image prune".`,
		Example: "  ocitree image remove --repo /srv/repo docker://quay.io/example/os:old",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			imgs := make([]string, len(args))
			for i, a := range args {
				img, err := storedImageRef(a)
				if err != nil {
					return err
				}
				imgs[i] = img
			}
			return withRepo(repo, func(r *ostree.Repo) error {
				n, err := imgstore.Remove(r, imgs)
				if n > 0 {
					fmt.Fprintf(os.Stderr, "removed %d layer refs\n", n)
				}
				return err
			})
		},
	}
	repoFlag(cmd, &repo)
	return cmd
}

func newImagePruneCmd() *cobra.Command {
	var repo string
	cmd := &cobra.Command{
		Use:   "prune --repo DIR",
		Short: "Delete unused layer refs and unreachable objects",
		Long: `Delete the layer refs no stored image lists, then every object no ref
reaches (as "ostree prune --refs-only"), and print what was freed.`,
		Example: "  ocitree image prune --repo /srv/repo",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(repo, func(r *ostree.Repo) error {
				res, err := imgstore.Prune(r)
				if err != nil {
					return err
				}
				fmt.Printf("layer refs removed: %d; objects deleted: %d; bytes freed: %d\n", res.LayerRefs, res.Objects, res.Freed)
				return nil
			})
		},
	}
	repoFlag(cmd, &repo)
	return cmd
}

func newImageCopyCmd() *cobra.Command {
	var tlsVerify bool
	cmd := &cobra.Command{
		Use:   "copy SRC_IMGREF DEST_IMGREF",
		Short: "Copy an image between registries (or layouts) keeping its digests; prints the digest",
		Long: `Copy an image between registries (or oci:, oci-archive:, dir: locations)
keeping its digests: blobs are not recompressed and manifests are not
converted, every instance of a manifest list or image index is copied, and
blobs already at the destination are not sent again (on the same registry
they are mounted across repositories). The source's signature source picks the
policy: ostree-image-signed: checks containers-policy.json, the other forms
accept anything. Prints the digest of the manifest written.`,
		Example: `  ocitree image copy docker://quay.io/example/os:stable docker://mirror.example.com/os:stable
  ocitree image copy ostree-unverified-registry:quay.io/example/os:stable oci:/srv/mirror:stable`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := oci.ParseRef(args[0])
			if err != nil {
				return usageError{err}
			}
			dst, err := oci.ParseRef(args[1])
			if err != nil {
				return usageError{err}
			}
			var opts []oci.Option
			if !tlsVerify {
				opts = append(opts, oci.WithInsecureSkipTLSVerify(true))
			}
			d, err := oci.Copy(context.Background(), src, dst, opts...)
			if err != nil {
				return err
			}
			fmt.Println(d)
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVar(&tlsVerify, "tls-verify", true, "verify registry TLS certificates (false also allows plain HTTP)")
	f.MarkHidden("tls-verify")
	return cmd
}
