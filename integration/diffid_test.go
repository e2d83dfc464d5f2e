package integration

import (
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/fixtures"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// setDiffID gives layer idx of the image tagged tag in the OCI layout dir
// the diff_id d in a new config, and writes the new config, manifest and
// index.json entry. The layer blob is not touched: its digest still checks
// out, only the config's claim about its uncompressed content changes. It
// returns the layer's blob digest and the diff_id it had.
func setDiffID(t *testing.T, dir, tag string, idx int, d digest.Digest) (blob, old digest.Digest) {
	t.Helper()
	index := readIndex(t, dir)
	pos := slices.IndexFunc(index.Manifests, func(m v1.Descriptor) bool { return m.Annotations[v1.AnnotationRefName] == tag })
	if pos < 0 {
		t.Fatalf("%s has no image tagged %s", dir, tag)
	}
	var m v1.Manifest
	if err := json.Unmarshal(readBlob(t, dir, index.Manifests[pos].Digest), &m); err != nil {
		t.Fatal(err)
	}
	var cfg v1.Image
	if err := json.Unmarshal(readBlob(t, dir, m.Config.Digest), &cfg); err != nil {
		t.Fatal(err)
	}
	if idx >= len(cfg.RootFS.DiffIDs) || len(cfg.RootFS.DiffIDs) != len(m.Layers) {
		t.Fatalf("setDiffID: layer %d of %d layers, %d diff_ids", idx, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	old = cfg.RootFS.DiffIDs[idx]
	cfg.RootFS.DiffIDs[idx] = d
	cb := mustJSON(t, cfg)
	m.Config.Digest, m.Config.Size = writeBlob(t, dir, cb), int64(len(cb))
	mb := mustJSON(t, m)
	index.Manifests[pos].Digest, index.Manifests[pos].Size = writeBlob(t, dir, mb), int64(len(mb))
	if err := os.WriteFile(filepath.Join(dir, "index.json"), mustJSON(t, index), 0o644); err != nil {
		t.Fatal(err)
	}
	return m.Layers[idx].Digest, old
}

// readOCIManifest reads the manifest of the image tagged tag in layout dir.
func readOCIManifest(t *testing.T, dir, tag string) v1.Manifest {
	t.Helper()
	for _, d := range readIndex(t, dir).Manifests {
		if d.Annotations[v1.AnnotationRefName] == tag {
			var m v1.Manifest
			if err := json.Unmarshal(readBlob(t, dir, d.Digest), &m); err != nil {
				t.Fatal(err)
			}
			return m
		}
	}
	t.Fatalf("%s has no image tagged %s", dir, tag)
	return v1.Manifest{}
}

// wrongDiffID is a well-formed diff_id that is no layer's.
var wrongDiffID = digest.FromString("not the uncompressed content of any layer\n")

// checkDiffIDRefusal checks a refused import: exit status 1, nothing on
// stdout, an error naming the diff_id fault and the config's wrong value.
func checkDiffIDRefusal(t *testing.T, r result) {
	t.Helper()
	t.Logf("refused: %s", strings.TrimSpace(r.stderr))
	if r.code != 1 {
		t.Errorf("exit status %d, want 1:\n%s", r.code, r)
	}
	if r.stdout != "" {
		t.Errorf("a refused import printed %q on stdout", r.stdout)
	}
	for _, w := range []string{"diff_id", wrongDiffID.String()} {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("the error does not mention %q:\n%s", w, r.stderr)
		}
	}
}

// TestUnencapWrongDiffID imports images whose layer blob is intact (its
// digest checks out) but whose config gives that layer a wrong diff_id,
// for the ostree layer and for a component layer: unencapsulate refuses
// with the diff_id named, writes no ref and keeps no object. A control
// rewrites the config with the right diff_id and imports.
func TestUnencapWrongDiffID(t *testing.T) {
	cases := []struct {
		name  string
		layer int
		right bool // control: the diff_id the layer really has
	}{
		{"control", 1, true},
		{"ostree layer", 0, false},
		{"component layer", 1, false},
	}
	for i, tc := range cases {
		mode := modes[i%len(modes)]
		t.Run(nameSanitizer.ReplaceAllString(tc.name, "_")+"/"+mode, func(t *testing.T) {
			setup(t)
			t.Parallel()
			img := sharedImage(t, "minios")
			dir := workDir(t)
			layout := filepath.Join(dir, "image")
			copyDir(t, img.layout, layout)
			d := wrongDiffID
			if tc.right {
				d = readOCI(t, layout).config.RootFS.DiffIDs[tc.layer]
			}
			setDiffID(t, layout, "latest", tc.layer, d)
			repo := filepath.Join(dir, "repo")
			ocitreeInit(t, repo, mode)
			r := ocitree(t, "unencapsulate", "--repo", repo, "--write-ref", "os/imported", ociRef(layout))
			if tc.right {
				if r.code != 0 || strings.TrimSpace(r.stdout) != img.commit {
					t.Fatalf("the image with its config rewritten unchanged must import as %s:\n%s", img.commit, r)
				}
				ostreeFsck(t, repo)
				return
			}
			checkDiffIDRefusal(t, r)
			if refs := must(t, ocitree(t, "repo", "refs", "--repo", repo)); refs != "" {
				t.Errorf("refs after a refused import: %q", refs)
			}
			if objs := listObjects(t, repo); len(objs) != 0 {
				t.Errorf("a refused import left %d objects, e.g. %v", len(objs), objs[:min(len(objs), 5)])
			}
			ostreeFsck(t, repo)
		})
	}
}

// TestPullWrongDiffID pulls images whose layer blob is intact but whose
// config gives it a wrong diff_id: the ostree layer, a component layer and
// a derived layer (fixtures.DerivedLayer appended to MiniOS) into an empty
// store, and the derived layer over a store that already holds the base.
// Each pull is refused with the diff_id named; no image ref is written, the
// bad layer gets no blob or record ref, refs that were there stay as they
// were (new refs only for other layers of the image, fetched whole before
// the bad one), and ostree fsck accepts the store. Controls rewrite the config with the right
// diff_id and pull.
func TestPullWrongDiffID(t *testing.T) {
	cases := []struct {
		name      string
		tag       string // latest: MiniOS; derived: MiniOS + DerivedLayer
		layer     int    // -1: the last one
		right     bool   // control: the diff_id the layer really has
		baseFirst bool   // pull latest (intact) before
	}{
		{"control ostree layer", "latest", 0, true, false},
		{"control derived layer", "derived", -1, true, true},
		{"ostree layer", "latest", 0, false, false},
		{"component layer", "latest", 1, false, false},
		{"derived layer", "derived", -1, false, false},
		{"derived layer over a stored base", "derived", -1, false, true},
	}
	for i, tc := range cases {
		mode := modes[i%len(modes)]
		if mode == "archive" {
			mode = "bare-user" // the image store: bare and bare-user
		}
		t.Run(nameSanitizer.ReplaceAllString(tc.name, "_")+"/"+mode, func(t *testing.T) {
			setup(t)
			t.Parallel()
			img := sharedImage(t, "minios")
			dir := workDir(t)
			layout := filepath.Join(dir, "image")
			copyDir(t, img.layout, layout)
			if err := fixtures.AppendLayer(layout, "latest", "derived", fixtures.DerivedLayer()); err != nil {
				t.Fatal(err)
			}
			repo := filepath.Join(dir, "repo")
			ocitreeInit(t, repo, mode)
			if tc.baseFirst {
				imagePull(t, repo, ociRef(layout), "--progress=never")
			}
			before := must(t, ocitree(t, "repo", "refs", "--repo", repo))

			layer := tc.layer
			if layer < 0 {
				layer = len(readOCI(t, layout).manifest.Layers) // latest's layers + the derived one
			}
			var d digest.Digest = wrongDiffID
			if tc.right {
				var cfg v1.Image
				if err := json.Unmarshal(readBlob(t, layout, readOCIManifest(t, layout, tc.tag).Config.Digest), &cfg); err != nil {
					t.Fatal(err)
				}
				d = cfg.RootFS.DiffIDs[layer]
			}
			blob, _ := setDiffID(t, layout, tc.tag, layer, d)
			ref := "oci:" + layout + ":" + tc.tag
			r := ocitree(t, "image", "pull", "--progress=never", "--repo", repo, ref)
			if tc.right {
				merge := strings.TrimSpace(must(t, r))
				must(t, ocitree(t, "repo", "checkout", "--repo", repo, merge, filepath.Join(dir, "co")))
				ostreeFsck(t, repo)
				return
			}
			checkDiffIDRefusal(t, r)
			// Layers fetched completely before the bad one keep their refs
			// (a later pull does not fetch them again, as in ostree-ext);
			// nothing else is new.
			good := map[string]bool{}
			for _, l := range readOCIManifest(t, layout, tc.tag).Layers {
				if l.Digest != blob {
					good[strings.ReplaceAll(l.Digest.String(), ":", "_3A_")] = true
				}
			}
			after := must(t, ocitree(t, "repo", "refs", "--repo", repo))
			had := map[string]bool{}
			for _, line := range strings.Fields(before) {
				had[line] = true
			}
			for _, line := range strings.Fields(after) {
				delete(had, line)
				if strings.Contains(line, blob.Encoded()) {
					t.Errorf("the refused layer %s has a ref: %s", blob, line)
				}
				if strings.Contains(before, line+"\n") {
					continue
				}
				kind, name, _ := strings.Cut(strings.TrimPrefix(line, "ostree/container/"), "/")
				if (kind != "blob" && kind != "tarsplit") || !good[name] {
					t.Errorf("the refused pull wrote the ref %s", line)
				}
			}
			for line := range had {
				t.Errorf("the refused pull removed the ref %s", line)
			}
			ostreeFsck(t, repo)
		})
	}
}
