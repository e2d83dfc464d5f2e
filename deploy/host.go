package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"

	"github.com/ocitree/ocitree/boot"
	"github.com/ocitree/ocitree/deploy/etcmerge"
	"github.com/ocitree/ocitree/ostree"
)

// DefaultStateroot is the stateroot install uses unless told otherwise.
const DefaultStateroot = "default"

// InstallOptions control Install.
type InstallOptions struct {
	// Stateroot is the stateroot to create (DefaultStateroot when empty).
	Stateroot string
	// Kargs are appended after the image's kargs.d arguments.
	Kargs []string
	// Bootloader boot.BootloaderGrub2 also writes grub.cfg (and the
	// boot/grub2/grub.cfg link that later commands detect).
	Bootloader boot.Bootloader
	// Log receives progress lines (nil: none).
	Log   io.Writer
	Fetch FetchOptions
}

// Install creates a sysroot at dir (or completes an empty one), pulls
// imgref into its repository and deploys it as the only deployment, with
// the image's kargs.d arguments followed by opts.Kargs. The image is
// checked (kernel, /etc, kargs.d) before anything is written to boot/ or
// ostree/deploy/.
func Install(ctx context.Context, dir, imgref string, opts InstallOptions) (*Deployment, error) {
	sr := opts.Stateroot
	if sr == "" {
		sr = DefaultStateroot
	}
	if err := validStateroot(sr); err != nil {
		return nil, err
	}
	if _, err := ParseImageRef(imgref); err != nil {
		return nil, err
	}
	if err := InitFS(dir); err != nil {
		return nil, err
	}
	s, err := Open(dir)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	if err := s.Lock(); err != nil {
		return nil, err
	}
	for _, d := range s.Deployments {
		if d.Stateroot == sr {
			return nil, fmt.Errorf("%s already has deployments of stateroot %s; use `ocitree switch --sysroot %s IMGREF` to change the image", dir, sr, dir)
		}
	}
	logf(opts.Log, "pulling %s into %s/ostree/repo", imgref, dir)
	img, err := PullImage(ctx, s.Repo, imgref, false, opts.Fetch)
	if err != nil {
		return nil, err
	}
	logWarnings(opts.Log, img.Warnings)
	info := img.Info
	kargs := append(append([]string(nil), info.KargsD...), opts.Kargs...)
	options := boot.ParseKargs("")
	for _, k := range kargs {
		options.Append(k)
	}
	opt := options.String()
	if err := InitStateroot(dir, sr); err != nil {
		return nil, err
	}
	if opts.Bootloader == boot.BootloaderGrub2 {
		if err := boot.EnsureGrubLink(s.root); err != nil {
			return nil, err
		}
	}
	if err := s.load(); err != nil {
		return nil, err
	}
	logf(opts.Log, "deploying %s (%s)", img.Commit, info.Version)
	nd, _, err := s.Deploy(DeployOptions{Stateroot: sr, Info: info, Origin: newOrigin(img.Origin), Kargs: &opt})
	if err != nil {
		return nil, err
	}
	if err := s.WriteDeployments(s.SimpleList(nd, nil, false)); err != nil {
		return nil, err
	}
	return s.find(nd), nil
}

func newOrigin(imgref string) *ostree.KeyFile {
	kf, _ := ostree.ParseKeyFile("")
	kf.Set("origin", "container-image-reference", imgref)
	return kf
}

func logWarnings(w io.Writer, warnings []string) {
	for _, m := range warnings {
		logf(w, "warning: %s", m)
	}
}

func logf(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format+"\n", args...)
	}
}

// find returns the loaded deployment equal to d (same directory).
func (s *Sysroot) find(d *Deployment) *Deployment {
	for _, x := range s.Deployments {
		if x.Dir() == d.Dir() {
			return x
		}
	}
	return d
}

// UpdateOptions control Switch and Upgrade.
type UpdateOptions struct {
	// Retain keeps every current deployment.
	Retain bool
	Log    io.Writer
	Fetch  FetchOptions
}

// UpdateResult says what Switch or Upgrade did.
type UpdateResult struct {
	// Deployment is the new deployment (nil when there was no update).
	Deployment *Deployment
	Image      *PulledImage
	// EtcChanges are the local /etc changes carried over.
	EtcChanges []etcmerge.Change
}

