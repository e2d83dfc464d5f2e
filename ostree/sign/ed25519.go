package sign

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ocitree/ocitree/ostree"
)

// ed25519Verifier holds the keys of the ed25519 signature type.
type ed25519Verifier struct {
	keys    []ed25519.PublicKey // trusted, without duplicates
	revoked []ed25519.PublicKey
	// keysErr is why no system key could be loaded (sign-verify=true, no
	// key configured for the remote); reported only when a signature has
	// to be checked, as libostree does.
	keysErr error
	sources []string // where the keys came from, for messages
}

// newSignAPIVerifier reads sign-verify; nil when it is off.
//
// As in libostree (ostree-repo-pull-verify.c): an unset or empty value and
// false/0 turn it off; true/1 enables every supported type with the
// remote's keys if any, else the system keys; any other value is a list
// of types (separated by ';') each of which needs keys configured on the
// remote.
func newSignAPIVerifier(rm *ostree.Remote, opts *Options) (*ed25519Verifier, error) {
	raw, _ := rm.Option("sign-verify")
	if raw == "" {
		return nil, nil
	}
	if on, isBool := ostree.ParseKeyFileBool(raw); isBool {
		if !on {
			return nil, nil
		}
		v, configured, err := remoteEd25519Keys(rm)
		if err != nil || configured {
			return v, err
		}
		v.loadSystemKeys(opts.ed25519Dirs())
		return v, nil
	}
	types, err := rm.ListOption("sign-verify", ";")
	if err != nil {
		return nil, err
	}
	var v *ed25519Verifier
	for _, typ := range types {
		switch strings.TrimSpace(typ) {
		case "ed25519":
			ev, configured, err := remoteEd25519Keys(rm)
			if err != nil {
				return nil, err
			}
			if !configured {
				return nil, fmt.Errorf("sign-verify=%s: %w for required signature type ed25519 (set verification-ed25519-key or verification-ed25519-file)", raw, ErrNoKeys)
			}
			v = ev
		default:
			return nil, fmt.Errorf("sign-verify=%s: %w %q (only ed25519 is supported)", raw, ErrUnsupportedType, typ)
		}
	}
	if v == nil {
		return nil, fmt.Errorf("sign-verify=%s: no signature type named", raw)
	}
	return v, nil
}

// remoteEd25519Keys loads verification-ed25519-file and
// verification-ed25519-key; configured is false when neither is set. Both
// may be set: the keys of both are trusted. A file without any valid key
// and an invalid inline key are errors.
func remoteEd25519Keys(rm *ostree.Remote) (v *ed25519Verifier, configured bool, err error) {
	v = &ed25519Verifier{}
	file, haveFile := rm.Option("verification-ed25519-file")
	key, haveKey := rm.Option("verification-ed25519-key")
	if haveFile {
		keys, err := readEd25519KeyFile(file)
		if err != nil {
			return nil, true, fmt.Errorf("verification-ed25519-file: %w", err)
		}
		for _, k := range keys {
			v.add(k)
		}
		v.sources = append(v.sources, file)
	}
	if haveKey {
		k, err := parseEd25519Key(key)
		if err != nil {
			return nil, true, fmt.Errorf("verification-ed25519-key=%s: %w", key, err)
		}
		v.add(k)
		v.sources = append(v.sources, "verification-ed25519-key")
	}
	return v, haveFile || haveKey, nil
}

// add appends k unless it is already trusted.
func (v *ed25519Verifier) add(k ed25519.PublicKey) {
	for _, have := range v.keys {
		if bytes.Equal(have, k) {
			return
		}
	}
	v.keys = append(v.keys, k)
}

// parseEd25519Key decodes a base64 public key (32 bytes).
func parseEd25519Key(s string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	if len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("ill-formed ed25519 public key: %d bytes, want %d", len(b), ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}

// readEd25519KeyFile reads a key file: one base64 public key per line.
// Invalid lines are skipped; a file that is not a regular file or holds no
// valid key is an error (libostree's _load_pk_from_file).
func readEd25519KeyFile(path string) ([]ed25519.PublicKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("ed25519 key file: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("ed25519 key file %s is not a regular file", path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ed25519 key file: %w", err)
	}
	var keys []ed25519.PublicKey
	var firstErr error
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		k, err := parseEd25519Key(sc.Text())
		if err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("line %d: %w", n, err)
			}
			continue
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("ed25519 key file %s: %w", path, err)
	}
	if len(keys) == 0 {
		if firstErr == nil {
			firstErr = errors.New("empty")
		}
		return nil, fmt.Errorf("%w: no valid ed25519 key in %s (%v)", ErrNoKeys, path, firstErr)
	}
	return keys, nil
}

