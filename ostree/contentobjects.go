package ostree

// The content objects of a commit: each regular file or symlink once, with
// every path where the commit has it and its payload size.

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/sync/errgroup"
)

// ContentObject is one content object (regular file or symlink) of a commit
// and every path where the commit has it: the unit that layer packing moves
// between layers.
type ContentObject struct {
	Checksum Checksum
	// Paths are absolute, as in the commit ("/usr/bin/sh",
	// "/usr/etc/passwd"), in tree-walk order.
	Paths []string
	// Size is the object's payload size in bytes (0 for a symlink), filled
	// in by CommitObjects; the layer writers do not use it.
	Size int64
}

// CommitObjects walks a commit and returns every content object once, with
// all its paths and its payload size. The walk visits a directory's files,
// then its subdirectories, each in dirtree (name) order, recursively; objects
// are returned in the order of their first path, and each object's paths in
// walk order.
func CommitObjects(repo *Repo, commit Checksum) ([]ContentObject, error) {
	cm, err := repo.ReadCommit(commit)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit, err)
	}
	index := map[Checksum]int{}
	var out []ContentObject
	var walk func(dir string, tree Checksum) error
	walk = func(dir string, tree Checksum) error {
		dt, err := repo.ReadDirTree(tree)
		if err != nil {
			return fmt.Errorf("dirtree %s of %s: %w", tree, dirName(dir), err)
		}
		for _, f := range dt.Files {
			p := dir + "/" + f.Name
			if i, ok := index[f.Checksum]; ok {
				out[i].Paths = append(out[i].Paths, p)
				continue
			}
			index[f.Checksum] = len(out)
			out = append(out, ContentObject{Checksum: f.Checksum, Paths: []string{p}})
		}
		for _, d := range dt.Dirs {
			if err := walk(dir+"/"+d.Name, d.Tree); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk("", cm.RootTree); err != nil {
		return nil, err
	}
	if err := fillSizes(repo, out); err != nil {
		return nil, err
	}
	return out, nil
}

// dirName is dir for messages, "/" for the root.
func dirName(dir string) string {
	if dir == "" {
		return "/"
	}
	return dir
}

// ListObjects returns each content object of commit once, sorted by
// checksum, with its paths sorted and its payload size.
func ListObjects(repo *Repo, commit Checksum) ([]ContentObject, error) {
	objs, err := CommitObjects(repo, commit)
	if err != nil {
		return nil, fmt.Errorf("list objects of %s: %w", commit, err)
	}
	for i := range objs {
		objs[i].Paths = slices.Sorted(slices.Values(objs[i].Paths))
	}
	slices.SortFunc(objs, func(a, b ContentObject) int { return CompareChecksum(a.Checksum, b.Checksum) })
	return objs, nil
}

// fillSizes opens every object to learn its payload size, on a few workers.
func fillSizes(repo *Repo, objs []ContentObject) error {
	workers := min(runtime.GOMAXPROCS(0), 8, len(objs))
	if workers <= 1 {
		for i := range objs {
			sz, err := contentSize(repo, objs[i].Checksum)
			if err != nil {
				return err
			}
			objs[i].Size = sz
		}
		return nil
	}
	g, ctx := errgroup.WithContext(context.Background())
	g.SetLimit(workers)
	for i := range objs {
		if ctx.Err() != nil {
			break // an object failed: stop
		}
		g.Go(func() error {
			sz, err := contentSize(repo, objs[i].Checksum)
			if err != nil {
				return err
			}
			objs[i].Size = sz
			return nil
		})
	}
	return g.Wait()
}

func contentSize(repo *Repo, c Checksum) (int64, error) {
	ct, err := repo.OpenContent(c)
	if err != nil {
		return 0, fmt.Errorf("object %s: %w", c, err)
	}
	ct.Payload.Close()
	return ct.Size, nil
}

// CompareChecksum orders checksums by their bytes (as their hex strings sort).
func CompareChecksum(a, b Checksum) int {
	return strings.Compare(string(a[:]), string(b[:]))
}

// SortChecksums sorts s in CompareChecksum order.
func SortChecksums(s []Checksum) { slices.SortFunc(s, CompareChecksum) }
