package oci

import (
	"os"
	"path/filepath"

	"go.podman.io/image/v5/types"
)

// Option configures NewReader and NewWriter.
type Option func(*settings)

type settings struct {
	sys        types.SystemContext
	authFile   string
	insecure   *bool
	policyPath string
	regConf    *[2]string
	platform   *[3]string
}

// WithSystemContext starts from a copy of sys instead of an empty SystemContext
// (containers defaults). Other options are applied on top of it.
func WithSystemContext(sys *types.SystemContext) Option {
	return func(s *settings) {
		if sys != nil {
			s.sys = *sys
		}
	}
}

// WithAuthFile uses only this auth.json (like --authfile); it wins over
// /etc/ostree/auth.json and the containers defaults.
func WithAuthFile(path string) Option {
	return func(s *settings) { s.authFile = path }
}

// WithInsecureSkipTLSVerify turns off TLS verification for registries (and lets
// containers/image fall back to plain HTTP). Prefer `insecure = true` for a single
// registry in registries.conf.
func WithInsecureSkipTLSVerify(skip bool) Option {
	return func(s *settings) { s.insecure = &skip }
}

// WithPolicy reads the signature policy from this policy.json instead of the system
// one. Only ostree-image-signed: references consult a policy.
func WithPolicy(path string) Option {
	return func(s *settings) { s.policyPath = path }
}

// WithRegistriesConf reads registries.conf from file and drop-ins from dir instead of
// the system locations (mirrors, insecure registries, short names). An empty dir that
// exists means "no drop-ins".
func WithRegistriesConf(file, dir string) Option {
	return func(s *settings) { s.regConf = &[2]string{file, dir} }
}

// WithPlatform picks this platform from a manifest list or image index instead of the
// running one (runtime.GOOS/GOARCH). Empty strings keep the default.
func WithPlatform(os, arch, variant string) Option {
	return func(s *settings) { s.platform = &[3]string{os, arch, variant} }
}

// ostreeAuthFiles lists the ostree-specific auth.json locations, in order, as
// ostree-ext does: /run/ostree, /etc/ostree, /usr/lib/ostree for root, and
// $XDG_RUNTIME_DIR/ostree, ~/.config/ostree otherwise. A variable for tests.
var ostreeAuthFiles = func() []string {
	if os.Geteuid() == 0 {
		return []string{"/run/ostree/auth.json", "/etc/ostree/auth.json", "/usr/lib/ostree/auth.json"}
	}
	var files []string
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
		files = append(files, filepath.Join(d, "ostree", "auth.json"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		files = append(files, filepath.Join(home, ".config", "ostree", "auth.json"))
	}
	return files
}

// systemContext applies opts and returns the SystemContext to use.
//
// Auth: WithAuthFile wins; else an auth setting already in WithSystemContext; else the
// first ostree auth.json that exists (used alone); else the containers defaults
// (${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json, docker's
// config.json).
func systemContext(opts []Option) *types.SystemContext {
	s := &settings{}
	for _, o := range opts {
		o(s)
	}
	sys := s.sys
	switch {
	case s.authFile != "":
		sys.AuthFilePath = s.authFile
	case sys.AuthFilePath != "" || sys.DockerAuthConfig != nil:
	default:
		for _, f := range ostreeAuthFiles() {
			if fi, err := os.Stat(f); err == nil && fi.Mode().IsRegular() {
				sys.AuthFilePath = f
				break
			}
		}
	}
	if s.insecure != nil {
		sys.DockerInsecureSkipTLSVerify = types.NewOptionalBool(*s.insecure)
		sys.OCIInsecureSkipTLSVerify = *s.insecure
	}
	if s.policyPath != "" {
		sys.SignaturePolicyPath = s.policyPath
	}
	if s.regConf != nil {
		sys.SystemRegistriesConfPath, sys.SystemRegistriesConfDirPath = s.regConf[0], s.regConf[1]
	}
	if p := s.platform; p != nil {
		if p[0] != "" {
			sys.OSChoice = p[0]
		}
		if p[1] != "" {
			sys.ArchitectureChoice = p[1]
		}
		if p[2] != "" {
			sys.VariantChoice = p[2]
		}
	}
	return &sys
}
