package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"

	"github.com/ocitree/ocitree/boot"
	"github.com/ocitree/ocitree/ostree"
)

// SimpleList is the list `ostree admin deploy` writes for a new deployment
// nd of a stateroot (ostree_sysroot_simple_write_deployment without
// flags): nd first, then, in their order, the current deployments that are
// pinned, of another stateroot, booted, or the merge deployment. With
// retain every current deployment is kept.
func (s *Sysroot) SimpleList(nd, merge *Deployment, retain bool) []*Deployment {
	list := []*Deployment{nd}
	for _, d := range s.Deployments {
		if retain || d.Pinned() || d.Stateroot != nd.Stateroot || d == s.Booted || d == merge {
			list = append(list, d)
		}
	}
	return list
}

// WriteDeployments makes list (index 0 boots by default) the sysroot's
// deployment list (spec §5): boot entries and bootlinks through package
// boot, with the boot/loader swap as the commit point; then the mtime bump
// and the cleanup of §7.2 (other boot version, deployments and boot
// directories no longer listed, deployment refs). The booted deployment
// must be in list. The sysroot must be locked; it is reloaded.
func (s *Sysroot) WriteDeployments(list []*Deployment) error {
	if s.lockFd < 0 {
		return errors.New("write deployments: the sysroot is not locked")
	}
	if s.Booted != nil {
		found := false
		for _, d := range list {
			found = found || d == s.Booted
		}
		if !found {
			return fmt.Errorf("refusing to remove the booted deployment %s", s.Booted.Dir())
		}
	}
	same := len(list) == len(s.Deployments)
	for i := range list {
		same = same && list[i] == s.Deployments[i]
	}
	if same {
		return nil
	}
	cur, err := s.bootList(s.Deployments)
	if err != nil {
		return err
	}
	nl, err := s.bootList(list)
	if err != nil {
		return err
	}
	st, err := boot.Write(s.root, s.State, cur, nl, boot.DetectBootloader(s.root))
	if err != nil && st != s.State {
		// boot.Write failed after its commit point (the boot/loader or
		// ostree/boot.N swap): the new list boots, only the sync after
		// it and the cleanup are missing.
		return fmt.Errorf("the new boot configuration is in place (it boots next), but finishing it failed: %w; run `ocitree cleanup --sysroot %s` to complete the cleanup", err, s.Path)
	}
	if err != nil {
		return fmt.Errorf("writing the boot configuration: %w; the previous one is still in place", err)
	}
	s.State = st
	if err := fpBootWritten.Hit(); err != nil {
		return err
	}
	if err := bumpMtime(s.root); err != nil {
		return err
	}
	if err := s.load(); err != nil {
		return err
	}
	return s.Cleanup()
}

func (s *Sysroot) bootList(list []*Deployment) ([]*boot.Deployment, error) {
	var out []*boot.Deployment
	for _, d := range list {
		k, name, err := s.kernelOf(d)
		if err != nil {
			return nil, err
		}
		out = append(out, &boot.Deployment{Stateroot: d.Stateroot, Checksum: d.Checksum.String(), Serial: d.Serial,
			Kernel: k, OSName: name, Version: d.Version, Options: d.Options})
	}
	return out, nil
}

