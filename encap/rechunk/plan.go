package rechunk

import (
	"fmt"
	"maps"
	"math"
	"path"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/encap/pkgdb"
	"github.com/ocitree/ocitree/ostree"
	"golang.org/x/sync/errgroup"
)

// Annotations and component names of the output (chunkah's, §3.2, §3.5).
const (
	// ComponentAnnotation lists a layer's component names, sorted and
	// joined by one space.
	ComponentAnnotation = "org.chunkah.component"
	// StabilityAnnotation is the probability that none of the layer's
	// components changes within a week, with three decimals.
	StabilityAnnotation = "org.chunkah.stability"
	// UnclaimedComponent holds what no package, xattr or big-file rule
	// claims; its layer also carries the root and the empty directories.
	UnclaimedComponent = "chunkah/unclaimed"
	// KernelComponent holds usr/lib/modules/*/{vmlinuz,initramfs.img}
	// (ocitree's extension: chunkah has no kernel rule).
	KernelComponent = "ocitree/kernel"
	// PackageDatabaseComponent holds the package manager's database (dpkg
	// status, rpmdb.sqlite), which changes with any package update.
	PackageDatabaseComponent = "ocitree/package-database"
	// BigFileSize is the size from which an unclaimed regular file becomes
	// a bigfiles/<name> component of its own.
	BigFileSize = 1 << 20
	// ComponentXattr and IntervalXattr are the xattrs a build sets to
	// claim a path (and what is below it) for a component, and to say how
	// often it changes.
	ComponentXattr = "user.component"
	IntervalXattr  = "user.update-interval"
	// stabilityDays is the period the stability is given for (chunkah's
	// STABILITY_PERIOD_DAYS).
	stabilityDays = 7
	// DefaultPrune is always pruned: the content of /sysroot (an ostree
	// repository has no place in a plain image).
	DefaultPrune = "/sysroot/"
)

// Layer is one planned layer of the output.
type Layer struct {
	// Components are the layer's component names, sorted.
	Components []string
	// Stability is the product of the components' stabilities.
	Stability float64
	// Objects are the content objects the layer carries (with every kept
	// path of each).
	Objects []ostree.Checksum
	// Dirs are directories written for themselves (output names, "" is the
	// root): the root and the directories with no file below them.
	Dirs []string
	// Size is the payload size of the objects.
	Size int64
}

// Annotation is the layer's org.chunkah.component value.
func (l *Layer) Annotation() string { return strings.Join(l.Components, " ") }

// StabilityString is the layer's org.chunkah.stability value.
func (l *Layer) StabilityString() string { return strconv.FormatFloat(l.Stability, 'f', 3, 64) }

// Plan is the layer assignment of a commit.
type Plan struct {
	Layers []Layer
	tree   *treeInfo
	objs   map[ostree.Checksum][]string // kept output names of each object
}

// PlanOptions control PlanLayers.
type PlanOptions struct {
	// MaxLayers bounds the layers (pack.DefaultMaxLayers when 0).
	MaxLayers int
	// Prior is the previous build's layout (see PriorBuild).
	Prior []pack.PriorLayer
	// Prune lists paths left out: "/p" drops p and what is below it,
	// "/p/" only what is below it. DefaultPrune is always added.
	Prune []string
	// Warn receives notes that do not stop the build.
	Warn func(string)
}

func (o *PlanOptions) warnf(format string, args ...any) {
	if o.Warn != nil {
		o.Warn(fmt.Sprintf(format, args...))
	}
}

