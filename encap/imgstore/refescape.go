package imgstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// EscapeRef escapes s into a valid ostree ref component sequence the way
// ostree-ext's refescape does (spec §5.1): ASCII letters, digits and '-'
// pass; '_' becomes "__"; '/' passes only after an ASCII alphanumeric and
// when it is not the last character; every other character becomes _XX_
// with the uppercase hex of its Unicode scalar value. Empty strings, NUL and
// invalid UTF-8 are rejected.
func EscapeRef(s string) (string, error) {
	if s == "" {
		return "", errors.New("escape ref: empty string")
	}
	if !utf8.ValidString(s) {
		return "", errors.New("escape ref: invalid UTF-8")
	}
	var b strings.Builder
	var prev rune = -1
	for i, c := range s {
		switch {
		case c == 0:
			return "", errors.New("escape ref: NUL character")
		case isASCIIAlnum(c) || c == '-':
			b.WriteRune(c)
		case c == '_':
			b.WriteString("__")
		case c == '/' && prev >= 0 && isASCIIAlnum(prev) && i < len(s)-1:
			b.WriteRune(c)
		default:
			fmt.Fprintf(&b, "_%X_", c)
		}
		prev = c
	}
	return b.String(), nil
}

// UnescapeRef reverses EscapeRef. Like ostree-ext it also accepts
// lowercase hex in escapes.
func UnescapeRef(s string) (string, error) {
	if s == "" {
		return "", errors.New("unescape ref: empty string")
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		c := s[i]
		if c != '_' {
			b.WriteByte(c)
			i++
			continue
		}
		if i+1 < len(s) && s[i+1] == '_' {
			b.WriteByte('_')
			i += 2
			continue
		}
		end := strings.IndexByte(s[i+1:], '_')
		if end <= 0 {
			return "", fmt.Errorf("unescape ref %q: unterminated escape at offset %d", s, i)
		}
		hex := s[i+1 : i+1+end]
		v, err := strconv.ParseUint(hex, 16, 32)
		if err != nil || strings.ContainsAny(hex, "+-") {
			return "", fmt.Errorf("unescape ref %q: invalid escape %q", s, hex)
		}
		r := rune(v)
		if r == 0 || !utf8.ValidRune(r) {
			return "", fmt.Errorf("unescape ref %q: invalid character U+%X", s, v)
		}
		b.WriteRune(r)
		i += end + 2
	}
	return b.String(), nil
}

func isASCIIAlnum(c rune) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
