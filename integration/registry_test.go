package integration

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ocitree/ocitree/internal/registrytest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// registryServer is a real Debian docker-registry on 127.0.0.1 with a
// counting reverse proxy in front of it.
type registryServer struct {
	addr      string // the registry itself (pushes go here)
	proxyAddr string // the counting proxy (pulls go here)

	mu    sync.Mutex
	blobs map[string]int64 // layer/config digest -> bytes served by GET .../blobs/<digest>
}

var blobPathRE = regexp.MustCompile(`^/v2/.+/blobs/(sha256:[0-9a-f]{64})$`)

// startRegistry runs docker-registry (internal/registrytest) with its
// config and storage in a temp dir, and a counting proxy in front of it;
// both stop when the test ends.
func startRegistry(t *testing.T) *registryServer {
	t.Helper()
	addr := registrytest.Start(t, workDir(t))
	s := &registryServer{addr: addr, blobs: map[string]int64{}}
	target, _ := url.Parse("http://" + addr)
	proxy := httputil.NewSingleHostReverseProxy(target)
	proxy.ModifyResponse = func(resp *http.Response) error {
		m := blobPathRE.FindStringSubmatch(resp.Request.URL.Path)
		if resp.Request.Method == http.MethodGet && m != nil && resp.StatusCode == http.StatusOK {
			resp.Body = &countingBody{ReadCloser: resp.Body, add: func(n int) {
				s.mu.Lock()
				s.blobs[m[1]] += int64(n)
				s.mu.Unlock()
			}}
		}
		return nil
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	s.proxyAddr = l.Addr().String()
	return s
}

type countingBody struct {
	io.ReadCloser
	add func(int)
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.add(n)
	return n, err
}

// served returns and resets the bytes served per blob.
func (s *registryServer) served() map[string]int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.blobs
	s.blobs = map[string]int64{}
	return m
}

// digestOf returns the manifest digest of an image, as skopeo sees it.
func digestOf(t *testing.T, imgref string) string {
	t.Helper()
	var out struct{ Digest string }
	if err := json.Unmarshal([]byte(must(t, runCmd(t, nil, "skopeo", "inspect", imgref))), &out); err != nil {
		t.Fatal(err)
	}
	return out.Digest
}

