package gvariant

import (
	"errors"
	"strings"
	"unicode/utf8"
)

// checkString validates the contents of a GVariant string (without its NUL
// terminator): valid UTF-8 and no NUL byte.
func checkString(s string) error {
	if strings.IndexByte(s, 0) >= 0 {
		return errors.New("string contains a NUL byte")
	}
	if !utf8.ValidString(s) {
		return errors.New("string is not valid UTF-8")
	}
	return nil
}

// checkObjectPath validates a D-Bus object path, as GLib does for type 'o'.
func checkObjectPath(s string) error {
	if len(s) == 0 || s[0] != '/' {
		return errors.New("object path does not start with '/'")
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '_':
		case c == '/':
			if s[i-1] == '/' {
				return errors.New("object path has an empty element")
			}
		default:
			return errors.New("object path has an invalid character")
		}
	}
	if len(s) > 1 && s[len(s)-1] == '/' {
		return errors.New("object path ends with '/'")
	}
	return nil
}

// checkSignature validates a D-Bus signature, as GLib does for type 'g': zero
// or more complete types made only of D-Bus type characters.
func checkSignature(s string) error {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte("ybnqiuxthdvasog(){}", s[i]) < 0 {
			return errors.New("signature has an invalid character")
		}
	}
	p := typeParser{s: s}
	for p.pos < len(s) {
		if _, err := p.parseOne(maxDepth); err != nil {
			return errors.New("signature is not a sequence of complete types")
		}
	}
	return nil
}

// checkStringOf validates s as a value of the string-like type code c.
func checkStringOf(c byte, s string) error {
	if err := checkString(s); err != nil {
		return err
	}
	switch c {
	case 'o':
		return checkObjectPath(s)
	case 'g':
		return checkSignature(s)
	}
	return nil
}
