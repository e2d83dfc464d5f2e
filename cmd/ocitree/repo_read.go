package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/ocitree/ocitree/ostree"
	"github.com/spf13/cobra"
)

func newRepoCheckoutCmd() *cobra.Command {
	var repo, subpath string
	var userMode, noHardlinks bool
	cmd := &cobra.Command{
		Use:     "checkout --repo DIR [--user-mode] [--subpath PATH] REV DESTDIR",
		Short:   "Write a commit's tree to a new directory",
		Example: "  ocitree repo checkout --repo /srv/repo --user-mode os/main ./rootfs",
		Args:    cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(repo, func(r *ostree.Repo) error {
				c, err := r.ResolveRev(args[0])
				if err != nil {
					return err
				}
				return r.Checkout(c, args[1], ostree.CheckoutOptions{UserMode: userMode, Subpath: subpath, NoHardlinks: noHardlinks})
			})
		},
	}
	repoFlag(cmd, &repo)
	cmd.Flags().BoolVarP(&userMode, "user-mode", "U", false, "do not change ownership or write xattrs; drop setuid/setgid")
	cmd.Flags().StringVar(&subpath, "subpath", "", "check out only this path of the commit")
	cmd.Flags().BoolVar(&noHardlinks, "no-hardlinks", false, "copy content instead of hardlinking repository objects")
	return cmd
}

func newRepoFsckCmd() *cobra.Command {
	var repo string
	cmd := &cobra.Command{
		Use:     "fsck --repo DIR",
		Short:   "Re-hash every reachable object and report each bad one",
		Example: "  ocitree repo fsck --repo /srv/repo",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(repo, func(r *ostree.Repo) error {
				res, err := r.Fsck()
				if err != nil {
					return err
				}
				for _, p := range res.Problems {
					fmt.Println(p)
				}
				fmt.Fprintf(os.Stderr, "checked %d objects of %d commits\n", res.Objects, res.Commits)
				if n := len(res.Problems); n > 0 {
					return fmt.Errorf("%d bad objects in %s; re-pull or re-commit the commits that need them", n, repo)
				}
				return nil
			})
		},
	}
	repoFlag(cmd, &repo)
	return cmd
}

func newRepoRefsCmd() *cobra.Command {
	var repo string
	cmd := &cobra.Command{
		Use:     "refs --repo DIR",
		Short:   "List refs (remote refs as REMOTE:REF, mirrors as mirror:COLLECTION:REF)",
		Example: "  ocitree repo refs --repo /srv/repo",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(repo, func(r *ostree.Repo) error {
				refs, err := r.ListRefs()
				if err != nil {
					return err
				}
				for _, ref := range refs {
					fmt.Println(ref.Name)
				}
				return nil
			})
		},
	}
	repoFlag(cmd, &repo)
	return cmd
}

// commitJSON is `repo show --format json`.
type commitJSON struct {
	Checksum        string         `json:"checksum"`
	Parent          string         `json:"parent,omitempty"`
	Subject         string         `json:"subject"`
	Body            string         `json:"body"`
	Timestamp       string         `json:"timestamp"`
	RootTree        string         `json:"rootTree"`
	RootMeta        string         `json:"rootMeta"`
	ContentChecksum string         `json:"contentChecksum"`
	Metadata        map[string]any `json:"metadata"`
	Detached        map[string]any `json:"detachedMetadata,omitempty"`
}

func metaMap(md ostree.Metadata) map[string]any {
	out := map[string]any{}
	for _, e := range md {
		out[e.Key] = e.Value.Value
	}
	return out
}

