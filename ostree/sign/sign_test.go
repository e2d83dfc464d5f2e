package sign

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/ocitree/ocitree/ostree"
	"github.com/ocitree/ocitree/ostree/gvariant"
)

// Goldens here are built from the format definitions (crypto/ed25519 and
// go-crypto signing, gvariant a{sv}), not from the code under test; the
// integration tests check the same paths against libostree's own
// signatures.

// testCommit returns the bytes and checksum of a commit object.
func testCommit(t *testing.T, subject string) ([]byte, ostree.Checksum) {
	t.Helper()
	c := &ostree.Commit{Subject: subject, Timestamp: 1700000000,
		RootTree: ostree.SumBytes([]byte("tree")), RootMeta: ostree.SumBytes([]byte("meta"))}
	b, err := c.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b, ostree.SumBytes(b)
}

// detached encodes detached metadata: key -> list of byte strings (aay).
func detached(t *testing.T, entries ...any) []byte {
	t.Helper()
	var md ostree.Metadata
	for i := 0; i < len(entries); i += 2 {
		key := entries[i].(string)
		switch v := entries[i+1].(type) {
		case [][]byte:
			items := make([]any, len(v))
			for j, b := range v {
				items[j] = b
			}
			md = append(md, ostree.MetaEntry{Key: key, Value: gvariant.Variant{Type: "aay", Value: items}})
		case string:
			md = append(md, ostree.MetaEntry{Key: key, Value: gvariant.Variant{Type: "s", Value: v}})
		}
	}
	b, err := md.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type edKey struct {
	pub  ed25519.PublicKey
	priv ed25519.PrivateKey
}

func newEdKey(t *testing.T) edKey {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return edKey{pub, priv}
}

func (k edKey) b64() string { return base64.StdEncoding.EncodeToString(k.pub) }

// repoWithRemotes makes a repository whose config has the given text
// appended and opens it.
func repoWithRemotes(t *testing.T, config string) *ostree.Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := ostree.Init(dir, ostree.ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	f, err := os.OpenFile(filepath.Join(dir, "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(config); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, err = ostree.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func writeFile(t *testing.T, path string, data []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// isolated returns Options that see no system key of this host.
func isolated(t *testing.T) Options {
	t.Helper()
	return Options{Ed25519Dirs: []string{filepath.Join(t.TempDir(), "none")}, GPGKeyringDir: filepath.Join(t.TempDir(), "none")}
}

func TestEd25519(t *testing.T) {
	data, commit := testCommit(t, "signed")
	otherData, _ := testCommit(t, "another commit")
	good, wrong, extra := newEdKey(t), newEdKey(t), newEdKey(t)
	sig := ed25519.Sign(good.priv, data)
	wrongSig := ed25519.Sign(wrong.priv, data)
	otherSig := ed25519.Sign(good.priv, otherData)
	keyDir := t.TempDir()
	keyFile := writeFile(t, filepath.Join(keyDir, "keys"), []byte("not base64!\n"+base64.StdEncoding.EncodeToString([]byte("short"))+"\n"+extra.b64()+"\n"+good.b64()+"\n"))
	extraFile := writeFile(t, filepath.Join(keyDir, "extra"), []byte(extra.b64()+"\n"))
	junkFile := writeFile(t, filepath.Join(keyDir, "junk"), []byte("nothing here\n"))
	remote := func(opts string) string {
		return "[remote \"r\"]\nurl=http://unused\ngpg-verify=false\n" + opts
	}
	tests := []struct {
		name      string
		config    string
		meta      []byte
		buildErr  error // from ForRemote
		verifyErr error // from Verify
	}{
		{"inline key", remote("sign-verify=true\nverification-ed25519-key=" + good.b64() + "\n"), detached(t, Ed25519Key, [][]byte{sig}), nil, nil},
		{"explicit type list", remote("sign-verify=ed25519;\nverification-ed25519-key=" + good.b64() + "\n"), detached(t, Ed25519Key, [][]byte{sig}), nil, nil},
		{"key file, invalid lines skipped", remote("sign-verify=1\nverification-ed25519-file=" + keyFile + "\n"), detached(t, Ed25519Key, [][]byte{sig}), nil, nil},
		{"key file without a valid key", remote("sign-verify=true\nverification-ed25519-file=" + junkFile + "\n"), nil, ErrNoKeys, nil},
		{"file and inline key both trusted", remote("sign-verify=true\nverification-ed25519-file=" + extraFile + "\nverification-ed25519-key=" + good.b64() + "\n"), detached(t, Ed25519Key, [][]byte{sig}), nil, nil},
		{"file key trusted next to inline key", remote("sign-verify=true\nverification-ed25519-file=" + keyFile + "\nverification-ed25519-key=" + wrong.b64() + "\n"), detached(t, Ed25519Key, [][]byte{sig}), nil, nil},
		{"second signature valid", remote("sign-verify=true\nverification-ed25519-key=" + good.b64() + "\n"), detached(t, Ed25519Key, [][]byte{wrongSig, sig}), nil, nil},
		{"wrong key", remote("sign-verify=true\nverification-ed25519-key=" + wrong.b64() + "\n"), detached(t, Ed25519Key, [][]byte{sig}), nil, ErrBadSignature},
		{"signature of another commit", remote("sign-verify=true\nverification-ed25519-key=" + good.b64() + "\n"), detached(t, Ed25519Key, [][]byte{otherSig}), nil, ErrBadSignature},
		{"short signature", remote("sign-verify=true\nverification-ed25519-key=" + good.b64() + "\n"), detached(t, Ed25519Key, [][]byte{sig[:63], sig}), nil, ErrBadSignature},
		{"no detached metadata", remote("sign-verify=true\nverification-ed25519-key=" + good.b64() + "\n"), nil, nil, ErrNoSignature},
		{"no ed25519 key in metadata", remote("sign-verify=true\nverification-ed25519-key=" + good.b64() + "\n"), detached(t, "other", "x"), nil, ErrNoSignature},
		{"ed25519 key of another type", remote("sign-verify=true\nverification-ed25519-key=" + good.b64() + "\n"), detached(t, Ed25519Key, "x"), nil, ErrNoSignature},
		{"empty signature list", remote("sign-verify=true\nverification-ed25519-key=" + good.b64() + "\n"), detached(t, Ed25519Key, [][]byte{}), nil, ErrNoSignature},
		{"sign-verify=true, no key anywhere", remote("sign-verify=true\n"), detached(t, Ed25519Key, [][]byte{sig}), nil, ErrNoKeys},
		{"explicit type needs remote keys", remote("sign-verify=ed25519\n"), nil, ErrNoKeys, nil},
		{"unsupported type", remote("sign-verify=dummy\nverification-dummy-key=x\n"), nil, ErrUnsupportedType, nil},
		{"nothing enabled", remote(""), nil, ErrNoVerification, nil},
		{"sign-verify=false", remote("sign-verify=false\nverification-ed25519-key=" + good.b64() + "\n"), nil, ErrNoVerification, nil},
		{"bad inline key", remote("sign-verify=true\nverification-ed25519-key=" + base64.StdEncoding.EncodeToString([]byte("short")) + "\n"), nil, errAny, nil},
		{"missing key file", remote("sign-verify=true\nverification-ed25519-file=" + filepath.Join(keyDir, "absent") + "\n"), nil, errAny, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := repoWithRemotes(t, tc.config)
			v, err := ForRemote(r, "r", isolated(t))
			if !matches(err, tc.buildErr) {
				t.Fatalf("ForRemote: %v, want %v", err, tc.buildErr)
			}
			if err != nil {
				t.Log(err)
				if !strings.Contains(err.Error(), `"r"`) {
					t.Errorf("error does not name the remote: %v", err)
				}
				return
			}
			res, err := v.Verify(commit, data, tc.meta)
			if !matches(err, tc.verifyErr) {
				t.Fatalf("Verify: %q, %v; want error %v", res, err, tc.verifyErr)
			}
			if err != nil {
				t.Log(err)
				for _, want := range []string{`"r"`, commit.String()} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error does not mention %s: %v", want, err)
					}
				}
				return
			}
			if !strings.Contains(res, hex.EncodeToString(good.pub)) {
				t.Errorf("result %q does not name the key %x", res, good.pub)
			}
		})
	}
}

// errAny matches any error.
var errAny = errors.New("any error")

func matches(err, want error) bool {
	switch {
	case want == nil:
		return err == nil
	case want == errAny:
		return err != nil
	}
	return errors.Is(err, want)
}

// TestEd25519SystemKeys: with sign-verify=true and no key on the remote,
// the keys of trusted.ed25519 and trusted.ed25519.d/* of each system dir
// are used, minus those of revoked.ed25519(.d).
func TestEd25519SystemKeys(t *testing.T) {
	data, commit := testCommit(t, "signed")
	good, other := newEdKey(t), newEdKey(t)
	meta := detached(t, Ed25519Key, [][]byte{ed25519.Sign(good.priv, data)})
	config := "[remote \"r\"]\nurl=http://unused\ngpg-verify=false\nsign-verify=true\n"
	tests := []struct {
		name  string
		files map[string]string // relative to the second system dir
		want  error
	}{
		{"trusted file", map[string]string{"trusted.ed25519": good.b64() + "\n"}, nil},
		{"trusted.d entry", map[string]string{"trusted.ed25519.d/a": other.b64() + "\n", "trusted.ed25519.d/b": good.b64() + "\n"}, nil},
		{"only another key", map[string]string{"trusted.ed25519": other.b64() + "\n"}, ErrBadSignature},
		{"revoked", map[string]string{"trusted.ed25519": good.b64() + "\n", "revoked.ed25519.d/x": good.b64() + "\n"}, ErrNoKeys},
		{"revoked, another trusted", map[string]string{"trusted.ed25519": good.b64() + "\n" + other.b64() + "\n", "revoked.ed25519": good.b64() + "\n"}, ErrBadSignature},
		{"no valid key", map[string]string{"trusted.ed25519": "garbage\n"}, ErrNoKeys},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dirs := []string{filepath.Join(t.TempDir(), "etc"), filepath.Join(t.TempDir(), "share")}
			for name, text := range tc.files {
				writeFile(t, filepath.Join(dirs[1], name), []byte(text))
			}
			v, err := ForRemote(repoWithRemotes(t, config), "r", Options{Ed25519Dirs: dirs})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := v.Verify(commit, data, meta); !matches(err, tc.want) {
				t.Errorf("Verify: %v, want %v", err, tc.want)
			}
		})
	}
}

