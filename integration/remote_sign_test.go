package integration

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	ostreelib "github.com/ocitree/ocitree/ostree"
	"github.com/ocitree/ocitree/ostree/gvariant"
)

// signedImages is the shared input of TestImagePullOstreeRemote: commits of
// one tree made by the real ostree in an archive repository, signed in
// different ways, each encapsulated by ocitree to oci:layout:TAG.
type signedImages struct {
	src     string            // the source repository (archive)
	layout  string            // the OCI layout holding every tag
	commits map[string]string // tag -> commit checksum
	edGood  string            // base64 ed25519 public key that signed "ed25519" and "both"
	edOther string            // base64 ed25519 public key that signed nothing
	edFile  string            // key file: edOther then edGood, one per line
	gpg     *gpgKeys          // nil when gpg is not installed
}

// gpgKeys are two OpenPGP keys made by gpg in a temporary GNUPGHOME.
type gpgKeys struct {
	home              string
	good, other       string // fingerprints
	goodPub, otherPub string // files: binary public keys (gpg --export)
	goodArmored       string // file: the armored public key of good
}

// ostreeHasEd25519 reports whether the ostree CLI can sign and verify
// ed25519 (built with libsodium: "sign-ed25519" among its features).
func ostreeHasEd25519(t *testing.T) bool {
	t.Helper()
	return strings.Contains(must(t, ostree(t, "--version")), "sign-ed25519")
}

