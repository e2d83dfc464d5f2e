package pack

import (
	"cmp"
	"fmt"
	"math"
	"slices"
)

// minChunkedLayers is ostree-ext's MIN_CHUNKED_LAYERS: basic_packing needs at
// least this many bins.
const minChunkedLayers = 4

// PackBasic packs like ostree-ext's basic_packing (spec §4.5) and
// basic_packing_with_prior_build (§4.6, the NEW variant that falls back to
// a fresh packing when the prior layout does not fit), for callers who want
// the layout the peers would make. Differences, all in cases where
// ostree-ext panics, loops or silently loses a component:
//   - maxLayers counts the commit layer, as in Pack: ostree-ext's
//     --max-layers N corresponds to maxLayers N+1 here;
//   - Exclusive components get their own layers first, as NEW ostree-ext
//     does with rpm-ostree's exclusive components, and the rest is packed
//     into the remaining n bins, which must be at least 4;
//   - with a prior layout, every component carrying a listed name is kept
//     (ostree-ext keeps the first and then fails its assertion);
//   - the per-bin count of the medium partitions is at least 1, and the
//     bin-merging loop stops with an error instead of spinning when it
//     cannot merge any further.
//
// Components are considered largest first, equal sizes by identifier, as
// ostree-ext orders them.
func PackBasic(components []Component, maxLayers int, prior []PriorLayer) ([]Layer, error) {
	budget, in, err := preparePack(components, maxLayers)
	if err != nil {
		return nil, err
	}
	n := budget - len(in.excl)
	if n < minChunkedLayers {
		return nil, fmt.Errorf("pack (ostree-ext): %d bins left after %d exclusive layers; basic_packing needs at least %d", n, len(in.excl), minChunkedLayers)
	}
	var bins [][]int
	for _, i := range in.excl {
		bins = append(bins, []int{i})
	}
	regular, ok := basicWithPrior(in, n, prior)
	if !ok {
		regular, err = basicFresh(components, in.reg, n)
		if err != nil {
			return nil, err
		}
	}
	return layersFromBins(components, append(bins, regular...)), nil
}

// basicWithPrior is §4.6: the previous bins by name, added names appended to
// the last bin, removed names dropped, empty bins dropped except the last.
func basicWithPrior(in packInput, n int, prior []PriorLayer) ([][]int, bool) {
	if len(prior) == 0 {
		return nil, false
	}
	comps := in.comps
	byName := make(map[string][]int)
	var names []string
	for _, i := range in.reg {
		nm := comps[i].Name
		if _, ok := byName[nm]; !ok {
			names = append(names, nm)
		}
		byName[nm] = append(byName[nm], i)
	}
	prev := make(map[string]bool)
	layout := make([][]string, len(prior))
	for b, pl := range prior {
		for _, nm := range pl.Components {
			if nm != "" {
				prev[nm] = true
				layout[b] = append(layout[b], nm)
			}
		}
	}
	slices.Sort(names)
	for _, nm := range names {
		if !prev[nm] {
			layout[len(layout)-1] = append(layout[len(layout)-1], nm)
		}
	}
	placed := make(map[int]bool)
	var bins [][]int
	for b, l := range layout {
		var bin []int
		for _, nm := range l {
			for _, i := range byName[nm] {
				if !placed[i] {
					placed[i] = true
					bin = append(bin, i)
				}
			}
		}
		if len(bin) > 0 || b == len(layout)-1 {
			bins = append(bins, bin)
		}
	}
	if len(bins) == 0 || len(bins) > n {
		return nil, false
	}
	return bins, true
}

// Partition keys of basic_packing, in the order bins are made.
const (
	partHighSize = "1hs"
	partLowSize  = "2ls"
)

// basicFresh is basic_packing without a prior build (§4.5). regs are
// component indices, largest first.
func basicFresh(comps []Component, regs []int, n int) ([][]int, error) {
	if len(regs) == 0 {
		return nil, nil
	}
	if len(regs) < n {
		bins := make([][]int, 0, len(regs)+1)
		for _, i := range regs {
			bins = append(bins, []int{i})
		}
		return append(bins, nil), nil
	}
	var regular, maxFreq []int
	for _, i := range regs {
		if comps[i].ChangeFrequency == MaxFrequency {
			maxFreq = append(maxFreq, i)
		} else {
			regular = append(regular, i)
		}
	}
	var r [][]int
	if len(regular) > 0 {
		const lsBins, newBins = 1, 1
		mfBins := min(1, len(maxFreq))
		other := lsBins + newBins + mfBins
		// ostree-ext computes this in f32.
		hsBins := int(math.Floor(float64(float32(0.6) * float32(n-other))))
		msBins := n - hsBins - other
		parts, err := basicPartitions(comps, regular, hsBins, 2)
		if err != nil {
			return nil, err
		}
		if msBins <= 0 {
			return nil, fmt.Errorf("pack (ostree-ext): number of bins should be >= %d", minChunkedLayers)
		}
		perBin := max((len(regular)-hsBins-len(parts[partLowSize]))/msBins, 1)
		keys := make([]string, 0, len(parts))
		for k := range parts {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			pkgs := parts[k]
			switch k {
			case partHighSize:
				for _, i := range pkgs {
					r = append(r, []int{i})
				}
			case partLowSize:
				r = append(r, slices.Clone(pkgs))
			default:
				for len(pkgs) > 0 {
					m := min(perBin, len(pkgs))
					r = append(r, slices.Clone(pkgs[:m]))
					pkgs = pkgs[m:]
				}
			}
		}
		// Merge neighbouring medium bins from the end until they fit,
		// re-inserting each merged bin one place later, as ostree-ext does.
		limit := n - newBins - mfBins
		for len(r) > limit {
			var idx []int
			for i := lsBins + hsBins; i < len(r)-1; i += 2 {
				idx = append(idx, i)
			}
			merged := false
			for k := len(idx) - 1; k >= 0 && len(r) > limit; k-- {
				i := idx[k]
				m := append(slices.Clone(r[i-1]), r[i]...)
				r = slices.Delete(r, i-1, i+1)
				r = slices.Insert(r, i, m)
				merged = true
			}
			if !merged {
				return nil, fmt.Errorf("pack (ostree-ext): cannot merge %d bins down to %d", len(r), limit)
			}
		}
	}
	if len(maxFreq) > 0 {
		r = append(r, maxFreq)
	}
	return append(r, nil), nil
}