// pgpKey is an OpenPGP key made in memory.
type pgpKey struct{ e *openpgp.Entity }

func newPGPKey(t *testing.T, name string, lifetime uint32, created time.Time) pgpKey {
	t.Helper()
	cfg := &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, KeyLifetimeSecs: lifetime, Time: func() time.Time { return created }}
	e, err := openpgp.NewEntity(name, "", name+"@example.com", cfg)
	if err != nil {
		t.Fatal(err)
	}
	return pgpKey{e}
}

func (k pgpKey) sign(t *testing.T, data []byte, at time.Time) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := openpgp.DetachSign(&b, k.e, bytes.NewReader(data), &packet.Config{Time: func() time.Time { return at }}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// public is the binary public keyring of the keys (gpg --export).
func public(t *testing.T, keys ...pgpKey) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, k := range keys {
		if err := k.e.Serialize(&b); err != nil {
			t.Fatal(err)
		}
	}
	return b.Bytes()
}

func armored(t *testing.T, bin []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := armor.Encode(&b, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(bin)
	w.Close()
	return b.Bytes()
}

func TestGPG(t *testing.T) {
	now := time.Now()
	data, commit := testCommit(t, "gpg signed")
	otherData, _ := testCommit(t, "another")
	good := newPGPKey(t, "good", 0, now.Add(-time.Hour))
	wrong := newPGPKey(t, "wrong", 0, now.Add(-time.Hour))
	expiring := newPGPKey(t, "expiring", 60, now.Add(-time.Hour)) // expired 59 minutes ago
	sig := good.sign(t, data, now.Add(-time.Minute))
	ed := newEdKey(t)
	edSig := ed25519.Sign(ed.priv, data)

	type files map[string][]byte // "repo/..." in the repo dir, "global/..." in the global dir, else under keys/
	tests := []struct {
		name      string
		options   string
		files     files
		meta      []byte
		buildErr  error
		verifyErr error
	}{
		{"remote keyring", "", files{"repo/r.trustedkeys.gpg": public(t, wrong, good)}, detached(t, GPGSigsKey, [][]byte{sig}), nil, nil},
		{"gpgkeypath armored file", "gpgkeypath=KEYS/a.asc\n", files{"a.asc": armored(t, public(t, good))}, detached(t, GPGSigsKey, [][]byte{sig}), nil, nil},
		{"gpgkeypath list with a directory", "gpgkeypath=KEYS/w.gpg,KEYS/d\n", files{"w.gpg": public(t, wrong), "d/k": public(t, good)}, detached(t, GPGSigsKey, [][]byte{sig}), nil, nil},
		{"global dir when no remote keyring", "", files{"global/distro.gpg": public(t, good)}, detached(t, GPGSigsKey, [][]byte{sig}), nil, nil},
		{"global dir not used with a remote keyring", "", files{"repo/r.trustedkeys.gpg": public(t, wrong), "global/distro.gpg": public(t, good)}, detached(t, GPGSigsKey, [][]byte{sig}), nil, ErrBadSignature},
		{"global trustdb.gpg ignored", "", files{"global/trustdb.gpg": public(t, good)}, nil, ErrNoKeys, nil},
		{"gpg-verify default on, no key", "", nil, nil, ErrNoKeys, nil},
		{"wrong key", "", files{"repo/r.trustedkeys.gpg": public(t, wrong)}, detached(t, GPGSigsKey, [][]byte{sig}), nil, ErrBadSignature},
		{"signature of another commit", "", files{"repo/r.trustedkeys.gpg": public(t, good)}, detached(t, GPGSigsKey, [][]byte{good.sign(t, otherData, now)}), nil, ErrBadSignature},
		{"bad then good signature", "", files{"repo/r.trustedkeys.gpg": public(t, good, wrong)}, detached(t, GPGSigsKey, [][]byte{wrong.sign(t, otherData, now), sig}), nil, nil},
		{"expired key", "", files{"repo/r.trustedkeys.gpg": public(t, expiring)}, detached(t, GPGSigsKey, [][]byte{expiring.sign(t, data, now.Add(-59*time.Minute-30*time.Second))}), nil, ErrBadSignature},
		{"no signatures", "", files{"repo/r.trustedkeys.gpg": public(t, good)}, detached(t, Ed25519Key, [][]byte{edSig}), nil, ErrNoSignature},
		{"garbage signature", "", files{"repo/r.trustedkeys.gpg": public(t, good)}, detached(t, GPGSigsKey, [][]byte{[]byte("not a packet")}), nil, ErrBadSignature},
		{"missing gpgkeypath", "gpgkeypath=KEYS/absent\n", files{"repo/r.trustedkeys.gpg": public(t, good)}, nil, errAny, nil},
		{"keybox keyring", "", files{"repo/r.trustedkeys.gpg": append([]byte{0, 0, 0, 32, 1, 1, 0, 0, 'K', 'B', 'X', 'f'}, make([]byte, 20)...)}, nil, errAny, nil},
		{"gpg and ed25519: both present", "sign-verify=true\nverification-ed25519-key=" + ed.b64() + "\n", files{"repo/r.trustedkeys.gpg": public(t, good)}, detached(t, GPGSigsKey, [][]byte{sig}, Ed25519Key, [][]byte{edSig}), nil, nil},
		{"gpg and ed25519: gpg missing", "sign-verify=true\nverification-ed25519-key=" + ed.b64() + "\n", files{"repo/r.trustedkeys.gpg": public(t, good)}, detached(t, Ed25519Key, [][]byte{edSig}), nil, ErrNoSignature},
		{"gpg and ed25519: ed25519 missing", "sign-verify=true\nverification-ed25519-key=" + ed.b64() + "\n", files{"repo/r.trustedkeys.gpg": public(t, good)}, detached(t, GPGSigsKey, [][]byte{sig}), nil, ErrNoSignature},
		{"gpg-verify=false, ed25519 only", "gpg-verify=false\nsign-verify=true\nverification-ed25519-key=" + ed.b64() + "\n", nil, detached(t, Ed25519Key, [][]byte{edSig}), nil, nil},
		{"gpg-verify=maybe", "gpg-verify=maybe\n", nil, nil, errAny, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			keys, global := t.TempDir(), t.TempDir()
			r := repoWithRemotes(t, "[remote \"r\"]\nurl=http://unused\n"+strings.ReplaceAll(tc.options, "KEYS", keys))
			for name, b := range tc.files {
				switch {
				case strings.HasPrefix(name, "repo/"):
					writeFile(t, filepath.Join(r.Path(), strings.TrimPrefix(name, "repo/")), b)
				case strings.HasPrefix(name, "global/"):
					writeFile(t, filepath.Join(global, strings.TrimPrefix(name, "global/")), b)
				default:
					writeFile(t, filepath.Join(keys, name), b)
				}
			}
			opts := Options{Ed25519Dirs: []string{}, GPGKeyringDir: global, Now: func() time.Time { return now }}
			v, err := ForRemote(r, "r", opts)
			if !matches(err, tc.buildErr) {
				t.Fatalf("ForRemote: %v, want %v", err, tc.buildErr)
			}
			if err != nil {
				t.Log(err)
				return
			}
			res, err := v.Verify(commit, data, tc.meta)
			if !matches(err, tc.verifyErr) {
				t.Fatalf("Verify: %q, %v; want error %v", res, err, tc.verifyErr)
			}
			t.Logf("%q, %v", res, err)
			if err == nil && strings.Contains(tc.options, "gpg-verify=false") == strings.HasPrefix(res, "GPG") {
				t.Errorf("result %q does not match the verifications enabled (%v)", res, v.Methods())
			}
		})
	}
}