func newRepoShowCmd() *cobra.Command {
	var repo, format string
	cmd := &cobra.Command{
		Use:     "show --repo DIR REV [--format json]",
		Short:   "Show a commit",
		Example: "  ocitree repo show --repo /srv/repo os/main --format json",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "text" && format != "json" {
				return usagef("--format %q: want text or json", format)
			}
			return withRepo(repo, func(r *ostree.Repo) error {
				sum, err := r.ResolveRev(args[0])
				if err != nil {
					return err
				}
				c, err := r.ReadCommit(sum)
				if err != nil {
					return err
				}
				det, err := r.ReadDetachedMetadata(sum)
				if err != nil {
					return err
				}
				ts := time.Unix(int64(c.Timestamp), 0).UTC()
				if format == "json" {
					j := commitJSON{Checksum: sum.String(), Subject: c.Subject, Body: c.Body, Timestamp: ts.Format(time.RFC3339),
						RootTree: c.RootTree.String(), RootMeta: c.RootMeta.String(), ContentChecksum: c.ContentChecksum().String(),
						Metadata: metaMap(c.Metadata)}
					if !c.Parent.IsZero() {
						j.Parent = c.Parent.String()
					}
					if len(det) > 0 {
						j.Detached = metaMap(det)
					}
					enc := json.NewEncoder(os.Stdout)
					enc.SetIndent("", "  ")
					return enc.Encode(j)
				}
				fmt.Printf("commit %s\n", sum)
				if !c.Parent.IsZero() {
					fmt.Printf("Parent:  %s\n", c.Parent)
				}
				fmt.Printf("ContentChecksum:  %s\nDate:  %s\n", c.ContentChecksum(), ts.Format("2006-01-02 15:04:05 -0700"))
				if v := c.Metadata.String("version"); v != "" {
					fmt.Printf("Version: %s\n", v)
				}
				// The rest as `ostree show` prints it (ot-dump.c).
				if c.Subject != "" {
					fmt.Print("\n" + indentLines(c.Subject))
				} else {
					fmt.Println("(no subject)")
				}
				if c.Body != "" {
					fmt.Print("\n" + indentLines(c.Body))
				}
				fmt.Println()
				return nil
			})
		},
	}
	repoFlag(cmd, &repo)
	cmd.Flags().StringVar(&format, "format", "text", "text or json")
	return cmd
}

func newRepoLsCmd() *cobra.Command {
	var repo string
	var recursive, checksums bool
	cmd := &cobra.Command{
		Use:     "ls --repo DIR REV [PATH] [-R]",
		Short:   "List a commit's files as `ostree ls` does",
		Example: "  ocitree repo ls --repo /srv/repo os/main /usr/bin -R",
		Args:    cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(repo, func(r *ostree.Repo) error {
				sum, err := r.ResolveRev(args[0])
				if err != nil {
					return err
				}
				p := "/"
				if len(args) == 2 {
					p = path.Clean("/" + args[1])
				}
				return r.List(sum, p, recursive, func(e ostree.ListEntry) error {
					return printLsEntry(os.Stdout, e, checksums)
				})
			})
		},
	}
	repoFlag(cmd, &repo)
	cmd.Flags().BoolVarP(&recursive, "recursive", "R", false, "list directories recursively")
	cmd.Flags().BoolVarP(&checksums, "checksum", "C", false, "print checksums")
	return cmd
}

func printLsEntry(w io.Writer, e ostree.ListEntry, checksums bool) error {
	typ := byte('-')
	switch {
	case e.IsDir:
		typ = 'd'
	case e.Target != "":
		typ = 'l'
	}
	fmt.Fprintf(w, "%c0%04o %d %d %6d ", typ, e.Mode&07777, e.UID, e.GID, e.Size)
	if checksums {
		if e.IsDir {
			fmt.Fprintf(w, "%s %s ", e.Checksum, e.MetaChecksum)
		} else {
			fmt.Fprintf(w, "%s ", e.Checksum)
		}
	}
	if e.Target != "" {
		_, err := fmt.Fprintf(w, "%s -> %s\n", e.Path, e.Target)
		return err
	}
	_, err := fmt.Fprintf(w, "%s\n", e.Path)
	return err
}

func newRepoPruneCmd() *cobra.Command {
	var repo string
	var refsOnly, dryRun bool
	cmd := &cobra.Command{
		Use:     "prune --repo DIR [--refs-only]",
		Short:   "Delete unreachable objects",
		Example: "  ocitree repo prune --repo /srv/repo --refs-only",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withRepo(repo, func(r *ostree.Repo) error {
				res, err := r.Prune(ostree.PruneOptions{RefsOnly: refsOnly, DryRun: dryRun})
				if err != nil {
					return err
				}
				fmt.Printf("Total objects: %d\n", res.Total)
				if res.Deleted == 0 {
					fmt.Println("No unreachable objects")
				} else {
					fmt.Printf("Deleted %d objects, %d bytes freed\n", res.Deleted, res.Freed)
				}
				return nil
			})
		},
	}
	repoFlag(cmd, &repo)
	cmd.Flags().BoolVar(&refsOnly, "refs-only", false, "also delete commits that no ref reaches")
	cmd.Flags().BoolVar(&dryRun, "no-prune", false, "only report what would be deleted")
	return cmd
}

// indentLines indents every line by four spaces, ending each with a newline.
func indentLines(s string) string {
	var b strings.Builder
	for _, line := range strings.Split(strings.TrimSuffix(s, "\n"), "\n") {
		b.WriteString("    " + line + "\n")
	}
	return b.String()
}
