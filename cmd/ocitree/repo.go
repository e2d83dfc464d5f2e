package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/ocitree/ocitree/ostree"
	"github.com/spf13/cobra"
)

func newRepoCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "repo",
		Short: "Work with an OSTree-compatible repository (the store)",
	}
	cmd.AddCommand(newRepoInitCmd(), newRepoCommitCmd(), newRepoCheckoutCmd(), newRepoFsckCmd(),
		newRepoRefsCmd(), newRepoShowCmd(), newRepoLsCmd(), newRepoPruneCmd())
	requireSubcommand(cmd)
	return cmd
}

// repoFlag adds the required --repo flag.
func repoFlag(cmd *cobra.Command, dst *string) {
	cmd.Flags().StringVar(dst, "repo", "", "repository directory")
	cmd.MarkFlagRequired("repo")
}

func newRepoInitCmd() *cobra.Command {
	var repo, mode string
	cmd := &cobra.Command{
		Use:     "init --repo DIR [--mode bare|bare-user|archive]",
		Short:   "Create a repository",
		Example: "  ocitree repo init --repo /srv/repo --mode archive",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			m, err := ostree.ParseMode(mode)
			if err != nil {
				return usageError{err}
			}
			r, err := ostree.Init(repo, m)
			if err != nil {
				return err
			}
			return r.Close()
		},
	}
	repoFlag(cmd, &repo)
	cmd.Flags().StringVar(&mode, "mode", "bare", "repository mode: bare, bare-user or archive")
	return cmd
}

func newRepoCommitCmd() *cobra.Command {
	var (
		repo, branch, subject, body, parent, timestamp, tarFile string
		metaStrings                                             []string
		bootable, noBindings                                    bool
	)
	cmd := &cobra.Command{
		Use:   "commit --repo DIR --branch REF [flags] (SRCDIR | --tar FILE|-)",
		Short: "Commit a directory tree or a tar stream; prints the commit checksum",
		Example: `  ocitree repo commit --repo /srv/repo --branch os/main --subject "v1" ./rootfs
  tar -C rootfs -c . | ocitree repo commit --repo /srv/repo --branch os/main --tar -`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (len(args) == 1) == (tarFile != "") {
				return usagef("give exactly one of SRCDIR or --tar")
			}
			opts := ostree.CommitOptions{Branch: branch, Subject: subject, Body: body, Bootable: bootable, NoBindings: noBindings}
			for _, kv := range metaStrings {
				k, v, ok := strings.Cut(kv, "=")
				if !ok || k == "" {
					return usagef("--add-metadata-string %q: want KEY=VALUE", kv)
				}
				opts.Metadata = append(opts.Metadata, ostree.MetaEntry{Key: k, Value: ostree.StringVariant(v)})
			}
			if timestamp != "" {
				ts, err := time.Parse(time.RFC3339, timestamp)
				if err != nil {
					return usagef("--timestamp %q: want RFC 3339, e.g. 2024-01-01T00:00:00Z", timestamp)
				}
				opts.Timestamp = ts
			}
			return withRepo(repo, func(r *ostree.Repo) error {
				switch parent {
				case "":
				case "none":
					opts.NoParent = true
				default:
					p, err := r.ResolveRev(parent)
					if err != nil {
						return fmt.Errorf("--parent: %w", err)
					}
					opts.Parent = &p
				}
				var sum ostree.Checksum
				var err error
				if tarFile != "" {
					var in io.Reader = os.Stdin
					if tarFile != "-" {
						f, err := os.Open(tarFile)
						if err != nil {
							return err
						}
						defer f.Close()
						in = f
					}
					sum, err = r.CommitTar(in, opts)
				} else {
					sum, err = r.CommitDir(args[0], opts)
				}
				if err != nil {
					return err
				}
				fmt.Println(sum)
				return nil
			})
		},
	}
	repoFlag(cmd, &repo)
	f := cmd.Flags()
	f.StringVarP(&branch, "branch", "b", "", "ref to update")
	f.StringVarP(&subject, "subject", "s", "", "one-line subject")
	f.StringVarP(&body, "body", "m", "", "full description")
	f.StringArrayVar(&metaStrings, "add-metadata-string", nil, "add KEY=VALUE string metadata (repeatable)")
	f.BoolVar(&bootable, "bootable", false, "add ostree.bootable and ostree.linux (kernel in usr/lib/modules)")
	f.BoolVar(&noBindings, "no-bindings", false, "do not add ostree.ref-binding")
	f.StringVar(&parent, "parent", "", `parent commit (REV, or "none"); default: the branch's current commit`)
	f.StringVar(&timestamp, "timestamp", "", "commit time, RFC 3339 (default: SOURCE_DATE_EPOCH or now)")
	f.StringVar(&tarFile, "tar", "", "commit the tree in this tar stream (- for stdin)")
	cmd.MarkFlagRequired("branch")
	return cmd
}

// withRepo opens the repository at dir, runs fn on it and closes it.
func withRepo(dir string, fn func(*ostree.Repo) error) error {
	r, err := ostree.Open(dir)
	if err != nil {
		return err
	}
	defer r.Close()
	return fn(r)
}
