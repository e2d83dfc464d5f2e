package integration

import (
	"encoding/json"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
)

// registryDigest returns the manifest digest skopeo sees for a registry image
// served over plain HTTP.
func registryDigest(t *testing.T, imgref string) string {
	t.Helper()
	var out struct{ Digest string }
	if err := json.Unmarshal([]byte(must(t, runCmd(t, nil, "skopeo", "inspect", "--tls-verify=false", imgref))), &out); err != nil {
		t.Fatal(err)
	}
	return out.Digest
}

// blobStatus returns the status of HEAD /v2/REPO/blobs/DIGEST on the registry at addr.
func blobStatus(t *testing.T, addr, repo string, d digest.Digest) int {
	t.Helper()
	res, err := http.Head("http://" + addr + "/v2/" + repo + "/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return res.StatusCode
}

// TestImageCopyRegistry mirrors an encapsulated image between two
// repositories of a real registry and into an oci: layout with `ocitree image
// copy`: the digest stays the same everywhere, and within the registry the layers
// are mounted, not downloaded. The copy is then pulled and
// looked at with image inspect/history, removed and pruned.
func TestImageCopyRegistry(t *testing.T) {
	setup(t, "skopeo", "docker-registry")
	reg := startRegistry(t)
	dir := workDir(t)

	src := filepath.Join(dir, "src")
	writeRegTree(t, src, map[string]string{
		"usr/bin/tool":               "#!/bin/sh\necho tool\n",
		"usr/bin/big":                strings.Repeat("some binary content ", 20000),
		"usr/lib/libfoo/libfoo.so.1": strings.Repeat("\x7fELF foo", 8000),
		"usr/share/doc/README":       "version 1\n",
		"usr/etc/os-release":         "ID=test\nVERSION_ID=1\n",
	})
	build := filepath.Join(dir, "build")
	ocitreeInit(t, build, "bare")
	ocitreeCommit(t, build, "os/main", src, commitOpts{subject: "v1"})
	layout := filepath.Join(dir, "oci")
	want := strings.TrimSpace(encapsulate(t, build, "os/main", "oci:"+layout+":v1"))
	m := layoutManifest(t, "oci:"+layout+":v1")

	a := "docker://" + reg.addr + "/a:1"
	b := "docker://" + reg.addr + "/b:1"
	must(t, runCmd(t, nil, "skopeo", "copy", "--dest-tls-verify=false", "oci:"+layout+":v1", a))
	if d := registryDigest(t, a); d != want {
		t.Fatalf("skopeo push: digest %s, encapsulate printed %s", d, want)
	}

	out := must(t, ocitree(t, "image", "copy", "--tls-verify=false", a, b))
	if got := strings.TrimSpace(out); got != want {
		t.Errorf("image copy printed %q, want %s", out, want)
	}
	da, db := registryDigest(t, a), registryDigest(t, b)
	if da != want || db != want {
		t.Errorf("digests after copy: a %s, b %s, want both %s", da, db, want)
	}

	// Between two repositories of the registry, through the counting proxy: the
	// blobs are mounted (POST .../blobs/uploads/?mount=&from=a), no layer is
	// downloaded, and c has every layer and the same digest.
	reg.served()
	c := "docker://" + reg.proxyAddr + "/c:1"
	out = must(t, ocitree(t, "image", "copy", "--tls-verify=false", "docker://"+reg.proxyAddr+"/a:1", c))
	served := reg.served()
	if got := strings.TrimSpace(out); got != want {
		t.Errorf("image copy a -> c printed %q, want %s", out, want)
	}
	for _, l := range m.Layers {
		if n := served[l.Digest.String()]; n != 0 {
			t.Errorf("copy a -> c downloaded layer %s (%d bytes), want it mounted", l.Digest, n)
		}
		if code := blobStatus(t, reg.addr, "c", l.Digest); code != http.StatusOK {
			t.Errorf("layer %s in c: HEAD %d", l.Digest, code)
		}
	}
	if d := registryDigest(t, "docker://"+reg.addr+"/c:1"); d != want {
		t.Errorf("c after copy: digest %s, want %s", d, want)
	}

	// Into an oci: layout whose directory does not exist yet.
	mirror := filepath.Join(dir, "mirror", "layout")
	out = must(t, ocitree(t, "image", "copy", "--tls-verify=false", b, "oci:"+mirror+":stable"))
	if got := strings.TrimSpace(out); got != want {
		t.Errorf("image copy to oci: printed %q, want %s", out, want)
	}
	if d := digestOf(t, "oci:"+mirror+":stable"); d != want {
		t.Errorf("oci: copy has digest %s, want %s", d, want)
	}
	if mm := layoutManifest(t, "oci:"+mirror+":stable"); len(mm.Layers) != len(m.Layers) {
		t.Errorf("oci: copy has %d layers, want %d", len(mm.Layers), len(m.Layers))
	}

	// A missing source fails with a message naming it.
	if r := ocitree(t, "image", "copy", "--tls-verify=false", "docker://"+reg.addr+"/nope:1", "oci:"+filepath.Join(dir, "x")+":1"); r.code == 0 || !strings.Contains(r.stderr, "nope") {
		t.Errorf("copy of a missing image: want an error naming it\n%s", r)
	}

	// The mirrored image is usable: pull, inspect, history, remove, prune.
	repo := filepath.Join(dir, "repo")
	ocitreeInit(t, repo, "bare-user")
	imagePull(t, repo, b)
	man := must(t, ocitree(t, "image", "inspect", "--repo", repo, b))
	if d := digest.FromString(strings.TrimSuffix(man, "\n")).String(); d != want {
		t.Errorf("image inspect: manifest hashes to %s, want %s", d, want)
	}
	cfg := must(t, ocitree(t, "image", "inspect", "--repo", repo, "--config", b))
	if d := digest.FromString(strings.TrimSuffix(cfg, "\n")).String(); d != m.Config.Digest.String() {
		t.Errorf("image inspect --config: config hashes to %s, want %s", d, m.Config.Digest)
	}
	hist := strings.Split(strings.TrimSuffix(must(t, ocitree(t, "image", "history", "--repo", repo, b)), "\n"), "\n")
	if len(hist) != len(m.Layers)+1 {
		t.Fatalf("image history: %d lines, want a header and %d layers:\n%s", len(hist), len(m.Layers), strings.Join(hist, "\n"))
	}
	for i, l := range m.Layers {
		kind := "component"
		if i == 0 {
			kind = "commit"
		}
		f := strings.Fields(hist[i+1])
		if len(f) < 5 || f[0] != strconv.Itoa(i) || !strings.HasPrefix(l.Digest.String(), f[1]) || f[4] != kind {
			t.Errorf("image history line %d %q: want layer %s of kind %s", i, hist[i+1], l.Digest, kind)
		}
	}
	missing := "docker://" + reg.addr + "/never:1"
	if r := ocitree(t, "image", "inspect", "--repo", repo, missing); r.code == 0 || !strings.Contains(r.stderr, missing) {
		t.Errorf("inspect of an image not stored: want an error naming it\n%s", r)
	}
	r := ocitree(t, "image", "remove", "--repo", repo, b, missing)
	if r.code == 0 || !strings.Contains(r.stderr, missing) {
		t.Errorf("remove with a missing image: want an error naming it\n%s", r)
	}
	if l := must(t, ocitree(t, "image", "list", "--repo", repo, "--format", "json")); strings.TrimSpace(l) != "[]" {
		t.Errorf("image list after remove: %s", l)
	}
	pr := must(t, ocitree(t, "image", "prune", "--repo", repo))
	if !strings.HasPrefix(pr, "layer refs removed: 0; objects deleted: ") || strings.Contains(pr, "objects deleted: 0;") {
		t.Errorf("image prune printed %q", pr)
	}
	if refs := strings.TrimSpace(must(t, ostree(t, "refs", "--repo="+repo))); refs != "" {
		t.Errorf("refs left: %s", refs)
	}
	ostreeFsck(t, repo)
}
