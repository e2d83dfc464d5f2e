package ostree

import (
	"bufio"
	"fmt"
	"strings"
)

// KeyFile is a minimal GKeyFile: groups of key=value lines, order kept so a
// rewrite preserves what other tools wrote.
type KeyFile struct {
	groups []*keyGroup
}

type keyGroup struct {
	name  string
	lines []string // raw lines (comments kept); keys parsed on demand
}

// ParseKeyFile parses GKeyFile text.
func ParseKeyFile(text string) (*KeyFile, error) {
	kf := &KeyFile{}
	var cur *keyGroup
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		t := strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(t, "[") && strings.HasSuffix(t, "]"):
			cur = &keyGroup{name: t[1 : len(t)-1]}
			kf.groups = append(kf.groups, cur)
		case t == "" || strings.HasPrefix(t, "#"):
			if cur != nil {
				cur.lines = append(cur.lines, line)
			}
		default:
			if cur == nil || !strings.Contains(t, "=") {
				return nil, fmt.Errorf("config line %d: %q is not a group or key=value", n, line)
			}
			cur.lines = append(cur.lines, line)
		}
	}
	return kf, sc.Err()
}

func (g *keyGroup) find(key string) int {
	for i, l := range g.lines {
		k, _, ok := strings.Cut(l, "=")
		if ok && strings.TrimSpace(k) == key {
			return i
		}
	}
	return -1
}

// Get returns the unescaped value of key in group.
func (kf *KeyFile) Get(group, key string) (string, bool) {
	for _, g := range kf.groups {
		if g.name != group {
			continue
		}
		if i := g.find(key); i >= 0 {
			_, v, _ := strings.Cut(g.lines[i], "=")
			return unescapeKeyValue(strings.TrimSpace(v)), true
		}
	}
	return "", false
}

// Set stores key=value in group, creating the group when needed.
func (kf *KeyFile) Set(group, key, value string) {
	var g *keyGroup
	for _, x := range kf.groups {
		if x.name == group {
			g = x
		}
	}
	if g == nil {
		g = &keyGroup{name: group}
		kf.groups = append(kf.groups, g)
	}
	line := key + "=" + value
	if i := g.find(key); i >= 0 {
		g.lines[i] = line
	} else {
		g.lines = append(g.lines, line)
	}
}

// String renders the key file.
func (kf *KeyFile) String() string {
	var b strings.Builder
	for i, g := range kf.groups {
		if i > 0 {
			b.WriteString("\n")
		}
		fmt.Fprintf(&b, "[%s]\n", g.name)
		for _, l := range g.lines {
			if strings.TrimSpace(l) == "" {
				continue
			}
			b.WriteString(l)
			b.WriteString("\n")
		}
	}
	return b.String()
}

func unescapeKeyValue(v string) string {
	if !strings.Contains(v, `\`) {
		return v
	}
	r := strings.NewReplacer(`\s`, " ", `\n`, "\n", `\t`, "\t", `\r`, "\r", `\\`, `\`)
	return r.Replace(v)
}

// RemoveGroup deletes group and its keys; it reports whether it existed.
func (kf *KeyFile) RemoveGroup(group string) bool {
	for i, g := range kf.groups {
		if g.name == group {
			kf.groups = append(kf.groups[:i], kf.groups[i+1:]...)
			return true
		}
	}
	return false
}
