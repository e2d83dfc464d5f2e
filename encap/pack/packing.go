package pack

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/ocitree/ocitree/ostree"
)

// Layer counts and names.
const (
	// DefaultMaxLayers is the default limit on the image's layers, the
	// commit layer included (ostree-ext's MAX_CHUNKS, half of the 128 that
	// older container runtimes manage).
	DefaultMaxLayers = 64
	// MinMaxLayers is the smallest accepted limit: the commit layer plus
	// three component layers.
	MinMaxLayers = 4
	// ComponentsAnnotation is the layer annotation listing a component
	// layer's component names (spec §4.2).
	ComponentsAnnotation = "ostree.components"
	// ComponentSeparator joins names in ComponentsAnnotation.
	ComponentSeparator = ","
	// ReservedLayerName is the history name of the empty layer kept for
	// packages a later build adds (§4.4).
	ReservedLayerName = "Reserved for new packages"
)

// Layer is one component layer: the content objects it carries and the
// components they come from.
type Layer struct {
	// Name is the layer's history created_by, named as ostree-ext names
	// chunks (§4.4): ReservedLayerName for an empty layer, the identifier of
	// a single component, up to five identifiers joined by " and ", else
	// "N components".
	Name string
	// Components are the names of the layer's components, sorted, without
	// duplicates; Annotation joins them.
	Components []string
	// Objects are the layer's content objects, sorted by checksum.
	Objects []ostree.Checksum
	// Size is the sum of the components' sizes.
	Size int64
}

// Annotation is the value of the layer's ComponentsAnnotation: component
// names sorted and joined by ",", "" for the reserved layer.
func (l *Layer) Annotation() string { return strings.Join(l.Components, ComponentSeparator) }

// PriorLayer is one component layer of a previous build of the same image:
// the names in its ComponentsAnnotation.
type PriorLayer struct {
	Components []string
}

// ParseComponents splits a ComponentsAnnotation value into names, dropping
// empty ones ("" is the reserved layer).
func ParseComponents(annotation string) []string {
	var out []string
	for n := range strings.SplitSeq(annotation, ComponentSeparator) {
		if n != "" {
			out = append(out, n)
		}
	}
	return out
}

// PriorLayers turns the ComponentsAnnotation values of a previous image's
// component layers (manifest layers after the first, up to the one whose
// diff_id is ostree.final-diffid) into Pack's prior argument.
func PriorLayers(annotations []string) []PriorLayer {
	out := make([]PriorLayer, len(annotations))
	for i, a := range annotations {
		out[i].Components = ParseComponents(a)
	}
	return out
}

// The cost model Pack minimizes: the bytes a client re-downloads per update.
// A layer must be fetched again when any of its components changed, so a
// layer of size S whose components stay unchanged with probabilities q_i
// costs S*(1-prod q_i). A component's chance to change between two updates
// d days apart comes from its ChangeFrequency f (changes in a year): with
// r = (f + baselineChanges) * d / 365, p = r/(1+r), a rational stand-in for
// 1-exp(-r) so that every platform computes the same bits (math.Exp may use
// FMA on some CPUs). MaxFrequency means p = 1. The baseline keeps components
// without change data (f = 0) from counting as frozen.
//
// Pack plans for an update every updateIntervalDays days. On the Fedora
// CoreOS fixture that choice gives a lower expected re-download than
// ostree-ext's basic_packing for every interval from 1 to 30 days (see
// TestPackFedoraCoreOS); longer planning intervals win a little at 14-30
// days and lose at 1 day.
const (
	updateIntervalDays = 3.0
	baselineChanges    = 1.0
	// groupSizeCap bounds a merged layer to this many times the average
	// layer size, as long as the layer budget allows it; a single component
	// is never split, so the largest package still sets the largest layer.
	groupSizeCap = 3.0
)

// unchangedProbability is q = 1-p for a change frequency and an update
// interval in days.
func unchangedProbability(freq uint32, days float64) float64 {
	if freq == MaxFrequency {
		return 0
	}
	r := float64(float64(freq)+baselineChanges) * (days / 365)
	return 1 / (1 + r)
}

// mergeCost is how much the expected re-download grows when layers a and b
// become one: a's bytes whenever b changes but a does not, and vice versa.
// Every product is rounded explicitly so no compiler fuses it into an FMA
// and the result is the same on every platform.
func mergeCost(sa, qa, sb, qb float64) float64 {
	x := float64(sa * qa)
	x = float64(x * (1 - qb))
	y := float64(sb * qb)
	y = float64(y * (1 - qa))
	return x + y
}

