package boot

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"strings"
)

// Entry is a BLS entry (boot/loader.N/entries/*.conf) as ordered key/value
// lines; a key may repeat (a second initrd is an overlay initramfs).
type Entry struct {
	// Name is the file name, e.g. ostree-1-default.conf.
	Name  string
	Lines [][2]string
}

// Get returns the first value of key.
func (e *Entry) Get(key string) string {
	for _, l := range e.Lines {
		if l[0] == key {
			return l[1]
		}
	}
	return ""
}

// ParseEntry parses a BLS file as libostree does: lines that start with an
// ASCII letter, key up to the first space or tab, value the rest.
func ParseEntry(name string, data []byte) *Entry {
	e := &Entry{Name: name}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || !(l[0] >= 'a' && l[0] <= 'z' || l[0] >= 'A' && l[0] <= 'Z') {
			continue
		}
		i := strings.IndexAny(l, " \t")
		if i < 0 {
			e.Lines = append(e.Lines, [2]string{l, ""})
			continue
		}
		e.Lines = append(e.Lines, [2]string{l[:i], strings.TrimLeft(l[i+1:], " \t")})
	}
	return e
}

// Bytes renders the entry, one "key value" line each.
func (e *Entry) Bytes() []byte {
	var b bytes.Buffer
	for _, l := range e.Lines {
		fmt.Fprintf(&b, "%s %s\n", l[0], l[1])
	}
	return b.Bytes()
}

// OSName returns the os-release PRETTY_NAME (else ID) of the tree fsys,
// from usr/lib/os-release, else etc/os-release, as libostree titles BLS
// entries. Symlinks are not followed.
func OSName(fsys fs.FS) (string, error) {
	var data []byte
	var err error
	for _, p := range []string{"usr/lib/os-release", "etc/os-release"} {
		if data, err = fs.ReadFile(fsys, p); err == nil {
			break
		}
	}
	if err != nil {
		return "", fmt.Errorf("no usr/lib/os-release in the tree: %w; a bootable image needs one with PRETTY_NAME or ID", err)
	}
	vals := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok || strings.HasPrefix(k, "#") {
			continue
		}
		vals[k] = shellUnquote(v)
	}
	if v := vals["PRETTY_NAME"]; v != "" {
		return v, nil
	}
	if v := vals["ID"]; v != "" {
		return v, nil
	}
	return "", fmt.Errorf("os-release has neither PRETTY_NAME nor ID; add one to the image's usr/lib/os-release")
}

// shellUnquote undoes the quoting os-release allows ("…", '…', \x).
func shellUnquote(s string) string {
	var b strings.Builder
	var q byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case q == 0 && (c == '"' || c == '\''):
			q = c
		case q != 0 && c == q:
			q = 0
		case c == '\\' && q != '\'' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}