// Cleanup is libostree's prepare-cleanup (spec §7.2 steps 1–4): it removes
// the other boot version's files, every deployment directory (and origin)
// of ostree/deploy/*/deploy not in the list, boot/ostree directories whose
// boot checksum no deployment uses, and rewrites the deployment refs
// ostree/$BV/$SBV/$i. Objects are not pruned (PruneRepo does that).
func (s *Sysroot) Cleanup() error {
	if err := boot.CleanOtherBootversions(s.root, s.State); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	if err := fpCleanupBootversions.Hit(); err != nil {
		return err
	}
	live := map[string]bool{}
	keepBC := map[string]bool{}
	for _, d := range s.Deployments {
		live[d.Dir()] = true
		keepBC[d.BootChecksum] = true
	}
	srs, err := readDirNames(s, "ostree/deploy")
	if err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	for _, sr := range srs {
		base := "ostree/deploy/" + sr + "/deploy"
		names, err := readDirNames(s, base)
		if err != nil {
			return fmt.Errorf("cleanup: %w", err)
		}
		for _, n := range names {
			p := base + "/" + n
			if strings.HasPrefix(n, ".") && (strings.Contains(n, ".ocitree-checkout-") || strings.HasSuffix(n, ".origin.tmp") || strings.HasSuffix(n, EtcSnapSuffix+".tmp")) {
				// An interrupted checkout's temp dir (libostree's cleanup
				// fails on a directory name it cannot parse) or origin
				// write's temp file.
				if err := s.root.RemoveAll(p); err != nil {
					return fmt.Errorf("cleanup: removing %s: %w", p, err)
				}
				continue
			}
			if dep, ok := strings.CutSuffix(p, EtcSnapSuffix); ok {
				// An etc snapshot whose deployment is gone (undeployed by
				// libostree, which leaves it).
				if _, err := s.root.Lstat(dep); errors.Is(err, fs.ErrNotExist) {
					// Gone already when this loop removed its deployment.
					if err := s.root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
						return fmt.Errorf("cleanup: %w", err)
					}
				}
				continue
			}
			fi, err := s.root.Lstat(p)
			if err != nil || !fi.IsDir() || live[p] {
				continue
			}
			if s.Booted != nil && p == s.Booted.Dir() {
				continue
			}
			if _, _, err := parseDeployName(n); err != nil {
				continue // not ours to judge (e.g. an interrupted checkout's temp dir)
			}
			setImmutable(s.root, p, false)
			for _, ext := range []string{".origin", EtcSnapSuffix} {
				if err := s.root.Remove(p + ext); err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("cleanup: %w", err)
				}
			}
			if err := fpCleanupOriginRemoved.Hit(); err != nil {
				return err
			}
			if err := s.root.RemoveAll(p); err != nil {
				return fmt.Errorf("cleanup: removing %s: %w", p, err)
			}
		}
	}
	if err := boot.CleanBootDirs(s.root, keepBC); err != nil {
		return fmt.Errorf("cleanup: %w", err)
	}
	if err := fpCleanupBeforeRefs.Hit(); err != nil {
		return err
	}
	return s.writeDeploymentRefs()
}

var deployRefRE = regexp.MustCompile(`^ostree/[01]/[01]/[0-9]+$`)

// writeDeploymentRefs deletes every ostree/B/S/I ref and sets
// ostree/$BV/$SBV/$i for each deployment, in one transaction.
func (s *Sysroot) writeDeploymentRefs() error {
	refs, err := s.Repo.ListRefs()
	if err != nil {
		return fmt.Errorf("deployment refs: %w", err)
	}
	txn, err := s.Repo.Begin()
	if err != nil {
		return fmt.Errorf("deployment refs: %w", err)
	}
	defer txn.Abort()
	want := map[string]ostree.Checksum{}
	for i, d := range s.Deployments {
		want[fmt.Sprintf("ostree/%d/%d/%d", s.State.Bootversion, s.State.Subbootversion, i)] = d.Checksum
	}
	for _, r := range refs {
		if _, ok := want[r.Name]; !ok && deployRefRE.MatchString(r.Name) {
			if err := txn.SetRef(r.Name, nil); err != nil {
				return err
			}
		}
	}
	for name, c := range want {
		c := c
		if err := txn.SetRef(name, &c); err != nil {
			return err
		}
	}
	if err := txn.Commit(); err != nil {
		return fmt.Errorf("deployment refs: %w", err)
	}
	return nil
}

func readDirNames(s *Sysroot, dir string) ([]string, error) {
	f, err := s.root.Open(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.Readdirnames(-1)
}

// PruneRepo deletes the objects of the sysroot repository that no ref
// reaches (deployment refs, image refs and layer refs included).
func (s *Sysroot) PruneRepo() (*ostree.PruneResult, error) {
	if err := fpPruneBeforeObjects.Hit(); err != nil {
		return nil, err
	}
	return s.Repo.Prune(ostree.PruneOptions{RefsOnly: true})
}
