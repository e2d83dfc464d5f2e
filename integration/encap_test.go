package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ocitree/ocitree/fixtures"
	digest "github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// bumpedPackage is the DpkgOS package that TestEncapChunkingDpkg updates.
const bumpedPackage = "bash"

func init() {
	treeGenerators["dpkgos"] = func(dir string) error { return fixtures.DpkgOS(dir, fixtures.DpkgOSOptions{}) }
	treeGenerators["dpkgos-bumped"] = func(dir string) error {
		return fixtures.DpkgOS(dir, fixtures.DpkgOSOptions{Bump: bumpedPackage})
	}
}

// Labels and annotations of the ostree container format (spec §4.2-4.3).
const (
	componentsAnnotation = "ostree.components"
	finalDiffIDLabel     = "ostree.final-diffid"
	commitLabel          = "ostree.commit"
)

var digestLine = regexp.MustCompile(`^sha256:[0-9a-f]{64}\n$`)

// encapsulate runs `ocitree encapsulate --repo repo rev ref extra...` and
// returns the manifest digest it prints (stdout must be exactly the digest
// and a newline).
func encapsulate(t *testing.T, repo, rev, ref string, extra ...string) string {
	t.Helper()
	r := ocitree(t, append([]string{"encapsulate", "--repo", repo, rev, ref}, extra...)...)
	out := must(t, r)
	if r.stderr != "" {
		// Warnings (e.g. packages without a file list) mean the component
		// attribution went wrong for these trees.
		t.Errorf("ocitree encapsulate succeeded with messages on stderr:\n%s", r)
	}
	if !digestLine.MatchString(out) {
		t.Fatalf("ocitree encapsulate must print the manifest digest (sha256:<64 hex>) and a newline, got %q\n%s", out, r)
	}
	return strings.TrimSpace(out)
}

// unencapsulate runs `ocitree unencapsulate --repo repo ref extra...` and
// returns the commit checksum it prints.
func unencapsulate(t *testing.T, repo, ref string, extra ...string) string {
	t.Helper()
	r := ocitree(t, append([]string{"unencapsulate", "--repo", repo, ref}, extra...)...)
	out := must(t, r)
	if !strings.HasSuffix(out, "\n") || !hex64.MatchString(strings.TrimSuffix(out, "\n")) {
		t.Fatalf("ocitree unencapsulate must print the commit checksum (64 hex) and a newline, got %q\n%s", out, r)
	}
	return strings.TrimSuffix(out, "\n")
}

// srcBranch is the branch of the shared source commits: the one golden()
// commits to, as the branch is bound into the commit (ostree.ref-binding).
const srcBranch = "test/main"

func ociRef(layout string) string { return "oci:" + layout + ":latest" }

// encapOpts are the commit options of every source commit here.
func encapOpts(treeName string) commitOpts { return commitOpts{subject: "encap " + treeName} }

// builtImage is a shared, read-only build: treeName committed by ocitree to
// branch srcBranch of a bare repository and encapsulated with the defaults
// (gzip, no previous build) to oci:layout:latest.
type builtImage struct {
	src, repo, commit, layout, digest string
}

func (b builtImage) ref() string { return ociRef(b.layout) }

func sharedImage(t *testing.T, treeName string) builtImage {
	t.Helper()
	src := tree(t, treeName)
	val := cached(t, "encap-image:"+treeName, func() (string, error) {
		dir, err := os.MkdirTemp(cacheDir, "encap-"+treeName+"-")
		if err != nil {
			return "", err
		}
		repo, layout := filepath.Join(dir, "repo"), filepath.Join(dir, "oci")
		run := func(args ...string) (string, error) {
			r := ocitree(t, args...)
			if r.code != 0 || r.err != nil {
				return "", fmt.Errorf("%s", r)
			}
			return strings.TrimSpace(r.stdout), nil
		}
		if _, err := run("repo", "init", "--repo", repo, "--mode", "bare"); err != nil {
			return "", err
		}
		commit, err := run(append(encapOpts(treeName).ocitreeArgs(repo, srcBranch), src)...)
		if err != nil {
			return "", err
		}
		dgst, err := run("encapsulate", "--repo", repo, srcBranch, ociRef(layout))
		if err != nil {
			return "", err
		}
		return strings.Join([]string{repo, commit, layout, dgst}, "\x00"), nil
	})
	f := strings.Split(val, "\x00")
	return builtImage{src: src, repo: f[0], commit: f[1], layout: f[2], digest: f[3]}
}

// copyDir copies a directory tree with `cp -a` (to modify a shared input).
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	must(t, runCmd(t, nil, "cp", "-a", src, dst))
}

// ociImage is one image of an OCI layout directory, read without our code.
type ociImage struct {
	dir      string
	desc     v1.Descriptor // its entry in index.json
	manifest v1.Manifest
	config   v1.Image
	rawMan   []byte
}

func blobFile(dir string, d digest.Digest) string {
	return filepath.Join(dir, "blobs", d.Algorithm().String(), d.Encoded())
}

// readBlob reads a blob of the layout and checks it against its digest.
func readBlob(t *testing.T, dir string, d digest.Digest) []byte {
	t.Helper()
	b, err := os.ReadFile(blobFile(dir, d))
	if err != nil {
		t.Fatal(err)
	}
	if got := digest.FromBytes(b); got != d {
		t.Fatalf("blob %s of %s has digest %s", d, dir, got)
	}
	return b
}

