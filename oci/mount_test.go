package oci

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	digest "github.com/opencontainers/go-digest"
	"github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// scopedRegistry wraps ggcr's in-process registry, which shares every blob between
// all repositories and ignores ?mount=, so that a repository only has the blobs
// uploaded or mounted into it (HEAD/GET of another one is 404, as on a real registry)
// and POST .../blobs/uploads/?mount=D&from=R mounts D when R has it. It counts what a
// copy costs: bytes of blob GETs, blob uploads and mounts.
type scopedRegistry struct {
	next    http.Handler
	noMount bool // answer mount requests with an ordinary upload (202), like a registry without mounts

	mu        sync.Mutex
	has       map[string]map[string]bool // repository -> blob digests
	got       map[string]int64           // digest -> bytes served by GET .../blobs/DIGEST
	uploaded  map[string]int             // digest -> completed uploads
	mountReqs int                        // POSTs with mount=
	mounted   int                        // mounts done (201)
}

// startScopedRegistry serves a scopedRegistry on 127.0.0.1 and returns it, its
// host:port and options that reach it with nothing from the host's config. With a
// tokenAuth, the registry wants bearer tokens from it, and the auth file has its
// credentials.
func startScopedRegistry(t *testing.T, ta ...*tokenAuth) (*scopedRegistry, string, []Option) {
	t.Helper()
	s := &scopedRegistry{
		next: registry.New(registry.Logger(log.New(io.Discard, "", 0))),
		has:  map[string]map[string]bool{}, got: map[string]int64{}, uploaded: map[string]int{},
	}
	var h http.Handler = s
	if len(ta) > 0 {
		ta[0].next = s
		h = ta[0]
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	auths := `{"auths":{}}`
	if len(ta) > 0 {
		auths = `{"auths":{"` + host + `":{"auth":"` + base64.StdEncoding.EncodeToString([]byte(ta[0].user+":"+ta[0].pass)) + `"}}}`
	}
	dir := t.TempDir()
	conf, auth := filepath.Join(dir, "registries.conf"), filepath.Join(dir, "auth.json")
	if err := os.Mkdir(filepath.Join(dir, "registries.conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(conf, []byte("unqualified-search-registries = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(auth, []byte(auths), 0o600); err != nil {
		t.Fatal(err)
	}
	return s, host, []Option{
		WithInsecureSkipTLSVerify(true),
		WithRegistriesConf(conf, filepath.Join(dir, "registries.conf.d")),
		WithAuthFile(auth),
	}
}

// tokenAuth puts docker-style token authentication in front of a registry: /v2/
// requests without its token get a 401 with a Bearer challenge whose realm is /token,
// which hands out the token for the basic credentials user:pass and records the scopes
// asked for.
type tokenAuth struct {
	next       http.Handler
	user, pass string

	mu     sync.Mutex
	scopes map[string]bool
}

const testToken = "test-token"

func (a *tokenAuth) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.URL.Path == "/token" {
		if u, p, ok := req.BasicAuth(); !ok || u != a.user || p != a.pass {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		a.mu.Lock()
		for _, sc := range req.URL.Query()["scope"] {
			a.scopes[sc] = true
		}
		a.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"token":"`+testToken+`"}`)
		return
	}
	if req.Header.Get("Authorization") != "Bearer "+testToken {
		w.Header().Set("WWW-Authenticate", `Bearer realm="http://`+req.Host+`/token",service="test-registry"`)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	a.next.ServeHTTP(w, req)
}

// statusRecorder remembers the status of a response and reports its body bytes to
// onWrite before they are sent (so a client that has read them all sees them counted).
type statusRecorder struct {
	http.ResponseWriter
	status  int
	onWrite func(int)
}

func (r *statusRecorder) WriteHeader(code int) { r.status = code; r.ResponseWriter.WriteHeader(code) }
func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	if r.onWrite != nil {
		r.onWrite(len(p))
	}
	return r.ResponseWriter.Write(p)
}

func (s *scopedRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	p := req.URL.Path
	i := strings.LastIndex(p, "/blobs/")
	if !strings.HasPrefix(p, "/v2/") || i < 0 {
		s.next.ServeHTTP(w, req)
		return
	}
	repo, rest := p[len("/v2/"):i], p[i+len("/blobs/"):]
	q := req.URL.Query()
	if rest == "uploads/" || strings.HasPrefix(rest, "uploads/") {
		if req.Method == http.MethodPost && q.Get("mount") != "" {
			d, from := q.Get("mount"), q.Get("from")
			s.mu.Lock()
			s.mountReqs++
			ok := !s.noMount && s.has[from][d]
			if ok {
				s.mounted++
				s.addLocked(repo, d)
			}
			s.mu.Unlock()
			if ok {
				w.Header().Set("Location", "/v2/"+repo+"/blobs/"+d)
				w.Header().Set("Docker-Content-Digest", d)
				w.WriteHeader(http.StatusCreated)
				return
			}
			// Not mountable: an ordinary upload session (202), as registries do.
			req.URL.RawQuery = ""
		}
		rec := &statusRecorder{ResponseWriter: w}
		s.next.ServeHTTP(rec, req)
		if d := q.Get("digest"); d != "" && rec.status == http.StatusCreated {
			s.mu.Lock()
			s.uploaded[d]++
			s.addLocked(repo, d)
			s.mu.Unlock()
		}
		return
	}
	if req.Method == http.MethodHead || req.Method == http.MethodGet {
		s.mu.Lock()
		ok := s.has[repo][rest]
		s.mu.Unlock()
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown to registry"}]}`)
			return
		}
		rec := &statusRecorder{ResponseWriter: w}
		if req.Method == http.MethodGet {
			rec.onWrite = func(n int) {
				s.mu.Lock()
				s.got[rest] += int64(n)
				s.mu.Unlock()
			}
		}
		s.next.ServeHTTP(rec, req)
		return
	}
	s.next.ServeHTTP(w, req)
}

