package rootfs

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
)

// escapePath writes p for a tmpfiles.d field: '%' doubled (specifiers),
// whitespace, quotes, backslashes and control bytes as \xHH (tmpfiles.d
// unescapes C escapes in every field).
func escapePath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '%':
			b.WriteString("%%")
		case c <= ' ' || c == '\\' || c == '"' || c == '\'' || c >= 0x7f:
			fmt.Fprintf(&b, "\\x%02x", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescapePath is escapePath's inverse for the escapes it writes (and
// plain fields).
func unescapePath(f string) string {
	f = strings.ReplaceAll(f, "%%", "%")
	if !strings.Contains(f, `\x`) {
		return f
	}
	var b strings.Builder
	for i := 0; i < len(f); i++ {
		if f[i] == '\\' && i+3 < len(f) && f[i+1] == 'x' {
			if v, err := strconv.ParseUint(f[i+2:i+4], 16, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(f[i])
	}
	return b.String()
}

func sortStrings(s []string) { sort.Strings(s) }