func readIndex(t *testing.T, dir string) v1.Index {
	t.Helper()
	var idx v1.Index
	b, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err == nil {
		err = json.Unmarshal(b, &idx)
	}
	if err != nil {
		t.Fatalf("index.json of %s: %v", dir, err)
	}
	return idx
}

// readOCI reads the image tagged "latest" from the layout at dir.
func readOCI(t *testing.T, dir string) ociImage {
	t.Helper()
	img := ociImage{dir: dir}
	found := false
	for _, d := range readIndex(t, dir).Manifests {
		if d.Annotations[v1.AnnotationRefName] == "latest" {
			img.desc, found = d, true
		}
	}
	if !found {
		t.Fatalf("%s/index.json has no manifest tagged latest", dir)
	}
	img.rawMan = readBlob(t, dir, img.desc.Digest)
	if err := json.Unmarshal(img.rawMan, &img.manifest); err != nil {
		t.Fatalf("manifest %s: %v", img.desc.Digest, err)
	}
	if err := json.Unmarshal(readBlob(t, dir, img.manifest.Config.Digest), &img.config); err != nil {
		t.Fatalf("config %s: %v", img.manifest.Config.Digest, err)
	}
	if len(img.config.RootFS.DiffIDs) != len(img.manifest.Layers) {
		t.Fatalf("%s: %d layers but %d diff_ids", dir, len(img.manifest.Layers), len(img.config.RootFS.DiffIDs))
	}
	return img
}

// layerTar returns the uncompressed tar of layer i, checked against its
// diff_id.
func (img ociImage) layerTar(t *testing.T, i int) []byte {
	t.Helper()
	desc := img.manifest.Layers[i]
	blob := readBlob(t, img.dir, desc.Digest)
	var (
		data []byte
		err  error
	)
	switch desc.MediaType {
	case v1.MediaTypeImageLayerGzip:
		var zr *gzip.Reader
		if zr, err = gzip.NewReader(bytes.NewReader(blob)); err == nil {
			data, err = io.ReadAll(zr)
		}
	case v1.MediaTypeImageLayerZstd:
		var zr *zstd.Decoder
		if zr, err = zstd.NewReader(bytes.NewReader(blob)); err == nil {
			data, err = io.ReadAll(zr)
			zr.Close()
		}
	default:
		err = fmt.Errorf("unexpected media type %q", desc.MediaType)
	}
	if err != nil {
		t.Fatalf("layer %d (%s): %v", i, desc.Digest, err)
	}
	if got := digest.FromBytes(data); got != img.config.RootFS.DiffIDs[i] {
		t.Fatalf("layer %d: uncompressed digest %s, diff_id %s", i, got, img.config.RootFS.DiffIDs[i])
	}
	return data
}

// tarEntry is one member of a tar stream with its byte range: start is
// where its headers begin (long-name and PAX headers included), data where
// its content begins, end where the padded content ends.
type tarEntry struct {
	hdr              *tar.Header
	start, data, end int
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

// scanTar lists the members of a tar stream with their offsets.
func scanTar(t *testing.T, data []byte) []tarEntry {
	t.Helper()
	cr := &countingReader{r: bytes.NewReader(data)}
	tr := tar.NewReader(cr)
	var out []tarEntry
	prevEnd := 0
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("tar: %v", err)
		}
		e := tarEntry{hdr: hdr, start: prevEnd, data: cr.n}
		e.end = e.data
		if hdr.Typeflag == tar.TypeReg {
			e.end += int(hdr.Size+511) / 512 * 512
		}
		prevEnd = e.end
		out = append(out, e)
	}
}

// checkoutPaths returns the non-directory entries of a layer outside the
// embedded repository (the checkout paths: hardlinks, empty files).
func checkoutPaths(t *testing.T, data []byte) []string {
	t.Helper()
	var out []string
	for _, e := range scanTar(t, data) {
		if e.hdr.Typeflag == tar.TypeDir || strings.HasPrefix(e.hdr.Name, "sysroot/") {
			continue
		}
		out = append(out, e.hdr.Name)
	}
	return out
}

// layerPath is where the layers put the checkout of a tree path: usr/etc is
// mapped back to etc (spec §3.6).
func layerPath(rel string) string {
	if rel == "usr/etc" || strings.HasPrefix(rel, "usr/etc/") {
		return strings.TrimPrefix(rel, "usr/")
	}
	return rel
}

