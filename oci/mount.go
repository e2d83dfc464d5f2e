package oci

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	digest "github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/image"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/pkg/docker/config"
	"go.podman.io/image/v5/pkg/sysregistriesv2"
	"go.podman.io/image/v5/pkg/tlsclientconfig"
	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
	"go.podman.io/storage/pkg/configfile"
	"go.podman.io/storage/pkg/fileutils"
	"go.podman.io/storage/pkg/unshare"
	"golang.org/x/sync/errgroup"
)

// Why Copy mounts blobs itself before calling copy.Image:
//
// containers/image's docker destination mounts a blob from another repository of the
// same registry only when its blob info cache lists that repository as a location of
// the blob, with the blob's compression known (CandidateLocations2 drops candidates of
// unknown compression). copy.Image uses blobinfocache.DefaultCache, which is SQLite
// (cgo); in our CGO_ENABLED=0 build it falls back to a fresh in-memory cache per copy,
// and the source location is recorded only when the blob is downloaded. copy.Options
// has no way to pass a cache, and recording the compression needs internal types, so
// no public API makes copy.Image mount (nor types.ImageDestination.TryReusingBlob
// driven by hand with a memory cache that holds only the locations). The
// BoltDB cache is pure Go but DefaultCache never picks it. mountBlobs therefore does the mounts with the
// registry API (the same HEAD, HEAD, POST ?mount=&from= sequence containers/image
// uses), after which copy.Image finds every blob at the destination (HEAD) and
// neither downloads nor uploads it. copy.Image still does the whole copy: manifests,
// every instance of a list, signatures, the policy check and digest preservation.

// mountStats counts what mountBlobs did with the blobs of the source image.
type mountStats struct {
	mounted int // mounted from the source repository
	present int // already in the destination repository
	skipped int // not in the source repository, or the registry started an upload instead
}

// mountWorkers bounds the concurrent blob mounts (copy.Image copies 6 layers at once).
const mountWorkers = 6

// sameRegistryRepos returns the repositories of srcRef and dstRef when both are
// docker:// references to different repositories of the same registry.
func sameRegistryRepos(srcRef, dstRef types.ImageReference) (src, dst reference.Named, ok bool) {
	dockerName := docker.Transport.Name()
	if srcRef.Transport().Name() != dockerName || dstRef.Transport().Name() != dockerName {
		return nil, nil, false
	}
	src, dst = srcRef.DockerReference(), dstRef.DockerReference()
	if src == nil || dst == nil || reference.Domain(src) != reference.Domain(dst) || src.Name() == dst.Name() {
		return nil, nil, false
	}
	return src, dst, true
}

// mountBlobs mounts every config and layer blob of the image srcRef points to (of
// every instance of a manifest list or image index) from its repository into the
// repository of dstRef, when both are on the same registry; other pairs of references
// are left alone. Nothing is mounted unless pc allows the source image. It is only an
// optimisation for the copy.Image that follows: a blob it could not mount is copied
// by copy.Image as before, so callers may ignore the error.
func mountBlobs(ctx context.Context, sys *types.SystemContext, pc *signature.PolicyContext, srcRef, dstRef types.ImageReference) (mountStats, error) {
	var st mountStats
	srcName, dstName, ok := sameRegistryRepos(srcRef, dstRef)
	if !ok {
		return st, nil
	}
	src, err := srcRef.NewImageSource(ctx, sys)
	if err != nil {
		return st, fmt.Errorf("mounting blobs: opening %s: %w", refName(srcRef), err)
	}
	defer src.Close()
	unparsed := image.UnparsedInstance(src, nil)
	if allowed, err := pc.IsRunningImageAllowed(ctx, unparsed); !allowed || err != nil {
		return st, fmt.Errorf("mounting blobs: %s not allowed by the signature policy: %w", refName(srcRef), errors.Join(ErrPolicyRejected, err))
	}
	top, topType, err := unparsed.Manifest(ctx)
	if err != nil {
		return st, fmt.Errorf("mounting blobs: manifest of %s: %w", refName(srcRef), err)
	}
	blobs, err := imageBlobs(ctx, src, top, topType)
	if err != nil {
		return st, fmt.Errorf("mounting blobs: %s: %w", refName(srcRef), err)
	}
	if len(blobs) == 0 {
		return st, nil
	}
	m, err := newBlobMounter(ctx, sys, srcName, dstName)
	if err != nil {
		return st, fmt.Errorf("mounting blobs into %s: %w", dstName.Name(), err)
	}

	// The first error cancels the rest: the registry refuses us or is gone,
	// and copy.Image copies what was not mounted.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(mountWorkers)
	var mu sync.Mutex
	for _, d := range blobs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			res, err := m.mount(gctx, d)
			if err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			switch res {
			case mountDone:
				st.mounted++
			case mountPresent:
				st.present++
			default:
				st.skipped++
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return st, fmt.Errorf("mounting blobs from %s into %s: %w", srcName.Name(), dstName.Name(), err)
	}
	return st, nil
}

