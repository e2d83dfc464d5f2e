package oci

// WithRegistriesDir reads registries.d configuration (lookaside locations and
// use-sigstore-attachments, see containers-registries.d(5)) from dir instead of
// /etc/containers/registries.d and ~/.config/containers/registries.d. It decides where
// signatures for ostree-image-signed: references are looked up, e.g. sigstore
// signatures stored as OCI attachments.
//
// It sets SystemContext.RegistriesDirPath, so give it after WithSystemContext (which
// replaces the whole SystemContext).
func WithRegistriesDir(dir string) Option {
	return func(s *settings) { s.sys.RegistriesDirPath = dir }
}
