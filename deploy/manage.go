package deploy

import (
	"fmt"

	"github.com/ocitree/ocitree/boot"
	"github.com/ocitree/ocitree/ostree"
)

// deploymentAt returns deployment index i or an error naming the range.
func (s *Sysroot) deploymentAt(i int) (*Deployment, error) {
	if i < 0 || i >= len(s.Deployments) {
		return nil, fmt.Errorf("no deployment %d: %s has %d (0 to %d; see ocitree status)", i, s.Path, len(s.Deployments), len(s.Deployments)-1)
	}
	return s.Deployments[i], nil
}

// Pin sets or clears [libostree-transient] pinned=true in the origin of
// deployment i, as ostree admin pin does: a pinned deployment survives
// switch and upgrade. The boot entries do not change.
func (s *Sysroot) Pin(i int, pin bool) error {
	if err := s.Lock(); err != nil {
		return err
	}
	d, err := s.deploymentAt(i)
	if err != nil {
		return err
	}
	if d.Pinned() == pin {
		return nil
	}
	origin := d.Origin
	if origin == nil {
		origin, _ = ostree.ParseKeyFile("")
	}
	if pin {
		origin.Set("libostree-transient", "pinned", "true")
	} else {
		origin.RemoveGroup("libostree-transient")
	}
	if err := writeFile(s.root, d.Dir()+".origin", []byte(origin.String())); err != nil {
		return fmt.Errorf("pin: writing %s.origin: %w", d.Dir(), err)
	}
	if err := fpOriginWritten.Hit(); err != nil {
		return err
	}
	if err := bumpMtime(s.root); err != nil {
		return err
	}
	return s.load()
}

// Undeploy removes deployment i from the list (never the booted one) and
// cleans up after it, as ostree admin undeploy does; a pin does not
// protect it.
func (s *Sysroot) Undeploy(i int) error {
	if err := s.Lock(); err != nil {
		return err
	}
	d, err := s.deploymentAt(i)
	if err != nil {
		return err
	}
	if d == s.Booted {
		return fmt.Errorf("deployment %d is the booted one; it cannot be removed", i)
	}
	if len(s.Deployments) == 1 {
		return fmt.Errorf("deployment %d is the only one; a sysroot without deployments does not boot", i)
	}
	var list []*Deployment
	for _, x := range s.Deployments {
		if x != d {
			list = append(list, x)
		}
	}
	return s.WriteDeployments(list)
}

// KargsEdit is a change of kernel arguments.
type KargsEdit struct {
	Append, Delete, Replace []string
}

// SetKargs changes the kernel arguments of deployment i (its BLS options)
// with a full boot version swap, as ostree admin instutil set-kargs
// (ostree_sysroot_deployment_set_kargs) does: no new deployment is made.
// It returns the new options.
func (s *Sysroot) SetKargs(i int, e KargsEdit) (string, error) {
	if err := s.Lock(); err != nil {
		return "", err
	}
	d, err := s.deploymentAt(i)
	if err != nil {
		return "", err
	}
	ka := boot.ParseKargs(d.Options)
	for _, k := range e.Replace {
		ka.Replace(k)
	}
	for _, k := range e.Delete {
		if !ka.Delete(k) {
			return "", fmt.Errorf("kernel argument %s is not set on deployment %d (%s)", k, i, ka.WithoutKey("ostree").String())
		}
	}
	for _, k := range e.Append {
		ka.Append(k)
	}
	nd := *d
	nd.Options = ka.String()
	list := append([]*Deployment(nil), s.Deployments...)
	list[i] = &nd
	if err := s.WriteDeployments(list); err != nil {
		return "", err
	}
	return s.Deployments[i].Options, nil
}

// FullCleanup is `ostree admin cleanup` plus the image store: Cleanup, then
// images no deployment uses and their layer refs, then a prune.
func (s *Sysroot) FullCleanup() (*ostree.PruneResult, []string, error) {
	if err := s.Lock(); err != nil {
		return nil, nil, err
	}
	if err := s.Cleanup(); err != nil {
		return nil, nil, err
	}
	keep, err := s.keepCommits()
	if err != nil {
		return nil, nil, err
	}
	removed, err := PruneImages(s.Repo, keep)
	if err != nil {
		return nil, removed, err
	}
	res, err := s.PruneRepo()
	return res, removed, err
}
