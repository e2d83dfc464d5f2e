package imgstore

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ocitree/ocitree/encap/derived"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// tarEntry is one entry of a test layer: a directory (name ends in "/"),
// a symlink (body "->target") or a regular file.
type tarEntry struct {
	name, body string
	mode       int64
}

func plainLayer(t *testing.T, entries ...tarEntry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Mode: e.mode, ModTime: time.Unix(1700000000, 0), Format: tar.FormatPAX}
		switch {
		case strings.HasSuffix(e.name, "/"):
			h.Typeflag = tar.TypeDir
			if h.Mode == 0 {
				h.Mode = 0o755
			}
		case strings.HasPrefix(e.body, "->"):
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, strings.TrimPrefix(e.body, "->"), 0o777
		default:
			h.Typeflag, h.Size = tar.TypeReg, int64(len(e.body))
			if h.Mode == 0 {
				h.Mode = 0o644
			}
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// plainSpec describes a plain test image.
type plainSpec struct {
	layers [][]byte // uncompressed tars
	gzip   bool
	labels map[string]string
	arch   string
	// history entries (default: one per layer); annotation
	// org.opencontainers.image.created and config created.
	history           []v1.History
	annotated, cfgAt  string
	noDefaultHistory  bool
	noBootcMarkerSets bool
}

// writePlainImage writes spec as dir:tag and returns the manifest digest and
// the layer descriptors.
func writePlainImage(t *testing.T, dir, tag string, spec plainSpec) (digest.Digest, []v1.Descriptor) {
	t.Helper()
	ctx := context.Background()
	ref, err := oci.ParseRef("oci:" + dir + ":" + tag)
	if err != nil {
		t.Fatal(err)
	}
	w, err := oci.NewWriter(ctx, ref)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	arch := spec.arch
	if arch == "" {
		arch = "amd64"
	}
	cfg := v1.Image{Platform: v1.Platform{Architecture: arch, OS: "linux"}, RootFS: v1.RootFS{Type: "layers"}}
	cfg.Config.Labels = spec.labels
	if spec.cfgAt != "" {
		ts, err := time.Parse(time.RFC3339, spec.cfgAt)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Created = &ts
	}
	m := v1.Manifest{MediaType: v1.MediaTypeImageManifest}
	m.SchemaVersion = 2
	if spec.annotated != "" {
		m.Annotations = map[string]string{"org.opencontainers.image.created": spec.annotated}
	}
	for i, l := range spec.layers {
		blob, mt := l, v1.MediaTypeImageLayer
		if spec.gzip {
			var b bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&b, 1)
			zw.Write(l)
			zw.Close()
			blob, mt = b.Bytes(), v1.MediaTypeImageLayerGzip
		}
		d, err := w.PutBlob(ctx, bytes.NewReader(blob), v1.Descriptor{MediaType: mt, Digest: digest.FromBytes(blob), Size: int64(len(blob))})
		if err != nil {
			t.Fatal(err)
		}
		m.Layers = append(m.Layers, d)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(l))
		if !spec.noDefaultHistory {
			cfg.History = append(cfg.History, v1.History{CreatedBy: "layer " + string(rune('0'+i))})
		}
	}
	cfg.History = append(cfg.History, spec.history...)
	cb, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if m.Config, err = w.PutBlob(ctx, bytes.NewReader(cb), v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: digest.FromBytes(cb), Size: int64(len(cb))}); err != nil {
		t.Fatal(err)
	}
	mb, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.PutManifest(ctx, mb, v1.MediaTypeImageManifest); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return digest.FromBytes(mb), m.Layers
}

var bootcLabels = map[string]string{"containers.bootc": "1", "org.opencontainers.image.version": "42.1"}