func (s *scopedRegistry) addLocked(repo, d string) {
	if s.has[repo] == nil {
		s.has[repo] = map[string]bool{}
	}
	s.has[repo][d] = true
}

// reset clears the counters (not the blobs repositories have).
func (s *scopedRegistry) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got, s.uploaded, s.mountReqs, s.mounted = map[string]int64{}, map[string]int{}, 0, 0
}

// counts returns the bytes downloaded and the uploads of the given blobs, and the
// mount requests and mounts since the last reset.
func (s *scopedRegistry) counts(blobs []digest.Digest) (got int64, uploads, mountReqs, mounted int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, d := range blobs {
		got += s.got[d.String()]
		uploads += s.uploaded[d.String()]
	}
	return got, uploads, s.mountReqs, s.mounted
}

// blobsOf lists the layer and config digests of images.
func blobsOf(images ...testImage) (layers, all []digest.Digest) {
	for _, ti := range images {
		for _, l := range ti.layers {
			layers = append(layers, l.desc.Digest)
		}
		all = append(all, ti.configDesc().Digest)
	}
	return layers, append(all, layers...)
}

func mustCopy(t *testing.T, src, dst string, opts ...Option) digest.Digest {
	t.Helper()
	sr, err := ParseRef(src)
	if err != nil {
		t.Fatal(err)
	}
	dr, err := ParseRef(dst)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Copy(context.Background(), sr, dr, opts...)
	if err != nil {
		t.Fatalf("Copy %s -> %s: %v", src, dst, err)
	}
	return d
}

