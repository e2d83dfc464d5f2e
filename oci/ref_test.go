package oci

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseRef(t *testing.T) {
	const dg = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tmp := t.TempDir()
	tests := []struct {
		in        string
		sig       SignatureSource
		remote    string
		transport Transport
		name      string
		str       string // canonical String(); "" = same as in
		image     string // ImageString()
		lazyErr   string // ImageReference() fails with this (deferred resolution)
	}{
		{in: "ostree-unverified-registry:quay.io/fedora/fedora-bootc:41", sig: Unverified, transport: TransportRegistry, name: "quay.io/fedora/fedora-bootc:41", image: "docker://quay.io/fedora/fedora-bootc:41"},
		{in: "ostree-unverified-image:docker://quay.io/x/y:1", sig: Unverified, transport: TransportRegistry, name: "quay.io/x/y:1", str: "ostree-unverified-registry:quay.io/x/y:1", image: "docker://quay.io/x/y:1"},
		{in: "ostree-unverified-image:registry:quay.io/x/y", sig: Unverified, transport: TransportRegistry, name: "quay.io/x/y", str: "ostree-unverified-registry:quay.io/x/y", image: "docker://quay.io/x/y"},
		{in: "ostree-unverified-image:oci:" + tmp + ":tag", sig: Unverified, transport: TransportOCI, name: tmp + ":tag", image: "oci:" + tmp + ":tag"},
		{in: "ostree-unverified-image:dir:" + tmp, sig: Unverified, transport: TransportDir, name: tmp, image: "dir:" + tmp},
		{in: "ostree-image-signed:docker://quay.io/x/y:1", sig: ContainerPolicy, transport: TransportRegistry, name: "quay.io/x/y:1", image: "docker://quay.io/x/y:1"},
		{in: "ostree-image-signed:registry:quay.io/x/y:1", sig: ContainerPolicy, transport: TransportRegistry, name: "quay.io/x/y:1", str: "ostree-image-signed:docker://quay.io/x/y:1", image: "docker://quay.io/x/y:1"},
		{in: "ostree-image-signed:oci-archive:" + tmp + "/a.tar:v1", sig: ContainerPolicy, transport: TransportOCIArchive, name: tmp + "/a.tar:v1", image: "oci-archive:" + tmp + "/a.tar:v1"},
		{in: "ostree-remote-image:fedora:docker://quay.io/x/y:1", sig: OstreeRemote, remote: "fedora", transport: TransportRegistry, name: "quay.io/x/y:1", image: "docker://quay.io/x/y:1"},
		{in: "ostree-remote-image:fedora:registry:quay.io/x/y:1", sig: OstreeRemote, remote: "fedora", transport: TransportRegistry, name: "quay.io/x/y:1", str: "ostree-remote-image:fedora:docker://quay.io/x/y:1", image: "docker://quay.io/x/y:1"},
		{in: "ostree-remote-image:r1:oci:" + tmp, sig: OstreeRemote, remote: "r1", transport: TransportOCI, name: tmp, image: "oci:" + tmp},
		{in: "ostree-remote-registry:fedora:quay.io/x/y", sig: OstreeRemote, remote: "fedora", transport: TransportRegistry, name: "quay.io/x/y", str: "ostree-remote-image:fedora:docker://quay.io/x/y", image: "docker://quay.io/x/y"},
		{in: "docker://quay.io/x/y:1", transport: TransportRegistry, name: "quay.io/x/y:1", str: "ostree-unverified-registry:quay.io/x/y:1", image: "docker://quay.io/x/y:1"},
		{in: "docker://quay.io/x/y@" + dg, transport: TransportRegistry, name: "quay.io/x/y@" + dg, str: "ostree-unverified-registry:quay.io/x/y@" + dg, image: "docker://quay.io/x/y@" + dg},
		{in: "registry:quay.io/x/y", transport: TransportRegistry, name: "quay.io/x/y", str: "ostree-unverified-registry:quay.io/x/y", image: "docker://quay.io/x/y"},
		{in: "oci:" + tmp, transport: TransportOCI, name: tmp, str: "ostree-unverified-image:oci:" + tmp, image: "oci:" + tmp},
		{in: "oci:" + tmp + ":latest", transport: TransportOCI, name: tmp + ":latest", str: "ostree-unverified-image:oci:" + tmp + ":latest", image: "oci:" + tmp + ":latest"},
		{in: "oci:" + tmp + "/new/deeper:t", transport: TransportOCI, name: tmp + "/new/deeper:t", str: "ostree-unverified-image:oci:" + tmp + "/new/deeper:t", image: "oci:" + tmp + "/new/deeper:t", lazyErr: "no such file"},
		{in: "oci-archive:" + tmp + "/img.tar:v1", transport: TransportOCIArchive, name: tmp + "/img.tar:v1", str: "ostree-unverified-image:oci-archive:" + tmp + "/img.tar:v1", image: "oci-archive:" + tmp + "/img.tar:v1"},
		{in: "docker-archive:" + tmp + "/img.tar", transport: TransportDockerArchive, name: tmp + "/img.tar", str: "ostree-unverified-image:docker-archive:" + tmp + "/img.tar", image: "docker-archive:" + tmp + "/img.tar"},
		{in: "containers-storage:quay.io/x/y:1", transport: TransportContainersStorage, name: "quay.io/x/y:1", str: "ostree-unverified-image:containers-storage:quay.io/x/y:1", image: "containers-storage:quay.io/x/y:1", lazyErr: "not supported in this build"},
		{in: "dir:" + tmp, transport: TransportDir, name: tmp, str: "ostree-unverified-image:dir:" + tmp, image: "dir:" + tmp},
		{in: "quay.io/fedora/fedora:41", transport: TransportRegistry, name: "quay.io/fedora/fedora:41", str: "ostree-unverified-registry:quay.io/fedora/fedora:41", image: "docker://quay.io/fedora/fedora:41"},
		{in: "quay.io/ostree-x/y:1", transport: TransportRegistry, name: "quay.io/ostree-x/y:1", str: "ostree-unverified-registry:quay.io/ostree-x/y:1", image: "docker://quay.io/ostree-x/y:1"},
		{in: "ostree-x/y:1", transport: TransportRegistry, name: "ostree-x/y:1", str: "ostree-unverified-registry:ostree-x/y:1", image: "docker://ostree-x/y:1"},
		{in: "fedora", transport: TransportRegistry, name: "fedora", str: "ostree-unverified-registry:fedora", image: "docker://fedora"},
		{in: "localhost:5000/img:tag", transport: TransportRegistry, name: "localhost:5000/img:tag", str: "ostree-unverified-registry:localhost:5000/img:tag", image: "docker://localhost:5000/img:tag"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseRef(tc.in)
			if err != nil {
				t.Fatalf("ParseRef: %v", err)
			}
			if r.Signature != tc.sig || r.Remote != tc.remote || r.Transport != tc.transport || r.Name != tc.name {
				t.Fatalf("got {%v %q %q %q}, want {%v %q %q %q}", r.Signature, r.Remote, r.Transport, r.Name, tc.sig, tc.remote, tc.transport, tc.name)
			}
			want := tc.str
			if want == "" {
				want = tc.in
			}
			if r.String() != want {
				t.Errorf("String() = %q, want %q", r.String(), want)
			}
			if r.ImageString() != tc.image {
				t.Errorf("ImageString() = %q, want %q", r.ImageString(), tc.image)
			}
			back, err := ParseRef(r.String())
			if err != nil {
				t.Fatalf("ParseRef(String()): %v", err)
			}
			if back.Signature != r.Signature || back.Remote != r.Remote || back.Transport != r.Transport || back.Name != r.Name || back.String() != r.String() {
				t.Errorf("round trip %q -> %+v", r.String(), back)
			}
			ir, err := r.ImageReference()
			if tc.lazyErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.lazyErr) {
					t.Fatalf("ImageReference() err = %v, want %q", err, tc.lazyErr)
				}
				return
			}
			if err != nil || ir == nil {
				t.Fatalf("ImageReference(): %v", err)
			}
			if got := ir.Transport().Name(); got != tc.transport.containersName() {
				t.Errorf("containers transport %q, want %q", got, tc.transport.containersName())
			}
		})
	}
}

