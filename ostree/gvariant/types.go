package gvariant

import (
	"fmt"
	"sync"
)

// maxDepth is GLib's G_VARIANT_MAX_RECURSION_DEPTH: the nesting limit for type
// strings and for values (variants included).
const maxDepth = 128

// Variant is a value of GVariant type "v".
type Variant struct {
	Type  string // a single definite type string, e.g. "s", "as", "u"
	Value any    // the value, in the Go mapping of Type
}

// DictEntry is one element of a dictionary array such as a{sv}.
type DictEntry struct {
	Key   any // a basic-type value (string, uint32, ...)
	Value any // the value, in the Go mapping of the entry's value type
}

// typeInfo is a parsed definite type string.
type typeInfo struct {
	str      string      // the type string of this node
	code     byte        // 'y','b',...,'v' for basic types; 'a','m','(','{' for containers
	elem     *typeInfo   // element type of 'a' and 'm'
	members  []*typeInfo // members of '(' and '{'
	align    int         // alignment in bytes: 1, 2, 4 or 8
	fixed    int         // fixed size in bytes, 0 when variable-size
	depth    int         // GLib type depth: 1 for basic types, 0 for "()", else 1+max(children)
	nOffsets int         // tuples and dict entries: number of framing offsets
}

var basicInfo = func() map[byte]*typeInfo {
	m := make(map[byte]*typeInfo)
	add := func(c byte, align, fixed int) {
		m[c] = &typeInfo{str: string(c), code: c, align: align, fixed: fixed, depth: 1}
	}
	add('y', 1, 1)
	add('b', 1, 1)
	add('n', 2, 2)
	add('q', 2, 2)
	add('i', 4, 4)
	add('u', 4, 4)
	add('h', 4, 4)
	add('x', 8, 8)
	add('t', 8, 8)
	add('d', 8, 8)
	add('s', 1, 0)
	add('o', 1, 0)
	add('g', 1, 0)
	add('v', 8, 0)
	return m
}()

// isBasicCode reports whether c may be the key type of a dictionary entry.
func isBasicCode(c byte) bool {
	switch c {
	case 'y', 'b', 'n', 'q', 'i', 'u', 'h', 'x', 't', 'd', 's', 'o', 'g':
		return true
	}
	return false
}

type typeParser struct {
	s   string
	pos int
}

// parseOne parses one complete definite type starting at p.pos. limit follows
// GLib's type string scanner: a container may only have children while
// limit > 0, and each child is scanned with limit-1.
func (p *typeParser) parseOne(limit int) (*typeInfo, error) {
	if p.pos >= len(p.s) {
		return nil, p.errf("unexpected end")
	}
	start := p.pos
	c := p.s[p.pos]
	p.pos++
	if b := basicInfo[c]; b != nil {
		return b, nil
	}
	switch c {
	case 'a', 'm':
		if limit == 0 {
			return nil, p.errf("nesting deeper than %d", maxDepth)
		}
		e, err := p.parseOne(limit - 1)
		if err != nil {
			return nil, err
		}
		return &typeInfo{str: p.s[start:p.pos], code: c, elem: e, align: e.align, depth: e.depth + 1}, nil
	case '(':
		var members []*typeInfo
		for {
			if p.pos >= len(p.s) {
				return nil, p.errf("unterminated tuple")
			}
			if p.s[p.pos] == ')' {
				p.pos++
				break
			}
			if limit == 0 {
				return nil, p.errf("nesting deeper than %d", maxDepth)
			}
			m, err := p.parseOne(limit - 1)
			if err != nil {
				return nil, err
			}
			members = append(members, m)
		}
		return newTuple(p.s[start:p.pos], '(', members), nil
	case '{':
		if limit == 0 {
			return nil, p.errf("nesting deeper than %d", maxDepth)
		}
		if p.pos >= len(p.s) || !isBasicCode(p.s[p.pos]) {
			return nil, p.errf("dictionary entry key must be a basic type")
		}
		k := basicInfo[p.s[p.pos]]
		p.pos++
		v, err := p.parseOne(limit - 1)
		if err != nil {
			return nil, err
		}
		if p.pos >= len(p.s) || p.s[p.pos] != '}' {
			return nil, p.errf("dictionary entry must have exactly two members")
		}
		p.pos++
		return newTuple(p.s[start:p.pos], '{', []*typeInfo{k, v}), nil
	}
	p.pos--
	return nil, p.errf("invalid character %q", c)
}