// packInput is the validated input of a packing.
type packInput struct {
	comps []Component
	excl  []int // Exclusive components, in input order
	reg   []int // the others, by size descending, then identifier
}

// preparePack checks the arguments and returns how many component layers
// may be made (maxLayers minus the commit layer).
func preparePack(components []Component, maxLayers int) (int, packInput, error) {
	if maxLayers == 0 {
		maxLayers = DefaultMaxLayers
	}
	if maxLayers < MinMaxLayers {
		return 0, packInput{}, fmt.Errorf("pack: at most %d layers requested; at least %d are needed (the commit layer and three component layers)", maxLayers, MinMaxLayers)
	}
	in := packInput{comps: components}
	ids := make(map[string]bool, len(components))
	owner := make(map[ostree.Checksum]string)
	for i := range components {
		c := &components[i]
		if c.Name == "" {
			return 0, in, fmt.Errorf("pack: component %d (%s) has no name", i, c.ID())
		}
		if strings.Contains(c.Name, ComponentSeparator) {
			return 0, in, fmt.Errorf("pack: component name %q contains %q, which %s uses as separator", c.Name, ComponentSeparator, ComponentsAnnotation)
		}
		if ids[c.ID()] {
			return 0, in, fmt.Errorf("pack: two components are identified as %q", c.ID())
		}
		ids[c.ID()] = true
		for _, o := range c.Objects {
			if prev, dup := owner[o]; dup {
				return 0, in, fmt.Errorf("pack: object %s is in components %q and %q", o, prev, c.ID())
			}
			owner[o] = c.ID()
		}
		if c.Exclusive {
			in.excl = append(in.excl, i)
		} else {
			in.reg = append(in.reg, i)
		}
	}
	slices.SortStableFunc(in.reg, func(a, b int) int {
		ca, cb := &components[a], &components[b]
		return cmp.Or(cmp.Compare(cb.Size, ca.Size), strings.Compare(ca.ID(), cb.ID()))
	})
	return maxLayers - 1, in, nil
}

// LayersNeeded is the smallest maxLayers with which Pack gives each
// Exclusive component a layer of its own and keeps the reserved layer: the
// commit layer, one per Exclusive component, one for all other components
// (if any), the reserved one. With a RawMeta contentmeta (every listed layer
// Exclusive) use max(maxLayers, LayersNeeded(components)), as ostree-ext
// raises its max_layers to the number of listed layers + 1.
func LayersNeeded(components []Component) int {
	n, regular := 2, 0
	for i := range components {
		if components[i].Exclusive {
			n++
		} else {
			regular = 1
		}
	}
	return max(n+regular, MinMaxLayers)
}

// Pack distributes components over at most maxLayers-1 component layers
// (maxLayers counts the image's layers, the commit layer included; 0 means
// DefaultMaxLayers; below MinMaxLayers is an error). Every component lands in
// exactly one layer; the output depends only on the components' fields, not
// on their order (except Exclusive ones, which keep theirs).
//
// Without a prior build the layers are, in order:
//   - one per Exclusive component (the kernel; contentmeta layers), in input order;
//   - the other components, grouped by greedy agglomeration: starting from one
//     group per component, the two groups whose union adds least to the
//     expected re-download per update (see ExpectedRedownload) are merged
//     until the groups fit; then sorted by size, largest first;
//   - one empty layer reserved for packages added later, when a layer is left.
//
// With prior (the ComponentsAnnotation of each component layer of the
// previous build, in order; see PriorLayers) the previous layout is kept so
// unchanged components produce identical layers: each component stays in
// the layer that listed its name (so a version bump keeps it there; all
// components sharing a name go together), removed names vanish, layers left
// empty are dropped; new components go to new layers (packed as above among
// the free slots, keeping one reserved layer when possible), or, when no
// layer is free, each into the then-smallest kept layer. If the prior layout
// needs more layers than allowed or names none of the components, Pack packs
// from scratch.
func Pack(components []Component, maxLayers int, prior []PriorLayer) ([]Layer, error) {
	budget, in, err := preparePack(components, maxLayers)
	if err != nil {
		return nil, err
	}
	regBudget := budget - len(in.excl)
	if len(in.reg) > 0 && regBudget < 1 || regBudget < 0 {
		return nil, fmt.Errorf("pack: %d components need a layer of their own, and maxLayers %d allows %d component layers",
			len(in.excl), budget+1, budget)
	}
	var bins [][]int
	for _, i := range in.excl {
		bins = append(bins, []int{i})
	}
	if kept, ok := packWithPrior(in, regBudget, prior); ok {
		bins = append(bins, kept...)
	} else if len(in.reg) > 0 {
		n := regBudget
		if n >= 2 {
			n-- // room for the reserved layer
		}
		groups := mergeByCost(components, in.reg, n)
		sortBySize(components, groups)
		bins = append(bins, groups...)
		if len(groups) < regBudget {
			bins = append(bins, nil)
		}
	} else if len(in.excl) > 0 && regBudget > 0 {
		bins = append(bins, nil)
	}
	return layersFromBins(components, bins), nil
}