// PlanLayers attributes the commit's files to components and packs them
// into layers. The output is a function of the commit and the options.
func PlanLayers(repo *ostree.Repo, commit ostree.Checksum, opts PlanOptions) (*Plan, error) {
	limit := opts.MaxLayers
	if limit == 0 {
		limit = pack.DefaultMaxLayers
	}
	if limit < pack.MinMaxLayers-1 {
		return nil, fmt.Errorf("at most %d layers requested; at least %d are needed", limit, pack.MinMaxLayers-1)
	}
	pr, err := newPruner(append([]string{DefaultPrune}, opts.Prune...))
	if err != nil {
		return nil, err
	}
	tree, err := walkTree(repo, commit, pr)
	if err != nil {
		return nil, err
	}
	all, err := ostree.CommitObjects(repo, commit)
	if err != nil {
		return nil, err
	}
	// Keep only the paths that are not pruned.
	plan := &Plan{tree: tree, objs: make(map[ostree.Checksum][]string, len(all))}
	var objs []ostree.ContentObject
	for _, o := range all {
		var kept []string
		var names []string
		for _, p := range o.Paths {
			n := outName(p)
			if pr.drop(n) {
				continue
			}
			kept = append(kept, p)
			names = append(names, n)
		}
		if len(kept) == 0 {
			continue
		}
		o.Paths = kept
		objs = append(objs, o)
		plan.objs[o.Checksum] = names
	}
	raw, err := pkgdb.Attribute(repo, commit, objs, pkgdb.AttributeOptions{Warn: opts.Warn})
	if err != nil {
		return nil, err
	}
	comps, rename, stab, err := chunkahComponents(repo, tree, objs, raw)
	if err != nil {
		return nil, err
	}
	prior := translatePrior(opts.Prior, rename)
	// pack counts a commit layer; a plain image has none.
	packed, err := pack.Pack(comps, limit+1, prior)
	if err != nil {
		return nil, err
	}
	for _, l := range packed {
		if len(l.Objects) == 0 {
			continue // pack's reserved layer: a plain image has no empty layers
		}
		pl := Layer{Components: l.Components, Objects: l.Objects, Size: l.Size, Stability: 1}
		for _, n := range l.Components {
			pl.Stability *= stab[n]
		}
		plan.Layers = append(plan.Layers, pl)
	}
	// The root and the directories without files go with the unclaimed
	// content (or, without any, into the last layer).
	dirs := append([]string{""}, tree.emptyDirs()...)
	home := -1
	for i, l := range plan.Layers {
		if slices.Contains(l.Components, UnclaimedComponent) {
			home = i
		}
	}
	if home < 0 {
		if len(plan.Layers) == 0 {
			plan.Layers = append(plan.Layers, Layer{Components: []string{UnclaimedComponent}})
		}
		home = len(plan.Layers) - 1
	}
	plan.Layers[home].Dirs = dirs
	// Most stable first, as chunkah orders them; ties keep pack's order.
	slices.SortStableFunc(plan.Layers, func(a, b Layer) int {
		switch {
		case a.Stability > b.Stability:
			return -1
		case a.Stability < b.Stability:
			return 1
		}
		return 0
	})
	if n := len(plan.Layers); n > 500 {
		opts.warnf("%d layers: container storage handles at most 500", n)
	}
	return plan, nil
}

// translatePrior maps the component names of a previous build made by
// encapsulate (ostree.components: pkgdb's names) to this package's names,
// so that an ostree image's layout can seed a plain image's.
func translatePrior(prior []pack.PriorLayer, rename map[string]string) []pack.PriorLayer {
	out := make([]pack.PriorLayer, len(prior))
	for i, pl := range prior {
		seen := map[string]bool{}
		for _, n := range pl.Components {
			if r, ok := rename[n]; ok {
				n = r
			}
			if !seen[n] {
				seen[n] = true
				out[i].Components = append(out[i].Components, n)
			}
		}
	}
	return out
}

// chunkahName is the output name of a component of pkgdb.Attribute.
func chunkahName(c *pack.Component) string {
	switch c.Name {
	case pkgdb.KernelComponent:
		return KernelComponent
	case pkgdb.UnpackagedComponent:
		return UnclaimedComponent
	case pkgdb.PackageDatabaseComponent:
		return PackageDatabaseComponent
	}
	if strings.HasPrefix(c.Name, "/") {
		return "dir" + c.Name // no package database: directory groups
	}
	if srpm, ok := strings.CutSuffix(c.SrcID, ".src.rpm"); ok {
		// name-version-release.src.rpm
		parts := strings.Split(srpm, "-")
		if len(parts) >= 3 {
			return "rpm/" + strings.Join(parts[:len(parts)-2], "-")
		}
		return "rpm/" + c.Name
	}
	// dpkg: SrcID is source_sourceversion.
	if src, _, ok := strings.Cut(c.SrcID, "_"); ok && src != "" {
		return "deb/" + src
	}
	return "deb/" + c.Name
}

