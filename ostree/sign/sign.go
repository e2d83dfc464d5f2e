// Package sign verifies the signatures of OSTree commits against the keys
// of an OSTree remote, as `ostree pull` and ostree-ext's
// ostree-remote-image: references do (libostree's
// ostree_repo_signature_verify_commit_data):
//
//   - GPG, unless the remote sets gpg-verify=false: the detached metadata
//     key "ostree.gpgsigs" (aay, binary OpenPGP signatures of the commit
//     object's bytes) must hold one good signature by a key of the remote's
//     keyring (REMOTE.trustedkeys.gpg in the repository, gpgkeypath= files;
//     the global /usr/share/ostree/trusted.gpg.d only when the remote has no
//     keyring file).
//   - Signature API, when the remote sets sign-verify (true, or a list of
//     types): the detached metadata key "ostree.sign.ed25519" (aay of 64-byte
//     ed25519 signatures of the commit object's bytes) must hold one
//     signature by a key from verification-ed25519-key /
//     verification-ed25519-file, or, with sign-verify=true and neither set,
//     from the system key files (/etc/ostree and /usr/share/ostree
//     trusted.ed25519 and trusted.ed25519.d/, minus revoked.ed25519 keys).
//
// When both are enabled both must pass; when neither is, verification is
// refused (ErrNoVerification), as libostree and ostree-ext do.
package sign

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/ocitree/ocitree/ostree"
)

// Errors of verification; match them with errors.Is.
var (
	// ErrNoVerification: the remote has neither GPG nor signature
	// verification enabled, so nothing could vouch for the commit.
	ErrNoVerification = errors.New("GPG verification disabled and no signature verification configured")
	// ErrNoSignature: the commit carries no signature of a required kind.
	ErrNoSignature = errors.New("no signature found")
	// ErrBadSignature: signatures are present but none is valid for the
	// remote's keys.
	ErrBadSignature = errors.New("no valid signature")
	// ErrNoKeys: a verification is enabled but no key could be loaded.
	ErrNoKeys = errors.New("no keys")
	// ErrUnsupportedType: sign-verify names a signature type this
	// implementation does not verify.
	ErrUnsupportedType = errors.New("unsupported signature type")
)

// Detached metadata keys holding commit signatures.
const (
	// GPGSigsKey holds binary OpenPGP detached signatures (type aay).
	GPGSigsKey = "ostree.gpgsigs"
	// Ed25519Key holds ed25519 signatures (type aay, 64 bytes each).
	Ed25519Key = "ostree.sign.ed25519"
)

// Defaults of Options.
var (
	// DefaultEd25519Dirs are the directories libostree reads system
	// ed25519 keys from: trusted.ed25519, trusted.ed25519.d/*,
	// revoked.ed25519 and revoked.ed25519.d/* in each.
	DefaultEd25519Dirs = []string{"/etc/ostree", "/usr/share/ostree"}
	// DefaultGPGKeyringDir is libostree's global keyring directory (*.gpg
	// files), used when the remote has no keyring file of its own and
	// $OSTREE_GPG_HOME is not set.
	DefaultGPGKeyringDir = "/usr/share/ostree/trusted.gpg.d"
)

// Options locate the system-wide keys; the zero value uses libostree's
// locations.
type Options struct {
	// Ed25519Dirs replace DefaultEd25519Dirs when not nil.
	Ed25519Dirs []string
	// GPGKeyringDir replaces $OSTREE_GPG_HOME and DefaultGPGKeyringDir
	// when not "".
	GPGKeyringDir string
	// Now is the time GPG key and signature expiry is checked at
	// (time.Now when nil).
	Now func() time.Time
}

func (o *Options) ed25519Dirs() []string {
	if o.Ed25519Dirs != nil {
		return o.Ed25519Dirs
	}
	return DefaultEd25519Dirs
}

func (o *Options) gpgKeyringDir() string {
	if o.GPGKeyringDir != "" {
		return o.GPGKeyringDir
	}
	if d := os.Getenv("OSTREE_GPG_HOME"); d != "" {
		return d
	}
	return DefaultGPGKeyringDir
}

// MetaLoader reads metadata objects: *ostree.Repo and *ostree.Txn (which
// also sees objects staged in the transaction).
type MetaLoader interface {
	LoadMeta(c ostree.Checksum, t ostree.ObjectType) ([]byte, error)
}

// Verifier checks commits against the keys of one OSTree remote. It is
// built once (ForRemote) and may verify many commits.
type Verifier struct {
	remote string
	gpg    *gpgVerifier     // nil when gpg-verify=false
	ed     *ed25519Verifier // nil when sign-verify is off
}