// writeBlob adds data to the layout's blobs and returns its digest.
func writeBlob(t *testing.T, dir string, data []byte) digest.Digest {
	t.Helper()
	d := digest.FromBytes(data)
	if err := os.WriteFile(blobFile(dir, d), data, 0o644); err != nil {
		t.Fatal(err)
	}
	return d
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rewriteLayer replaces layer idx of the image tagged latest in the OCI
// layout dir by edit(its uncompressed tar), recompressed with gzip, and
// keeps the image consistent: new layer blob and descriptor, new diff_id,
// ostree.final-diffid (label and manifest annotation) moved along when it
// named that layer, new config blob, new manifest blob, new index.json
// entry. Digests then check out, so only the tar content is wrong.
func rewriteLayer(t *testing.T, dir string, idx int, edit func([]byte) []byte) {
	t.Helper()
	img := readOCI(t, dir)
	if mt := img.manifest.Layers[idx].MediaType; mt != v1.MediaTypeImageLayerGzip {
		t.Fatalf("rewriteLayer: layer %d is %s, not gzip", idx, mt)
	}
	data := edit(img.layerTar(t, idx))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	if _, err := zw.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	m, cfg := img.manifest, img.config
	m.Layers = slices.Clone(m.Layers)
	m.Layers[idx].Digest = writeBlob(t, dir, gz.Bytes())
	m.Layers[idx].Size = int64(gz.Len())
	oldDiff, newDiff := cfg.RootFS.DiffIDs[idx], digest.FromBytes(data)
	cfg.RootFS.DiffIDs = slices.Clone(cfg.RootFS.DiffIDs)
	cfg.RootFS.DiffIDs[idx] = newDiff
	for _, labels := range []map[string]string{cfg.Config.Labels, m.Annotations} {
		if labels[finalDiffIDLabel] == oldDiff.String() {
			labels[finalDiffIDLabel] = newDiff.String()
		}
	}
	cb := mustJSON(t, cfg)
	m.Config.Digest, m.Config.Size = writeBlob(t, dir, cb), int64(len(cb))
	mb := mustJSON(t, m)
	index := readIndex(t, dir)
	for i, d := range index.Manifests {
		if d.Digest == img.desc.Digest {
			index.Manifests[i].Digest, index.Manifests[i].Size = writeBlob(t, dir, mb), int64(len(mb))
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), mustJSON(t, index), 0o644); err != nil {
		t.Fatal(err)
	}
}

// components returns the ostree.components names of every layer (nil for
// the commit layer).
func (img ociImage) components(t *testing.T) [][]string {
	t.Helper()
	out := make([][]string, len(img.manifest.Layers))
	for i, l := range img.manifest.Layers {
		v, ok := l.Annotations[componentsAnnotation]
		if i == 0 {
			if ok {
				t.Errorf("the commit layer carries %s=%q; ostree-ext writes no annotation there", componentsAnnotation, v)
			}
			continue
		}
		if !ok {
			t.Errorf("layer %d (%s) has no %s annotation", i, l.Digest, componentsAnnotation)
			continue
		}
		out[i] = []string{}
		if v != "" {
			out[i] = strings.Split(v, ",")
		}
	}
	return out
}

// checkImageFormat checks what spec §4.2-4.3 fixes for an image of commit
// (made with subject at time ts): the ostree.commit and
// ostree.final-diffid labels (the latter the last layer's diff_id), the
// labels copied as manifest annotations, one history entry per layer with
// the commit subject for the commit layer, and the commit time as created.
func checkImageFormat(t *testing.T, img ociImage, commit, subject string, ts time.Time) {
	t.Helper()
	labels := img.config.Config.Labels
	if labels[commitLabel] != commit {
		t.Errorf("label %s=%q, want %s", commitLabel, labels[commitLabel], commit)
	}
	diffs := img.config.RootFS.DiffIDs
	if want := diffs[len(diffs)-1].String(); labels[finalDiffIDLabel] != want {
		t.Errorf("label %s=%q, want the last layer's diff_id %s", finalDiffIDLabel, labels[finalDiffIDLabel], want)
	}
	for k, v := range labels {
		if img.manifest.Annotations[k] != v {
			t.Errorf("label %s=%q is not copied to the manifest annotations (%q)", k, v, img.manifest.Annotations[k])
		}
	}
	if len(img.config.History) != len(diffs) {
		t.Errorf("%d history entries for %d layers", len(img.config.History), len(diffs))
	} else if img.config.History[0].CreatedBy != subject {
		t.Errorf("history of the commit layer: created_by %q, want the commit subject %q", img.config.History[0].CreatedBy, subject)
	}
	if img.config.Created == nil || !img.config.Created.Equal(ts) {
		t.Errorf("config created %v, want the commit time %v", img.config.Created, ts)
	}
}

// layerOf returns the index of the layer whose components include name.
func layerOf(comps [][]string, name string) int {
	for i, c := range comps {
		if slices.Contains(c, name) {
			return i
		}
	}
	return -1
}

// contentChecksums returns the content checksums of the files and symlinks
// of rev, as the real ostree lists them.
func contentChecksums(t *testing.T, repo, rev string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(must(t, ostree(t, "ls", "--repo="+repo, "-R", "-C", rev)), "\n") {
		f := strings.Fields(line)
		if len(f) >= 6 && (line[0] == '-' || line[0] == 'l') && hex64.MatchString(f[4]) {
			out = append(out, f[4])
		}
	}
	if len(out) == 0 {
		t.Fatalf("ostree ls -R -C %s listed no content objects", rev)
	}
	return out
}

// TestEncapRoundTrip encapsulates EdgeTree, MiniOS and DpkgOS commits made
// by ocitree and imports each image into an empty repository of every mode:
// the commit checksum is the one the real ostree computes for the tree, ostree
// fsck accepts the repository, `ostree checkout` reproduces the source tree,
// and encapsulating the imported commit again gives the same image.
func TestEncapRoundTrip(t *testing.T) {
	for _, treeName := range []string{"edge", "minios", "dpkgos"} {
		for _, mode := range modes {
			t.Run(treeName+"/"+mode, func(t *testing.T) {
				setup(t)
				t.Parallel()
				img := sharedImage(t, treeName)
				theirRepo, want := golden(t, "bare", treeName, encapOpts(treeName))
				if img.commit != want {
					t.Fatalf("source commit %s, ostree commits the tree as %s\n%s", img.commit, want, explainMismatch(t, img.repo, img.commit, theirRepo, want))
				}
				if mode == "bare" {
					checkImageFormat(t, readOCI(t, img.layout), img.commit, encapOpts(treeName).subject, defaultTimestamp)
				}
				dir := workDir(t)
				repo := filepath.Join(dir, "repo")
				ocitreeInit(t, repo, mode)
				got := unencapsulate(t, repo, img.ref(), "--write-ref", "imported/os")
				if got != want {
					t.Fatalf("unencapsulate gave commit %s, want %s", got, want)
				}
				if ref, err := os.ReadFile(refFile(repo, "imported/os")); err != nil || string(ref) != got+"\n" {
					t.Errorf("--write-ref imported/os: ref file %q (%v), want %q", ref, err, got+"\n")
				}
				ostreeFsck(t, repo)
				co := filepath.Join(dir, "co")
				must(t, ostree(t, "checkout", "--repo="+repo, got, co))
				assertSameTree(t, "ostree checkout of the imported commit", img.src, co, cmpOpts{})
				// The imported commit encapsulates to the very same image.
				again := encapsulate(t, repo, "imported/os", ociRef(filepath.Join(dir, "again")), "--previous-build", "none")
				if again != img.digest {
					t.Errorf("encapsulating the commit imported into a %s repository gave %s, the original image is %s", mode, again, img.digest)
				}
			})
		}
	}
}

// TestEncapOCITools reads the images with skopeo and unpacks them with
// umoci: the digest encapsulate printed is the manifest digest, a copy keeps
// it, and the unpacked root file system is the source tree with usr/etc at
// etc (byte for byte, modes included), plus every content object of the
// commit in sysroot/ostree/repo.
func TestEncapOCITools(t *testing.T) {
	for _, treeName := range []string{"edge", "minios", "dpkgos"} {
		t.Run(treeName, func(t *testing.T) {
			setup(t, "skopeo", "umoci")
			t.Parallel()
			img := sharedImage(t, treeName)
			dir := workDir(t)
			inspect := func(ref string) string {
				t.Helper()
				var info struct{ Digest string }
				if err := json.Unmarshal([]byte(must(t, runCmd(t, nil, "skopeo", "inspect", ref))), &info); err != nil {
					t.Fatalf("skopeo inspect %s: %v", ref, err)
				}
				return info.Digest
			}
			if d := inspect(img.ref()); d != img.digest {
				t.Errorf("skopeo inspect %s: Digest %s, encapsulate printed %s", img.ref(), d, img.digest)
			}
			cp := filepath.Join(dir, "copy")
			must(t, runCmd(t, nil, "skopeo", "copy", img.ref(), ociRef(cp)))
			if d := inspect(ociRef(cp)); d != img.digest {
				t.Errorf("skopeo copy changed the manifest digest: %s, want %s", d, img.digest)
			}

			bundle := filepath.Join(dir, "bundle")
			must(t, runCmd(t, nil, "umoci", "unpack", "--rootless", "--image", cp+":latest", bundle))
			rootfs := filepath.Join(bundle, "rootfs")
			if _, err := os.Lstat(filepath.Join(rootfs, "usr", "etc")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the unpacked image has usr/etc (%v); the layers must carry it as etc", err)
			}
			// The whole root file system: the source tree with usr/etc at
			// etc, plus the embedded repository and the synthetic var/tmp
			// (spec §3.3-3.4; with their parents where the tree has none). Ownership is not compared (umoci --rootless
			// decides it); type, mode, content and link target must be exact.
			we, err := fixtures.Scan(img.src)
			if err != nil {
				t.Fatal(err)
			}
			ge, err := fixtures.Scan(rootfs)
			if err != nil {
				t.Fatal(err)
			}
			gm := map[string]fixtures.Entry{}
			for _, e := range ge {
				gm[e.Path] = e
			}
			diffs := 0
			for _, w := range we {
				p := layerPath(w.Path)
				g, ok := gm[p]
				delete(gm, p)
				if ok && g.Type == w.Type && g.Mode == w.Mode && g.SHA256 == w.SHA256 && g.Target == w.Target {
					continue
				}
				if diffs++; diffs <= 30 {
					if !ok {
						t.Errorf("unpacked rootfs lacks %s (source %s)", p, w)
					} else {
						t.Errorf("unpacked rootfs has %s, source has %s", g, w)
					}
				}
			}
			for p, g := range gm {
				if p == "var" || p == "var/tmp" || p == "sysroot" || p == "sysroot/ostree" || strings.HasPrefix(p, "sysroot/ostree/") {
					continue
				}
				if diffs++; diffs <= 30 {
					t.Errorf("unpacked rootfs has %s, which the source tree does not", g)
				}
			}
			if diffs > 30 {
				t.Errorf("... %d differences in all", diffs)
			}
			objects := filepath.Join(rootfs, "sysroot", "ostree", "repo", "objects")
			for _, c := range contentChecksums(t, img.repo, img.commit) {
				if _, err := os.Lstat(filepath.Join(objects, c[:2], c[2:]+".file")); err != nil {
					t.Errorf("rootfs lacks content object %s: %v", c, err)
				}
			}
		})
	}
}

// TestEncapReproducible encapsulates the same commit twice into two new
// layouts: same manifest digest, byte-identical layouts; with gzip it is
// also the digest of the first (shared) build.
func TestEncapReproducible(t *testing.T) {
	for _, tc := range []struct{ tree, compression string }{{"edge", "gzip"}, {"dpkgos", "gzip"}, {"dpkgos", "zstd"}} {
		t.Run(tc.tree+"/"+tc.compression, func(t *testing.T) {
			setup(t)
			t.Parallel()
			img := sharedImage(t, tc.tree)
			dir := workDir(t)
			a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
			da := encapsulate(t, img.repo, srcBranch, ociRef(a), "--previous-build", "none", "--compression", tc.compression)
			db := encapsulate(t, img.repo, img.commit, ociRef(b), "--previous-build", "none", "--compression", tc.compression)
			if da != db {
				t.Errorf("two builds of commit %s: manifest digests %s and %s", img.commit, da, db)
			}
			if tc.compression == "gzip" && da != img.digest {
				t.Errorf("build with --previous-build none: %s; the first build into a new layout: %s", da, img.digest)
			}
			if tc.compression == "zstd" && da == img.digest {
				t.Errorf("zstd build has the digest of the gzip build %s", da)
			}
			ia := readOCI(t, a)
			for i, l := range ia.manifest.Layers {
				want := v1.MediaTypeImageLayerGzip
				if tc.compression == "zstd" {
					want = v1.MediaTypeImageLayerZstd
				}
				if l.MediaType != want {
					t.Errorf("layer %d media type %s, want %s", i, l.MediaType, want)
				}
			}
			if d := ia.desc.Digest.String(); d != da {
				t.Errorf("index.json names manifest %s, encapsulate printed %s", d, da)
			}
			// Byte-identical layouts.
			list := func(root string) map[string][]byte {
				m := map[string][]byte{}
				err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					rel, _ := filepath.Rel(root, p)
					m[rel], err = os.ReadFile(p)
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				return m
			}
			fa, fb := list(a), list(b)
			for name, data := range fa {
				if other, ok := fb[name]; !ok {
					t.Errorf("%s only in the first layout", name)
				} else if !bytes.Equal(data, other) {
					t.Errorf("%s differs between the layouts", name)
				}
			}
			for name := range fb {
				if _, ok := fa[name]; !ok {
					t.Errorf("%s only in the second layout", name)
				}
			}
			if tc.compression == "zstd" {
				repo := filepath.Join(dir, "repo")
				ocitreeInit(t, repo, "bare-user")
				if got := unencapsulate(t, repo, ociRef(a)); got != img.commit {
					t.Errorf("zstd image imports as %s, want %s", got, img.commit)
				}
				ostreeFsck(t, repo)
			}
		})
	}
}

// dpkgOwners returns, per DpkgOS tree path (files and symlinks), the
// layer component it must land in: "kernel" for the kernel and initramfs,
// else the first (by name) installed package whose .list names a path with
// the same content object (or whose dpkg info files hold it), else
// "package-database" for the rest of var/lib/dpkg, else "unpackaged".
func dpkgOwners(t *testing.T, src string) map[string]string {
	t.Helper()
	entries, err := fixtures.Scan(src)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string]fixtures.Entry{}
	for _, e := range entries {
		byPath[e.Path] = e
	}
	object := func(e fixtures.Entry) string { // what makes an ostree content object
		return fmt.Sprintf("%c %o %d:%d %s %q %s", e.Type, e.Mode, e.Uid, e.Gid, e.SHA256, e.Target, fmtXattrs(e.Xattrs))
	}
	claims := map[string]string{}
	for _, pkg := range fixtures.DpkgOSPackages() { // sorted: the first claim wins
		var list []byte
		for _, n := range []string{pkg + ":amd64.list", pkg + ".list"} {
			if list, err = os.ReadFile(filepath.Join(src, "var/lib/dpkg/info", n)); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("no .list for %s: %v", pkg, err)
		}
		for _, l := range strings.Split(strings.TrimSpace(string(list)), "\n") {
			if e, ok := byPath[fixtures.DpkgOSTreePath(l)]; ok && e.Type != 'd' {
				if _, taken := claims[object(e)]; !taken {
					claims[object(e)] = pkg
				}
			}
		}
		// dpkg's own files of the package (info/PKG.list, .md5sums, ...)
		// travel with it.
		for _, e := range entries {
			if e.Type != 'd' && (strings.HasPrefix(e.Path, "var/lib/dpkg/info/"+pkg+".") || strings.HasPrefix(e.Path, "var/lib/dpkg/info/"+pkg+":amd64.")) {
				if _, taken := claims[object(e)]; !taken {
					claims[object(e)] = pkg
				}
			}
		}
	}
	// The rest of the dpkg database is the package-database component.
	database := map[string]bool{}
	for _, e := range entries {
		if e.Type != 'd' && strings.HasPrefix(e.Path, "var/lib/dpkg/") && claims[object(e)] == "" {
			database[object(e)] = true
		}
	}
	owners := map[string]string{}
	for _, e := range entries {
		if e.Type == 'd' {
			continue
		}
		dir, base := path.Split(e.Path)
		switch {
		case strings.HasPrefix(dir, "usr/lib/modules/") && strings.Count(dir, "/") == 4 && (base == "vmlinuz" || base == "initramfs.img"):
			owners[e.Path] = "kernel"
		case claims[object(e)] != "":
			owners[e.Path] = claims[object(e)]
		case database[object(e)]:
			owners[e.Path] = "package-database"
		default:
			owners[e.Path] = "unpackaged"
		}
	}
	return owners
}

