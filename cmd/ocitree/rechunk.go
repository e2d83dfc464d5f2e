package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/encap/rechunk"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/spf13/cobra"
)

func newRechunkCmd() *cobra.Command {
	var (
		repo, rootfs, previous, compression string
		labels, annotations, prune          []string
		maxLayers                           int
		tlsVerify                           bool
	)
	cmd := &cobra.Command{
		Use:   "rechunk (SRC_IMGREF | --rootfs DIR | --repo DIR REV) DEST_IMGREF",
		Short: "Write any image, tree or commit as a plain image with package-aware layers; prints the manifest digest",
		Long: `Write a plain OCI image (no ostree layer; chunkah's format) whose layers group the
files by package (dpkg source package, rpm source rpm), user.component xattr, big file
and the rest, each layer self-contained and annotated org.chunkah.component and
org.chunkah.stability. Components keep the layers they had in the previous build
(--previous-build, by default the image already at DEST_IMGREF). SOURCE_DATE_EPOCH sets
every time in the image; with it the output is byte-for-byte reproducible.`,
		Example: `  ocitree rechunk oci:/srv/build:latest docker://registry.example/os:1
  ocitree rechunk --rootfs /srv/rootfs oci:/srv/images/os:1
  ocitree rechunk --repo /srv/repo os/main --compression zstd oci:/srv/images/os:1`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts := rechunk.Options{
				PlanOptions: rechunk.PlanOptions{MaxLayers: maxLayers, Prune: prune,
					Warn: func(s string) { fmt.Fprintln(os.Stderr, "warning:", s) }},
				Compression: blob.Compression(compression),
				Labels:      map[string]string{},
				Annotations: map[string]string{},
			}
			if compression != string(blob.Gzip) && compression != string(blob.Zstd) {
				return usagef("--compression %q: gzip or zstd", compression)
			}
			if maxLayers < pack.MinMaxLayers-1 {
				return usagef("--max-layers %d: at least %d", maxLayers, pack.MinMaxLayers-1)
			}
			for _, kv := range labels {
				if k, ok := strings.CutSuffix(kv, "-"); ok && !strings.Contains(kv, "=") && k != "" {
					opts.RemoveLabels = append(opts.RemoveLabels, k)
					continue
				}
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef("--label %q: want KEY=VALUE or KEY-", kv)
				}
				opts.Labels[k] = v
			}
			for _, kv := range annotations {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef("--annotation %q: want KEY=VALUE", kv)
				}
				opts.Annotations[k] = v
			}
			var epoch *time.Time
			if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
				v, err := strconv.ParseInt(s, 10, 64)
				if err != nil || v < 0 {
					return usagef("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
				}
				t := time.Unix(v, 0).UTC()
				epoch = &t
			}
			var ociOpts []oci.Option
			if !tlsVerify {
				ociOpts = append(ociOpts, oci.WithInsecureSkipTLSVerify(true))
			}
			sources := 0
			for _, set := range []bool{repo != "", rootfs != ""} {
				if set {
					sources++
				}
			}
			want := 2 // SRC_IMGREF DEST_IMGREF, or --repo DIR REV DEST_IMGREF
			if rootfs != "" {
				want = 1
			}
			if sources > 1 {
				return usagef("give one source: SRC_IMGREF, --rootfs DIR or --repo DIR REV")
			}
			if len(args) != want {
				return usagef("want %d arguments, got %d (see --help)", want, len(args))
			}
			dest, err := oci.ParseRef(args[len(args)-1])
			if err != nil {
				return usageError{err}
			}
			ctx := context.Background()
			src, closeSrc, err := openRechunkSource(ctx, repo, rootfs, args, ociOpts)
			if err != nil {
				return err
			}
			defer closeSrc()
			opts.Config = src.Config
			inputLabels := map[string]string{}
			for k, v := range src.Labels {
				inputLabels[k] = v
			}
			if src.Config == nil {
				// A commit or a directory: its labels as encapsulate writes them.
				for k, v := range opts.Labels {
					inputLabels[k] = v
				}
				opts.Labels = inputLabels
			}
			switch {
			case epoch != nil:
				opts.Created = *epoch
			case !src.Created.IsZero():
				opts.Created = src.Created
			default:
				opts.Created = time.Now()
			}
			if previous != "none" {
				var prev *oci.Ref
				if previous != "" {
					if prev, err = oci.ParseRef(previous); err != nil {
						return usageError{fmt.Errorf("--previous-build: %w", err)}
					}
				}
				if opts.Prior, err = rechunk.PriorBuild(ctx, prev, dest, opts.Warn, ociOpts...); err != nil {
					return fmt.Errorf("--previous-build %s: %w", previous, err)
				}
			}
			w, err := oci.NewWriter(ctx, dest, ociOpts...)
			if err != nil {
				return err
			}
			defer w.Close()
			res, err := rechunk.Rechunk(ctx, src.Repo, src.Commit, w, opts)
			if err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "rechunk: wrote %d layers\n", len(res.Layers))
			fmt.Println(res.ManifestDigest)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&repo, "repo", "", "read the commit REV of this repository")
	f.StringVar(&rootfs, "rootfs", "", "read this directory")
	f.IntVar(&maxLayers, "max-layers", pack.DefaultMaxLayers, "most layers in the image")
	f.StringArrayVar(&labels, "label", nil, "set label KEY=VALUE, or remove it with KEY- (repeatable)")
	f.StringArrayVar(&annotations, "annotation", nil, "add manifest annotation KEY=VALUE (repeatable)")
	f.StringArrayVar(&prune, "prune", nil, "leave out /PATH and what is below it, or only what is below it with /PATH/ (repeatable; /sysroot/ always)")
	f.StringVar(&previous, "previous-build", "", `image whose layer layout to keep; default: the destination if it exists; "none" to turn off`)
	f.StringVar(&compression, "compression", "gzip", "layer compression: gzip or zstd")
	f.BoolVar(&tlsVerify, "tls-verify", true, "verify registry TLS certificates (false also allows plain HTTP)")
	f.MarkHidden("tls-verify")
	return cmd
}

// openRechunkSource opens the source rechunk reads: a commit, a directory
// or an image (the first argument).
func openRechunkSource(ctx context.Context, repo, rootfs string, args []string, opts []oci.Option) (*rechunk.Source, func(), error) {
	var (
		s   *rechunk.Source
		err error
	)
	switch {
	case rootfs != "":
		s, err = rechunk.RootfsSource(rootfs)
	case repo != "":
		r, err := ostree.Open(repo)
		if err != nil {
			return nil, nil, err
		}
		c, err := r.ResolveRev(args[0])
		if err == nil {
			s, err = rechunk.CommitSource(r, c)
		}
		if err != nil {
			r.Close()
			return nil, nil, err
		}
		return s, func() { r.Close() }, nil
	default:
		src, perr := oci.ParseRef(args[0])
		if perr != nil {
			return nil, nil, usageError{perr}
		}
		rd, rerr := oci.NewReader(ctx, src, opts...)
		if rerr != nil {
			return nil, nil, rerr
		}
		defer rd.Close()
		s, err = rechunk.ImageSource(ctx, rd, src.ImageString())
	}
	if err != nil {
		return nil, nil, err
	}
	return s, func() { s.Close() }, nil
}
