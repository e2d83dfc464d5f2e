package oci

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.podman.io/image/v5/transports"
	"go.podman.io/image/v5/transports/alltransports"
	"go.podman.io/image/v5/types"
)

// Transport names an image transport the way ostree-ext spells it.
// The registry transport is always "registry", whether the input said
// "registry:NAME", "docker://NAME" or a bare NAME.
type Transport string

// The transports accepted in an image reference.
const (
	TransportRegistry          Transport = "registry"           // a registry; printed as docker://NAME
	TransportOCI               Transport = "oci"                // an OCI layout directory: DIR[:TAG]
	TransportOCIArchive        Transport = "oci-archive"        // a tar of an OCI layout: FILE[:TAG]
	TransportDockerArchive     Transport = "docker-archive"     // a `docker save` tar: FILE[:REF]
	TransportContainersStorage Transport = "containers-storage" // podman's store (stubbed out in our build)
	TransportDir               Transport = "dir"                // c/image's plain directory format
	TransportDockerDaemon      Transport = "docker-daemon"      // the docker API (stubbed out in our build)
)

// containersName is the transport name containers/image registers.
func (t Transport) containersName() string {
	if t == TransportRegistry {
		return "docker"
	}
	return string(t)
}

// SignatureSource says how a pulled image is verified (ostree-ext's SignatureSource).
type SignatureSource int

const (
	// Unverified: ostree-unverified-registry:, ostree-unverified-image: and every plain
	// containers/image form. No signature is checked.
	Unverified SignatureSource = iota
	// ContainerPolicy: ostree-image-signed:. The image must pass containers-policy.json,
	// and a policy whose default is insecureAcceptAnything is refused.
	ContainerPolicy
	// OstreeRemote: ostree-remote-image:REMOTE:… The container layer is not checked
	// here; the OSTree commit inside the image must be verified with the keys of the
	// OSTree remote Ref.Remote by whoever imports it.
	OstreeRemote
)

// String returns a short name of the signature source.
func (s SignatureSource) String() string {
	switch s {
	case Unverified:
		return "unverified"
	case ContainerPolicy:
		return "container-policy"
	case OstreeRemote:
		return "ostree-remote"
	}
	return fmt.Sprintf("SignatureSource(%d)", int(s))
}

// Ref is a parsed IMGREF: a signature source plus an image reference
// (Transport and Name, resolved to a containers/image ImageReference).
type Ref struct {
	// Signature is how images read through this reference are verified.
	Signature SignatureSource
	// Remote is the OSTree remote name when Signature is OstreeRemote.
	Remote string
	// Transport is the image transport.
	Transport Transport
	// Name is the transport-specific part as written by the user: for the
	// registry "quay.io/org/img:tag" (no "//"), for oci "DIR[:TAG]", and so on.
	Name string

	imageRef types.ImageReference
	imageErr error // resolution deferred until the reference is used
}

// Ostree-ext prefixes of an OstreeImageReference.
const (
	prefixUnverifiedRegistry = "ostree-unverified-registry:"
	prefixUnverifiedImage    = "ostree-unverified-image:"
	prefixImageSigned        = "ostree-image-signed:"
	prefixRemoteImage        = "ostree-remote-image:"
	prefixRemoteRegistry     = "ostree-remote-registry:"
)

// knownTransports are the transports accepted after "TRANSPORT:".
var knownTransports = map[string]Transport{
	"registry":           TransportRegistry,
	"docker":             TransportRegistry, // needs "//"
	"oci":                TransportOCI,
	"oci-archive":        TransportOCIArchive,
	"docker-archive":     TransportDockerArchive,
	"containers-storage": TransportContainersStorage,
	"dir":                TransportDir,
	"docker-daemon":      TransportDockerDaemon,
}

// unsupportedTransports are containers/image transports we refuse by name, so that
// "sif:x" is reported as an unsupported transport and not read as a registry name.
var unsupportedTransports = map[string]bool{
	"sif": true, "tarball": true, "atomic": true, "ostree": true,
}

