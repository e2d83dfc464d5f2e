package ostree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// ErrRemoteNotFound is returned (wrapped) by Repo.Remote when no
// [remote "NAME"] group defines the remote.
var ErrRemoteNotFound = errors.New("OSTree remote not found")

// Where libostree finds remotes besides the repository config: the
// repository at systemRepoPath (same device and inode) also reads every
// *.conf file of sysconfRemotesDir (ostree-repo.c get_remotes_d_dir), and
// looks there for remote keyrings. Variables so that tests can move them.
var (
	systemRepoPath    = "/ostree/repo"
	sysconfRemotesDir = "/etc/ostree/remotes.d"
)

// Remote is the configuration of one OSTree remote: the keys of its
// [remote "NAME"] group, read as GKeyFile does.
type Remote struct {
	// Name is the remote name (the NAME of [remote "NAME"]).
	Name string
	// Source is the file that defines the remote: the repository's config
	// or a remotes.d/*.conf file.
	Source string
	// KeyringDirs are the directories searched, in order, for the remote's
	// GPG keyring file (see KeyringName): the repository directory and, for
	// the system repository, the remotes.d directory.
	KeyringDirs []string

	raw map[string]string // key -> value as written (escapes kept)
}

// KeyringName is the file name of the remote's GPG keyring,
// "NAME.trustedkeys.gpg", as `ostree remote add --gpg-import` and
// `ostree remote gpg-import` write it.
func (rm *Remote) KeyringName() string { return rm.Name + ".trustedkeys.gpg" }

// Option returns the unescaped string value of key; ok is false when the
// remote does not set it.
func (rm *Remote) Option(key string) (value string, ok bool) {
	v, ok := rm.raw[key]
	if !ok {
		return "", false
	}
	return unescapeKeyValue(v), true
}

// BoolOption returns the boolean value of key, def when it is not set.
// Like g_key_file_get_boolean it accepts true, false, 1 and 0; any other
// value is an error naming the remote and the key.
func (rm *Remote) BoolOption(key string, def bool) (bool, error) {
	v, ok := rm.Option(key)
	if !ok {
		return def, nil
	}
	b, ok := ParseKeyFileBool(v)
	if !ok {
		return false, fmt.Errorf("remote %q in %s: %s=%q is not a boolean (true, false, 1 or 0)", rm.Name, rm.Source, key, v)
	}
	return b, nil
}

// ParseKeyFileBool parses a GKeyFile boolean: "true" or "1", "false" or
// "0" (surrounding whitespace ignored); ok is false for anything else.
func ParseKeyFileBool(v string) (value, ok bool) {
	switch strings.TrimSpace(v) {
	case "true", "1":
		return true, true
	case "false", "0":
		return false, true
	}
	return false, false
}

// ListOption returns the value of key split into a list, nil when it is
// not set. The separator is the one character of seps that occurs in the
// value (libostree's ot_keyfile_get_string_list_with_separator_choice);
// a value holding two of them is an error. As in g_key_file_get_string_list
// an escaped separator (`\;`) does not split and a trailing separator adds
// no empty item.
func (rm *Remote) ListOption(key, seps string) ([]string, error) {
	raw, ok := rm.raw[key]
	if !ok {
		return nil, nil
	}
	var sep rune
	for _, c := range seps {
		if strings.ContainsRune(raw, c) {
			if sep != 0 {
				return nil, fmt.Errorf("remote %q in %s: %s=%q contains more than one list separator", rm.Name, rm.Source, key, raw)
			}
			sep = c
		}
	}
	if sep == 0 {
		return []string{unescapeKeyValue(raw)}, nil
	}
	var items []string
	var cur strings.Builder
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		switch {
		case c == '\\' && i+1 < len(raw) && rune(raw[i+1]) == sep:
			cur.WriteByte(raw[i+1])
			i++
		case c == '\\' && i+1 < len(raw):
			cur.WriteByte(c)
			cur.WriteByte(raw[i+1])
			i++
		case rune(c) == sep:
			items = append(items, unescapeKeyValue(cur.String()))
			cur.Reset()
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		items = append(items, unescapeKeyValue(cur.String()))
	}
	return items, nil
}

