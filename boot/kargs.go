package boot

import "strings"

// Kargs is an ordered list of kernel arguments with libostree's
// ostree-kernel-args.c semantics: duplicates allowed, keys compared exactly.
type Kargs struct {
	args []karg
}

type karg struct {
	key, value string
	hasValue   bool
}

func (a karg) String() string {
	if !a.hasValue {
		return a.key
	}
	return a.key + "=" + a.value
}

func parseOne(s string) karg {
	k, v, ok := strings.Cut(s, "=")
	return karg{key: k, value: v, hasValue: ok}
}

// SplitKargs splits a kernel command line on ASCII spaces, keeping double
// quoted spans (with their quotes) inside one token; an unterminated quote
// makes the rest one token.
func SplitKargs(s string) []string {
	var out []string
	var cur strings.Builder
	quoted := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '"':
			quoted = !quoted
			cur.WriteByte(c)
		case c == ' ' && !quoted:
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out
}

// ParseKargs parses a kernel command line (a BLS options value).
func ParseKargs(s string) *Kargs {
	k := &Kargs{}
	for _, t := range SplitKargs(s) {
		k.args = append(k.args, parseOne(t))
	}
	return k
}

// String serialises the arguments in order, joined by one space.
func (k *Kargs) String() string {
	parts := make([]string, len(k.args))
	for i, a := range k.args {
		parts[i] = a.String()
	}
	return strings.Join(parts, " ")
}

// Strings returns the arguments in order, each as key or key=value.
func (k *Kargs) Strings() []string {
	parts := make([]string, len(k.args))
	for i, a := range k.args {
		parts[i] = a.String()
	}
	return parts
}

// Append adds arg (key or key=value) at the end, even when its key exists.
func (k *Kargs) Append(arg string) { k.args = append(k.args, parseOne(arg)) }

// Replace sets arg: every entry of its key is replaced by one entry at the
// position of the first; a key not present is appended.
func (k *Kargs) Replace(arg string) {
	n := parseOne(arg)
	out := k.args[:0:0]
	placed := false
	for _, a := range k.args {
		if a.key != n.key {
			out = append(out, a)
			continue
		}
		if !placed {
			out = append(out, n)
			placed = true
		}
	}
	if !placed {
		out = append(out, n)
	}
	k.args = out
}

// Delete removes arg: "key" removes every entry of key, "key=value" only the
// entries equal to it. It reports whether anything was removed.
func (k *Kargs) Delete(arg string) bool {
	d := parseOne(arg)
	out := k.args[:0:0]
	for _, a := range k.args {
		if a.key == d.key && (!d.hasValue || a == d) {
			continue
		}
		out = append(out, a)
	}
	removed := len(out) != len(k.args)
	k.args = out
	return removed
}

// Get returns the value of the first entry of key.
func (k *Kargs) Get(key string) (value string, ok bool) {
	for _, a := range k.args {
		if a.key == key {
			return a.value, true
		}
	}
	return "", false
}

// Has reports whether arg (key=value or bare key) is present exactly.
func (k *Kargs) Has(arg string) bool {
	n := parseOne(arg)
	for _, a := range k.args {
		if a == n {
			return true
		}
	}
	return false
}

// WithoutKey returns a copy without any entry of key.
func (k *Kargs) WithoutKey(key string) *Kargs {
	c := &Kargs{}
	for _, a := range k.args {
		if a.key != key {
			c.args = append(c.args, a)
		}
	}
	return c
}

// Clone returns an independent copy.
func (k *Kargs) Clone() *Kargs { return &Kargs{args: append([]karg(nil), k.args...)} }