// ParseRef parses an image reference in any form CLI.md accepts:
//
//	ostree-unverified-registry:NAME          ostree-unverified-image:TRANSPORT:REF
//	ostree-image-signed:TRANSPORT:REF        ostree-remote-image:REMOTE:TRANSPORT:REF
//	ostree-remote-registry:REMOTE:NAME       docker://NAME[:TAG|@DIGEST]
//	registry:NAME                            oci:DIR[:TAG]
//	oci-archive:FILE[:TAG]                   docker-archive:FILE[:REF]
//	containers-storage:NAME                  dir:DIR
//	NAME[:TAG|@DIGEST]                       (a registry image, as in bootc)
//
// Plain (non-ostree) forms are Unverified. For oci:, oci-archive: and dir: whose parent
// directory does not exist yet, and for transports stubbed out of this build, the
// containers/image reference is resolved when it is used (see ImageReference).
func ParseRef(s string) (*Ref, error) {
	if s == "" {
		return nil, errors.New("empty image reference")
	}
	r := &Ref{}
	var err error
	switch {
	case strings.HasPrefix(s, prefixUnverifiedRegistry):
		r.Signature, r.Transport, r.Name = Unverified, TransportRegistry, s[len(prefixUnverifiedRegistry):]
	case strings.HasPrefix(s, prefixUnverifiedImage):
		r.Signature = Unverified
		r.Transport, r.Name, err = parseTransportRef(s[len(prefixUnverifiedImage):])
	case strings.HasPrefix(s, prefixImageSigned):
		r.Signature = ContainerPolicy
		r.Transport, r.Name, err = parseTransportRef(s[len(prefixImageSigned):])
	case strings.HasPrefix(s, prefixRemoteImage), strings.HasPrefix(s, prefixRemoteRegistry):
		registryOnly := strings.HasPrefix(s, prefixRemoteRegistry)
		rest := strings.TrimPrefix(strings.TrimPrefix(s, prefixRemoteImage), prefixRemoteRegistry)
		r.Signature = OstreeRemote
		remote, img, ok := strings.Cut(rest, ":")
		switch {
		case !ok || remote == "" || strings.HasPrefix(img, "//"):
			err = errors.New("missing OSTree remote name (want ostree-remote-image:REMOTE:TRANSPORT:REF)")
		case strings.ContainsAny(remote, "/ \t\n"):
			err = fmt.Errorf("invalid OSTree remote name %q", remote)
		case registryOnly:
			r.Remote, r.Transport, r.Name = remote, TransportRegistry, img
		default:
			r.Remote = remote
			r.Transport, r.Name, err = parseTransportRef(img)
		}
	case strings.HasPrefix(s, "ostree-") && !strings.Contains(strings.SplitN(s, ":", 2)[0], "/"):
		// A misspelt ostree-ext prefix, not a registry path such as ostree-x/y:tag.
		prefix, _, _ := strings.Cut(s, ":")
		err = fmt.Errorf("unknown ostree image reference prefix %q", prefix+":")
	default:
		r.Signature = Unverified
		r.Transport, r.Name, err = parsePlainRef(s)
	}
	if err == nil && r.Name == "" {
		err = fmt.Errorf("empty %s name", r.Transport)
	}
	if err == nil {
		err = r.resolve()
	}
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", s, err)
	}
	return r, nil
}

// parseTransportRef parses "TRANSPORT:NAME" strictly, as ostree-ext does.
func parseTransportRef(s string) (Transport, string, error) {
	name, rest, ok := strings.Cut(s, ":")
	if !ok {
		return "", "", fmt.Errorf("missing transport in %q (want TRANSPORT:REF, e.g. docker://NAME)", s)
	}
	t, known := knownTransports[name]
	if !known {
		if unsupportedTransports[name] {
			return "", "", fmt.Errorf("unsupported transport %q", name)
		}
		return "", "", fmt.Errorf("unknown transport %q", name)
	}
	if name == "docker" {
		if !strings.HasPrefix(rest, "//") {
			return "", "", errors.New(`transport "docker" needs "//" (docker://NAME)`)
		}
		rest = rest[2:]
	}
	return t, rest, nil
}