// loadSystemKeys loads trusted and revoked keys from base/trusted.ed25519,
// base/trusted.ed25519.d/* (and revoked.*) for each base dir. Files that
// are missing or hold no valid key are skipped; when no trusted key at all
// is loaded, keysErr is set.
func (v *ed25519Verifier) loadSystemKeys(dirs []string) {
	load := func(name string) (keys []ed25519.PublicKey, files []string) {
		for _, base := range dirs {
			candidates := []string{filepath.Join(base, name)}
			if ents, err := os.ReadDir(filepath.Join(base, name+".d")); err == nil {
				for _, e := range ents {
					candidates = append(candidates, filepath.Join(base, name+".d", e.Name()))
				}
			}
			for _, f := range candidates {
				ks, err := readEd25519KeyFile(f)
				if err != nil {
					continue
				}
				keys = append(keys, ks...)
				files = append(files, f)
			}
		}
		return keys, files
	}
	trusted, files := load("trusted.ed25519")
	for _, k := range trusted {
		v.add(k)
	}
	v.sources = append(v.sources, files...)
	v.revoked, _ = load("revoked.ed25519")
	if len(v.keys) == 0 {
		var where []string
		for _, d := range dirs {
			where = append(where, filepath.Join(d, "trusted.ed25519{,.d/*}"))
		}
		v.keysErr = fmt.Errorf("%w: the remote sets no verification-ed25519-key or verification-ed25519-file and no system key was found in %s", ErrNoKeys, strings.Join(where, ", "))
	}
}

func (v *ed25519Verifier) isRevoked(k ed25519.PublicKey) bool {
	for _, r := range v.revoked {
		if bytes.Equal(r, k) {
			return true
		}
	}
	return false
}

// verify requires one signature under Ed25519Key made by a trusted key
// that is not revoked. A signature that is not 64 bytes long fails the
// whole check, as in libostree.
func (v *ed25519Verifier) verify(data []byte, md ostree.Metadata) (string, error) {
	sigs, ok := signatures(md, Ed25519Key)
	if !ok {
		return "", fmt.Errorf("ed25519: %w (no %s in the detached metadata)", ErrNoSignature, Ed25519Key)
	}
	if v.keysErr != nil {
		return "", fmt.Errorf("ed25519: %w", v.keysErr)
	}
	var active []ed25519.PublicKey
	for _, k := range v.keys {
		if !v.isRevoked(k) {
			active = append(active, k)
		}
	}
	if len(sigs) == 0 {
		return "", fmt.Errorf("ed25519: %w (%s is empty)", ErrNoSignature, Ed25519Key)
	}
	if len(active) == 0 {
		return "", fmt.Errorf("ed25519: %w: every trusted key is revoked", ErrNoKeys)
	}
	for i, sig := range sigs {
		if len(sig) != ed25519.SignatureSize {
			return "", fmt.Errorf("ed25519: %w: signature %d is %d bytes, want %d", ErrBadSignature, i, len(sig), ed25519.SignatureSize)
		}
		for _, k := range active {
			if ed25519.Verify(k, data, sig) {
				return "ed25519: signature verified with key " + hex.EncodeToString(k), nil
			}
		}
	}
	tried := fmt.Sprintf("%d keys", len(active))
	if len(active) <= 3 {
		var hs []string
		for _, k := range active {
			hs = append(hs, hex.EncodeToString(k))
		}
		tried = "key(s) " + strings.Join(hs, ", ")
	}
	return "", fmt.Errorf("ed25519: %w: none of %d signature(s) verifies with %s (from %s)", ErrBadSignature, len(sigs), tried, strings.Join(v.sources, ", "))
}
