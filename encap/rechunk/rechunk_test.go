package rechunk

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/encap/internal/enctest"
	"github.com/ocitree/ocitree/fixtures"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

var testEpoch = time.Unix(1700000000, 0).UTC()

// dpkgCommit writes fixtures.DpkgOS (bumped per bump) and commits it.
func dpkgCommit(t *testing.T, repo *ostree.Repo, bump string) (ostree.Checksum, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	if err := fixtures.DpkgOS(dir, fixtures.DpkgOSOptions{Bump: bump}); err != nil {
		t.Fatal(err)
	}
	return enctest.CommitDir(t, repo, dir), dir
}

// rechunkTo writes commit to the oci: layout dir under tag.
func rechunkTo(t *testing.T, repo *ostree.Repo, commit ostree.Checksum, layout, tag string, opts Options) *Result {
	t.Helper()
	ref, err := oci.ParseRef("oci:" + layout + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	w, err := oci.NewWriter(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if opts.Created.IsZero() {
		opts.Created = testEpoch
	}
	res, err := Rechunk(context.Background(), repo, commit, w, opts)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// layerTar reads an (uncompressed) layer of the oci: layout.
func layerTar(t *testing.T, layout string, d oci.Descriptor) []*tar.Header {
	t.Helper()
	f, err := os.Open(filepath.Join(layout, "blobs", d.Digest.Algorithm().String(), d.Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(zr)
	var out []*tar.Header
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, h)
	}
}

// TestRechunkDpkgOS checks the format (§5.3 1-3) on the Debian-like fixture.
func TestRechunkDpkgOS(t *testing.T) {
	repo := enctest.NewRepo(t, ostree.ModeBareUser)
	commit, _ := dpkgCommit(t, repo, "")
	layout := filepath.Join(t.TempDir(), "img")
	res := rechunkTo(t, repo, commit, layout, "v1", Options{Labels: map[string]string{"ostree.bootable": "true", "ostree.commit": "x"}})

	var cfg v1.Image
	if err := json.Unmarshal(res.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.History) != len(res.Layers) || len(cfg.RootFS.DiffIDs) != len(res.Layers) {
		t.Fatalf("%d history entries, %d diff_ids for %d layers", len(cfg.History), len(cfg.RootFS.DiffIDs), len(res.Layers))
	}
	labels := cfg.Config.Labels
	if _, ok := labels["ostree.final-diffid"]; ok || labels["ostree.commit"] != "" || labels["containers.bootc"] != "1" {
		t.Errorf("labels %v: want no ostree.final-diffid/ostree.commit, containers.bootc=1", labels)
	}
	if !cfg.Created.Equal(testEpoch) || !cfg.History[0].Created.Equal(testEpoch) || cfg.History[0].CreatedBy != CreatedBy {
		t.Errorf("created %v, history %+v", cfg.Created, cfg.History[0])
	}
	seen := map[string]bool{}
	owner := map[string]string{} // path -> component annotation of its layer
	for i, l := range res.Layers {
		ann := l.Descriptor.Annotations[ComponentAnnotation]
		st := l.Descriptor.Annotations[StabilityAnnotation]
		if ann == "" || len(st) != 5 || st[1] != '.' {
			t.Errorf("layer %d: annotations %v", i, l.Descriptor.Annotations)
		}
		names := strings.Split(ann, " ")
		if !slices.IsSorted(names) {
			t.Errorf("layer %d: components %q not sorted", i, ann)
		}
		for _, n := range names {
			if seen[n] {
				t.Errorf("component %s in two layers", n)
			}
			seen[n] = true
		}
		if cfg.History[i].Comment != ann {
			t.Errorf("history %d comment %q, want %q", i, cfg.History[i].Comment, ann)
		}
		written := map[string]bool{"": true}
		for _, h := range layerTar(t, layout, l.Descriptor) {
			name := strings.TrimSuffix(strings.TrimPrefix(h.Name, "./"), "/")
			if strings.HasPrefix(name, "sysroot/ostree/") || strings.Contains(name, ".wh.") || strings.HasPrefix(name, "usr/etc") {
				t.Errorf("layer %d: entry %q (ostree object, whiteout or usr/etc)", i, h.Name)
			}
			if !h.ModTime.Equal(time.Unix(0, 0)) {
				t.Errorf("layer %d: %s has mtime %v", i, h.Name, h.ModTime)
			}
			if parent := filepath.Dir(name); name != "" && parent != "." && !written[parent] {
				t.Errorf("layer %d: %s comes before its parent directory", i, h.Name)
			}
			if h.Typeflag == tar.TypeDir {
				written[name] = true
			} else {
				owner[name] = ann
			}
			if h.Typeflag == tar.TypeLink && owner[h.Linkname] != ann {
				t.Errorf("layer %d: hardlink %s to %s of another layer", i, h.Name, h.Linkname)
			}
		}
	}
	for _, want := range []string{"deb/bash", "deb/glibc", "deb/openssl", KernelComponent, PackageDatabaseComponent, UnclaimedComponent} {
		if !seen[want] {
			t.Errorf("no layer names component %s (have %v)", want, seen)
		}
	}
	if owner["var/lib/dpkg/status"] != PackageDatabaseComponent {
		t.Errorf("the dpkg status is in the layer of %q, want %s alone", owner["var/lib/dpkg/status"], PackageDatabaseComponent)
	}
	for p, want := range map[string]string{
		"usr/bin/bash":        "deb/bash",
		"etc/passwd":          UnclaimedComponent,
		"var/lib/dpkg/status": PackageDatabaseComponent,
		"usr/lib/modules/" + fixtures.DpkgOSKernel + "/vmlinuz": KernelComponent,
	} {
		if !strings.Contains(" "+owner[p]+" ", " "+want+" ") {
			t.Errorf("%s is in the layer of %q, want %s", p, owner[p], want)
		}
	}
}

// TestRechunkStableAndReproducible: a package bump rebuilt with the previous
// build changes only that package's layer and the package database's
// (§5.3-5); the same input gives the same bytes (§5.3-6).
func TestRechunkStableAndReproducible(t *testing.T) {
	repo := enctest.NewRepo(t, ostree.ModeBareUser)
	c1, _ := dpkgCommit(t, repo, "")
	c2, _ := dpkgCommit(t, repo, "libssl3")
	layout := filepath.Join(t.TempDir(), "img")
	// Few layers, so packing has to merge and the prior build matters.
	opts := Options{PlanOptions: PlanOptions{MaxLayers: 6}}
	r1 := rechunkTo(t, repo, c1, layout, "v1", opts)
	again := rechunkTo(t, repo, c1, filepath.Join(t.TempDir(), "img"), "v1", opts)
	if r1.ManifestDigest != again.ManifestDigest || string(r1.Config) != string(again.Config) {
		t.Fatalf("same input, two manifests: %s and %s", r1.ManifestDigest, again.ManifestDigest)
	}
	if n := len(r1.Layers); n < 4 || n > 6 {
		t.Fatalf("%d layers, want 4 to 6 (pack keeps one slot for new packages)", n)
	}

	prev, err := oci.ParseRef("oci:" + layout + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	prior, err := PriorBuild(context.Background(), prev, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	// A higher limit too: without the prior build, packing would regroup.
	opts.Prior, opts.MaxLayers = prior, 9
	r2 := rechunkTo(t, repo, c2, layout, "v2", opts)

	old := map[string]bool{}
	for _, l := range r1.Layers {
		old[l.Descriptor.Digest.String()] = true
	}
	var changed []string
	for _, l := range r2.Layers {
		if !old[l.Descriptor.Digest.String()] {
			changed = append(changed, l.Layer.Annotation())
		}
	}
	if len(changed) == 0 || len(changed) > 2 {
		t.Fatalf("changed layers %q: want the deb/openssl layer and the package database's", changed)
	}
	for _, a := range changed {
		a = " " + a + " "
		if !strings.Contains(a, " deb/openssl ") && !strings.Contains(a, " "+PackageDatabaseComponent+" ") {
			t.Errorf("layer %q changed, though it holds neither deb/openssl nor the package database", a)
		}
	}
}

// TestPriorLayers reads both annotation kinds.
func TestPriorLayers(t *testing.T) {
	cfgPlain := []byte(`{"rootfs":{"type":"layers","diff_ids":["sha256:` + strings.Repeat("a", 64) + `"]}}`)
	mPlain := []byte(`{"schemaVersion":2,"layers":[{"mediaType":"x","digest":"sha256:` + strings.Repeat("b", 64) + `","size":1,"annotations":{"org.chunkah.component":"deb/a rpm/b"}}]}`)
	got, err := PriorLayers(mPlain, cfgPlain)
	if err != nil || len(got) != 1 || !slices.Equal(got[0].Components, []string{"deb/a", "rpm/b"}) {
		t.Fatalf("plain: %v %v", got, err)
	}
	d := func(c string) string { return "sha256:" + strings.Repeat(c, 64) }
	cfgOstree := []byte(`{"config":{"Labels":{"ostree.final-diffid":"` + d("2") + `"}},"rootfs":{"type":"layers","diff_ids":["` + d("1") + `","` + d("2") + `"]}}`)
	mOstree := []byte(`{"schemaVersion":2,"layers":[{"mediaType":"x","digest":"` + d("3") + `","size":1},{"mediaType":"x","digest":"` + d("4") + `","size":1,"annotations":{"ostree.components":"libssl3,openssl"}}]}`)
	got, err = PriorLayers(mOstree, cfgOstree)
	if err != nil || len(got) != 1 || !slices.Equal(got[0].Components, []string{"libssl3", "openssl"}) {
		t.Fatalf("ostree: %v %v", got, err)
	}
	tr := translatePrior(got, map[string]string{"libssl3": "deb/openssl", "openssl": "deb/openssl"})
	if !slices.Equal(tr[0].Components, []string{"deb/openssl"}) {
		t.Errorf("translated %v", tr)
	}
	if _, err := PriorLayers([]byte(`{"schemaVersion":2,"layers":[{"mediaType":"x","digest":"`+d("3")+`","size":1}]}`), cfgPlain); err == nil {
		t.Error("a layer without annotation gave a layout")
	}
}

// TestXattrComponents: user.component claims a subtree, the nearest
// claim wins, user.update-interval sets the stability.
func TestXattrComponents(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "tree")
	for p, c := range map[string]string{"usr/lib/app/a": "a", "usr/lib/app/sub/b": "b", "usr/lib/app/c": "c", "usr/bin/x": "x"} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	set := func(p, k, v string) {
		if err := syscall.Setxattr(filepath.Join(dir, p), k, []byte(v), 0); err != nil {
			enctest.SkipOrFail(t, "user xattrs: %v", err)
		}
	}
	set("usr/lib/app", ComponentXattr, "app")
	set("usr/lib/app", IntervalXattr, "monthly")
	set("usr/lib/app/c", ComponentXattr, "other")
	repo := enctest.NewRepo(t, ostree.ModeBareUser)
	commit := enctest.CommitDir(t, repo, dir)
	plan, err := PlanLayers(repo, commit, PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	where := map[string]string{}
	stab := map[string]string{}
	for _, l := range plan.Layers {
		for _, c := range l.Objects {
			for _, n := range plan.objs[c] {
				where[n] = l.Annotation()
			}
		}
		stab[l.Annotation()] = l.StabilityString()
	}
	want := map[string]string{"usr/lib/app/a": "xattr/app", "usr/lib/app/sub/b": "xattr/app", "usr/lib/app/c": "xattr/other"}
	for p, w := range want {
		if where[p] != w {
			t.Errorf("%s in %q, want %q", p, where[p], w)
		}
	}
	if stab["xattr/app"] != "0.792" || stab["xattr/other"] != "0.368" {
		t.Errorf("stabilities %v: want xattr/app 0.792 (monthly), xattr/other 0.368 (weekly)", stab)
	}
}

// TestRechunkRoundTrip: umoci unpack of the output equals the input tree
// (etc for usr/etc), the output re-imports to the same root tree, and
// skopeo reads it.
func TestRechunkRoundTrip(t *testing.T) {
	enctest.RequireTool(t, "umoci", "skopeo")
	enctest.RequireRoot(t)
	repo := enctest.NewRepo(t, ostree.ModeBareUser)
	commit, src := dpkgCommit(t, repo, "")
	tmp := t.TempDir()
	layout := filepath.Join(tmp, "img")
	rechunkTo(t, repo, commit, layout, "v1", Options{Labels: map[string]string{"containers.bootc": "1"}})

	enctest.RunTool(t, nil, "skopeo", "inspect", "oci:"+layout+":v1")
	bundle := filepath.Join(tmp, "bundle")
	enctest.RunTool(t, nil, "umoci", "unpack", "--image", layout+":v1", bundle)
	want := snapshot(t, src, true)
	got := snapshot(t, filepath.Join(bundle, "rootfs"), false)
	for p := range want {
		if got[p] != want[p] {
			t.Errorf("%s: umoci has %q, the input %q", p, got[p], want[p])
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			t.Errorf("%s: only in umoci's unpack (%s)", p, got[p])
		}
	}

	ref, err := oci.ParseRef("oci:" + layout + ":v1")
	if err != nil {
		t.Fatal(err)
	}
	rd, err := oci.NewReader(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	s, err := ImageSource(context.Background(), rd, ref.ImageString())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, err := repo.ReadCommit(commit)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Repo.ReadCommit(s.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if a.RootTree != b.RootTree || a.RootMeta != b.RootMeta {
		t.Errorf("re-import: root dirtree/dirmeta %s/%s, the input %s/%s", b.RootTree, b.RootMeta, a.RootTree, a.RootMeta)
	}
}

// snapshot lists every path of a tree: type, mode, owner, content hash or
// link target; with etc, usr/etc is listed as etc.
func snapshot(t *testing.T, root string, mapEtc bool) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if mapEtc {
			rel = outName("/" + rel)
		}
		if strings.HasPrefix(rel, "sysroot/") {
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		v := fmt.Sprintf("%o %d:%d", fi.Mode(), st.Uid, st.Gid)
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			v += " -> " + target
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h := sha256.Sum256(b)
			v += " " + hex.EncodeToString(h[:8])
		}
		out[rel] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestImageSourceOstree: an ostree image (encapsulate's) is read through the
// image store's pull, to the commit's own tree; its ostree.components
// layout seeds the plain image's.
func TestImageSourceOstree(t *testing.T) {
	repo := enctest.NewRepo(t, ostree.ModeBareUser)
	commit, _ := dpkgCommit(t, repo, "")
	layout := filepath.Join(t.TempDir(), "img")
	ref, err := oci.ParseRef("oci:" + layout + ":ostree")
	if err != nil {
		t.Fatal(err)
	}
	w, err := oci.NewWriter(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := encap.Encapsulate(context.Background(), repo, commit, w, encap.Options{}); err != nil {
		t.Fatal(err)
	}
	w.Close()
	rd, err := oci.NewReader(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	s, err := ImageSource(context.Background(), rd, ref.ImageString())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, _ := repo.ReadCommit(commit)
	b, err := s.Repo.ReadCommit(s.Commit)
	if err != nil {
		t.Fatal(err)
	}
	if a.RootTree != b.RootTree {
		t.Errorf("pulled root dirtree %s, the commit's %s", b.RootTree, a.RootTree)
	}
	if s.Config == nil || s.Labels["ostree.final-diffid"] == "" {
		t.Fatalf("source config/labels %v", s.Labels)
	}
	prior, err := PriorBuild(context.Background(), ref, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := PlanLayers(s.Repo, s.Commit, PlanOptions{Prior: prior})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range plan.Layers {
		names = append(names, l.Annotation())
	}
	// encapsulate put libssl3 and openssl in their own layers; translated,
	// they are one deb/openssl component, in a layer of its own.
	if !slices.Contains(names, "deb/openssl") {
		t.Errorf("layers %q: want deb/openssl alone", names)
	}
	out := rechunkTo(t, s.Repo, s.Commit, layout, "plain", Options{Config: s.Config})
	var cfg v1.Image
	if err := json.Unmarshal(out.Config, &cfg); err != nil {
		t.Fatal(err)
	}
	if _, ok := cfg.Config.Labels["ostree.final-diffid"]; ok {
		t.Errorf("labels %v keep ostree.final-diffid", cfg.Config.Labels)
	}
}
