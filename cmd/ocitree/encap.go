package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/spf13/cobra"
)

func newEncapsulateCmd() *cobra.Command {
	var (
		repo, previous, compression, contentmeta string
		labels                                   []string
		maxLayers, formatVersion                 int
	)
	cmd := &cobra.Command{
		Use:   "encapsulate --repo DIR REV IMGREF",
		Short: "Write a commit as a chunked OCI image; prints the manifest digest",
		Example: `  ocitree encapsulate --repo /srv/repo os/main oci:/srv/images/os:latest
  ocitree encapsulate --repo /srv/repo --compression zstd os/main docker://registry.example/os:1`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if formatVersion != 1 {
				return usagef("--format-version %d: only 1 (chunked v1) is written so far", formatVersion)
			}
			opts := encap.Options{MaxLayers: maxLayers, Compression: blob.Compression(compression), ContentMeta: contentmeta,
				Labels: map[string]string{}, Warn: func(s string) { fmt.Fprintln(os.Stderr, "warning:", s) }}
			if maxLayers < pack.MinMaxLayers {
				return usagef("--max-layers %d: at least %d", maxLayers, pack.MinMaxLayers)
			}
			for _, kv := range labels {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef("--label %q: want KEY=VALUE", kv)
				}
				opts.Labels[k] = v
			}
			dest, err := oci.ParseRef(args[1])
			if err != nil {
				return usageError{err}
			}
			return withRepo(repo, func(r *ostree.Repo) error {
				commit, err := r.ResolveRev(args[0])
				if err != nil {
					return err
				}
				ctx := context.Background()
				if opts.Prior, err = priorLayout(ctx, previous, dest, opts.Warn); err != nil {
					return err
				}
				w, err := oci.NewWriter(ctx, dest)
				if err != nil {
					return err
				}
				defer w.Close()
				res, err := encap.Encapsulate(ctx, r, commit, w, opts)
				if err != nil {
					return err
				}
				fmt.Println(res.ManifestDigest)
				return nil
			})
		},
	}
	repoFlag(cmd, &repo)
	f := cmd.Flags()
	f.IntVar(&maxLayers, "max-layers", pack.DefaultMaxLayers, "most layers in the image, the commit layer included")
	f.StringArrayVar(&labels, "label", nil, "add label KEY=VALUE (repeatable)")
	f.StringVar(&previous, "previous-build", "", `image whose layer layout to keep; default: the destination if it exists; "none" to turn off`)
	f.StringVar(&compression, "compression", "gzip", "layer compression: gzip, zstd or zstd:chunked")
	f.StringVar(&contentmeta, "contentmeta", "", "component metadata JSON (ostree-ext format)")
	f.IntVar(&formatVersion, "format-version", 1, "image format version")
	return cmd
}

// priorLayout reads the component layout of the previous build: the image
// named by --previous-build, or else the destination when it already holds
// an ostree image; none with --previous-build=none.
func priorLayout(ctx context.Context, previous string, dest *oci.Ref, warn func(string)) ([]pack.PriorLayer, error) {
	if previous == "none" {
		return nil, nil
	}
	var prev *oci.Ref
	if previous != "" {
		var err error
		if prev, err = oci.ParseRef(previous); err != nil {
			return nil, usageError{fmt.Errorf("--previous-build: %w", err)}
		}
	}
	prior, err := encap.PriorBuild(ctx, prev, dest, warn)
	if err != nil {
		return nil, fmt.Errorf("--previous-build %s: %w", previous, err)
	}
	return prior, nil
}

func newUnencapsulateCmd() *cobra.Command {
	var repo, writeRef string
	cmd := &cobra.Command{
		Use:     "unencapsulate --repo DIR IMGREF [--write-ref REF]",
		Short:   "Import an ostree container image's commit into a repository; prints the commit",
		Example: "  ocitree unencapsulate --repo /srv/repo --write-ref os/main oci:/srv/images/os:latest",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			src, err := oci.ParseRef(args[0])
			if err != nil {
				return usageError{err}
			}
			return withRepo(repo, func(r *ostree.Repo) error {
				ctx := context.Background()
				rd, err := oci.NewReader(ctx, src)
				if err != nil {
					return err
				}
				defer rd.Close()
				c, err := encap.Unencapsulate(ctx, r, rd, writeRef)
				if err != nil {
					return err
				}
				fmt.Println(c)
				return nil
			})
		},
	}
	repoFlag(cmd, &repo)
	cmd.Flags().StringVar(&writeRef, "write-ref", "", "point this ref at the imported commit")
	return cmd
}
