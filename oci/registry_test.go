package oci

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
	digest "github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// testRegistry starts ggcr's in-process registry on 127.0.0.1 (plain HTTP) and returns
// its host:port and the options that reach it with nothing from the host's config.
func testRegistry(t *testing.T) (string, []Option) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	host := strings.TrimPrefix(srv.URL, "http://")
	dir := t.TempDir()
	conf := filepath.Join(dir, "registries.conf")
	auth := filepath.Join(dir, "auth.json")
	os.Mkdir(filepath.Join(dir, "registries.conf.d"), 0o755)
	os.WriteFile(conf, []byte("unqualified-search-registries = []\n"), 0o644)
	os.WriteFile(auth, []byte(`{"auths":{}}`), 0o600)
	return host, []Option{
		WithInsecureSkipTLSVerify(true),
		WithRegistriesConf(conf, filepath.Join(dir, "registries.conf.d")),
		WithAuthFile(auth),
	}
}

// failReader fails the test's PutBlob if the writer reads it.
type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errors.New("stream was read") }

func TestRegistryRoundTrip(t *testing.T) {
	host, opts := testRegistry(t)
	ctx := context.Background()
	gz := makeLayer(t, 10, 2<<20, "gzip")
	zs := makeLayer(t, 11, 1<<20, "zstd")
	ti := makeImage(t, runtime.GOARCH, gz, zs)

	for _, tc := range []struct {
		ref     string
		unknown bool
	}{
		{"docker://" + host + "/test/img:1", true},
		{"ostree-unverified-registry:" + host + "/test/other:2", true},
	} {
		t.Run(tc.ref, func(t *testing.T) {
			writeImage(t, tc.ref, ti, tc.unknown, opts...)
			readImage(t, tc.ref, ti, opts...)
		})
	}
	// Known digests and sizes, on a registry that has none of the blobs (ggcr's
	// registry shares blobs between repositories).
	t.Run("known digests, fresh registry", func(t *testing.T) {
		host2, opts2 := testRegistry(t)
		ref := "docker://" + host2 + "/test/known:1"
		writeImage(t, ref, ti, false, opts2...)
		readImage(t, ref, ti, opts2...)
		// A known size with a wrong digest fails in our check, not at the registry.
		r, _ := ParseRef("docker://" + host2 + "/test/bad:1")
		w, err := NewWriter(ctx, r, opts2...)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		other := makeLayer(t, 12, 100<<10, "gzip")
		bad := other.desc
		bad.Digest = digest.FromString("not in the registry")
		if _, err := w.PutBlob(ctx, bytes.NewReader(other.blob), bad); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("PutBlob with a wrong digest and known size: %v", err)
		}
	})

	// Blobs the registry has are not uploaded again: the stream is left unread.
	t.Run("reuse", func(t *testing.T) {
		r, _ := ParseRef("docker://" + host + "/test/img:1")
		w, err := NewWriter(ctx, r, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer w.Close()
		got, err := w.PutBlob(ctx, failReader{}, gz.desc)
		if err != nil {
			t.Fatalf("PutBlob of a known blob read the stream: %v", err)
		}
		if got.Digest != gz.desc.Digest || got.Size != gz.desc.Size {
			t.Fatalf("reused %+v", got)
		}
		// A wrong digest on upload is refused by us before the registry sees a PUT.
		bad := gz.desc
		bad.Digest = digest.FromString("not in the registry")
		bad.Size = -1
		r2, _ := ParseRef("docker://" + host + "/test/fresh:1")
		w2, err := NewWriter(ctx, r2, opts...)
		if err != nil {
			t.Fatal(err)
		}
		defer w2.Close()
		if _, err := w2.PutBlob(ctx, bytes.NewReader(gz.blob), bad); !errors.Is(err, ErrDigestMismatch) {
			t.Fatalf("PutBlob with a wrong digest: %v", err)
		}
	})

	// By digest.
	t.Run("by digest", func(t *testing.T) {
		r, _ := ParseRef("docker://" + host + "/test/img:1")
		rd, err := NewReader(ctx, r, opts...)
		if err != nil {
			t.Fatal(err)
		}
		m, mt, _ := rd.Manifest(ctx)
		rd.Close()
		if mt != imgspecv1.MediaTypeImageManifest {
			t.Errorf("media type %s", mt)
		}
		readImage(t, "docker://"+host+"/test/img@"+digest.FromBytes(m).String(), ti, opts...)
	})

	// TLS verification on: the plain-HTTP registry is not reachable.
	t.Run("tls verify", func(t *testing.T) {
		r, _ := ParseRef("docker://" + host + "/test/img:1")
		strict := append(append([]Option{}, opts...), WithInsecureSkipTLSVerify(false))
		if rd, err := NewReader(ctx, r, strict...); err == nil {
			rd.Close()
			t.Fatal("read over plain HTTP with TLS verification on")
		}
	})
}