func (p *typeParser) errf(format string, args ...any) error {
	return fmt.Errorf("gvariant: invalid type string %s: %s at position %d",
		shortQuote(p.s), fmt.Sprintf(format, args...), p.pos)
}

// newTuple computes the layout of a tuple or dictionary entry.
func newTuple(str string, code byte, members []*typeInfo) *typeInfo {
	t := &typeInfo{str: str, code: code, members: members, align: 1}
	fixed := true
	off := 0
	for i, m := range members {
		if m.align > t.align {
			t.align = m.align
		}
		if m.depth+1 > t.depth {
			t.depth = m.depth + 1
		}
		if m.fixed == 0 {
			fixed = false
			if i != len(members)-1 {
				t.nOffsets++
			}
		} else {
			off = alignUp(off, m.align) + m.fixed
		}
	}
	if fixed {
		if len(members) == 0 {
			t.fixed = 1
		} else {
			t.fixed = alignUp(off, t.align)
		}
	}
	return t
}

func alignUp(n, align int) int {
	return (n + align - 1) &^ (align - 1)
}

// parseType parses s, which must be exactly one complete definite type.
func parseType(s string) (*typeInfo, error) {
	p := typeParser{s: s}
	t, err := p.parseOne(maxDepth)
	if err != nil {
		return nil, err
	}
	if p.pos != len(s) {
		return nil, p.errf("trailing characters")
	}
	return t, nil
}

// The cache of parsed types. Only short type strings are kept and the number
// of entries is capped, so type strings taken from hostile data cannot make it
// grow without bound.
const (
	typeCacheMaxEntries = 4096
	typeCacheMaxLen     = 64
)

var typeCache = struct {
	sync.RWMutex
	m map[string]*typeInfo
}{m: make(map[string]*typeInfo)}

// lookupType returns the parsed form of s, from the cache when possible.
func lookupType(s string) (*typeInfo, error) {
	typeCache.RLock()
	t := typeCache.m[s]
	typeCache.RUnlock()
	if t != nil {
		return t, nil
	}
	t, err := parseType(s)
	if err != nil {
		return nil, err
	}
	storeType(t)
	return t, nil
}

// lookupTypeBytes is lookupType for a type string held in a byte slice; a
// cache hit does not allocate.
func lookupTypeBytes(b []byte) (*typeInfo, error) {
	typeCache.RLock()
	t := typeCache.m[string(b)]
	typeCache.RUnlock()
	if t != nil {
		return t, nil
	}
	t, err := parseType(string(b))
	if err != nil {
		return nil, err
	}
	storeType(t)
	return t, nil
}

func storeType(t *typeInfo) {
	if len(t.str) > typeCacheMaxLen {
		return
	}
	typeCache.Lock()
	if len(typeCache.m) < typeCacheMaxEntries {
		typeCache.m[t.str] = t
	}
	typeCache.Unlock()
}

// ValidType reports whether typ is a single complete definite GVariant type
// string, such as "s", "a{sv}" or "(uuua(ayay))", nested at most 128 deep.
func ValidType(typ string) bool {
	_, err := lookupType(typ)
	return err == nil
}

// AlignOf returns the alignment in bytes (1, 2, 4 or 8) of the values of a
// valid type, or 0 when typ is not a valid type string.
func AlignOf(typ string) int {
	t, err := lookupType(typ)
	if err != nil {
		return 0
	}
	return t.align
}

// FixedSize returns the size in bytes of every value of a fixed-size type, or
// 0 when the type is variable-size or typ is not a valid type string.
func FixedSize(typ string) int {
	t, err := lookupType(typ)
	if err != nil {
		return 0
	}
	return t.fixed
}

// shortQuote quotes s for an error message, shortening long strings.
func shortQuote(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
