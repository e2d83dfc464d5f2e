package sign

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	pgperrors "github.com/ProtonMail/go-crypto/openpgp/errors"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ocitree/ocitree/ostree"
)

// gpgVerifier holds the keyring of a remote with gpg-verify on.
type gpgVerifier struct {
	keyring openpgp.EntityList
	sources []string // files the keys came from, for messages
	now     func() time.Time
}

// newGPGVerifier builds the keyring libostree would use for rm
// (ostree-repo.c _ostree_repo_gpg_prepare_verifier):
//
//  1. the remote's keyring file NAME.trustedkeys.gpg, in the repository
//     directory or (system repository) the remotes.d directory;
//  2. every gpgkeypath= entry (separated by ';' or ','): a key file, or a
//     directory whose regular files are key files; a missing path is an
//     error;
//  3. only when (1) found nothing: the global keyring directory's regular
//     *.gpg files but trustdb.gpg and secring.gpg.
//
// Keyrings may be binary or ASCII-armored. No key at all is an error.
func newGPGVerifier(rm *ostree.Remote, opts *Options) (*gpgVerifier, error) {
	g := &gpgVerifier{now: opts.Now}
	if g.now == nil {
		g.now = time.Now
	}
	var checked []string
	remoteKeyring := false
	for _, dir := range rm.KeyringDirs {
		p := filepath.Join(dir, rm.KeyringName())
		checked = append(checked, p)
		data, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading GPG keyring %s: %w", p, err)
		}
		if err := g.addKeyring(p, data); err != nil {
			return nil, err
		}
		remoteKeyring = true
		break
	}
	paths, err := rm.ListOption("gpgkeypath", ";,")
	if err != nil {
		return nil, err
	}
	for _, p := range paths {
		if p == "" {
			continue
		}
		checked = append(checked, "gpgkeypath "+p)
		if err := g.addKeyPath(p); err != nil {
			return nil, fmt.Errorf("gpgkeypath: %w", err)
		}
	}
	if !remoteKeyring {
		dir := opts.gpgKeyringDir()
		checked = append(checked, filepath.Join(dir, "*.gpg"))
		if err := g.addGlobalDir(dir); err != nil {
			return nil, err
		}
	}
	if len(g.keyring) == 0 {
		return nil, fmt.Errorf("gpg-verify is enabled but %w: no GPG key found in %s (import one with `ostree remote gpg-import`, set gpgkeypath=, or set gpg-verify=false)", ErrNoKeys, strings.Join(checked, ", "))
	}
	return g, nil
}

// addKeyPath adds a gpgkeypath entry: a directory's regular files, or a
// file.
func (g *gpgVerifier) addKeyPath(p string) error {
	st, err := os.Stat(p)
	if err != nil {
		return err
	}
	if !st.IsDir() {
		return g.addKeyFile(p)
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Type().IsRegular() {
			if err := g.addKeyFile(filepath.Join(p, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// addGlobalDir adds the keyrings of the global directory; like libostree
// it ignores a path that is not a directory.
func (g *gpgVerifier) addGlobalDir(dir string) error {
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return nil
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reading keyring directory %s: %w", dir, err)
	}
	for _, e := range ents {
		n := e.Name()
		if !e.Type().IsRegular() || !strings.HasSuffix(n, ".gpg") || n == "trustdb.gpg" || n == "secring.gpg" {
			continue
		}
		if err := g.addKeyFile(filepath.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

func (g *gpgVerifier) addKeyFile(p string) error {
	data, err := os.ReadFile(p)
	if err != nil {
		return fmt.Errorf("reading GPG key file: %w", err)
	}
	return g.addKeyring(p, data)
}

// addKeyring parses a binary or armored OpenPGP keyring.
func (g *gpgVerifier) addKeyring(p string, data []byte) error {
	if len(data) >= 12 && string(data[8:12]) == "KBXf" {
		return fmt.Errorf("GPG keyring %s is a GnuPG keybox, not an OpenPGP keyring (write it with `gpg --export`)", p)
	}
	var (
		el  openpgp.EntityList
		err error
	)
	if bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte("-----BEGIN PGP")) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return fmt.Errorf("parsing GPG keyring %s: %w", p, err)
	}
	g.keyring = append(g.keyring, el...)
	if len(el) > 0 {
		g.sources = append(g.sources, p)
	}
	return nil
}

// verify requires one good signature under GPGSigsKey by a key of the
// keyring that is neither expired nor revoked (like libostree's
// ostree_gpg_verify_result_require_valid_signature; the owner trust of
// the key does not matter). Each element of the aay is checked on its
// own, so a bad signature does not hide a good one.
func (g *gpgVerifier) verify(data []byte, md ostree.Metadata) (string, error) {
	sigs, ok := signatures(md, GPGSigsKey)
	if !ok || len(sigs) == 0 {
		return "", fmt.Errorf("%w (no %s in the detached metadata; set gpg-verify=false in the remote config to disable GPG verification)", ErrNoSignature, GPGSigsKey)
	}
	cfg := &packet.Config{Time: g.now}
	var problems []string
	for i, s := range sigs {
		sig, signer, err := openpgp.VerifyDetachedSignature(g.keyring, bytes.NewReader(data), bytes.NewReader(s), cfg)
		if err == nil {
			return fmt.Sprintf("GPG: good signature by key %s%s", issuerOf(sig), identityOf(signer)), nil
		}
		problems = append(problems, fmt.Sprintf("signature %d (key %s): %s", i, issuerOf(parseSig(s)), describeGPGError(err)))
	}
	return "", fmt.Errorf("%w: %s; keys from %s", ErrBadSignature, strings.Join(problems, "; "), strings.Join(g.sources, ", "))
}

// parseSig returns the first packet of s when it is a signature.
func parseSig(s []byte) *packet.Signature {
	p, err := packet.Read(bytes.NewReader(s))
	if err != nil {
		return nil
	}
	sig, _ := p.(*packet.Signature)
	return sig
}

// issuerOf names the key that made sig: its fingerprint, else its key ID.
func issuerOf(sig *packet.Signature) string {
	switch {
	case sig == nil:
		return "unknown"
	case len(sig.IssuerFingerprint) > 0:
		return fmt.Sprintf("%X", sig.IssuerFingerprint)
	case sig.IssuerKeyId != nil:
		return fmt.Sprintf("%016X", *sig.IssuerKeyId)
	}
	return "unknown"
}

// identityOf returns " (<primary user ID>)" of e, or "".
func identityOf(e *openpgp.Entity) string {
	if e == nil {
		return ""
	}
	if _, id := e.PrimarySelfSignature(); id != nil {
		return " (" + id.Name + ")"
	}
	return ""
}

func describeGPGError(err error) string {
	switch {
	case errors.Is(err, pgperrors.ErrUnknownIssuer):
		return "made by a key that is not in the remote's keyring"
	case errors.Is(err, pgperrors.ErrKeyRevoked):
		return "the signing key is revoked"
	case errors.Is(err, pgperrors.ErrKeyExpired):
		return "the signing key has expired"
	case errors.Is(err, pgperrors.ErrSignatureExpired):
		return "the signature has expired"
	}
	return err.Error()
}
