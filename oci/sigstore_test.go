package oci

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"

	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/signature/sigstore"
)

// sigstoreKeys generates a sigstore key pair in dir and returns the paths of the
// passphrase-protected private key and of the public key.
func sigstoreKeys(t *testing.T, dir, name string, passphrase []byte) (priv, pub string) {
	t.Helper()
	kp, err := sigstore.GenerateKeyPair(passphrase)
	if err != nil {
		t.Fatalf("GenerateKeyPair: %v", err)
	}
	priv, pub = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if err := os.WriteFile(priv, kp.PrivateKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, kp.PublicKey, 0o644); err != nil {
		t.Fatal(err)
	}
	return priv, pub
}

// copyToRegistry copies the image at src (a containers transport:ref) to dst with
// containers/image, signing it with the sigstore key privKey unless that is empty.
func copyToRegistry(t *testing.T, src, dst, privKey string, passphrase []byte, opts ...Option) {
	t.Helper()
	ctx := context.Background()
	sr, err := ParseRef(src)
	if err != nil {
		t.Fatal(err)
	}
	dr, err := ParseRef(dst)
	if err != nil {
		t.Fatal(err)
	}
	sref, err := sr.ImageReference()
	if err != nil {
		t.Fatal(err)
	}
	dref, err := dr.ImageReference()
	if err != nil {
		t.Fatal(err)
	}
	pc, err := signature.NewPolicyContext(&signature.Policy{Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()}})
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Destroy()
	co := &copy.Options{SourceCtx: systemContext(opts), DestinationCtx: systemContext(opts)}
	if privKey != "" {
		co.SignBySigstorePrivateKeyFile = privKey
		co.SignSigstorePrivateKeyPassphrase = passphrase
	}
	if _, err := copy.Image(ctx, pc, dref, sref, co); err != nil {
		t.Fatalf("copy %s -> %s: %v", src, dst, err)
	}
}

// TestSigstorePolicy: under a policy that requires a sigstore signature for the test
// registry, an unsigned image is refused and one signed with the key (stored as an OCI
// attachment, found through registries.d) is accepted and read back.
func TestSigstorePolicy(t *testing.T) {
	ctx := context.Background()
	host, opts := testRegistry(t)
	dir := t.TempDir()
	passphrase := []byte("test passphrase")
	priv, pub := sigstoreKeys(t, dir, "signer", passphrase)
	_, otherPub := sigstoreKeys(t, dir, "other", []byte("other passphrase"))

	// registries.d: sigstore signatures of this registry are OCI attachments.
	regd := filepath.Join(dir, "registries.d")
	os.Mkdir(regd, 0o755)
	if err := os.WriteFile(filepath.Join(regd, "test.yaml"), []byte("docker:\n  \""+host+"\":\n    use-sigstore-attachments: true\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyRegd := filepath.Join(dir, "registries.d-empty")
	os.Mkdir(emptyRegd, 0o755)
	opts = append(opts, WithRegistriesDir(regd))

	policy := func(name, key string) string {
		p := filepath.Join(dir, name+".json")
		doc := `{"default":[{"type":"reject"}],"transports":{"docker":{"` + host +
			`":[{"type":"sigstoreSigned","keyPath":"` + key + `","signedIdentity":{"type":"matchRepository"}}]}}}`
		if err := os.WriteFile(p, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	goodPolicy := policy("policy", pub)
	otherPolicy := policy("policy-other", otherPub)

	// One image in a local layout, copied to the registry twice: unsigned and signed.
	layout := filepath.Join(dir, "layout")
	ti := makeImage(t, runtime.GOARCH, makeLayer(t, 30, 64<<10, "gzip"))
	writeImage(t, "oci:"+layout+":t", ti, false)
	unsigned := "docker://" + host + "/test/unsigned:1"
	signed := "docker://" + host + "/test/signed:1"
	copyToRegistry(t, "oci:"+layout+":t", unsigned, "", nil, opts...)
	copyToRegistry(t, "oci:"+layout+":t", signed, priv, passphrase, opts...)

	open := func(ref string, opts ...Option) error {
		t.Helper()
		r, err := ParseRef(ref)
		if err != nil {
			t.Fatal(err)
		}
		rd, err := NewReader(ctx, r, opts...)
		if err != nil {
			return err
		}
		defer rd.Close()
		_, err = rd.Config(ctx)
		return err
	}
	with := func(extra ...Option) []Option { return append(append([]Option{}, opts...), extra...) }

	t.Run("unsigned refused", func(t *testing.T) {
		err := open("ostree-image-signed:"+unsigned, with(WithPolicy(goodPolicy))...)
		t.Logf("error: %v", err)
		if !errors.Is(err, ErrPolicyRejected) {
			t.Fatalf("err = %v, want %v", err, ErrPolicyRejected)
		}
		if !strings.Contains(err.Error(), "signature") {
			t.Fatalf("err = %v, want it to mention the missing signature", err)
		}
	})
	t.Run("signed accepted", func(t *testing.T) {
		readImage(t, "ostree-image-signed:"+signed, ti, with(WithPolicy(goodPolicy))...)
	})
	t.Run("signed, other key refused", func(t *testing.T) {
		err := open("ostree-image-signed:"+signed, with(WithPolicy(otherPolicy))...)
		t.Logf("error: %v", err)
		if !errors.Is(err, ErrPolicyRejected) {
			t.Fatalf("err = %v, want %v", err, ErrPolicyRejected)
		}
	})
	t.Run("signed, attachments not configured refused", func(t *testing.T) {
		err := open("ostree-image-signed:"+signed, with(WithPolicy(goodPolicy), WithRegistriesDir(emptyRegd))...)
		t.Logf("error: %v", err)
		if !errors.Is(err, ErrPolicyRejected) {
			t.Fatalf("err = %v, want %v", err, ErrPolicyRejected)
		}
	})
	t.Run("signature stored as attachment", func(t *testing.T) {
		resp, err := http.Get("http://" + host + "/v2/test/signed/tags/list")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var tags struct{ Tags []string }
		if err := json.NewDecoder(resp.Body).Decode(&tags); err != nil {
			t.Fatal(err)
		}
		want := strings.Replace(digest.FromBytes(ti.manifest).String(), ":", "-", 1) + ".sig"
		if !slices.Contains(tags.Tags, want) {
			t.Fatalf("tags %v, want %s among them", tags.Tags, want)
		}
	})
	t.Run("signature of another repository refused", func(t *testing.T) {
		// The copy carries the signature along, but it names test/signed.
		moved := "docker://" + host + "/test/moved:1"
		copyToRegistry(t, signed, moved, "", nil, opts...)
		err := open("ostree-image-signed:"+moved, with(WithPolicy(goodPolicy))...)
		t.Logf("error: %v", err)
		if !errors.Is(err, ErrPolicyRejected) {
			t.Fatalf("err = %v, want %v", err, ErrPolicyRejected)
		}
		if !strings.Contains(err.Error(), "test/signed") {
			t.Fatalf("err = %v, want it to name the signed identity", err)
		}
	})
	t.Run("unverified ignores policy", func(t *testing.T) {
		if err := open("ostree-unverified-registry:"+host+"/test/unsigned:1", with(WithPolicy(goodPolicy))...); err != nil {
			t.Fatal(err)
		}
	})
}