// remoteGroupName returns NAME for a group named `remote "NAME"`
// (libostree's regex ^remote "(.+)"$).
func remoteGroupName(group string) (string, bool) {
	rest, ok := strings.CutPrefix(group, `remote "`)
	if !ok || len(rest) < 2 || !strings.HasSuffix(rest, `"`) {
		return "", false
	}
	return rest[:len(rest)-1], true
}

// remoteFrom collects the keys of every [remote "name"] group of kf (a
// later duplicate key wins, as in GKeyFile); nil when kf has none.
func remoteFrom(kf *KeyFile, name, source string) *Remote {
	var rm *Remote
	for _, g := range kf.groups {
		if n, ok := remoteGroupName(g.name); !ok || n != name {
			continue
		}
		if rm == nil {
			rm = &Remote{Name: name, Source: source, raw: map[string]string{}}
		}
		for _, l := range g.lines {
			t := strings.TrimSpace(l)
			if t == "" || strings.HasPrefix(t, "#") {
				continue
			}
			k, v, ok := strings.Cut(t, "=")
			if !ok {
				continue
			}
			rm.raw[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return rm
}

// IsSystem reports whether the repository is the system repository
// (/ostree/repo, compared by device and inode as libostree does); the
// system repository also reads remotes from /etc/ostree/remotes.d.
func (r *Repo) IsSystem() bool {
	sys, err := os.Stat(systemRepoPath)
	if err != nil {
		return false
	}
	self, err := os.Stat(r.path)
	return err == nil && os.SameFile(sys, self)
}

// remotesDir is the remotes.d directory the repository reads, "" if none.
func (r *Repo) remotesDir() string {
	if r.IsSystem() {
		return sysconfRemotesDir
	}
	return ""
}

// Remote returns the configuration of the remote name, looked up as
// libostree does: the [remote "name"] group of the repository's config
// and, for the system repository, of /etc/ostree/remotes.d/*.conf. A remote
// defined in two files is an error; a missing one wraps ErrRemoteNotFound.
// Parent repositories (core.parent) are not consulted.
func (r *Repo) Remote(name string) (*Remote, error) {
	if name == "" {
		return nil, errors.New("empty OSTree remote name")
	}
	configPath := filepath.Join(r.path, "config")
	found := remoteFrom(r.config, name, configPath)
	dir := r.remotesDir()
	files, err := readRemoteFiles(dir)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		if rm := remoteFrom(f.kf, name, f.path); rm != nil {
			if found != nil {
				return nil, fmt.Errorf("remote %q is defined twice: in %s and in %s", name, found.Source, f.path)
			}
			found = rm
		}
	}
	if found == nil {
		where := configPath
		if dir != "" {
			where += " or " + filepath.Join(dir, "*.conf")
		}
		return nil, fmt.Errorf("remote %q: no [remote %q] group in %s: %w", name, name, where, ErrRemoteNotFound)
	}
	found.KeyringDirs = []string{r.path}
	if dir != "" {
		found.KeyringDirs = append(found.KeyringDirs, dir)
	}
	return found, nil
}

// Remotes lists the names of the remotes defined in the repository config
// (and, for the system repository, in /etc/ostree/remotes.d), sorted.
func (r *Repo) Remotes() ([]string, error) {
	seen := map[string]bool{}
	add := func(kf *KeyFile) {
		for _, g := range kf.groups {
			if n, ok := remoteGroupName(g.name); ok {
				seen[n] = true
			}
		}
	}
	add(r.config)
	files, err := readRemoteFiles(r.remotesDir())
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		add(f.kf)
	}
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

type remoteFile struct {
	path string
	kf   *KeyFile
}

// readRemoteFiles parses the regular *.conf files of dir in name order;
// none when dir is "" or does not exist.
func readRemoteFiles(dir string) ([]remoteFile, error) {
	if dir == "" {
		return nil, nil
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading remotes directory %s: %w", dir, err)
	}
	var out []remoteFile
	for _, e := range ents { // os.ReadDir sorts by name
		if !e.Type().IsRegular() || !strings.HasSuffix(e.Name(), ".conf") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("reading remote config %s: %w", p, err)
		}
		kf, err := ParseKeyFile(string(b))
		if err != nil {
			return nil, fmt.Errorf("parsing remote config %s: %w", p, err)
		}
		out = append(out, remoteFile{p, kf})
	}
	return out, nil
}