// basicPartitions is get_partitions_with_threshold: size outliers by median
// and MAD, the rest by mean and standard deviation of size and frequency.
func basicPartitions(comps []Component, regular []int, hsBins int, t float64) (map[string][]int, error) {
	parts := make(map[string][]int)
	sizes := make([]uint64, len(regular))
	for k, i := range regular {
		sizes[k] = uint64(comps[i].Size)
	}
	med, mad := medianAbsDeviation(sizes)
	lo := 0.5 * math.Abs(med-float64(t*mad))
	hi := med + float64(t*mad)
	var high, medium []int
	for _, i := range regular {
		sz := float64(comps[i].Size)
		switch {
		case sz >= hi:
			high = append(high, i)
		case sz <= lo:
			parts[partLowSize] = append(parts[partLowSize], i)
		default:
			medium = append(medium, i)
		}
	}
	var rest []int
	if len(high) > hsBins {
		rest = append(rest, high[hsBins:]...)
		high = high[:hsBins]
	}
	rest = append(rest, medium...)
	parts[partHighSize] = high
	slices.SortStableFunc(rest, func(a, b int) int {
		return cmp.Compare(comps[a].ChangeFrequency, comps[b].ChangeFrequency)
	})
	if len(rest) == 0 {
		return nil, fmt.Errorf("pack (ostree-ext): no medium-size components to partition")
	}
	rs := make([]uint64, len(rest))
	rf := make([]uint64, len(rest))
	for k, i := range rest {
		rs[k] = uint64(comps[i].Size)
		rf[k] = uint64(comps[i].ChangeFrequency)
	}
	meanS, sdS := meanStdDev(rs)
	meanF, sdF := meanStdDev(rf)
	sizeLo, sizeHi := 0.5*math.Abs(meanS-float64(t*sdS)), meanS+float64(t*sdS)
	freqLo, freqHi := 0.5*math.Abs(meanF-float64(t*sdF)), meanF+float64(t*sdF)
	for _, i := range rest {
		sz, fq := float64(comps[i].Size), float64(comps[i].ChangeFrequency)
		sc := "ms"
		if sz >= sizeHi {
			sc = "hs"
		} else if sz <= sizeLo {
			sc = "ls"
		}
		fc := "4mf"
		if fq >= freqHi {
			fc = "3hf"
		} else if fq <= freqLo {
			fc = "5lf"
		}
		k := fc + "_" + sc
		parts[k] = append(parts[k], i)
	}
	return parts, nil
}

// medianAbsDeviation returns the median and the median absolute deviation of
// data, which is sorted (either direction). Even counts average the two
// middle values.
func medianAbsDeviation(data []uint64) (float64, float64) {
	l := len(data)
	var med float64
	if l%2 == 1 {
		med = float64(data[l/2])
	} else {
		med = 0.5 * float64(data[l/2-1]+data[l/2])
	}
	dev := make([]float64, l)
	for i, v := range data {
		dev[i] = math.Abs(float64(v) - med)
	}
	slices.Sort(dev)
	if l%2 == 1 {
		return med, dev[l/2]
	}
	return med, 0.5 * (dev[l/2-1] + dev[l/2])
}

// meanStdDev returns the mean and population standard deviation, summing in
// order as ostree-ext does.
func meanStdDev(data []uint64) (float64, float64) {
	var sum uint64
	for _, v := range data {
		sum += v
	}
	mean := float64(sum) / float64(len(data))
	var ss float64
	for _, v := range data {
		d := mean - float64(v)
		ss += float64(d * d)
	}
	return mean, math.Sqrt(ss / float64(len(data)))
}

// ExpectedRedownload is the cost model's value for a packing: the expected
// bytes re-fetched per update, for updates intervalDays apart. Layers name
// their components, so components sharing a name count in every layer that
// lists it.
func ExpectedRedownload(layers []Layer, components []Component, intervalDays float64) float64 {
	byName := make(map[string][]*Component)
	for i := range components {
		byName[components[i].Name] = append(byName[components[i].Name], &components[i])
	}
	total := 0.0
	for _, l := range layers {
		unchanged := 1.0
		for _, n := range l.Components {
			for _, c := range byName[n] {
				unchanged = float64(unchanged * unchangedProbability(c.ChangeFrequency, intervalDays))
			}
		}
		total += float64(float64(l.Size) * (1 - unchanged))
	}
	return total
}