// Switch pulls imgref and deploys it as the new default deployment of the
// merge deployment's stateroot, carrying /etc changes and kernel arguments
// (bootc's kargs.d difference rule) over; the origin now tracks imgref.
func (s *Sysroot) Switch(ctx context.Context, imgref string, opts UpdateOptions) (*UpdateResult, error) {
	if err := s.Lock(); err != nil {
		return nil, err
	}
	merge := s.defaultMerge()
	if merge == nil {
		return nil, fmt.Errorf("%s has no deployment to switch from; use `ocitree install`", s.Path)
	}
	return s.update(ctx, merge, imgref, opts)
}

// defaultMerge is the booted deployment, else the first of the list.
func (s *Sysroot) defaultMerge() *Deployment {
	if s.Booted != nil {
		return s.Booted
	}
	if len(s.Deployments) == 0 {
		return nil
	}
	return s.MergeDeployment(s.Deployments[0].Stateroot)
}

// Upgrade pulls the image the merge deployment's origin tracks and deploys
// it when its merge commit differs from the deployed one. Result's
// Deployment is nil when there is no update.
func (s *Sysroot) Upgrade(ctx context.Context, opts UpdateOptions) (*UpdateResult, error) {
	if err := s.Lock(); err != nil {
		return nil, err
	}
	merge := s.defaultMerge()
	if merge == nil {
		return nil, fmt.Errorf("%s has no deployment to upgrade; use `ocitree install`", s.Path)
	}
	imgref := merge.ImageRef()
	if imgref == "" {
		return nil, fmt.Errorf("deployment %s has no container-image-reference in its origin; use `ocitree switch IMGREF` once", merge.Dir())
	}
	return s.update(ctx, merge, imgref, opts)
}

// CheckUpdate fetches only the manifest and config of the image the merge
// deployment tracks and reports what an upgrade would bring: version,
// digest, bytes to download and the packages whose layers change.
func (s *Sysroot) CheckUpdate(ctx context.Context, fo FetchOptions) (*UpdateCheck, error) {
	merge := s.defaultMerge()
	if merge == nil || merge.ImageRef() == "" {
		return nil, fmt.Errorf("%s has no deployment tracking an image; use `ocitree install` or `ocitree switch`", s.Path)
	}
	return CheckImageUpdate(ctx, s.Repo, merge.ImageRef(), merge.Checksum, fo)
}

func (s *Sysroot) update(ctx context.Context, merge *Deployment, imgref string, opts UpdateOptions) (*UpdateResult, error) {
	logf(opts.Log, "pulling %s", imgref)
	img, err := PullImage(ctx, s.Repo, imgref, false, opts.Fetch)
	if err != nil {
		return nil, err
	}
	logWarnings(opts.Log, img.Warnings)
	return s.deployPulled(merge, imgref, img, opts)
}

// deployPulled deploys the pulled image img (of imgref) over merge (kernel
// arguments and /etc carried), writes the list and prunes.
func (s *Sysroot) deployPulled(merge *Deployment, imgref string, img *PulledImage, opts UpdateOptions) (*UpdateResult, error) {
	res := &UpdateResult{Image: img}
	if img.Commit == merge.Checksum && merge.ImageRef() == img.Origin {
		// No update; but a run killed after its boot/loader swap left
		// its cleanup undone (unlisted deployment and kernel
		// directories, stale deployment refs, unused images and
		// objects): finish it, as the run would have.
		if err := s.Cleanup(); err != nil {
			return nil, err
		}
		if err := s.pruneAll(); err != nil {
			return nil, err
		}
		return res, nil
	}
	info := img.Info // set by PullImage, or by UpgradeFromDownloaded
	kargs, err := s.carryKargs(merge, info)
	if err != nil {
		return nil, err
	}
	logf(opts.Log, "deploying %s (%s)", img.Commit, info.Version)
	nd, changes, err := s.Deploy(DeployOptions{Stateroot: merge.Stateroot, Info: info, Origin: newOrigin(img.Origin), Kargs: kargs, Merge: merge})
	if err != nil {
		return nil, err
	}
	if err := fpDeployed.Hit(); err != nil {
		return nil, err
	}
	if err := s.WriteDeployments(s.SimpleList(nd, merge, opts.Retain)); err != nil {
		return nil, err
	}
	if err := s.pruneAll(); err != nil {
		return nil, err
	}
	res.Deployment, res.EtcChanges = s.find(nd), changes
	return res, nil
}