// packWithPrior keeps the layout of a previous build; see Pack.
func packWithPrior(in packInput, regBudget int, prior []PriorLayer) ([][]int, bool) {
	if len(prior) == 0 {
		return nil, false
	}
	comps := in.comps
	byName := make(map[string][]int)
	for _, i := range in.reg {
		byName[comps[i].Name] = append(byName[comps[i].Name], i)
	}
	placed := make(map[int]bool)
	var kept [][]int
	for _, pl := range prior {
		var bin []int
		for _, n := range pl.Components {
			for _, i := range byName[n] {
				if !placed[i] {
					placed[i] = true
					bin = append(bin, i)
				}
			}
		}
		if len(bin) > 0 {
			kept = append(kept, bin)
		}
	}
	if len(kept) == 0 || len(kept) > regBudget {
		return nil, false
	}
	var added []int
	for _, i := range in.reg {
		if !placed[i] {
			added = append(added, i)
		}
	}
	free := regBudget - len(kept)
	var fresh [][]int
	switch {
	case len(added) == 0:
	case free >= 2:
		fresh = mergeByCost(comps, added, free-1)
		sortBySize(comps, fresh)
	case free == 1:
		fresh = [][]int{added}
	default:
		size := make([]int64, len(kept))
		for b, bin := range kept {
			for _, i := range bin {
				size[b] += comps[i].Size
			}
		}
		for _, i := range added {
			smallest := 0
			for b := range kept {
				if size[b] < size[smallest] {
					smallest = b
				}
			}
			kept[smallest] = append(kept[smallest], i)
			size[smallest] += comps[i].Size
		}
	}
	out := append(kept, fresh...)
	if len(out) < regBudget {
		out = append(out, nil)
	}
	return out, true
}