// TestCopyMountsBlobs: a copy between two repositories of one registry mounts every
// layer and config (of every instance of an index) instead of downloading and
// uploading them, and keeps the digest. Other registries, a registry that does not
// mount and a source the policy rejects still behave as a plain copy.
func TestCopyMountsBlobs(t *testing.T) {
	ctx := context.Background()
	reg, host, opts := startScopedRegistry(t)
	ti := makeImage(t, runtime.GOARCH, makeLayer(t, 20, 1<<20, "gzip"), makeLayer(t, 21, 512<<10, "zstd"))
	layers, all := blobsOf(ti)
	src := "docker://" + host + "/test/a:1"
	writeImage(t, src, ti, false, opts...)

	t.Run("image", func(t *testing.T) {
		reg.reset()
		dst := "docker://" + host + "/other/c:1"
		if d := mustCopy(t, "ostree-unverified-registry:"+host+"/test/a:1", dst, opts...); d != digest.FromBytes(ti.manifest) {
			t.Fatalf("Copy returned %s, want %s", d, digest.FromBytes(ti.manifest))
		}
		got, uploads, _, mounted := reg.counts(all)
		if lgot, _, _, _ := reg.counts(layers); lgot != 0 {
			t.Errorf("layers downloaded: %d bytes, want none", lgot)
		}
		if uploads != 0 || mounted != len(all) {
			t.Errorf("%d uploads and %d mounts of %d blobs, want only mounts (%d bytes downloaded)", uploads, mounted, len(all), got)
		}
		readImage(t, dst, ti, opts...)

		// Again: everything is there, nothing to mount.
		reg.reset()
		mustCopy(t, src, dst, opts...)
		if got, uploads, reqs, _ := reg.counts(layers); got != 0 || uploads != 0 || reqs != 0 {
			t.Errorf("second copy: %d layer bytes downloaded, %d uploads, %d mount requests", got, uploads, reqs)
		}
	})

	t.Run("index", func(t *testing.T) {
		otherArch := "arm64"
		if runtime.GOARCH == "arm64" {
			otherArch = "amd64"
		}
		native := makeImage(t, runtime.GOARCH, makeLayer(t, 22, 256<<10, "gzip"))
		other := makeImage(t, otherArch, makeLayer(t, 23, 256<<10, "gzip"), makeLayer(t, 24, 128<<10, "gzip"))
		idx := imgspecv1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: imgspecv1.MediaTypeImageIndex}
		for _, im := range []struct {
			ti   testImage
			arch string
		}{{other, otherArch}, {native, runtime.GOARCH}} {
			idx.Manifests = append(idx.Manifests, Descriptor{
				MediaType: imgspecv1.MediaTypeImageManifest, Digest: digest.FromBytes(im.ti.manifest), Size: int64(len(im.ti.manifest)),
				Platform: &imgspecv1.Platform{OS: "linux", Architecture: im.arch},
			})
		}
		ib, err := json.Marshal(idx)
		if err != nil {
			t.Fatal(err)
		}
		multi := "docker://" + host + "/test/multi:1"
		r, _ := ParseRef(multi)
		w, err := NewWriter(ctx, r, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		putImageBlobs(t, w, other, false)
		putImageBlobs(t, w, native, false)
		for _, m := range [][]byte{other.manifest, native.manifest} {
			if err := w.PutManifest(ctx, m, ""); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.PutManifest(ctx, ib, imgspecv1.MediaTypeImageIndex); err != nil {
			t.Fatal(err)
		}
		if err := w.Commit(ctx); err != nil {
			t.Fatal(err)
		}

		reg.reset()
		dst := "docker://" + host + "/test/multi-copy:1"
		if d := mustCopy(t, multi, dst, opts...); d != digest.FromBytes(ib) {
			t.Fatalf("Copy returned %s, want the index digest %s", d, digest.FromBytes(ib))
		}
		layers, all := blobsOf(native, other)
		if got, _, _, _ := reg.counts(layers); got != 0 {
			t.Errorf("layers downloaded: %d bytes, want none", got)
		}
		if _, uploads, _, mounted := reg.counts(all); uploads != 0 || mounted != len(all) {
			t.Errorf("%d uploads and %d mounts of %d blobs, want only mounts", uploads, mounted, len(all))
		}
		readImage(t, dst, native, opts...)
		rd, err := NewReader(ctx, mustRef(t, dst), append(opts, WithPlatform("linux", otherArch, ""))...)
		if err != nil {
			t.Fatal(err)
		}
		defer rd.Close()
		if m, _, err := rd.Manifest(ctx); err != nil || !bytes.Equal(m, other.manifest) {
			t.Errorf("the %s instance of the copy: %v", otherArch, err)
		}
	})

	t.Run("registry without mounts", func(t *testing.T) {
		reg.noMount = true
		defer func() { reg.noMount = false }()
		reg.reset()
		dst := "docker://" + host + "/test/nomount:1"
		if d := mustCopy(t, src, dst, opts...); d != digest.FromBytes(ti.manifest) {
			t.Fatalf("Copy returned %s", d)
		}
		if _, uploads, reqs, mounted := reg.counts(all); uploads != len(all) || reqs != len(all) || mounted != 0 {
			t.Errorf("%d uploads, %d mount requests, %d mounts; want %d uploads after %[4]d refused mounts", uploads, reqs, mounted, len(all))
		}
		readImage(t, dst, ti, opts...)
	})

	t.Run("other registry", func(t *testing.T) {
		reg2, host2, _ := startScopedRegistry(t)
		reg.reset()
		dst := "docker://" + host2 + "/test/a:1"
		if d := mustCopy(t, src, dst, opts...); d != digest.FromBytes(ti.manifest) {
			t.Fatalf("Copy returned %s", d)
		}
		if _, _, reqs, _ := reg.counts(nil); reqs != 0 {
			t.Errorf("%d mount requests at the source registry", reqs)
		}
		if _, uploads, reqs, _ := reg2.counts(all); uploads != len(all) || reqs != 0 {
			t.Errorf("destination: %d uploads, %d mount requests; want %d uploads", uploads, reqs, len(all))
		}
		readImage(t, dst, ti, opts...)
	})

	t.Run("bearer token", func(t *testing.T) {
		ta := &tokenAuth{user: "me", pass: "secret", scopes: map[string]bool{}}
		reg, host, opts := startScopedRegistry(t, ta)
		src := "docker://" + host + "/test/a:1"
		writeImage(t, src, ti, false, opts...)
		reg.reset()
		mustCopy(t, src, "docker://"+host+"/other/c:1", opts...)
		if got, uploads, _, mounted := reg.counts(all); uploads != 0 || mounted != len(all) {
			t.Errorf("%d uploads and %d mounts of %d blobs, want only mounts (%d bytes downloaded)", uploads, mounted, len(all), got)
		}
		ta.mu.Lock()
		defer ta.mu.Unlock()
		for _, sc := range []string{"repository:other/c:pull,push", "repository:test/a:pull"} {
			if !ta.scopes[sc] {
				t.Errorf("no token asked for %s (scopes %v)", sc, ta.scopes)
			}
		}
	})

	t.Run("policy rejects the source", func(t *testing.T) {
		policy := filepath.Join(t.TempDir(), "policy.json")
		if err := os.WriteFile(policy, []byte(`{"default":[{"type":"reject"}]}`), 0o644); err != nil {
			t.Fatal(err)
		}
		reg.reset()
		_, err := Copy(ctx, mustRef(t, "ostree-image-signed:docker://"+host+"/test/a:1"), mustRef(t, "docker://"+host+"/test/rejected:1"), append(opts, WithPolicy(policy))...)
		if err == nil {
			t.Fatal("Copy of a rejected image succeeded")
		}
		reg.mu.Lock()
		n := len(reg.has["test/rejected"])
		reg.mu.Unlock()
		if _, _, reqs, _ := reg.counts(nil); reqs != 0 || n != 0 {
			t.Errorf("rejected source: %d mount requests, %d blobs in the destination", reqs, n)
		}
	})
}

func mustRef(t *testing.T, s string) *Ref {
	t.Helper()
	r, err := ParseRef(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