// cleanName keeps a component name usable in both annotations: no space
// (org.chunkah.component's separator) and no comma (ostree.components').
func cleanName(n string) string {
	return strings.Map(func(r rune) rune {
		if r == ',' || r == ' ' || r == '\t' || r == '\n' {
			return '_'
		}
		return r
	}, n)
}

// stability is chunkah's weekly stability for a change frequency (changes
// in a year): exp(-7·f/365), 0.99 without changes, 0 for content that
// changes with every build.
func stability(freq uint32) float64 {
	switch freq {
	case pack.MaxFrequency:
		return 0
	case 0:
		return 0.99
	}
	return math.Exp(-stabilityDays * float64(freq) / 365)
}

// chunkahComponents renames pkgdb's components, merges those that share a
// name (the binary packages of one source), then applies the user.component
// xattrs (strongest claim) and splits big unclaimed files out. It returns
// the components for pack, the rename map and each name's stability.
func chunkahComponents(repo *ostree.Repo, tree *treeInfo, objs []ostree.ContentObject, raw []pack.Component) ([]pack.Component, map[string]string, map[string]float64, error) {
	type agg struct {
		freq      uint32
		exclusive bool
		stability float64
	}
	owner := make(map[ostree.Checksum]string, len(objs))
	info := map[string]*agg{}
	rename := map[string]string{}
	for i := range raw {
		c := &raw[i]
		n := cleanName(chunkahName(c))
		rename[c.Name] = n
		a := info[n]
		if a == nil {
			a = &agg{}
			info[n] = a
		}
		a.freq = max(a.freq, c.ChangeFrequency)
		// The package database gets a layer of its own too: it changes with
		// every package update, and merged with other always-changing
		// content (big unclaimed files, which pack may join at no cost) it
		// would drag that into every update.
		a.exclusive = a.exclusive || c.Exclusive || n == PackageDatabaseComponent
		for _, o := range c.Objects {
			owner[o] = n
		}
	}
	for _, a := range info {
		a.stability = stability(a.freq)
	}

	// user.component, nearest wins: the file's own xattrs, else its
	// directory's (inherited).
	claims, err := xattrClaims(repo, tree, objs)
	if err != nil {
		return nil, nil, nil, err
	}
	intervals := map[string]float64{}
	for _, c := range slices.SortedFunc(maps.Keys(claims), ostree.CompareChecksum) {
		cl := claims[c]
		n := cleanName("xattr/" + cl.component)
		owner[c] = n
		if info[n] == nil {
			info[n] = &agg{}
		}
		if cl.interval != 0 {
			if d, ok := intervals[n]; ok && d != cl.interval {
				return nil, nil, nil, fmt.Errorf("component %s: conflicting %s values (%g and %g days)", n, IntervalXattr, d, cl.interval)
			}
			intervals[n] = cl.interval
		}
	}
	for n, a := range info {
		if !strings.HasPrefix(n, "xattr/") {
			continue
		}
		days := intervals[n]
		if days == 0 {
			days = 7 // weekly, chunkah's default
		}
		a.freq = uint32(math.Ceil(365 / days))
		a.stability = math.Exp(-stabilityDays / days)
	}

	// Big unclaimed files: bigfiles/<basename>, the path when the basename
	// repeats.
	byBase := map[string]int{}
	var big []ostree.ContentObject
	for _, o := range objs {
		if owner[o.Checksum] == UnclaimedComponent && o.Size >= BigFileSize {
			big = append(big, o)
			byBase[path.Base(o.Paths[0])]++
		}
	}
	for _, o := range big {
		n := path.Base(o.Paths[0])
		if byBase[n] > 1 {
			n = strings.TrimPrefix(o.Paths[0], "/")
		}
		n = cleanName("bigfiles/" + n)
		owner[o.Checksum] = n
		if info[n] == nil {
			info[n] = &agg{freq: pack.MaxFrequency}
		}
	}

	byName := map[string]*pack.Component{}
	for _, o := range objs {
		n := owner[o.Checksum]
		if n == "" {
			n = UnclaimedComponent
			if info[n] == nil {
				info[n] = &agg{freq: pack.MaxFrequency}
			}
		}
		c := byName[n]
		if c == nil {
			a := info[n]
			c = &pack.Component{Name: n, ChangeFrequency: a.freq, Exclusive: a.exclusive}
			if a.freq == pack.MaxFrequency {
				c.ChangeTimeOffset = pack.MaxFrequency
			}
			byName[n] = c
		}
		c.Objects = append(c.Objects, o.Checksum)
		c.Size += o.Size
	}
	stab := make(map[string]float64, len(byName))
	var out []pack.Component
	for _, n := range slices.Sorted(maps.Keys(byName)) {
		c := byName[n]
		ostree.SortChecksums(c.Objects)
		out = append(out, *c)
		stab[n] = info[n].stability
	}
	return out, rename, stab, nil
}