// checkDpkgLayers checks the component layers of an image of a DpkgOS
// commit: every layer after the first names its components (one reserved
// empty layer allowed), every installed package is named exactly once, the
// kernel has a layer of its own, and every file of the tree is in the layer
// of its owner.
func checkDpkgLayers(t *testing.T, img ociImage, src string) [][]string {
	t.Helper()
	comps := img.components(t)
	known := append(fixtures.DpkgOSPackages(), "kernel", "package-database", "unpackaged")
	seen := map[string]int{}
	empty := 0
	for i, c := range comps[1:] {
		if len(c) == 0 {
			empty++
			continue
		}
		for _, name := range c {
			if !slices.Contains(known, name) {
				t.Errorf("layer %d names component %q, which is no package of the tree", i+1, name)
			}
			seen[name]++
		}
	}
	if empty > 1 {
		t.Errorf("%d layers without components; at most one (reserved for new packages) expected", empty)
	}
	for _, name := range known {
		if seen[name] != 1 {
			t.Errorf("component %s named by %d layers, want exactly 1", name, seen[name])
		}
	}
	owners := dpkgOwners(t, src)
	where := map[string][]int{}
	for i := range comps {
		for _, p := range checkoutPaths(t, img.layerTar(t, i)) {
			where[p] = append(where[p], i)
		}
	}
	kernelLayer := layerOf(comps, "kernel")
	if kernelLayer > 0 && len(comps[kernelLayer]) != 1 {
		t.Errorf("the kernel shares layer %d with %v", kernelLayer, comps[kernelLayer])
	}
	wrong := 0
	for p, owner := range owners {
		lp := layerPath(p)
		ls := where[lp]
		want := layerOf(comps, owner)
		if len(ls) != 1 || ls[0] != want {
			if wrong++; wrong <= 20 {
				t.Errorf("%s (owner %s, layer %d %v) is in layers %v", lp, owner, want, comps[max(want, 0)], ls)
			}
		}
		delete(where, lp)
	}
	if wrong > 20 {
		t.Errorf("... %d misplaced paths in all", wrong)
	}
	for p, ls := range where {
		t.Errorf("layers %v hold %s, which is not in the tree", ls, p)
	}
	if kernelLayer > 0 {
		var paths []string
		for p, owner := range owners {
			if owner == "kernel" {
				paths = append(paths, p)
			}
		}
		if len(paths) != 2 {
			t.Errorf("kernel paths %v, want vmlinuz and initramfs.img", paths)
		}
	}
	return comps
}

