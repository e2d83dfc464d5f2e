package oci

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/types"
)

// TestMountNeverPlainHTTP: a registry that is not marked insecure is never
// spoken to over plain http, not even on 127.0.0.1 (which go-containerregistry
// would otherwise try); one marked insecure is.
func TestMountNeverPlainHTTP(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	conf := filepath.Join(dir, "registries.conf")
	if err := os.WriteFile(conf, []byte("unqualified-search-registries = []\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	auth := filepath.Join(dir, "auth.json")
	if err := os.WriteFile(auth, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	src, err := reference.ParseNormalizedNamed(host + "/a")
	if err != nil {
		t.Fatal(err)
	}
	dst, err := reference.ParseNormalizedNamed(host + "/b")
	if err != nil {
		t.Fatal(err)
	}
	sys := &types.SystemContext{SystemRegistriesConfPath: conf, SystemRegistriesConfDirPath: filepath.Join(dir, "none"), AuthFilePath: auth,
		DockerInsecureSkipTLSVerify: types.OptionalBoolFalse}
	if _, err := newBlobMounter(context.Background(), sys, src, dst); err == nil {
		t.Fatal("secure registry reached over plain http")
	} else {
		t.Logf("secure: %v", err)
	}
	if n := hits.Load(); n != 0 {
		t.Fatalf("%d plain http requests to a registry not marked insecure", n)
	}
	sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	m, err := newBlobMounter(context.Background(), sys, src, dst)
	if err != nil {
		t.Fatalf("insecure registry: %v", err)
	}
	if hits.Load() == 0 {
		t.Fatal("insecure registry not pinged over http")
	}
	if ok, err := m.exists(context.Background(), m.dst, digest.Digest("sha256:"+strings.Repeat("0", 64))); err != nil || !ok {
		t.Fatalf("exists over http: %v, %v", ok, err)
	}
}