// refName names an image reference for messages.
func refName(r types.ImageReference) string {
	return r.Transport().Name() + ":" + r.StringWithinTransport()
}

// imageBlobs lists the config and layer digests of the image whose manifest is top,
// or of every instance of the list or index top. Layers with URLs (foreign layers) and
// nested lists are left out: copy.Image treats them.
func imageBlobs(ctx context.Context, src types.ImageSource, top []byte, topType string) ([]digest.Digest, error) {
	var out []digest.Digest
	seen := map[digest.Digest]bool{}
	add := func(b types.BlobInfo) {
		if b.Digest == "" || len(b.URLs) > 0 || seen[b.Digest] {
			return
		}
		seen[b.Digest] = true
		out = append(out, b.Digest)
	}
	addImage := func(mb []byte, mt string) error {
		m, err := manifest.FromBlob(mb, mt)
		if err != nil {
			return err
		}
		add(m.ConfigInfo())
		for _, l := range m.LayerInfos() {
			add(l.BlobInfo)
		}
		return nil
	}
	if topType == "" {
		topType = manifest.GuessMIMEType(top)
	}
	if !manifest.MIMETypeIsMultiImage(topType) {
		return out, addImage(top, topType)
	}
	list, err := manifest.ListFromBlob(top, topType)
	if err != nil {
		return nil, err
	}
	for _, d := range list.Instances() {
		mb, mt, err := src.GetManifest(ctx, &d)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d, err)
		}
		if mt == "" {
			mt = manifest.GuessMIMEType(mb)
		}
		if manifest.MIMETypeIsMultiImage(mt) {
			continue
		}
		if err := addImage(mb, mt); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", d, err)
		}
	}
	return out, nil
}

// mountResult is what happened to one blob.
type mountResult int

const (
	mountSkipped mountResult = iota // not mounted; copy.Image copies it
	mountDone                       // mounted from the source repository
	mountPresent                    // the destination repository had it already
)

// blobMounter talks the registry API to one registry for one source and one
// destination repository, with the credentials, TLS settings and proxy containers/image
// would use for the destination, and the same authentication (basic, or a bearer token
// for push on the destination and pull on the source), done by go-containerregistry's
// transport.
type blobMounter struct {
	client   *http.Client
	base     string // https://host; the transport switches to http when the ping did
	src, dst string // repository paths on the registry
}

// newBlobMounter sets up the client: certs.d, insecure registries (which may fall back
// to plain HTTP) and the proxy of sys, then pings the registry and authenticates with
// the credentials containers/image uses for dst (SystemContext, auth.json, credential
// helpers).
func newBlobMounter(ctx context.Context, sys *types.SystemContext, src, dst reference.Named) (*blobMounter, error) {
	host := reference.Domain(dst)
	regConf, err := sysregistriesv2.FindRegistry(sys, dst.Name())
	if err != nil {
		return nil, fmt.Errorf("loading registries: %w", err)
	}
	if regConf != nil && regConf.Blocked {
		return nil, fmt.Errorf("registry %s is blocked in %s", regConf.Prefix, sysregistriesv2.ConfigurationSourceDescription(sys))
	}
	insecure := regConf != nil && regConf.Insecure
	if sys != nil && sys.DockerInsecureSkipTLSVerify != types.OptionalBoolUndefined {
		insecure = sys.DockerInsecureSkipTLSVerify == types.OptionalBoolTrue
	}

	tlsc := &tls.Config{}
	if sys != nil && sys.BaseTLSConfig != nil {
		tlsc = sys.BaseTLSConfig.Clone()
	}
	dir, err := certDir(sys, host)
	if err != nil {
		return nil, err
	}
	if dir != "" {
		if err := tlsclientconfig.SetupCertificates(dir, tlsc); err != nil {
			return nil, fmt.Errorf("certificates in %s: %w", dir, err)
		}
	}
	tlsc.InsecureSkipVerify = insecure
	tr := tlsclientconfig.NewTransport()
	tr.TLSClientConfig = tlsc
	if sys != nil && sys.DockerProxyURL != nil {
		tr.Proxy = http.ProxyURL(sys.DockerProxyURL)
	}
	if sys != nil && sys.DockerProxy != nil {
		tr.Proxy = func(r *http.Request) (*url.URL, error) { return sys.DockerProxy(r.URL) }
	}
	var nopts []name.Option
	if insecure {
		nopts = append(nopts, name.Insecure)
	}
	reg, err := name.NewRegistry(host, nopts...)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", host, err)
	}
	creds, err := config.GetCredentialsForRef(sys, dst)
	if err != nil {
		return nil, fmt.Errorf("credentials for %s: %w", dst.Name(), err)
	}
	ac := authn.AuthConfig{Username: creds.Username, Password: creds.Password, IdentityToken: creds.IdentityToken}
	if sys != nil {
		ac.RegistryToken = sys.DockerBearerRegistryToken
	}
	m := &blobMounter{src: reference.Path(src), dst: reference.Path(dst), base: "https://" + reg.RegistryStr()}
	// Ping (https, then plain http only for an insecure registry), read the
	// challenge, get a bearer token for the scopes or use basic credentials.
	scopes := []string{"repository:" + m.dst + ":pull,push", "repository:" + m.src + ":pull"}
	rt, err := transport.NewWithContext(ctx, reg, authn.FromConfig(ac), &secureOnly{inner: tr, host: reg.RegistryStr(), insecure: insecure}, scopes)
	if err != nil {
		return nil, err
	}
	m.client = &http.Client{Transport: rt}
	return m, nil
}