// parsePlainRef parses a containers/image form or a bare registry NAME[:TAG].
func parsePlainRef(s string) (Transport, string, error) {
	prefix, rest, ok := strings.Cut(s, ":")
	if ok {
		if _, known := knownTransports[prefix]; known || unsupportedTransports[prefix] {
			return parseTransportRef(s)
		}
		if strings.HasPrefix(rest, "//") {
			return "", "", fmt.Errorf("unknown transport %q", prefix)
		}
	}
	return TransportRegistry, s, nil
}

// isStubTransport reports whether containers/image registered name as a stub
// (a transport compiled out by a build tag).
func isStubTransport(name string) bool {
	t := transports.Get(name)
	return t != nil && fmt.Sprintf("%T", t) == "transports.stubTransport"
}

// pathOf returns the filesystem path of a path-based reference, and whether the
// transport is path-based at all.
func (r *Ref) pathOf() (string, bool) {
	switch r.Transport {
	case TransportOCI, TransportOCIArchive, TransportDockerArchive:
		p, _, _ := strings.Cut(r.Name, ":")
		return p, true
	case TransportDir:
		return r.Name, true
	}
	return "", false
}

// resolve parses the containers/image reference. Failures that depend on the
// environment (a parent directory that is not there yet, a stubbed transport) are
// remembered and reported when the reference is used.
func (r *Ref) resolve() error {
	path, isPath := r.pathOf()
	if isPath && path == "" {
		return fmt.Errorf("%s: missing path", r.Transport)
	}
	name := r.Name
	if r.Transport == TransportRegistry {
		name = "//" + name
	}
	ir, err := alltransports.ParseImageName(r.Transport.containersName() + ":" + name)
	if err == nil {
		r.imageRef, r.imageErr = ir, nil
		return nil
	}
	if isStubTransport(r.Transport.containersName()) {
		r.imageErr = err
		return nil
	}
	if isPath {
		if _, statErr := os.Lstat(filepath.Dir(filepath.Clean(path))); errors.Is(statErr, os.ErrNotExist) {
			r.imageErr = err
			return nil
		}
	}
	return err
}

// ImageReference returns the containers/image reference. It fails for transports
// that are stubbed out of this build and for paths whose parent directory is missing.
func (r *Ref) ImageReference() (types.ImageReference, error) {
	if r.imageRef == nil {
		if err := r.resolve(); err != nil {
			return nil, fmt.Errorf("image reference %s: %w", r.ImageString(), err)
		}
		if r.imageErr != nil {
			return nil, fmt.Errorf("image reference %s: %w", r.ImageString(), r.imageErr)
		}
	}
	return r.imageRef, nil
}

// ImageString returns the image reference without its signature source, in the form
// containers/image and skopeo accept: docker://NAME for the registry, TRANSPORT:NAME otherwise.
func (r *Ref) ImageString() string {
	if r.Transport == TransportRegistry {
		return "docker://" + r.Name
	}
	return string(r.Transport) + ":" + r.Name
}

// String returns the canonical ostree-ext form (ostree-unverified-registry:NAME,
// ostree-unverified-image:IMG, ostree-image-signed:IMG, ostree-remote-image:REMOTE:IMG),
// which ParseRef reads back to an equal Ref.
func (r *Ref) String() string {
	switch r.Signature {
	case ContainerPolicy:
		return prefixImageSigned + r.ImageString()
	case OstreeRemote:
		return prefixRemoteImage + r.Remote + ":" + r.ImageString()
	}
	if r.Transport == TransportRegistry {
		return prefixUnverifiedRegistry + r.Name
	}
	return prefixUnverifiedImage + r.ImageString()
}