// mergeByCost groups members (component indices) into at most k groups by
// greedy agglomeration: while there are too many groups, merge the two whose
// union adds least to the expected re-download (mergeCost), preferring
// unions that stay within groupSizeCap times the average group size (so the
// small components do not all pile into one huge layer). The result is a
// function of members' order and fields only.
//
// Speed: each group caches its best partner; only groups whose partner was
// merged look again. mergeCost(x, y) = u_x*v_y + v_x*u_y with u = size*q and
// v = 1-q is linear in y's point (v_y, u_y) with non-negative weights, so
// the best partner of x is a vertex of the lower-left convex hull of all
// groups' points; a look-up scans that hull (a handful of points) and falls
// back to scanning every group only when x is on the hull itself or the hull's
// best union would exceed the size cap.
func mergeByCost(comps []Component, members []int, k int) [][]int {
	n := len(members)
	groups := make([][]int, n)
	s := make([]float64, n) // size
	q := make([]float64, n) // probability that nothing in the group changes
	var total float64
	for i, ci := range members {
		groups[i] = []int{ci}
		s[i] = float64(comps[ci].Size)
		q[i] = unchangedProbability(comps[ci].ChangeFrequency, updateIntervalDays)
		total += s[i]
	}
	if n <= k {
		return groups
	}
	limit := groupSizeCap * total / float64(k)
	u := func(i int) float64 { return float64(s[i] * q[i]) }
	v := func(i int) float64 { return 1 - q[i] }

	type score struct {
		over bool // the union would exceed limit
		cost float64
	}
	less := func(a, b score) bool {
		if a.over != b.over {
			return !a.over
		}
		return a.cost < b.cost
	}
	pair := func(i, j int) score {
		return score{s[i]+s[j] > limit, mergeCost(s[i], q[i], s[j], q[j])}
	}

	live := make([]int, n) // the remaining groups, ascending
	for i := range live {
		live[i] = i
	}
	// order holds the live groups by (v, u, index); hull is the lower-left
	// convex chain of their points.
	byPoint := func(a, b int) int {
		return cmp.Or(cmp.Compare(v(a), v(b)), cmp.Compare(u(a), u(b)), cmp.Compare(a, b))
	}
	order := slices.Clone(live)
	slices.SortFunc(order, byPoint)
	var hull []int
	onHull := make([]bool, n)
	buildHull := func() {
		for _, h := range hull {
			onHull[h] = false
		}
		hull = hull[:0]
		for _, y := range order {
			if len(hull) > 0 && u(y) >= u(hull[len(hull)-1]) {
				continue // no better on either axis than a point to its left
			}
			for len(hull) >= 2 && cross(hull[len(hull)-2], hull[len(hull)-1], y, u, v) <= 0 {
				hull = hull[:len(hull)-1]
			}
			hull = append(hull, y)
		}
		for _, h := range hull {
			onHull[h] = true
		}
	}
	buildHull()

	best := make([]int, n)
	bestScore := make([]score, n)
	row := func(i int) {
		bi, bs := -1, score{}
		if !onHull[i] {
			// The cheapest partner by cost alone is on the hull; when that
			// union also stays within the cap, it is the best partner.
			for _, j := range hull {
				sc := pair(i, j)
				if bi < 0 || sc.cost < bs.cost || sc.cost == bs.cost && j < bi {
					bi, bs = j, sc
				}
			}
			if bi >= 0 && !bs.over {
				best[i], bestScore[i] = bi, bs
				return
			}
		}
		bi = -1
		for _, j := range live {
			if j == i {
				continue
			}
			if sc := pair(i, j); bi < 0 || less(sc, bs) {
				bi, bs = j, sc
			}
		}
		best[i], bestScore[i] = bi, bs
	}
	for _, i := range live {
		row(i)
	}
	for len(live) > k {
		i := -1
		for _, x := range live {
			if i < 0 || less(bestScore[x], bestScore[i]) {
				i = x
			}
		}
		a, b := min(i, best[i]), max(i, best[i])
		for _, g := range []int{a, b} {
			pos, _ := slices.BinarySearchFunc(order, g, byPoint)
			order = slices.Delete(order, pos, pos+1)
		}
		groups[a] = append(groups[a], groups[b]...)
		groups[b] = nil
		s[a] += s[b]
		q[a] = float64(q[a] * q[b])
		pos, _ := slices.BinarySearchFunc(order, a, byPoint)
		order = slices.Insert(order, pos, a)
		pos, _ = slices.BinarySearch(live, b)
		live = slices.Delete(live, pos, pos+1)
		buildHull()
		row(a)
		for _, x := range live {
			if x == a {
				continue
			}
			if best[x] == a || best[x] == b {
				row(x)
				continue
			}
			if sc := pair(x, a); less(sc, bestScore[x]) || !less(bestScore[x], sc) && a < best[x] {
				best[x], bestScore[x] = a, sc
			}
		}
	}
	out := make([][]int, 0, k)
	for _, i := range live {
		out = append(out, groups[i])
	}
	return out
}

// cross is the z component of (a-o)×(b-o) for the points (v, u) of groups
// o, a, b; positive when o, a, b turn counter-clockwise. Products are
// rounded explicitly (no FMA) so every platform gets the same hull.
func cross(o, a, b int, u, v func(int) float64) float64 {
	l := float64((v(a) - v(o)) * (u(b) - u(o)))
	r := float64((u(a) - u(o)) * (v(b) - v(o)))
	return l - r
}

// sortBySize orders groups largest first; equal sizes keep their order.
func sortBySize(comps []Component, groups [][]int) {
	size := func(g []int) int64 {
		var s int64
		for _, i := range g {
			s += comps[i].Size
		}
		return s
	}
	slices.SortStableFunc(groups, func(a, b []int) int { return cmp.Compare(size(b), size(a)) })
}

// layersFromBins turns groups of component indices into layers.
func layersFromBins(comps []Component, bins [][]int) []Layer {
	layers := make([]Layer, 0, len(bins))
	for _, bin := range bins {
		members := slices.Clone(bin)
		slices.SortFunc(members, func(a, b int) int { return CompareComponents(&comps[a], &comps[b]) })
		var l Layer
		ids := make([]string, 0, len(members))
		for _, i := range members {
			c := &comps[i]
			if len(l.Components) == 0 || l.Components[len(l.Components)-1] != c.Name {
				l.Components = append(l.Components, c.Name)
			}
			ids = append(ids, c.ID())
			l.Objects = append(l.Objects, c.Objects...)
			l.Size += c.Size
		}
		ostree.SortChecksums(l.Objects)
		l.Name = chunkName(ids)
		layers = append(layers, l)
	}
	return layers
}

// chunkName names a layer after its components' identifiers (§4.4).
func chunkName(ids []string) string {
	switch n := len(ids); {
	case n == 0:
		return ReservedLayerName
	case n <= 5:
		return strings.Join(ids, " and ")
	default:
		return fmt.Sprintf("%d components", n)
	}
}