// secureOnly refuses plain http to the registry host unless the registry is
// marked insecure (go-containerregistry also tries http for localhost and
// private addresses).
type secureOnly struct {
	inner    http.RoundTripper
	host     string
	insecure bool
}

func (s *secureOnly) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !s.insecure && sameHost(req.URL, s.host) {
		return nil, fmt.Errorf("refusing plain http to registry %s: it is not marked insecure", s.host)
	}
	return s.inner.RoundTrip(req)
}

// sameHost reports whether u is on host (host:port, the port optional for
// the scheme's default).
func sameHost(u *url.URL, host string) bool {
	if u.Host == host {
		return true
	}
	h, _, err := net.SplitHostPort(host)
	return err != nil && u.Hostname() == host || err == nil && u.Port() == "" && u.Hostname() == h
}

// certDir returns the certs.d directory for host the way containers/image finds it
// (docker/docker_client.go dockerCertDir), "" when there is none.
func certDir(sys *types.SystemContext, host string) (string, error) {
	if sys != nil && sys.DockerCertPath != "" {
		return sys.DockerCertPath, nil
	}
	if sys != nil && sys.DockerPerHostCertDirPath != "" {
		return filepath.Join(sys.DockerPerHostCertDirPath, host), nil
	}
	root := ""
	if sys != nil {
		root = sys.RootForImplicitAbsolutePaths
	}
	paths, err := configfile.GetSearchPaths(&configfile.File{
		Name:                           "certs",
		Extension:                      "d",
		DoNotUseExtensionForConfigName: true,
		UserId:                         unshare.GetRootlessUID(),
		RootForImplicitAbsolutePaths:   root,
	})
	if err != nil {
		return "", fmt.Errorf("certs.d search paths: %w", err)
	}
	candidates := append(paths.DropInDirectories, filepath.Join(root, "/etc/docker/certs.d"))
	for _, dir := range candidates {
		full := filepath.Join(dir, host)
		err := fileutils.Exists(full)
		switch {
		case err == nil:
			return full, nil
		case os.IsNotExist(err), os.IsPermission(err):
			continue
		default:
			return "", err
		}
	}
	return "", nil
}

// mount makes blob d present in the destination repository: nothing to do when it is
// there, a cross-repository mount when the source repository has it. Like
// containers/image, it checks the source first so that a registry that does not
// mount is not left with an upload session (one it starts anyway is cancelled).
func (m *blobMounter) mount(ctx context.Context, d digest.Digest) (mountResult, error) {
	if err := d.Validate(); err != nil {
		return mountSkipped, err
	}
	if ok, err := m.exists(ctx, m.dst, d); err != nil {
		return mountSkipped, err
	} else if ok {
		return mountPresent, nil
	}
	if ok, err := m.exists(ctx, m.src, d); err != nil || !ok {
		return mountSkipped, err
	}
	q := url.Values{"mount": {d.String()}, "from": {m.src}}
	res, err := m.send(ctx, http.MethodPost, m.base+"/v2/"+m.dst+"/blobs/uploads/?"+q.Encode())
	if err != nil {
		return mountSkipped, err
	}
	switch res.StatusCode {
	case http.StatusCreated:
		return mountDone, nil
	case http.StatusAccepted:
		// The registry started an ordinary upload: cancel it, copy.Image uploads.
		if loc, err := res.Location(); err == nil {
			_, _ = m.send(ctx, http.MethodDelete, loc.String()) // best effort, as in containers/image
		}
		return mountSkipped, nil
	default:
		return mountSkipped, fmt.Errorf("mounting %s from %s into %s: %s", d, m.src, m.dst, res.Status)
	}
}

// exists reports whether repo has blob d (HEAD; 200 or 404).
func (m *blobMounter) exists(ctx context.Context, repo string, d digest.Digest) (bool, error) {
	res, err := m.send(ctx, http.MethodHead, m.base+"/v2/"+repo+"/blobs/"+d.String())
	if err != nil {
		return false, err
	}
	switch res.StatusCode {
	case http.StatusOK:
		return true, nil
	case http.StatusNotFound:
		return false, nil
	default:
		return false, fmt.Errorf("checking blob %s in %s: %s", d, repo, res.Status)
	}
}

// send sends a request without a body and returns the response with its body read
// and closed (only the status and headers are used), authenticated by the transport.
func (m *blobMounter) send(ctx context.Context, method, u string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		return nil, err
	}
	res, err := m.client.Do(req)
	if err != nil {
		return nil, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	res.Body.Close()
	return res, nil
}