// layoutManifest reads the manifest of an oci: image with skopeo.
func layoutManifest(t *testing.T, imgref string) v1.Manifest {
	t.Helper()
	var m v1.Manifest
	if err := json.Unmarshal([]byte(must(t, runCmd(t, nil, "skopeo", "inspect", "--raw", imgref))), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func writeRegTree(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// imagePull runs `ocitree image pull` and returns the merge commit.
func imagePull(t *testing.T, repo, imgref string, extra ...string) string {
	t.Helper()
	r := ocitree(t, append([]string{"image", "pull", "--tls-verify=false", "--repo", repo}, append(extra, imgref)...)...)
	out := must(t, r)
	if !strings.HasSuffix(out, "\n") || !hex64.MatchString(strings.TrimSuffix(out, "\n")) {
		t.Fatalf("ocitree image pull must print the merge commit (64 hex) and a newline, got %q\n%s", out, r)
	}
	return strings.TrimSuffix(out, "\n")
}

// TestImagePullRegistry pushes encapsulated images to a real registry with
// skopeo and pulls them with `ocitree image pull`: the checkout equals the
// source tree, and an update downloads only the layers that changed.
func TestImagePullRegistry(t *testing.T) {
	setup(t, "skopeo", "docker-registry")
	reg := startRegistry(t)
	dir := workDir(t)

	files := map[string]string{
		"usr/bin/tool":               "#!/bin/sh\necho tool\n",
		"usr/bin/big":                strings.Repeat("some binary content ", 20000),
		"usr/lib/libfoo/libfoo.so.1": strings.Repeat("\x7fELF foo", 8000),
		"usr/lib/libbar/libbar.so.2": strings.Repeat("\x7fELF bar", 9000),
		"usr/share/doc/README":       "version 1\n",
		"usr/share/man/tool.1":       strings.Repeat(".TH tool\n", 500),
		"usr/etc/os-release":         "ID=test\nVERSION_ID=1\n",
	}
	src1, src2 := filepath.Join(dir, "src1"), filepath.Join(dir, "src2")
	writeRegTree(t, src1, files)
	files["usr/share/doc/README"] = "version 2\n"
	writeRegTree(t, src2, files)

	build := filepath.Join(dir, "build")
	ocitreeInit(t, build, "bare")
	ocitreeCommit(t, build, "os/main", src1, commitOpts{subject: "v1"})
	layout := filepath.Join(dir, "oci")
	encapsulate(t, build, "os/main", "oci:"+layout+":v1")
	ocitreeCommit(t, build, "os/main", src2, commitOpts{subject: "v2", timestamp: defaultTimestamp.Add(time.Hour)})
	encapsulate(t, build, "os/main", "oci:"+layout+":v2", "--previous-build", "oci:"+layout+":v1")
	m1 := layoutManifest(t, "oci:"+layout+":v1")
	m2 := layoutManifest(t, "oci:"+layout+":v2")
	if len(m1.Layers) < 4 {
		t.Fatalf("want several component layers, the image has %d layers", len(m1.Layers))
	}

	push := func(tag, dest string) {
		must(t, runCmd(t, nil, "skopeo", "copy", "--dest-tls-verify=false", "oci:"+layout+":"+tag, "docker://"+reg.addr+"/"+dest))
	}
	push("v1", "os:1")
	push("v2", "os:2")

	repo := filepath.Join(dir, "repo")
	ocitreeInit(t, repo, "bare-user")
	img1 := "docker://" + reg.proxyAddr + "/os:1"
	img2 := "docker://" + reg.proxyAddr + "/os:2"

	// --check fetches no layer and reports all of them.
	reg.served()
	var total int64
	for _, l := range m1.Layers {
		total += l.Size
	}
	chk := must(t, ocitree(t, "image", "pull", "--tls-verify=false", "--repo", repo, "--check", img1))
	if want := fmt.Sprintf("layers already present: 0; layers needed: %d (%d bytes)\n", len(m1.Layers), total); chk != want {
		t.Errorf("--check printed %q, want %q", chk, want)
	}
	for d := range reg.served() {
		if d != m1.Config.Digest.String() {
			t.Errorf("--check downloaded blob %s", d)
		}
	}

	checkout := func(rev, name, want string) {
		t.Helper()
		dst := filepath.Join(dir, name)
		// -U hardlinks the objects of a bare-user repo: their user.ostreemeta shows.
		must(t, ostree(t, "checkout", "--repo="+repo, "-U", rev, dst))
		if diffs := compareTrees(t, want, dst, cmpOpts{ignoreOwner: true, ignoreXattrs: []string{"user.ostreemeta"}}); len(diffs) > 0 {
			t.Errorf("checkout of %s differs from the source tree:\n%s", name, strings.Join(diffs, "\n"))
		}
	}
	wantBlobs := func(what string, want []v1.Descriptor) {
		t.Helper()
		got := reg.served()
		var gotL, wantL []string
		for _, d := range want {
			wantL = append(wantL, fmt.Sprintf("%s %d", d.Digest, d.Size))
		}
		for d, n := range got {
			if d == m1.Config.Digest.String() || d == m2.Config.Digest.String() {
				continue
			}
			gotL = append(gotL, fmt.Sprintf("%s %d", d, n))
		}
		sort.Strings(gotL)
		sort.Strings(wantL)
		if strings.Join(gotL, "\n") != strings.Join(wantL, "\n") {
			t.Errorf("%s: layer blobs downloaded:\n%s\nwant:\n%s", what, strings.Join(gotL, "\n"), strings.Join(wantL, "\n"))
		}
	}

	merge1 := imagePull(t, repo, img1)
	wantBlobs("first pull", m1.Layers)
	checkout(merge1, "co1", src1)

	// The same image again: no layer is downloaded.
	if again := imagePull(t, repo, img1); again != merge1 {
		t.Errorf("second pull gave %s, want %s", again, merge1)
	}
	wantBlobs("second pull", nil)

	// The update: only the layers whose digest changed.
	old := map[string]bool{}
	for _, l := range m1.Layers {
		old[l.Digest.String()] = true
	}
	var changed []v1.Descriptor
	for _, l := range m2.Layers {
		if !old[l.Digest.String()] {
			changed = append(changed, l)
		}
	}
	if len(changed) == 0 || len(changed) >= len(m2.Layers) {
		t.Fatalf("the rebuild changed %d of %d layers; want some but not all", len(changed), len(m2.Layers))
	}
	t.Logf("the update changed %d of %d layers", len(changed), len(m2.Layers))
	merge2 := imagePull(t, repo, img2)
	wantBlobs("update", changed)
	checkout(merge2, "co2", src2)

	var list []struct {
		Image          string `json:"image"`
		ManifestDigest string `json:"manifest_digest"`
		MergeCommit    string `json:"merge_commit"`
	}
	out := must(t, ocitree(t, "image", "list", "--repo", repo, "--format", "json"))
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("image list --format json: %v\n%s", err, out)
	}
	if len(list) != 2 || list[0].Image != img1 || list[0].MergeCommit != merge1 || list[1].Image != img2 || list[1].MergeCommit != merge2 ||
		list[1].ManifestDigest != digestOf(t, "oci:"+layout+":v2") {
		t.Errorf("image list: %s", out)
	}
	ostreeFsck(t, repo)
}
