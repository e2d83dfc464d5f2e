package imgstore

import (
	"slices"
	"strings"

	"github.com/ocitree/ocitree/encap/pack"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// ManifestDiff is what changes, layer by layer, from one image manifest to
// another, with the semantics of ostree-ext's ManifestDiff
// (crates/ostree-ext/src/container/mod.rs): layers are compared by blob
// digest only, each digest counted once per manifest. Added are the layers
// an update from Old to New has to download; Removed are those it no longer
// needs. The JSON form has ostree-ext's field names.
type ManifestDiff struct {
	// Removed are the layers of the old manifest whose digest the new one
	// does not list, in digest order.
	Removed []v1.Descriptor `json:"-"`
	// Added are the layers of the new manifest whose digest the old one does
	// not list (what an update downloads), in digest order.
	Added []v1.Descriptor `json:"-"`
	// Total is the number of distinct layer digests of the new manifest.
	Total int `json:"total"`
	// TotalSize is the sum of the sizes of every layer of the new manifest.
	TotalSize int64 `json:"total_size"`
	// NRemoved is len(Removed).
	NRemoved int `json:"n_removed"`
	// RemovedSize is the sum of the sizes of Removed.
	RemovedSize int64 `json:"removed_size"`
	// NAdded is len(Added).
	NAdded int `json:"n_added"`
	// AddedSize is the sum of the sizes of Added: the bytes an update fetches.
	AddedSize int64 `json:"added_size"`
}

// DiffManifests compares the layers of two manifests: old is the image in
// use (nil or no layers: nothing is stored yet), new the candidate update.
// A digest listed twice in one manifest counts once in Added, Removed and
// Total; TotalSize sums every entry of new, as ostree-ext does.
func DiffManifests(old, new *v1.Manifest) ManifestDiff {
	layers := func(m *v1.Manifest) []v1.Descriptor {
		if m == nil {
			return nil
		}
		return m.Layers
	}
	oldSet := layerSet(layers(old))
	newSet := layerSet(layers(new))
	var d ManifestDiff
	d.Removed = missingFrom(oldSet, newSet)
	d.Added = missingFrom(newSet, oldSet)
	d.Total = len(newSet)
	for _, l := range layers(new) {
		d.TotalSize += l.Size
	}
	d.NRemoved, d.RemovedSize = len(d.Removed), sumSizes(d.Removed)
	d.NAdded, d.AddedSize = len(d.Added), sumSizes(d.Added)
	return d
}

// layerSet maps each digest of layers to its first descriptor.
func layerSet(layers []v1.Descriptor) map[string]v1.Descriptor {
	out := make(map[string]v1.Descriptor, len(layers))
	for _, l := range layers {
		if _, ok := out[l.Digest.String()]; !ok {
			out[l.Digest.String()] = l
		}
	}
	return out
}

// missingFrom returns the descriptors of a whose digest b lacks, sorted by
// digest.
func missingFrom(a, b map[string]v1.Descriptor) []v1.Descriptor {
	var out []v1.Descriptor
	for dg, l := range a {
		if _, ok := b[dg]; !ok {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(x, y v1.Descriptor) int { return strings.Compare(x.Digest.Encoded(), y.Digest.Encoded()) })
	return out
}

func sumSizes(ls []v1.Descriptor) int64 {
	var n int64
	for _, l := range ls {
		n += l.Size
	}
	return n
}

// ComponentChanges names the components (packages, from the layers'
// ostree.components annotations) an update from old to new brings: changed
// are those of new layers that old also lists, added those only new lists,
// removed those only old lists; each sorted. old may be nil (nothing
// deployed yet).
func ComponentChanges(old, new *v1.Manifest) (changed, added, removed []string) {
	oldAll, newAll := manifestComponents(old), manifestComponents(new)
	seen := map[string]bool{}
	changed, added, removed = []string{}, []string{}, []string{}
	for _, l := range DiffManifests(old, new).Added {
		for _, c := range pack.ParseComponents(l.Annotations[pack.ComponentsAnnotation]) {
			if seen[c] {
				continue
			}
			seen[c] = true
			if oldAll[c] {
				changed = append(changed, c)
			} else {
				added = append(added, c)
			}
		}
	}
	for c := range oldAll {
		if !newAll[c] {
			removed = append(removed, c)
		}
	}
	slices.Sort(changed)
	slices.Sort(added)
	slices.Sort(removed)
	return changed, added, removed
}

// manifestComponents is the set of components every layer of m lists.
func manifestComponents(m *v1.Manifest) map[string]bool {
	all := map[string]bool{}
	if m == nil {
		return all
	}
	for _, l := range m.Layers {
		for _, c := range pack.ParseComponents(l.Annotations[pack.ComponentsAnnotation]) {
			all[c] = true
		}
	}
	return all
}