// carryKargs applies bootc's rule: kargs.d arguments the merge deployment
// had and the new image lacks are removed from the merge deployment's
// options, those the new image adds are appended. nil means no change
// (inherit the options verbatim). Unlike bootc (which then appends the old
// kargs.d arguments again), a new image without kargs.d removes them all.
func (s *Sysroot) carryKargs(merge *Deployment, info *CommitInfo) (*string, error) {
	mr, err := s.root.OpenRoot(merge.Dir())
	if err != nil {
		return nil, err
	}
	existing, _, err := boot.ReadKargsD(mr.FS())
	mr.Close()
	if err != nil {
		return nil, fmt.Errorf("merge deployment %s: %w", merge.Dir(), err)
	}
	var added, removed []string
	for _, k := range info.KargsD {
		if !slices.Contains(existing, k) {
			added = append(added, k)
		}
	}
	for _, k := range existing {
		if !slices.Contains(info.KargsD, k) {
			removed = append(removed, k)
		}
	}
	if len(added) == 0 && len(removed) == 0 {
		return nil, nil
	}
	var out []string
	for _, k := range boot.SplitKargs(merge.Options) {
		if !slices.Contains(removed, k) {
			out = append(out, k)
		}
	}
	ka := boot.ParseKargs("")
	for _, k := range append(out, added...) {
		ka.Append(k)
	}
	o := ka.String()
	return &o, nil
}

// pruneAll drops images no deployment uses, their layer refs, and the
// objects nothing reaches any more.
func (s *Sysroot) pruneAll() error {
	keep, err := s.keepCommits()
	if err != nil {
		return err
	}
	if err := fpPruneBeforeImages.Hit(); err != nil {
		return err
	}
	if _, err := PruneImages(s.Repo, keep); err != nil {
		return fmt.Errorf("image cleanup: %w", err)
	}
	if _, err := s.PruneRepo(); err != nil {
		return fmt.Errorf("prune: %w", err)
	}
	return nil
}

// Rollback makes the rollback deployment the default: the list becomes
// [rollback, booted] + the others (bootc's rule). On a sysroot that is not
// booted, deployments 0 and 1 swap. Running it twice undoes it.
func (s *Sysroot) Rollback() error {
	if err := s.Lock(); err != nil {
		return err
	}
	if len(s.Deployments) < 2 {
		return errors.New("no rollback deployment: there is only one deployment")
	}
	first, second := s.Deployments[0], s.Deployments[1]
	if s.Booted != nil {
		var rb *Deployment
		for _, d := range s.Deployments { // the first after the booted one
			if d.Index > s.Booted.Index && d.Stateroot == s.Booted.Stateroot && rb == nil {
				rb = d
			}
		}
		for _, d := range s.Deployments { // else the one before it (a queued rollback)
			if d.Index < s.Booted.Index && d.Stateroot == s.Booted.Stateroot && rb == nil {
				rb = d
			}
		}
		if rb == nil {
			return errors.New("no rollback deployment for the booted stateroot")
		}
		if rb.Index < s.Booted.Index {
			first, second = s.Booted, rb // undo a queued rollback
		} else {
			first, second = rb, s.Booted
		}
	} else {
		first, second = second, first
	}
	list := []*Deployment{first, second}
	for _, d := range s.Deployments {
		if d != first && d != second {
			list = append(list, d)
		}
	}
	return s.WriteDeployments(list)
}

// ConfigDiff lists the local /etc changes of the merge deployment (what a
// switch or upgrade would carry).
func (s *Sysroot) ConfigDiff() ([]etcmerge.Change, error) {
	d := s.defaultMerge()
	if d == nil {
		return nil, fmt.Errorf("%s has no deployment", s.Path)
	}
	ch, err := etcmerge.Diff(s.abs(d.Dir()+"/usr/etc"), s.abs(d.Dir()+"/etc"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	return ch, err
}
