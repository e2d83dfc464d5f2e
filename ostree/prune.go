package ostree

import (
	"errors"
	"fmt"
	"sort"

	"golang.org/x/sys/unix"
)

// PruneOptions control Prune.
type PruneOptions struct {
	// RefsOnly keeps only what refs reach (with their history); commits no
	// ref reaches are deleted too. Otherwise every commit object is a root.
	RefsOnly bool
	// DryRun reports without deleting.
	DryRun bool
}

// PruneResult says what Prune removed.
type PruneResult struct {
	Total   int   // objects scanned
	Deleted int   // objects deleted
	Freed   int64 // bytes freed
}

// Prune deletes unreachable objects under the exclusive repository lock, as
// `ostree prune` does. A commit's detached metadata goes with it.
func (r *Repo) Prune(opts PruneOptions) (*PruneResult, error) {
	unlock, err := r.lock(true)
	if err != nil {
		return nil, err
	}
	defer unlock()
	all, err := r.ListObjects(func(t ObjectType) bool { return t <= ObjCommit })
	if err != nil {
		return nil, err
	}
	seen := map[ObjectName]struct{}{}
	if opts.RefsOnly {
		refs, err := r.ListRefs()
		if err != nil {
			return nil, err
		}
		for _, ref := range refs {
			if err := r.Reachable(ref.Checksum, true, seen, nil); err != nil {
				return nil, fmt.Errorf("ref %s: %w", ref.Name, err)
			}
		}
	} else {
		for _, n := range all {
			if n.Type == ObjCommit {
				if err := r.Reachable(n.Checksum, false, seen, nil); err != nil {
					return nil, fmt.Errorf("commit %s: %w", n.Checksum, err)
				}
			}
		}
	}
	res := &PruneResult{Total: len(all)}
	// Unreachable commits go first: a prune killed part-way leaves loose
	// objects, never a commit whose tree is partly deleted (which fsck
	// would reject).
	var doomed []ObjectName
	for _, n := range all {
		if _, ok := seen[n]; !ok {
			doomed = append(doomed, n)
		}
	}
	sort.SliceStable(doomed, func(i, j int) bool { return doomed[i].Type == ObjCommit && doomed[j].Type != ObjCommit })
	for i, n := range doomed {
		if i == len(doomed)/2 && i > 0 && !opts.DryRun {
			if err := fpPruneHalfway.Hit(); err != nil {
				return res, err
			}
		}
		rel := objectRelPath(n.Checksum, n.Type, r.mode)
		var st unix.Stat_t
		if err := unix.Fstatat(r.objFd, rel, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil {
			res.Freed += st.Size
		}
		res.Deleted++
		if opts.DryRun {
			continue
		}
		if err := unix.Unlinkat(r.objFd, rel, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return res, fmt.Errorf("deleting %s: %w", rel, err)
		}
		if n.Type == ObjCommit {
			unix.Unlinkat(r.objFd, objectRelPath(n.Checksum, ObjCommitMeta, r.mode), 0)
			unix.Unlinkat(r.dfd, "state/"+n.Checksum.String()+".commitpartial", 0)
		}
	}
	return res, nil
}