// Remote is the name of the remote whose keys the verifier uses.
func (v *Verifier) Remote() string { return v.remote }

// ForRemote reads the configuration of remote from repo and loads its
// keys. It fails when the remote does not exist (wrapping
// ostree.ErrRemoteNotFound), when neither gpg-verify nor sign-verify is on
// (ErrNoVerification), or when an enabled verification has no usable key.
func ForRemote(repo *ostree.Repo, remote string, opts Options) (*Verifier, error) {
	rm, err := repo.Remote(remote)
	if err != nil {
		return nil, err
	}
	return ForRemoteConfig(rm, opts)
}

// ForRemoteConfig is ForRemote for an already loaded remote configuration.
func ForRemoteConfig(rm *ostree.Remote, opts Options) (*Verifier, error) {
	v := &Verifier{remote: rm.Name}
	wrap := func(err error) error {
		return fmt.Errorf("OSTree remote %q (%s): %w", rm.Name, rm.Source, err)
	}
	gpgOn, err := rm.BoolOption("gpg-verify", true)
	if err != nil {
		return nil, err
	}
	if gpgOn {
		if v.gpg, err = newGPGVerifier(rm, &opts); err != nil {
			return nil, wrap(err)
		}
	}
	if v.ed, err = newSignAPIVerifier(rm, &opts); err != nil {
		return nil, wrap(err)
	}
	if v.gpg == nil && v.ed == nil {
		return nil, wrap(fmt.Errorf("%w (set gpg-verify=true with a keyring, or sign-verify=true with verification-ed25519-key or verification-ed25519-file)", ErrNoVerification))
	}
	return v, nil
}

// Methods lists the verifications that will be applied: "gpg", "ed25519"
// or both, in that order.
func (v *Verifier) Methods() []string {
	var m []string
	if v.gpg != nil {
		m = append(m, "gpg")
	}
	if v.ed != nil {
		m = append(m, "ed25519")
	}
	return m
}

// VerifyCommit loads commit and its detached metadata from src and
// verifies them (see Verify).
func (v *Verifier) VerifyCommit(src MetaLoader, commit ostree.Checksum) (string, error) {
	data, err := src.LoadMeta(commit, ostree.ObjCommit)
	if err != nil {
		return "", fmt.Errorf("verifying commit %s for OSTree remote %q: loading the commit: %w", commit, v.remote, err)
	}
	meta, err := src.LoadMeta(commit, ostree.ObjCommitMeta)
	var missing *ostree.MissingObjectError
	if errors.As(err, &missing) {
		meta, err = nil, nil
	}
	if err != nil {
		return "", fmt.Errorf("verifying commit %s for OSTree remote %q: loading its detached metadata: %w", commit, v.remote, err)
	}
	return v.Verify(commit, data, meta)
}

// Verify checks that commitData, the bytes of the commit object commit,
// is signed as the remote requires by the signatures in detached (the
// commit's detached metadata, an a{sv}; nil when it has none). On success
// it returns one line per accepted signature, e.g. "ed25519: signature
// verified with key <hex>".
func (v *Verifier) Verify(commit ostree.Checksum, commitData, detached []byte) (string, error) {
	fail := func(err error) (string, error) {
		return "", fmt.Errorf("commit %s is not verified by OSTree remote %q: %w", commit, v.remote, err)
	}
	if got := ostree.SumBytes(commitData); got != commit {
		return fail(fmt.Errorf("the commit object's bytes hash to %s", got))
	}
	if detached == nil {
		return fail(fmt.Errorf("%w: the commit has no detached metadata (the remote requires %s signatures)", ErrNoSignature, strings.Join(v.Methods(), " and ")))
	}
	md, err := ostree.DecodeMetadata(detached)
	if err != nil {
		return fail(fmt.Errorf("decoding detached metadata: %w", err))
	}
	var results []string
	if v.gpg != nil {
		res, err := v.gpg.verify(commitData, md)
		if err != nil {
			return fail(fmt.Errorf("GPG: %w", err))
		}
		results = append(results, res)
	}
	if v.ed != nil {
		res, err := v.ed.verify(commitData, md)
		if err != nil {
			return fail(err)
		}
		results = append(results, res)
	}
	return strings.Join(results, "\n"), nil
}

// signatures returns the byte strings stored under key when its value has
// type aay; ok is false when the key is absent or of another type (as
// g_variant_lookup_value with an expected type).
func signatures(md ostree.Metadata, key string) (sigs [][]byte, ok bool) {
	v, found := md.Lookup(key)
	if !found || v.Type != "aay" {
		return nil, false
	}
	items, _ := v.Value.([]any)
	for _, it := range items {
		b, _ := it.([]byte)
		sigs = append(sigs, b)
	}
	return sigs, true
}