// A path reference whose parent appears after parsing resolves then.
func TestParseRefLateDirectory(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "a", "b")
	r, err := ParseRef("oci:" + dir + ":x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.ImageReference(); err == nil {
		t.Fatal("ImageReference succeeded without the parent directory")
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := r.ImageReference(); err != nil {
		t.Fatalf("after mkdir: %v", err)
	}
}

func TestParseRefErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", "empty image reference"},
		{"foo://bar", `unknown transport "foo"`},
		{"http://quay.io/x", `unknown transport "http"`},
		{"ostree-unverified-image:nope:x", `unknown transport "nope"`},
		{"ostree-image-signed:quay.io/x", "missing transport"},
		{"ostree-unverified-image:sif:/x.sif", `unsupported transport "sif"`},
		{"sif:/x.sif", `unsupported transport "sif"`},
		{"ostree:/repo", `unsupported transport "ostree"`},
		{"ostree-remote-image:", "missing OSTree remote name"},
		{"ostree-remote-image:docker://quay.io/x", "missing OSTree remote name"},
		{"ostree-remote-image::docker://quay.io/x", "missing OSTree remote name"},
		{"ostree-remote-registry:quay.io/x", "missing OSTree remote name"},
		{"ostree-remote-registry:quay.io/x:tag", `invalid OSTree remote name "quay.io/x"`},
		{"ostree-remote-image:fedora:", "missing transport"},
		{"ostree-unverified-registry:", "empty registry name"},
		{"ostree-foo:bar", `unknown ostree image reference prefix "ostree-foo:"`},
		{"oci:", "empty oci name"},
		{"oci::tag", "missing path"},
		{"oci-archive:", "empty oci-archive name"},
		{"dir:", "empty dir name"},
		{"docker:quay.io/x", `needs "//"`},
		{"docker://", "empty registry name"},
		{"quay.io/UPPER/x", "must be lowercase"},
		{"ostree-unverified-registry:quay.io/x/y:bad tag", "invalid reference format"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			r, err := ParseRef(tc.in)
			if err == nil {
				t.Fatalf("ParseRef(%q) = %+v, want error %q", tc.in, r, tc.want)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseRef(%q) error %q, want it to contain %q", tc.in, err, tc.want)
			}
		})
	}
}