// newGPGKeys makes two signing keys with gpg in a fresh GNUPGHOME (short
// path: gpg-agent's socket path is limited) and exports their public keys
// to dir. The agent of that home is stopped when the test ends.
func newGPGKeys(t *testing.T, dir string) *gpgKeys {
	t.Helper()
	home, err := os.MkdirTemp("", "ocigpg")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(home, 0o700); err != nil {
		t.Fatal(err)
	}
	env := []string{"GNUPGHOME=" + home}
	t.Cleanup(func() {
		if _, err := exec.LookPath("gpgconf"); err == nil {
			runCmdEnv(t, env, nil, "gpgconf", "--kill", "gpg-agent")
		}
		os.RemoveAll(home)
	})
	k := &gpgKeys{home: home}
	gen := func(uid string) string {
		must(t, runCmdEnv(t, env, nil, "gpg", "--batch", "--pinentry-mode", "loopback", "--passphrase", "",
			"--quick-gen-key", uid, "ed25519", "sign", "never"))
		out := must(t, runCmdEnv(t, env, nil, "gpg", "--batch", "--with-colons", "--list-keys", uid))
		for _, l := range strings.Split(out, "\n") {
			if f := strings.Split(l, ":"); len(f) > 9 && f[0] == "fpr" {
				return f[9]
			}
		}
		t.Fatalf("no fingerprint for %s in:\n%s", uid, out)
		return ""
	}
	export := func(name string, args ...string) string {
		r := runCmdEnv(t, env, nil, "gpg", append([]string{"--batch"}, args...)...)
		must(t, r)
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(r.stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	k.good = gen("ocitree good <good@example.invalid>")
	k.other = gen("ocitree other <other@example.invalid>")
	k.goodPub = export("good.gpg", "--export", k.good)
	k.otherPub = export("other.gpg", "--export", k.other)
	k.goodArmored = export("good.asc", "--armor", "--export", k.good)
	return k
}

// ed25519Sign adds an ed25519 signature by priv to commit's detached
// metadata in repo: with `ostree sign --keys-file` when the CLI supports
// ed25519, else written here (libostree's format: ostree.sign.ed25519, aay
// of signatures of the commit object) and read back by `ostree show`.
func ed25519Sign(t *testing.T, repo, commit string, priv ed25519.PrivateKey, viaCLI bool) {
	t.Helper()
	if viaCLI {
		// libostree's secret key: base64 of the 32-byte seed and the
		// 32-byte public key, which is Go's PrivateKey layout.
		keys := filepath.Join(t.TempDir(), "secret.ed25519")
		if err := os.WriteFile(keys, []byte(base64.StdEncoding.EncodeToString(priv)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		must(t, ostree(t, "sign", "--repo="+repo, "--sign-type=ed25519", "--keys-file="+keys, commit))
		return
	}
	r, err := ostreelib.Open(repo)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	c, err := ostreelib.ParseChecksum(commit)
	if err != nil {
		t.Fatal(err)
	}
	data, err := r.LoadMeta(c, ostreelib.ObjCommit)
	if err != nil {
		t.Fatal(err)
	}
	md, err := r.ReadDetachedMetadata(c)
	if err != nil {
		t.Fatal(err)
	}
	sig := ed25519.Sign(priv, data)
	md = append(md, ostreelib.MetaEntry{Key: "ostree.sign.ed25519", Value: gvariant.Variant{Type: "aay", Value: []any{sig}}})
	if err := r.WriteDetachedMetadata(c, md); err != nil {
		t.Fatal(err)
	}
	// libostree must read what was written.
	out := must(t, ostree(t, "show", "--repo="+repo, "--print-detached-metadata-key=ostree.sign.ed25519", commit))
	if !strings.Contains(out, "0x") && !strings.Contains(out, "b'") && !strings.Contains(out, "[") {
		t.Fatalf("ostree show does not print the ed25519 signature: %q", out)
	}
}

var (
	signedOnce sync.Once
	signedVal  *signedImages
)

// buildSignedImages makes the shared signed images (once per run).
func buildSignedImages(t *testing.T) *signedImages {
	t.Helper()
	signedOnce.Do(func() {
		s := &signedImages{commits: map[string]string{}}
		dir, err := os.MkdirTemp(cacheDir, "signed-")
		if err != nil {
			t.Fatal(err)
		}
		s.src = filepath.Join(dir, "src")
		s.layout = filepath.Join(dir, "layout")
		ostreeInit(t, s.src, "archive")
		viaCLI := ostreeHasEd25519(t)
		if !viaCLI {
			t.Log("this ostree has no sign-ed25519 feature: ed25519 signatures are written by the test (and read back by `ostree show`), not by `ostree sign`")
		}
		good, goodPriv, _ := ed25519.GenerateKey(rand.Reader)
		other, _, _ := ed25519.GenerateKey(rand.Reader)
		s.edGood = base64.StdEncoding.EncodeToString(good)
		s.edOther = base64.StdEncoding.EncodeToString(other)
		s.edFile = filepath.Join(dir, "trusted.ed25519")
		if err := os.WriteFile(s.edFile, []byte(s.edOther+"\n"+s.edGood+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := exec.LookPath("gpg"); err == nil {
			s.gpg = newGPGKeys(t, dir)
		} else {
			t.Log("gpg is not installed: the GPG cases are skipped (failed with CI=true)")
		}
		src := tree(t, "minios")
		for _, tag := range []string{"unsigned", "ed25519", "gpg", "both"} {
			if (tag == "gpg" || tag == "both") && s.gpg == nil {
				continue
			}
			c := ostreeCommit(t, s.src, "os/"+tag, src, commitOpts{subject: "signed: " + tag})
			if tag == "gpg" || tag == "both" {
				must(t, ostree(t, "gpg-sign", "--repo="+s.src, "--gpg-homedir="+s.gpg.home, c, s.gpg.good))
			}
			if tag == "ed25519" || tag == "both" {
				ed25519Sign(t, s.src, c, goodPriv, viaCLI)
			}
			encapsulate(t, s.src, "os/"+tag, "oci:"+s.layout+":"+tag)
			s.commits[tag] = c
		}
		signedVal = s
	})
	if signedVal == nil {
		t.Fatal("building the signed images failed (see the first test that needed them)")
	}
	return signedVal
}

// TestImagePullOstreeRemote pulls ostree-remote-image:REMOTE:oci:DIR:TAG
// into repositories whose remote was configured by `ostree remote add`:
// the image's commit must be signed for the remote's keys (ed25519 and/or
// GPG, as the remote requires); a refused pull exits 1 naming the remote
// and leaves no ostree/container ref. Where the real ostree can verify the
// same configuration (`ostree pull` from the source repository as a
// file:// remote), it must accept and refuse the same commits.
func TestImagePullOstreeRemote(t *testing.T) {
	setup(t)
	s := buildSignedImages(t)
	edCLI := ostreeHasEd25519(t)
	type keysFor func(*signedImages) []string
	noGPG := []string{"--no-gpg-verify"}
	edKey := func(s *signedImages) []string {
		return []string{"--set=sign-verify=true", "--set=verification-ed25519-key=" + s.edGood}
	}
	gpgImport := func(pub func(*gpgKeys) string) keysFor {
		return func(s *signedImages) []string { return []string{"--gpg-import=" + pub(s.gpg)} }
	}
	join := func(fs ...keysFor) keysFor {
		return func(s *signedImages) []string {
			var out []string
			for _, f := range fs {
				out = append(out, f(s)...)
			}
			return out
		}
	}
	static := func(args ...string) keysFor { return func(*signedImages) []string { return args } }
	tests := []struct {
		name    string
		tag     string
		remote  string // the remote in the image reference; "" = "origin"
		args    keysFor
		needGPG bool
		ok      bool
		want    []string // in the error (lower case), besides the remote
		commit  bool     // the error names the commit
		peer    bool     // `ostree pull` can check the same configuration
	}{
		{name: "ed25519 inline key", tag: "ed25519", args: join(static(noGPG...), edKey), ok: true, peer: edCLI},
		{name: "ed25519 key file", tag: "ed25519", args: join(static(noGPG...), func(s *signedImages) []string {
			return []string{"--set=sign-verify=ed25519", "--set=verification-ed25519-file=" + s.edFile}
		}), ok: true, peer: edCLI},
		{name: "ed25519 wrong key", tag: "ed25519", args: join(static(noGPG...), func(s *signedImages) []string {
			return []string{"--set=sign-verify=true", "--set=verification-ed25519-key=" + s.edOther}
		}), want: []string{"no valid signature"}, commit: true, peer: edCLI},
		{name: "unsigned commit", tag: "unsigned", args: join(static(noGPG...), edKey), want: []string{"no signature"}, commit: true, peer: edCLI},
		{name: "missing remote", tag: "ed25519", remote: "absent", args: join(static(noGPG...), edKey), want: []string{"not found"}},
		{name: "no verification configured", tag: "ed25519", args: static(noGPG...), want: []string{"verification disabled"}},
		{name: "gpg imported key", tag: "gpg", args: gpgImport(func(k *gpgKeys) string { return k.goodPub }), needGPG: true, ok: true, peer: true},
		{name: "gpg armored gpgkeypath", tag: "gpg", args: func(s *signedImages) []string { return []string{"--set=gpgkeypath=" + s.gpg.goodArmored} }, needGPG: true, ok: true, peer: true},
		{name: "gpg wrong key", tag: "gpg", args: gpgImport(func(k *gpgKeys) string { return k.otherPub }), needGPG: true, want: []string{"gpg", "no valid signature"}, commit: true, peer: true},
		{name: "gpg unsigned commit", tag: "unsigned", args: gpgImport(func(k *gpgKeys) string { return k.goodPub }), needGPG: true, want: []string{"gpg", "no signature"}, commit: true, peer: true},
		{name: "gpg on by default, ed25519 signature only", tag: "ed25519", args: join(gpgImport(func(k *gpgKeys) string { return k.goodPub }), edKey), needGPG: true, want: []string{"gpg", "no signature"}, commit: true, peer: true},
		{name: "gpg and ed25519", tag: "both", args: join(gpgImport(func(k *gpgKeys) string { return k.goodPub }), edKey), needGPG: true, ok: true, peer: edCLI},
		{name: "gpg and ed25519, ed25519 signature missing", tag: "gpg", args: join(gpgImport(func(k *gpgKeys) string { return k.goodPub }), edKey), needGPG: true, want: []string{"ed25519", "no signature"}, commit: true, peer: edCLI},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.needGPG && s.gpg == nil {
				requireTools(t, "gpg") // skips, or fails with CI=true
			}
			t.Parallel()
			dir := workDir(t)
			commit := s.commits[tc.tag]
			remote := tc.remote
			if remote == "" {
				remote = "origin"
			}
			args := tc.args(s)
			dest := filepath.Join(dir, "dest")
			ocitreeInit(t, dest, "bare-user")
			must(t, ostree(t, append(append([]string{"remote", "add", "--repo=" + dest}, args...), "origin", "http://unused.invalid")...))
			r := ocitree(t, "image", "pull", "--repo", dest, "--progress=never", "ostree-remote-image:"+remote+":oci:"+s.layout+":"+tc.tag)
			refs := must(t, ocitree(t, "repo", "refs", "--repo", dest))
			if tc.ok {
				merge := strings.TrimSpace(must(t, r))
				if !hex64.MatchString(merge) {
					t.Fatalf("stdout must be the merge commit:\n%s", r)
				}
				if parent := strings.TrimSpace(must(t, ostree(t, "rev-parse", "--repo="+dest, merge+"^"))); parent != commit {
					t.Errorf("the merge commit's parent is %s, want the signed commit %s", parent, commit)
				}
				if !strings.Contains(r.stderr, "OSTree remote origin: ") {
					t.Errorf("stderr does not describe the accepted signature:\n%s", r)
				}
				if !strings.Contains(refs, "ostree/container/image/") {
					t.Errorf("no image ref after the pull:\n%s", refs)
				}
			} else {
				t.Logf("refused: %s", strings.TrimSpace(r.stderr))
				if r.code != 1 || r.stdout != "" {
					t.Errorf("a refused pull must exit 1 with nothing on stdout:\n%s", r)
				}
				msg := strings.ToLower(r.stderr)
				want := append([]string{`"` + remote + `"`}, tc.want...)
				if tc.commit {
					want = append(want, commit)
				}
				for _, w := range want {
					if !strings.Contains(msg, strings.ToLower(w)) {
						t.Errorf("the error does not mention %q:\n%s", w, r.stderr)
					}
				}
				if strings.Contains(refs, "ostree/container/") {
					t.Errorf("a refused pull left refs:\n%s", refs)
				}
			}
			if !tc.peer {
				return
			}
			peer := filepath.Join(dir, "peer")
			ostreeInit(t, peer, "archive")
			must(t, ostree(t, append(append([]string{"remote", "add", "--repo=" + peer}, args...), "origin", "file://"+s.src)...))
			pr := ostree(t, "pull", "--repo="+peer, "origin", commit)
			if (pr.code == 0) != tc.ok {
				t.Errorf("ostree pull with the same remote configuration disagrees (ocitree accepted: %v):\n%s", tc.ok, pr)
			}
		})
	}
}

// TestImagePullOstreeRemoteStoredLayer: a commit layer already stored by an
// unverified pull is verified too before an ostree-remote pull of the same
// image uses it; refused, the earlier image stays as it was.
func TestImagePullOstreeRemoteStoredLayer(t *testing.T) {
	setup(t)
	s := buildSignedImages(t)
	t.Parallel()
	dir := workDir(t)
	for _, tc := range []struct {
		tag string
		ok  bool
	}{{"unsigned", false}, {"ed25519", true}} {
		t.Run(tc.tag, func(t *testing.T) {
			dest := filepath.Join(dir, tc.tag)
			ocitreeInit(t, dest, "bare-user")
			must(t, ostree(t, "remote", "add", "--repo="+dest, "--no-gpg-verify", "--set=sign-verify=true", "--set=verification-ed25519-key="+s.edGood, "origin", "http://unused.invalid"))
			must(t, ocitree(t, "image", "pull", "--repo", dest, "--progress=never", "ostree-unverified-image:oci:"+s.layout+":"+tc.tag))
			before := must(t, ocitree(t, "repo", "refs", "--repo", dest))
			r := ocitree(t, "image", "pull", "--repo", dest, "--progress=never", "ostree-remote-image:origin:oci:"+s.layout+":"+tc.tag)
			if tc.ok {
				must(t, r)
				if !strings.Contains(r.stderr, "ed25519: signature verified") {
					t.Errorf("the stored commit was not verified:\n%s", r)
				}
				return
			}
			if r.code != 1 || !strings.Contains(r.stderr, "stored commit layer") || !strings.Contains(r.stderr, s.commits[tc.tag]) {
				t.Errorf("an unsigned stored commit must be refused naming it:\n%s", r)
			}
			if after := must(t, ocitree(t, "repo", "refs", "--repo", dest)); after != before {
				t.Errorf("refs changed by a refused pull:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}
