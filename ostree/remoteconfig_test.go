package ostree

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// repoWithConfig makes an archive repository whose config has extra
// appended (as `ostree remote add` appends groups) and opens it.
func repoWithConfig(t *testing.T, extra string) *Repo {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	r, err := Init(dir, ModeArchive)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	f, err := os.OpenFile(filepath.Join(dir, "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(extra); err != nil {
		t.Fatal(err)
	}
	f.Close()
	r, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// The config text is what `ostree remote add --set=... NAME URL` writes
// (ostree 2022.7), plus hand-written edge cases.
const remoteConfigText = `
[remote "origin"]
url=http://unused
gpg-verify=false
sign-verify=true
verification-ed25519-key=Zm9vYmFy

[remote "lists"]
url = file:///srv/with\sspace
gpgkeypath=/a/k1;/b/k2;
sign-verify=ed25519;
gpg-verify = 1
tricky=a\;b;c
both=/x;/y,z
bad-bool=yes
# a comment
dup=first
dup=second

[remote "split"]
url=http://one

[remote "split"]
gpg-verify=0

[remote ""]
url=http://empty-name-is-no-remote

[remote-ish "nope"]
url=http://not-a-remote
`

func TestRemoteOptions(t *testing.T) {
	r := repoWithConfig(t, remoteConfigText)
	type opt struct {
		remote, key string
		want        string
		ok          bool
	}
	for _, tc := range []opt{
		{"origin", "url", "http://unused", true},
		{"origin", "gpg-verify", "false", true},
		{"origin", "verification-ed25519-key", "Zm9vYmFy", true},
		{"origin", "gpgkeypath", "", false},
		{"lists", "url", "file:///srv/with space", true},
		{"lists", "gpg-verify", "1", true},
		{"lists", "dup", "second", true}, // the later key wins, as in GKeyFile
		{"split", "url", "http://one", true},
		{"split", "gpg-verify", "0", true}, // groups of one name merge
	} {
		rm, err := r.Remote(tc.remote)
		if err != nil {
			t.Fatalf("Remote(%q): %v", tc.remote, err)
		}
		got, ok := rm.Option(tc.key)
		if got != tc.want || ok != tc.ok {
			t.Errorf("remote %s option %s = %q,%v; want %q,%v", tc.remote, tc.key, got, ok, tc.want, tc.ok)
		}
		if rm.Source != filepath.Join(r.Path(), "config") {
			t.Errorf("remote %s: Source = %q", tc.remote, rm.Source)
		}
		if !reflect.DeepEqual(rm.KeyringDirs, []string{r.Path()}) {
			t.Errorf("remote %s: KeyringDirs = %q, want the repo dir only", tc.remote, rm.KeyringDirs)
		}
	}
}

func TestRemoteBoolAndList(t *testing.T) {
	r := repoWithConfig(t, remoteConfigText)
	lists, err := r.Remote("lists")
	if err != nil {
		t.Fatal(err)
	}
	origin, err := r.Remote("origin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		rm      *Remote
		key     string
		def     bool
		want    bool
		wantErr bool
	}{
		{origin, "gpg-verify", true, false, false},
		{origin, "sign-verify", false, true, false},
		{origin, "missing", true, true, false},
		{origin, "missing", false, false, false},
		{lists, "gpg-verify", false, true, false},
		{lists, "bad-bool", true, false, true},
	} {
		got, err := tc.rm.BoolOption(tc.key, tc.def)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("%s.BoolOption(%s, %v) = %v, %v; want %v (error %v)", tc.rm.Name, tc.key, tc.def, got, err, tc.want, tc.wantErr)
		}
		if err != nil && !strings.Contains(err.Error(), tc.rm.Name) {
			t.Errorf("error %q does not name the remote", err)
		}
	}
	for _, tc := range []struct {
		key, seps string
		want      []string
		wantErr   bool
	}{
		{"gpgkeypath", ";,", []string{"/a/k1", "/b/k2"}, false},
		{"sign-verify", ";", []string{"ed25519"}, false},
		{"url", ";,", []string{"file:///srv/with space"}, false},
		{"tricky", ";", []string{"a;b", "c"}, false},
		{"both", ";,", nil, true},
		{"absent", ";", nil, false},
	} {
		got, err := lists.ListOption(tc.key, tc.seps)
		if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("ListOption(%s, %q) = %q, %v; want %q (error %v)", tc.key, tc.seps, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestRemoteNotFound(t *testing.T) {
	r := repoWithConfig(t, remoteConfigText)
	for _, name := range []string{"absent", "remote-ish", "nope", ""} {
		_, err := r.Remote(name)
		if err == nil {
			t.Errorf("Remote(%q) found a remote", name)
			continue
		}
		if name != "" && (!errors.Is(err, ErrRemoteNotFound) || !strings.Contains(err.Error(), name)) {
			t.Errorf("Remote(%q) = %v; want ErrRemoteNotFound naming it", name, err)
		}
	}
	names, err := r.Remotes()
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"lists", "origin", "split"}; !reflect.DeepEqual(names, want) {
		t.Errorf("Remotes() = %q, want %q", names, want)
	}
}

// TestSystemRepoRemotesDir: the system repository (same inode as
// /ostree/repo) also reads remotes.d/*.conf and looks for keyrings there;
// another repository does not.
func TestSystemRepoRemotesDir(t *testing.T) {
	r := repoWithConfig(t, "[remote \"inconfig\"]\nurl=http://a\n")
	other := repoWithConfig(t, "")
	dir := t.TempDir()
	write := func(name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("fedora.conf", "[remote \"fedora\"]\nurl=http://f\ngpg-verify=true\n")
	write("ignored.txt", "[remote \"ignored\"]\nurl=http://i\n")
	write("dup.conf", "[remote \"inconfig\"]\nurl=http://b\n")
	oldRepo, oldDir := systemRepoPath, sysconfRemotesDir
	t.Cleanup(func() { systemRepoPath, sysconfRemotesDir = oldRepo, oldDir })
	systemRepoPath, sysconfRemotesDir = r.Path(), dir

	if !r.IsSystem() || other.IsSystem() {
		t.Fatalf("IsSystem: system repo %v, other repo %v", r.IsSystem(), other.IsSystem())
	}
	rm, err := r.Remote("fedora")
	if err != nil {
		t.Fatal(err)
	}
	if rm.Source != filepath.Join(dir, "fedora.conf") || !reflect.DeepEqual(rm.KeyringDirs, []string{r.Path(), dir}) {
		t.Errorf("fedora: Source %q, KeyringDirs %q", rm.Source, rm.KeyringDirs)
	}
	if _, err := other.Remote("fedora"); !errors.Is(err, ErrRemoteNotFound) {
		t.Errorf("a non-system repo must not read remotes.d: %v", err)
	}
	if _, err := r.Remote("ignored"); !errors.Is(err, ErrRemoteNotFound) {
		t.Errorf("only *.conf files define remotes: %v", err)
	}
	if _, err := r.Remote("inconfig"); err == nil || !strings.Contains(err.Error(), "defined twice") {
		t.Errorf("a remote in the config and in remotes.d must be an error, got %v", err)
	}
	write("broken.conf", "not a keyfile\n")
	if _, err := r.Remote("fedora"); err == nil || !strings.Contains(err.Error(), "broken.conf") {
		t.Errorf("an unparsable remotes.d file must be an error naming it, got %v", err)
	}
}
