package imgstore

import (
	"encoding/json"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/encap/pack"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// rawLayer is a layer as the test reads it from the manifest JSON, without
// the image-spec types DiffManifests uses.
type rawLayer struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// readManifestPair reads a manifest file twice: as the v1.Manifest the code
// takes and as plain layer records the test computes its expectations from.
func readManifestPair(t *testing.T, path string) (*v1.Manifest, []rawLayer) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (the fixture is in the repository; see testdata/README.md)", err)
	}
	var m v1.Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Layers []rawLayer `json:"layers"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	return &m, raw.Layers
}

// expectDiff computes, by brute force over the raw layer lists, the digests
// only in a and only in b (sorted) and their summed sizes.
func expectDiff(a, b []rawLayer) (onlyA, onlyB []string, sizeA, sizeB int64) {
	has := func(ls []rawLayer, d string) bool {
		for _, l := range ls {
			if l.Digest == d {
				return true
			}
		}
		return false
	}
	seen := map[string]bool{}
	for _, l := range a {
		if !has(b, l.Digest) && !seen[l.Digest] {
			seen[l.Digest] = true
			onlyA, sizeA = append(onlyA, l.Digest), sizeA+l.Size
		}
	}
	for _, l := range b {
		if !has(a, l.Digest) && !seen[l.Digest] {
			seen[l.Digest] = true
			onlyB, sizeB = append(onlyB, l.Digest), sizeB+l.Size
		}
	}
	sort.Strings(onlyA)
	sort.Strings(onlyB)
	return onlyA, onlyB, sizeA, sizeB
}

func digests(ls []v1.Descriptor) []string {
	var out []string
	for _, l := range ls {
		out = append(out, l.Digest.String())
	}
	return out
}

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestDiffManifests compares the two real 51-layer manifests of consecutive
// Fedora builds (testdata/manifest1.json, manifest2.json: 4 layers differ)
// in both directions, with itself, from nothing, and a synthetic manifest
// listing one layer twice. Expectations are computed here from the raw JSON.
func TestDiffManifests(t *testing.T) {
	m1, raw1 := readManifestPair(t, "../../testdata/manifest1.json")
	m2, raw2 := readManifestPair(t, "../../testdata/manifest2.json")
	if len(raw1) != 51 || len(raw2) != 51 {
		t.Fatalf("fixtures: %d and %d layers, want 51 each", len(raw1), len(raw2))
	}
	dup := func(n string) digest.Digest { return digest.FromString(n) }
	dupOld := &v1.Manifest{Layers: []v1.Descriptor{{Digest: dup("a"), Size: 10}, {Digest: dup("b"), Size: 20}}}
	dupNew := &v1.Manifest{Layers: []v1.Descriptor{{Digest: dup("a"), Size: 10}, {Digest: dup("c"), Size: 30}, {Digest: dup("c"), Size: 30}}}
	rawOf := func(m *v1.Manifest) []rawLayer {
		var out []rawLayer
		for _, l := range m.Layers {
			out = append(out, rawLayer{l.Digest.String(), l.Size})
		}
		return out
	}

	cases := []struct {
		name             string
		old, new         *v1.Manifest
		rawOld, rawNew   []rawLayer
		wantChanged      int // layers added (= removed here), stated
		wantTotal        int
		wantTotalSizeRaw []rawLayer // whose sizes TotalSize sums
	}{
		{"build 1 to build 2", m1, m2, raw1, raw2, 4, 51, raw2},
		{"build 2 back to build 1", m2, m1, raw2, raw1, 4, 51, raw1},
		{"same manifest", m1, m1, raw1, raw1, 0, 51, raw1},
		{"nothing stored yet", nil, m2, nil, raw2, 51, 51, raw2},
		{"a layer listed twice", dupOld, dupNew, rawOf(dupOld), rawOf(dupNew), 1, 2, rawOf(dupNew)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := DiffManifests(tc.old, tc.new)
			removed, added, removedSize, addedSize := expectDiff(tc.rawOld, tc.rawNew)
			if len(added) != tc.wantChanged {
				t.Fatalf("test: %d layers added by brute force, the case says %d", len(added), tc.wantChanged)
			}
			if got := digests(d.Added); !equalStrings(got, added) {
				t.Errorf("Added %v, want %v", got, added)
			}
			if got := digests(d.Removed); !equalStrings(got, removed) {
				t.Errorf("Removed %v, want %v", got, removed)
			}
			if d.NAdded != len(added) || d.AddedSize != addedSize {
				t.Errorf("added: %d layers, %d bytes; want %d, %d", d.NAdded, d.AddedSize, len(added), addedSize)
			}
			if d.NRemoved != len(removed) || d.RemovedSize != removedSize {
				t.Errorf("removed: %d layers, %d bytes; want %d, %d", d.NRemoved, d.RemovedSize, len(removed), removedSize)
			}
			var total int64
			for _, l := range tc.wantTotalSizeRaw {
				total += l.Size
			}
			if d.Total != tc.wantTotal || d.TotalSize != total {
				t.Errorf("total: %d layers, %d bytes; want %d, %d", d.Total, d.TotalSize, tc.wantTotal, total)
			}
		})
	}

	// The JSON form carries ostree-ext's field names.
	b, err := json.Marshal(DiffManifests(m1, m2))
	if err != nil {
		t.Fatal(err)
	}
	var fields map[string]any
	if err := json.Unmarshal(b, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"total", "total_size", "n_removed", "removed_size", "n_added", "added_size"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("JSON %s has no %q", b, k)
		}
	}
	if len(fields) != 6 {
		t.Errorf("JSON %s: want exactly ostree-ext's six fields", b)
	}
}

// TestComponentChanges: the packages of layers an update downloads are
// "changed" when the old image had them, "added" otherwise; packages no
// layer of the new image lists are "removed"; layers both images share say
// nothing.
func TestComponentChanges(t *testing.T) {
	layer := func(dg byte, comps ...string) v1.Descriptor {
		return v1.Descriptor{
			Digest:      digest.Digest("sha256:" + strings.Repeat(string(dg), 64)),
			Size:        1,
			Annotations: map[string]string{pack.ComponentsAnnotation: strings.Join(comps, pack.ComponentSeparator)},
		}
	}
	old := &v1.Manifest{Layers: []v1.Descriptor{layer('a', "bash"), layer('b', "libssl3", "openssl"), layer('c', "gone")}}
	new := &v1.Manifest{Layers: []v1.Descriptor{layer('a', "bash"), layer('d', "libssl3", "openssl", "newpkg")}}
	changed, added, removed := ComponentChanges(old, new)
	if want := []string{"libssl3", "openssl"}; !slices.Equal(changed, want) {
		t.Errorf("changed %q, want %q", changed, want)
	}
	if want := []string{"newpkg"}; !slices.Equal(added, want) {
		t.Errorf("added %q, want %q", added, want)
	}
	if want := []string{"gone"}; !slices.Equal(removed, want) {
		t.Errorf("removed %q, want %q", removed, want)
	}
	changed, added, removed = ComponentChanges(nil, new)
	if len(changed) != 0 || len(removed) != 0 || len(added) != 4 {
		t.Errorf("from nothing: changed %q added %q removed %q, want 4 added", changed, added, removed)
	}
}