// plainBase is a small root filesystem as a Containerfile build leaves it.
func plainBase(t *testing.T) []byte {
	return plainLayer(t,
		tarEntry{name: "./"},
		tarEntry{name: "etc/"},
		tarEntry{name: "etc/passwd", body: "root:x:0:0::/root:/bin/sh\n"},
		tarEntry{name: "etc/hostname", body: ""},
		tarEntry{name: "etc/shadow", body: "root:*:1::::::\n", mode: 0o640},
		tarEntry{name: "usr/"},
		tarEntry{name: "usr/bin/"},
		tarEntry{name: "usr/bin/sh", body: "#!fake shell\n", mode: 0o755},
		tarEntry{name: "usr/lib/modules/6.1.0/vmlinuz", body: "kernel\n"},
		tarEntry{name: "bin", body: "->usr/bin"},
		tarEntry{name: "boot/"},
		tarEntry{name: "opt/app/data", body: "data\n"},
		tarEntry{name: "var/lib/state", body: "state\n"},
		tarEntry{name: "run/"},
		tarEntry{name: "run/lock/pid", body: "1\n"},
		tarEntry{name: "tmp/", mode: 0o1777},
		tarEntry{name: "tmp/x", body: "x\n"},
	)
}

func plainLookup(t *testing.T, repo *ostree.Repo, c ostree.Checksum, p string) (string, bool) {
	t.Helper()
	fsys, err := repo.CommitFS(c)
	if err != nil {
		t.Fatal(err)
	}
	f, err := fsys.Open(p)
	if err != nil {
		return "", false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	if fi.IsDir() {
		return "<dir>", true
	}
	var b bytes.Buffer
	if _, err := b.ReadFrom(f); err != nil {
		t.Fatal(err)
	}
	return b.String(), true
}

// TestPullPlain: a plain image is applied layer by layer onto an empty
// tree with the path rules of ostree-ext for generic images (etc at
// usr/etc, run/tmp emptied and counted, boot/opt/var kept, whiteouts), its
// merge commit has no parent, the manifest's created annotation as
// timestamp and the merge metadata, each layer has a blob ref, and a
// second pull of the same image stores nothing new.
func TestPullPlain(t *testing.T) {
	dir := t.TempDir()
	top := plainLayer(t,
		tarEntry{name: "etc/"},
		tarEntry{name: "etc/motd", body: "hello\n"},
		tarEntry{name: "opt/app/.wh.data"},
		tarEntry{name: "usr/bin/tool", body: "tool\n", mode: 0o755},
	)
	md, descs := writePlainImage(t, dir, "1", plainSpec{layers: [][]byte{plainBase(t), top}, gzip: true, labels: bootcLabels,
		annotated: "2026-01-02T03:04:05Z", cfgAt: "2020-01-01T00:00:00Z"})
	repo := storeRepo(t)
	res, err := storePull(t, repo, "oci:"+dir+":1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Plain || res.LayersFetched != 2 || res.LayersPresent != 0 || res.ManifestDigest != md {
		t.Errorf("result %+v; want plain, 2 layers fetched, digest %s", res, md)
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "layer 0") || !strings.Contains(res.Warnings[0], "run: 1, tmp: 1") {
		t.Errorf("warnings %q; want the dropped run/tmp children of layer 0", res.Warnings)
	}
	cm, err := repo.ReadCommit(res.MergeCommit)
	if err != nil {
		t.Fatal(err)
	}
	if !cm.Parent.IsZero() || cm.Subject != "" || cm.Body != "" {
		t.Errorf("merge commit parent %s subject %q body %q; want none", cm.Parent, cm.Subject, cm.Body)
	}
	if want := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC); cm.Timestamp != uint64(want.Unix()) {
		t.Errorf("merge timestamp %d, want the manifest annotation %s", cm.Timestamp, want)
	}
	if got := cm.Metadata.String(derived.MergeMetaManifestDigest); got != md.String() {
		t.Errorf("%s = %q, want %s", derived.MergeMetaManifestDigest, got, md)
	}
	for _, k := range []string{derived.MergeMetaManifest, derived.MergeMetaImageConfig, derived.MergeMetaImporterVersion} {
		if cm.Metadata.String(k) == "" {
			t.Errorf("merge metadata %s missing", k)
		}
	}
	for p, want := range map[string]string{
		"usr/etc/passwd": "root:x:0:0::/root:/bin/sh\n", "usr/etc/motd": "hello\n", "usr/bin/tool": "tool\n",
		"var/lib/state": "state\n", "boot": "<dir>", "opt/app": "<dir>", "run": "<dir>", "tmp": "<dir>",
		"usr/lib/modules/6.1.0/vmlinuz": "kernel\n",
	} {
		if got, ok := plainLookup(t, repo, res.MergeCommit, p); !ok || got != want {
			t.Errorf("%s = %q (present %v), want %q", p, got, ok, want)
		}
	}
	for _, p := range []string{"etc", "opt/app/data", "run/lock", "tmp/x", "usr/etc/hostname"} {
		if _, ok := plainLookup(t, repo, res.MergeCommit, p); ok {
			t.Errorf("%s is in the merged tree; want it dropped, whited out or removed", p)
		}
	}
	refs := refMap(t, repo)
	for _, d := range descs {
		if _, ok := refs[blobRef(t, d.Digest)]; !ok {
			t.Errorf("no blob ref for layer %s", d.Digest)
		}
	}
	imgRef, _ := ImageRefName("oci:" + dir + ":1")
	if refs[imgRef] != res.MergeCommit {
		t.Errorf("image ref %s = %s, want the merge commit %s", imgRef, refs[imgRef], res.MergeCommit)
	}
	realFsck(t, repo)

	again, err := storePull(t, repo, "oci:"+dir+":1", PullOptions{})
	if err != nil || !again.AlreadyPresent || again.MergeCommit != res.MergeCommit {
		t.Errorf("second pull: %+v, %v; want already present, same merge commit", again, err)
	}
	imgs, err := List(repo)
	if err != nil || len(imgs) != 1 || imgs[0].Version != "42.1" {
		t.Errorf("List = %+v, %v; want the image with version 42.1", imgs, err)
	}
	hist, err := History(repo, "oci:"+dir+":1")
	if err != nil || len(hist) != 2 || hist[0].Kind != LayerDerived || hist[1].CreatedBy != "layer 1" {
		t.Errorf("History = %+v, %v; want two derived layers", hist, err)
	}
	// Push rebuilds the image from the layer records; pulled again under
	// another name it is the same tree.
	back := t.TempDir()
	if _, err := pushTo(t, repo, "oci:"+dir+":1", back, "1", PushOptions{}); err != nil {
		t.Fatalf("push of a plain image: %v", err)
	}
	repo2 := storeRepo(t)
	res2, err := storePull(t, repo2, "oci:"+back+":1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c1, _ := repo.ReadCommit(res.MergeCommit)
	c2, _ := repo2.ReadCommit(res2.MergeCommit)
	if c1.RootTree != c2.RootTree || c1.RootMeta != c2.RootMeta {
		t.Errorf("pushed and re-pulled plain image: root %s, want %s", c2.RootTree, c1.RootTree)
	}
}

// TestPullPlainReuse: between two plain images that share all layers but
// the last, the second pull fetches one layer; the same layers
// recompressed (same diff_ids, other blobs) fetch nothing and give the
// same tree.
func TestPullPlainReuse(t *testing.T) {
	dir := t.TempDir()
	base := plainBase(t)
	mid := plainLayer(t, tarEntry{name: "usr/share/doc/readme", body: "readme\n"})
	v1Top := plainLayer(t, tarEntry{name: "usr/bin/app", body: "app 1\n", mode: 0o755})
	v2Top := plainLayer(t, tarEntry{name: "usr/bin/app", body: "app 2\n", mode: 0o755})
	writePlainImage(t, dir, "1", plainSpec{layers: [][]byte{base, mid, v1Top}, gzip: true, labels: bootcLabels})
	_, d2 := writePlainImage(t, dir, "2", plainSpec{layers: [][]byte{base, mid, v2Top}, gzip: true, labels: bootcLabels})
	// Another config too (else it is the same image by config digest).
	writePlainImage(t, dir, "2raw", plainSpec{layers: [][]byte{base, mid, v2Top}, labels: map[string]string{"containers.bootc": "1", "version": "2-raw"}})
	repo := storeRepo(t)
	const name = "docker://example.com/os:latest"
	pullAs := func(tag string, opts PullOptions) *PullResult {
		t.Helper()
		ctx := context.Background()
		ref, _ := oci.ParseRef("oci:" + dir + ":" + tag)
		rd, err := oci.NewReader(ctx, ref)
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		res, err := Pull(ctx, repo, rd, name, opts)
		if err != nil {
			t.Fatalf("pull %s: %v", tag, err)
		}
		return res
	}
	pullAs("1", PullOptions{})
	check := pullAs("2", PullOptions{Check: true})
	if check.LayersFetched != 1 || check.BytesFetched != d2[2].Size || check.LayersPresent != 2 {
		t.Errorf("check of image 2: %+v; want 1 layer (%d bytes) to fetch, 2 present", check, d2[2].Size)
	}
	res2 := pullAs("2", PullOptions{})
	if res2.LayersFetched != 1 || res2.LayersPresent != 2 {
		t.Errorf("pull of image 2 after image 1: %+v; want 1 layer fetched, 2 present", res2)
	}
	if got, _ := plainLookup(t, repo, res2.MergeCommit, "usr/bin/app"); got != "app 2\n" {
		t.Errorf("usr/bin/app = %q after the upgrade", got)
	}
	raw := pullAs("2raw", PullOptions{})
	if raw.AlreadyPresent || raw.LayersFetched != 0 || raw.LayersPresent != 3 {
		t.Errorf("pull of the recompressed image: %+v; want nothing fetched (reuse by diff_id)", raw)
	}
	if raw.MergeCommit == res2.MergeCommit {
		t.Errorf("the recompressed image has another manifest, so another merge commit")
	}
	c1, _ := repo.ReadCommit(raw.MergeCommit)
	c2, _ := repo.ReadCommit(res2.MergeCommit)
	if c1.RootTree != c2.RootTree || c1.RootMeta != c2.RootMeta {
		t.Errorf("recompressed image: root %s/%s, want the same tree %s/%s", c1.RootTree, c1.RootMeta, c2.RootTree, c2.RootMeta)
	}
	realFsck(t, repo)
}

// TestPullPlainRefusals: host pulls of plain images without the bootable
// label or for another architecture, and images whose merged tree enables
// SELinux, are refused before any ref is written; a missing
// containers.bootc and a truncated history only warn.
func TestPullPlainRefusals(t *testing.T) {
	dir := t.TempDir()
	base := plainBase(t)
	selinux := func(mode string) []byte {
		return plainLayer(t, tarEntry{name: "etc/selinux/config", body: "# comment\nSELINUX=" + mode + "\nSELINUXTYPE=targeted\n"},
			tarEntry{name: "etc/selinux/targeted/policy/policy.33", body: "policy\n"})
	}
	writePlainImage(t, dir, "nolabel", plainSpec{layers: [][]byte{base}})
	writePlainImage(t, dir, "arm", plainSpec{layers: [][]byte{base}, labels: bootcLabels, arch: "arm64"})
	writePlainImage(t, dir, "enforcing", plainSpec{layers: [][]byte{base, selinux("enforcing")}, labels: bootcLabels})
	writePlainImage(t, dir, "permissive", plainSpec{layers: [][]byte{base, selinux("permissive")}, labels: bootcLabels})
	writePlainImage(t, dir, "disabled", plainSpec{layers: [][]byte{base, selinux("disabled")}, labels: bootcLabels})
	writePlainImage(t, dir, "oldlabel", plainSpec{layers: [][]byte{base}, labels: map[string]string{"ostree.bootable": "true"}, noDefaultHistory: true,
		cfgAt: "2021-05-06T07:08:09Z"})
	writePlainImage(t, dir, "odd", plainSpec{layers: [][]byte{base}, labels: map[string]string{"containers.bootc": "yes"}})
	// The hostile-layer rules of derived layers hold for plain images.
	writePlainImage(t, dir, "dotdot", plainSpec{layers: [][]byte{base, plainLayer(t, tarEntry{name: "usr/../../evil", body: "x"})}, labels: bootcLabels})
	writePlainImage(t, dir, "symparent", plainSpec{layers: [][]byte{base, plainLayer(t, tarEntry{name: "usr/lib/evil", body: "->/etc"}, tarEntry{name: "usr/lib/evil/x", body: "x"})}, labels: bootcLabels})
	host := PullOptions{Bootable: true, Arch: "amd64"}
	for _, c := range []struct {
		tag     string
		opts    PullOptions
		wantErr error
		want    string
	}{
		{"nolabel", host, ErrNotBootable, "does not have ostree.bootable label"},
		{"arm", host, ErrNotBootable, `image has architecture "arm64"; expected "amd64"`},
		{"enforcing", PullOptions{}, ErrSELinuxPolicy, "SELINUX=enforcing, SELINUXTYPE=targeted"},
		{"permissive", host, ErrSELinuxPolicy, "SELINUX=permissive"},
		{"dotdot", host, nil, `entry "usr/../../evil"`},
		{"symparent", host, nil, "is not a directory"},
	} {
		t.Run(c.tag, func(t *testing.T) {
			repo := storeRepo(t)
			for _, check := range []bool{true, false} {
				if check && !errors.Is(c.wantErr, ErrNotBootable) {
					continue // only the layers tell
				}
				opts := c.opts
				opts.Check = check
				_, err := storePull(t, repo, "oci:"+dir+":"+c.tag, opts)
				if err == nil || (c.wantErr != nil && !errors.Is(err, c.wantErr)) || !strings.Contains(err.Error(), c.want) {
					t.Errorf("check=%v: error %v; want %v with %q", check, err, c.wantErr, c.want)
				}
			}
			if refs := refMap(t, repo); len(refs) != 0 {
				t.Errorf("a refused pull left refs: %v", refs)
			}
		})
	}
	// Without Bootable, a plain image needs no label.
	repo := storeRepo(t)
	if _, err := storePull(t, repo, "oci:"+dir+":nolabel", PullOptions{}); err != nil {
		t.Errorf("image pull (not a host pull) of an unlabelled plain image: %v", err)
	}
	res, err := storePull(t, repo, "oci:"+dir+":disabled", host)
	if err != nil || len(res.Warnings) != 1 {
		t.Errorf("SELINUX=disabled: %+v, %v; want imported with only the run/tmp warning", res, err)
	}
	res, err = storePull(t, repo, "oci:"+dir+":oldlabel", host)
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(res.Warnings, "\n")
	if !strings.Contains(joined, "missing label: containers.bootc") || !strings.Contains(joined, "0 history entries for 1 layers") {
		t.Errorf("warnings %q; want the missing containers.bootc label and the truncated history", res.Warnings)
	}
	cm, _ := repo.ReadCommit(res.MergeCommit)
	if want := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC); cm.Timestamp != uint64(want.Unix()) {
		t.Errorf("merge timestamp %d, want the config's created %s (no annotation)", cm.Timestamp, want)
	}
	res, err = storePull(t, repo, "oci:"+dir+":odd", host)
	if err != nil || !strings.Contains(strings.Join(res.Warnings, "\n"), `unknown containers.bootc value "yes"`) {
		t.Errorf("containers.bootc=yes: %+v, %v; want imported with a warning", res, err)
	}
	realFsck(t, repo)
}