// TestEncapChunkingDpkg checks the component layers of a DpkgOS image and
// their stability: after one package is updated and committed to the same
// branch, encapsulating to the same image reference reuses its layout, and
// only the commit layer, the layer of that package and the package-database
// layer (dpkg's status file) change.
func TestEncapChunkingDpkg(t *testing.T) {
	for _, tc := range []struct {
		name  string
		extra []string
	}{{"default", nil}, {"max-layers-6", []string{"--max-layers", "6"}}} {
		t.Run(tc.name, func(t *testing.T) {
			setup(t)
			t.Parallel()
			base, bumped := tree(t, "dpkgos"), tree(t, "dpkgos-bumped")
			dir := workDir(t)
			repo := filepath.Join(dir, "repo")
			ocitreeInit(t, repo, "bare")
			c1 := ocitreeCommit(t, repo, "os/main", base, encapOpts("dpkgos"))
			layout := filepath.Join(dir, "image")
			d1 := encapsulate(t, repo, "os/main", ociRef(layout), tc.extra...)
			img1 := readOCI(t, layout)
			if img1.desc.Digest.String() != d1 {
				t.Fatalf("index.json names %s, encapsulate printed %s", img1.desc.Digest, d1)
			}
			checkImageFormat(t, img1, c1, encapOpts("dpkgos").subject, defaultTimestamp)
			if n := len(img1.manifest.Layers); tc.extra != nil && n > 6 {
				t.Errorf("--max-layers 6 gave %d layers", n)
			}
			comps1 := checkDpkgLayers(t, img1, base)
			if t.Failed() {
				return
			}
			prev := filepath.Join(dir, "prev")
			copyDir(t, layout, prev)

			o2 := commitOpts{subject: "update " + bumpedPackage, timestamp: defaultTimestamp.Add(24 * time.Hour)}
			c2 := ocitreeCommit(t, repo, "os/main", bumped, o2)
			if c2 == c1 {
				t.Fatal("the updated tree committed to the same checksum")
			}
			d2 := encapsulate(t, repo, "os/main", ociRef(layout), tc.extra...)
			img2 := readOCI(t, layout)
			if img2.desc.Digest.String() != d2 || img2.config.Config.Labels[commitLabel] != c2 {
				t.Fatalf("the layout's latest is %s (commit %s), want %s (commit %s)", img2.desc.Digest, img2.config.Config.Labels[commitLabel], d2, c2)
			}
			checkImageFormat(t, img2, c2, o2.subject, o2.timestamp)
			comps2 := checkDpkgLayers(t, img2, bumped)
			if len(img2.manifest.Layers) != len(img1.manifest.Layers) {
				t.Fatalf("the update has %d layers, the previous build %d: the layout was not reused", len(img2.manifest.Layers), len(img1.manifest.Layers))
			}
			for i := range comps1 {
				if !slices.Equal(comps1[i], comps2[i]) {
					t.Errorf("layer %d: components %v, previous build %v: the layout was not reused", i, comps2[i], comps1[i])
				}
			}
			wantChanged := []int{0, layerOf(comps1, bumpedPackage), layerOf(comps1, "package-database")}
			for i := range img1.manifest.Layers {
				l1, l2 := img1.manifest.Layers[i], img2.manifest.Layers[i]
				changed := l1.Digest != l2.Digest
				if changed != slices.Contains(wantChanged, i) {
					t.Errorf("layer %d %v: changed=%v (%s -> %s); only layers %v (commit, %s, package-database) should change",
						i, comps1[i], changed, l1.Digest, l2.Digest, wantChanged, bumpedPackage)
				}
			}

			// The same previous build named explicitly gives the same image.
			explicit := filepath.Join(dir, "explicit")
			if d := encapsulate(t, repo, "os/main", ociRef(explicit), append([]string{"--previous-build", ociRef(prev)}, tc.extra...)...); d != d2 {
				t.Errorf("--previous-build %s gave %s; reusing the destination gave %s", ociRef(prev), d, d2)
			}
			// Without a previous build the update still encapsulates and
			// imports.
			fresh := filepath.Join(dir, "fresh")
			encapsulate(t, repo, "os/main", ociRef(fresh), append([]string{"--previous-build", "none", "--label", "org.example.build=42"}, tc.extra...)...)
			imgFresh := readOCI(t, fresh)
			checkImageFormat(t, imgFresh, c2, o2.subject, o2.timestamp)
			if v := imgFresh.config.Config.Labels["org.example.build"]; v != "42" {
				t.Errorf("--label org.example.build=42: label is %q", v)
			}
			checkDpkgLayers(t, imgFresh, bumped)
			r2 := filepath.Join(dir, "repo2")
			ocitreeInit(t, r2, "bare-user")
			if got := unencapsulate(t, r2, ociRef(fresh)); got != c2 {
				t.Errorf("the --previous-build none image imports as %s, want %s", got, c2)
			}
		})
	}
}