// xattrClaim is a user.component claim on a content object.
type xattrClaim struct {
	component string
	interval  float64 // days; 0 when not set
}

// parseInterval reads user.update-interval: days, or a named period.
func parseInterval(v string) (float64, error) {
	named := map[string]float64{"daily": 1, "weekly": 7, "biweekly": 14, "monthly": 30, "quarterly": 90, "yearly": 365}
	if d, ok := named[v]; ok {
		return d, nil
	}
	d, err := strconv.ParseFloat(v, 64)
	if err != nil || d <= 0 || math.IsInf(d, 0) || math.IsNaN(d) {
		return 0, fmt.Errorf("%s %q: want a number of days or daily, weekly, biweekly, monthly, quarterly, yearly", IntervalXattr, v)
	}
	return d, nil
}

// xattrClaims finds the content objects claimed by a user.component xattr,
// on the file itself or inherited from its nearest directory that has one.
// An object at several paths takes the claim of its first path.
func xattrClaims(repo *ostree.Repo, tree *treeInfo, objs []ostree.ContentObject) (map[ostree.Checksum]xattrClaim, error) {
	out := map[ostree.Checksum]xattrClaim{}
	var mu sync.Mutex
	g := errgroup.Group{}
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, o := range objs {
		g.Go(func() error {
			ct, err := repo.OpenContent(o.Checksum)
			if err != nil {
				return fmt.Errorf("%s: %w", o.Paths[0], err)
			}
			ct.Payload.Close()
			cl, ok, err := claimOf(ct.Meta.Xattrs)
			if err != nil {
				return fmt.Errorf("%s: %w", o.Paths[0], err)
			}
			if !ok {
				cl, ok = tree.dirClaim[path.Dir(outName(o.Paths[0]))]
			}
			if ok {
				mu.Lock()
				out[o.Checksum] = cl
				mu.Unlock()
			}
			return nil
		})
	}
	return out, g.Wait()
}

// claimOf reads user.component and user.update-interval from xattrs.
func claimOf(xs []ostree.Xattr) (xattrClaim, bool, error) {
	var cl xattrClaim
	var ok bool
	for _, x := range xs {
		switch x.Name {
		case ComponentXattr:
			cl.component, ok = strings.TrimRight(string(x.Value), "\x00"), true
		case IntervalXattr:
			d, err := parseInterval(strings.TrimRight(string(x.Value), "\x00"))
			if err != nil {
				return cl, false, err
			}
			cl.interval = d
		}
	}
	if ok && cl.component == "" {
		ok = false
	}
	return cl, ok, nil
}