// TestVerifyCommitFromTxn reads the commit and its detached metadata from
// a transaction (staged) and from the repository (committed).
func TestVerifyCommitFromTxn(t *testing.T) {
	key := newEdKey(t)
	r := repoWithRemotes(t, "[remote \"r\"]\nurl=http://unused\ngpg-verify=false\nsign-verify=true\nverification-ed25519-key="+key.b64()+"\n")
	v, err := ForRemote(r, "r", isolated(t))
	if err != nil {
		t.Fatal(err)
	}
	data, commit := testCommit(t, "in a txn")
	unsignedData, _ := testCommit(t, "unsigned")
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	c, err := txn.WriteMetadata(ostree.ObjCommit, data)
	if err != nil || c != commit {
		t.Fatalf("WriteMetadata: %v, %v (want %s)", c, err, commit)
	}
	unsigned, err := txn.WriteMetadata(ostree.ObjCommit, unsignedData)
	if err != nil {
		t.Fatal(err)
	}
	md, err := ostree.DecodeMetadata(detached(t, Ed25519Key, [][]byte{ed25519.Sign(key.priv, data)}))
	if err != nil {
		t.Fatal(err)
	}
	if err := txn.WriteDetachedMetadata(commit, md); err != nil {
		t.Fatal(err)
	}
	for _, src := range []struct {
		name string
		src  MetaLoader
	}{{"txn", txn}} {
		if _, err := v.VerifyCommit(src.src, commit); err != nil {
			t.Errorf("%s: signed commit: %v", src.name, err)
		}
		if _, err := v.VerifyCommit(src.src, unsigned); !errors.Is(err, ErrNoSignature) {
			t.Errorf("%s: unsigned commit: %v, want ErrNoSignature", src.name, err)
		}
	}
	if _, err := v.VerifyCommit(r, commit); err == nil {
		t.Error("the repository must not see the uncommitted commit")
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	if _, err := v.VerifyCommit(r, commit); err != nil {
		t.Errorf("repo: signed commit: %v", err)
	}
	// Verify refuses bytes that are not the named commit.
	if _, err := v.Verify(unsigned, data, detached(t, Ed25519Key, [][]byte{ed25519.Sign(key.priv, data)})); err == nil {
		t.Error("Verify accepted commit bytes under another checksum")
	}
}

func TestMissingRemote(t *testing.T) {
	r := repoWithRemotes(t, "[remote \"other\"]\nurl=http://unused\n")
	_, err := ForRemote(r, "absent", isolated(t))
	if !errors.Is(err, ostree.ErrRemoteNotFound) || !strings.Contains(err.Error(), "absent") {
		t.Errorf("ForRemote(absent) = %v; want ostree.ErrRemoteNotFound naming it", err)
	}
}
