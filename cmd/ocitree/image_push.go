package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"

	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/encap/imgstore"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/spf13/cobra"
)

func newImagePushCmd() *cobra.Command {
	var (
		repo, compression, format string
		identical, tlsVerify      bool
	)
	cmd := &cobra.Command{
		Use:   "push --repo DIR IMGREF DEST_IMGREF",
		Short: "Push a stored image from the repository, byte-identical to what was pulled; prints the manifest digest",
		Long: `Push an image stored by "image pull" (IMGREF as it was pulled) to
DEST_IMGREF without the original blobs: each layer's tar is rebuilt from
its tar-split record and the repository's objects, then compressed with
the compressor that reproduces the pulled blob (ocitree's, containers/image's
pgzip and zstd, Go's compress/gzip, klauspost gzip, at any level), so the
layer digests, the config and the manifest digest are the pulled image's.
Blobs the destination already has are not rebuilt.

A layer no known compressor reproduces is compressed with --compression
and the manifest is rewritten (new layer and manifest digests, same
diff_ids); the command says so on stderr. --require-identical refuses that
instead. Prints the digest of the manifest written.`,
		Example: `  ocitree image push --repo /srv/repo docker://quay.io/example/os:stable docker://mirror.example.com/os:stable
  ocitree image push --repo /srv/repo --require-identical oci:/srv/in:1 oci:/srv/out:1`,
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
			if format != "text" && format != "json" {
				return usagef("--format %q: want text or json", format)
			}
			comp := blob.Compression(compression)
			if comp != blob.Gzip && comp != blob.Zstd {
				return usagef("--compression %q: want gzip or zstd", compression)
			}
			return withRepo(repo, func(r *ostree.Repo) error {
				var opts []oci.Option
				if !tlsVerify {
					opts = append(opts, oci.WithInsecureSkipTLSVerify(true))
				}
				ctx := context.Background()
				w, err := oci.NewWriter(ctx, dst, opts...)
				if err != nil {
					return err
				}
				defer w.Close()
				res, err := imgstore.Push(ctx, r, src.ImageString(), w, imgstore.PushOptions{Fallback: comp, RequireIdentical: identical})
				if err != nil {
					return err
				}
				for i, l := range res.Layers {
					if l.Recompressed {
						fmt.Fprintf(os.Stderr, "layer %d recompressed as %s: %s\n", i, l.Digest, l.Why)
					}
				}
				if !res.Identical {
					fmt.Fprintln(os.Stderr, "the manifest differs from the pulled one")
				}
				if format == "json" {
					enc := json.NewEncoder(os.Stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(res)
				}
				fmt.Println(res.ManifestDigest)
				return nil
			})
		},
	}
	repoFlag(cmd, &repo)
	f := cmd.Flags()
	f.BoolVar(&identical, "require-identical", false, "fail rather than recompress a layer that cannot be reproduced")
	f.StringVar(&compression, "compression", "gzip", "compression for layers that cannot be reproduced: gzip or zstd")
	f.StringVar(&format, "format", "text", "output: text (the manifest digest) or json (per-layer details)")
	f.BoolVar(&tlsVerify, "tls-verify", true, "verify registry TLS certificates (false also allows plain HTTP)")
	f.MarkHidden("tls-verify")
	return cmd
}
