package deploy

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"strings"

	"github.com/ocitree/ocitree/deploy/etcmerge"
	"github.com/ocitree/ocitree/deploy/etcsnap"
)

// EtcSnapSuffix names the file beside a deployment directory
// (ostree/deploy/$SR/deploy/$CSUM.$SERIAL.etcsnap, mode 0600) that records
// the merge source's /etc as it was when the deployment was made (package
// etcsnap). libostree ignores files there other than .origin; cleanup
// removes it with its deployment.
const EtcSnapSuffix = ".etcsnap"

// FinalizeResult is what Finalize did.
type FinalizeResult struct {
	// Pending is the deployment finalized ("" when there was none).
	Pending string
	// Carried are the /etc changes applied to the pending deployment;
	// Reverted the paths set back to its default because the booted /etc
	// dropped the local change; Skipped the changes that could not be
	// applied, with why.
	Carried  []etcmerge.Change
	Reverted []string
	Skipped  []string
}

// Finalize re-merges into the pending deployment (the first in boot order
// when it is not the booted one and was deployed from it) the booted /etc
// paths that changed since that deployment was made, as recorded in its
// etcsnap: each with the /etc merge's rules (etcmerge.Apply), one at a
// time, so that a change that cannot be applied is logged and skipped
// while the others are carried. A path whose local change was undone
// since gets the pending deployment's default back. The snapshot is then
// rewritten, so a second run carries nothing. Finalize logs every step to
// log; it returns an error only when the sysroot cannot be read or locked.
func (s *Sysroot) Finalize(log io.Writer) (*FinalizeResult, error) {
	if err := s.Lock(); err != nil {
		return nil, err
	}
	res := &FinalizeResult{}
	if s.Booted == nil {
		return nil, errors.New("finalize: the sysroot is not the running system (no booted deployment)")
	}
	if len(s.Deployments) == 0 || s.Deployments[0] == s.Booted {
		fmt.Fprintln(log, "finalize: no pending deployment")
		return res, nil
	}
	pending := s.Deployments[0]
	snapName := pending.Dir() + EtcSnapSuffix
	b, err := s.root.ReadFile(snapName)
	if errors.Is(err, fs.ErrNotExist) {
		fmt.Fprintf(log, "finalize: %s has no /etc snapshot (not deployed by ocitree from the booted deployment); nothing to carry\n", pending.Dir())
		return res, nil
	}
	if err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	old, err := etcsnap.Parse(b)
	if err != nil {
		return nil, fmt.Errorf("finalize: %s: %w", snapName, err)
	}
	booted := s.Booted.Dir()
	if old.Source != path.Base(booted) {
		fmt.Fprintf(log, "finalize: %s was deployed from %s, not from the booted %s; nothing to carry\n", pending.Dir(), old.Source, booted)
		return res, nil
	}
	res.Pending = pending.Dir()
	cur, err := etcsnap.Take(s.abs(booted+"/etc"), old.Source)
	if err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	changed := etcsnap.Changed(old, cur)
	if len(changed) == 0 {
		fmt.Fprintf(log, "finalize: no /etc change since %s was deployed\n", pending.Dir())
		return res, nil
	}
	diff, err := etcmerge.Diff(s.abs(booted+"/usr/etc"), s.abs(booted+"/etc"))
	if err != nil {
		return nil, fmt.Errorf("finalize: %w", err)
	}
	kind := map[string]etcmerge.Change{}
	for _, c := range diff {
		kind[c.Path] = c
	}
	target := s.abs(pending.Dir() + "/etc")
	for _, p := range changed {
		c, local := kind[p]
		if !local {
			if covered(p, kind) {
				continue // inside a removed directory, or an added one (copied whole)
			}
			// The local change was undone: the pending deployment's
			// default comes back (or the path goes when it has none).
			back := etcmerge.Change{Kind: etcmerge.Modified, Path: p}
			if _, err := s.root.Lstat(pending.Dir() + "/usr/etc/" + p); errors.Is(err, fs.ErrNotExist) {
				back.Kind = etcmerge.Removed
			}
			if err := etcmerge.Apply(s.abs(pending.Dir()+"/usr/etc"), target, []etcmerge.Change{back}); err != nil {
				res.Skipped = append(res.Skipped, fmt.Sprintf("%s (back to the default): %v", p, err))
				fmt.Fprintf(log, "finalize: skipped /etc/%s (back to the default): %v\n", p, err)
				continue
			}
			res.Reverted = append(res.Reverted, p)
			fmt.Fprintf(log, "finalize: /etc/%s back to the default\n", p)
			continue
		}
		if err := etcmerge.Apply(s.abs(booted+"/etc"), target, []etcmerge.Change{c}); err != nil {
			res.Skipped = append(res.Skipped, fmt.Sprintf("%c %s: %v", byte(c.Kind), p, err))
			fmt.Fprintf(log, "finalize: skipped %c /etc/%s: %v\n", byte(c.Kind), p, err)
			continue
		}
		res.Carried = append(res.Carried, c)
		fmt.Fprintf(log, "finalize: carried %c /etc/%s\n", byte(c.Kind), p)
	}
	if b, err = cur.Marshal(); err == nil {
		err = writeFileMode(s.root, snapName, b, 0o600)
	}
	if err != nil {
		return res, fmt.Errorf("finalize: rewriting %s: %w", snapName, err)
	}
	return res, nil
}

// covered says whether an ancestor of p is a local change (a removed or
// added directory, which the change of the ancestor handles).
func covered(p string, changes map[string]etcmerge.Change) bool {
	for {
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return false
		}
		p = p[:i]
		if _, ok := changes[p]; ok {
			return true
		}
	}
}