// Edits of an uncompressed layer tar for TestUnencapBadInput.

// findEntry returns the first member whose name ends with suffix and, for
// regular files, has content.
func findEntry(t *testing.T, data []byte, suffix string) tarEntry {
	t.Helper()
	for _, e := range scanTar(t, data) {
		if strings.HasSuffix(e.hdr.Name, suffix) && (e.hdr.Typeflag != tar.TypeReg || e.hdr.Size > 0) {
			return e
		}
	}
	t.Fatalf("no %s entry in the layer", suffix)
	return tarEntry{}
}

// objectName is the checksum an object path names.
func objectName(name string) string {
	dir, file := path.Split(name)
	return path.Base(dir) + strings.SplitN(file, ".", 2)[0]
}

// TestUnencapBadInput imports broken images into empty repositories of each
// mode: each is refused with exit status 1 and a message naming the fault,
// and leaves the repository without refs or objects, acceptable to ostree
// fsck.
func TestUnencapBadInput(t *testing.T) {
	type breakFn func(t *testing.T, layout string) (mention string)
	flipBlob := func(layer int, at func(size int) int) breakFn {
		return func(t *testing.T, layout string) string {
			img := readOCI(t, layout)
			d := img.manifest.Layers[layer].Digest
			p := blobFile(layout, d)
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[at(len(b))] ^= 0x55
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return d.Encoded()
		}
	}
	lastLayer := func(t *testing.T, layout string) int { return len(readOCI(t, layout).manifest.Layers) - 1 }
	cases := []struct {
		name       string
		breakImage breakFn
		extra      string // a further fragment the message must contain
	}{
		// Valid rewrites: the helper keeps images consistent.
		{"control: commit layer rewritten unchanged", func(t *testing.T, l string) string {
			rewriteLayer(t, l, 0, func(b []byte) []byte { return b })
			return ""
		}, ""},
		{"control: last layer rewritten unchanged", func(t *testing.T, l string) string {
			rewriteLayer(t, l, lastLayer(t, l), func(b []byte) []byte { return b })
			return ""
		}, ""},
		// (a) blob bytes changed: only the digest can tell (the gzip OS
		// byte is not checked by decompressors), or the stream breaks.
		{"commit layer blob: gzip header byte", flipBlob(0, func(int) int { return 9 }), "digest"},
		{"component layer blob: gzip header byte", flipBlob(1, func(int) int { return 9 }), "digest"},
		{"component layer blob: middle byte", flipBlob(1, func(n int) int { return n / 2 }), ""},
		// (b) objects that do not hash to their names. With component
		// metadata (path groups for MiniOS) every content object is in a
		// component layer and the commit layer holds only metadata objects,
		// so the content object is broken in layer 1 and a dirmeta in the
		// commit layer.
		{"content object with a changed byte", func(t *testing.T, l string) string {
			var name string
			rewriteLayer(t, l, 1, func(b []byte) []byte {
				e := findEntry(t, b, ".file")
				name = objectName(e.hdr.Name)
				b = slices.Clone(b)
				b[e.data+int(e.hdr.Size)/2] ^= 0x01
				return b
			})
			return name
		}, "mismatch"},
		{"dirmeta object with a changed byte", func(t *testing.T, l string) string {
			var name string
			rewriteLayer(t, l, 0, func(b []byte) []byte {
				e := findEntry(t, b, ".dirmeta")
				name = objectName(e.hdr.Name)
				b = slices.Clone(b)
				b[e.data] ^= 0x01 // the uid's high byte: still a valid dirmeta
				return b
			})
			return name
		}, "mismatch"},
		// (c) no commit object.
		{"commit layer without .commit", func(t *testing.T, l string) string {
			rewriteLayer(t, l, 0, func(b []byte) []byte {
				e := findEntry(t, b, ".commit")
				return slices.Concat(b[:e.start], b[e.end:])
			})
			return ".commit"
		}, ""},
		// (d) truncated layers.
		{"commit layer truncated", func(t *testing.T, l string) string {
			rewriteLayer(t, l, 0, func(b []byte) []byte { return b[:len(b)/2] })
			return "truncated"
		}, ""},
		{"component layer truncated inside an object", func(t *testing.T, l string) string {
			rewriteLayer(t, l, 1, func(b []byte) []byte {
				e := findEntry(t, b, ".file")
				return b[:e.data+int(e.hdr.Size)/2]
			})
			return "truncated"
		}, ""},
		{"last component layer truncated", func(t *testing.T, l string) string {
			rewriteLayer(t, l, lastLayer(t, l), func(b []byte) []byte { return b[:len(b)/2] })
			return "truncated"
		}, ""},
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
			mention := tc.breakImage(t, layout)
			repo := filepath.Join(dir, "repo")
			ocitreeInit(t, repo, mode)
			r := ocitree(t, "unencapsulate", "--repo", repo, "--write-ref", "os/imported", ociRef(layout))
			if strings.HasPrefix(tc.name, "control") {
				if r.code != 0 || strings.TrimSpace(r.stdout) != img.commit {
					t.Fatalf("a consistently rewritten, unchanged image must import as %s:\n%s", img.commit, r)
				}
				ostreeFsck(t, repo)
				return
			}
			t.Logf("refused: %s", strings.TrimSpace(r.stderr))
			if r.code != 1 {
				t.Errorf("exit status %d, want 1:\n%s", r.code, r)
			}
			if r.stdout != "" {
				t.Errorf("a refused import printed %q on stdout", r.stdout)
			}
			msg := strings.ToLower(r.stderr)
			for _, w := range []string{mention, tc.extra} {
				if !strings.Contains(msg, strings.ToLower(w)) {
					t.Errorf("the error does not mention %q:\n%s", w, r.stderr)
				}
			}
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

// objectStates records every object file's inode and mtime.
func objectStates(t *testing.T, repo string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, o := range listObjects(t, repo) {
		fi, err := os.Lstat(filepath.Join(repo, "objects", o))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		out[o] = fmt.Sprintf("ino %d mtime %d", st.Ino, fi.ModTime().UnixNano())
	}
	return out
}

// TestUnencapExistingCommit imports an image into repositories that already
// hold its commit (the source repository's commit and an earlier import):
// same checksum, not one object rewritten or added, and not one even staged
// (txn-first-object-staged=error makes staging one a failure), which is what
// makes such an import cheap; no clock is read.
func TestUnencapExistingCommit(t *testing.T) {
	setup(t)
	t.Parallel()
	img := sharedImage(t, "dpkgos")
	dir := workDir(t)

	// A repository where the commit was made from the tree.
	committed := filepath.Join(dir, "committed")
	ocitreeInit(t, committed, "bare")
	if c := ocitreeCommit(t, committed, srcBranch, img.src, encapOpts("dpkgos")); c != img.commit {
		t.Fatalf("commit %s, want %s", c, img.commit)
	}
	// A repository where it was imported.
	imported := filepath.Join(dir, "imported")
	ocitreeInit(t, imported, "bare-user")
	if c := unencapsulate(t, imported, img.ref()); c != img.commit {
		t.Fatalf("import gave %s, want %s", c, img.commit)
	}

	for _, repo := range []string{committed, imported} {
		before := objectStates(t, repo)
		// The ostree-ext spelling of the reference (spec §2.2).
		r := runCmdEnv(t, []string{"OCITREE_FAILPOINTS=txn-first-object-staged=error"}, nil, ocitreeBin,
			"unencapsulate", "--repo", repo, "ostree-unverified-image:"+img.ref(), "--write-ref", "again")
		if r.code != 0 {
			t.Errorf("%s: import of an existing commit failed (staged an object?):\n%s", filepath.Base(repo), r)
		} else if c := strings.TrimSpace(r.stdout); c != img.commit {
			t.Errorf("%s: import of an existing commit gave %s, want %s", filepath.Base(repo), c, img.commit)
		}
		after := objectStates(t, repo)
		for o, s := range after {
			if b, ok := before[o]; !ok {
				t.Errorf("%s: import of an existing commit added %s", filepath.Base(repo), o)
			} else if b != s {
				t.Errorf("%s: import of an existing commit rewrote %s", filepath.Base(repo), o)
			}
		}
		if ref, err := os.ReadFile(refFile(repo, "again")); err != nil || string(ref) != img.commit+"\n" {
			t.Errorf("%s: --write-ref again: %q (%v)", filepath.Base(repo), ref, err)
		}
		ostreeFsck(t, repo)
	}
}
