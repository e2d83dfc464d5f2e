package blob

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"

	"github.com/ocitree/ocitree/oci"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Limits bound the uncompressed stream of a layer, against decompression bombs. A
// layer over its limit is refused with an error wrapping ErrLayerTooLarge that names
// the layer digest and the limit.
type Limits struct {
	// MaxLayerUncompressed bounds the uncompressed size of any layer.
	MaxLayerUncompressed int64
	// MaxCompressionRatio bounds the uncompressed size of a compressed layer blob of
	// known size to this multiple of the blob size (gzip cannot do better than about
	// 1030:1), but that bound never goes below RatioFloor, so a small layer with a
	// large zero-filled file still passes. 0 turns the ratio bound off.
	MaxCompressionRatio int64
	// RatioFloor is the smallest bound MaxCompressionRatio gives.
	RatioFloor int64
}

// DefaultLimits are the limits of a fetch whose options set none: 64 GiB, and
// 1000 times the compressed size but never under 1 GiB.
func DefaultLimits() Limits {
	return Limits{MaxLayerUncompressed: 64 << 30, MaxCompressionRatio: 1000, RatioFloor: 1 << 30}
}

// ErrLayerTooLarge: a layer's uncompressed stream exceeds its limit.
var ErrLayerTooLarge = errors.New("layer exceeds the uncompressed size limit")

// layerLimit returns the uncompressed size limit of the layer desc and how it was
// derived.
func (l Limits) layerLimit(desc oci.Descriptor) (int64, string) {
	limit, how := l.MaxLayerUncompressed, "MaxLayerUncompressed"
	compressed := desc.MediaType != v1.MediaTypeImageLayer && desc.MediaType != "application/vnd.docker.image.rootfs.diff.tar"
	if compressed && desc.Size > 0 && l.MaxCompressionRatio > 0 {
		r := int64(math.MaxInt64)
		if desc.Size <= math.MaxInt64/l.MaxCompressionRatio {
			r = max(desc.Size*l.MaxCompressionRatio, l.RatioFloor)
		}
		if r < limit {
			limit, how = r, fmt.Sprintf("%d× its compressed size of %d bytes", l.MaxCompressionRatio, desc.Size)
		}
	}
	return limit, how
}

// limitLayer wraps r, the uncompressed stream of the layer desc: a Read fails with
// ErrLayerTooLarge once the stream passes the layer's limit under l, or as soon as a tar
// header declares an entry whose data would end beyond it (so a bomb is refused
// before its content is written anywhere).
func limitLayer(r io.Reader, desc oci.Descriptor, l Limits) io.Reader {
	limit, how := l.layerLimit(desc)
	return &limitReader{r: r, desc: desc, limit: limit, how: how, sniff: true, paxSize: -1}
}

type limitReader struct {
	r     io.Reader
	desc  oci.Descriptor
	limit int64
	how   string
	n     int64 // bytes passed on
	err   error // sticky

	// Tar header scanning, the way archive/tar reads the stream. On anything it does
	// not follow (bad checksum, sparse files, huge PAX headers) it stops scanning and
	// leaves the layer to the byte count.
	sniff     bool
	next      int64 // stream offset of the next header
	hdr       [512]byte
	hn        int    // bytes of hdr filled
	pax       []byte // content of a PAX 'x' header being collected
	paxLeft   int64  // bytes of it still to come
	paxSize   int64  // "size" of the pending PAX records, -1 if none
	paxSparse bool   // the pending PAX records describe a sparse file
}

// maxPAXScan bounds the PAX header content the scanner collects.
const maxPAXScan = 1 << 20

func (l *limitReader) tooLarge(what string) error {
	return fmt.Errorf("layer %s: %s exceeds the limit of %d uncompressed bytes (%s): %w", l.desc.Digest, what, l.limit, l.how, ErrLayerTooLarge)
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.err != nil {
		return 0, l.err
	}
	n, err := l.r.Read(p)
	if n > 0 {
		if int64(n) > l.limit-l.n {
			l.err = l.tooLarge("uncompressed stream")
			return 0, l.err
		}
		if l.sniff {
			if e := l.scan(p[:n]); e != nil {
				l.err = e
				return 0, e
			}
		}
		l.n += int64(n)
	}
	return n, err
}

// scan follows the tar structure through b, which starts at stream offset l.n.
func (l *limitReader) scan(b []byte) error {
	off := l.n
	for len(b) > 0 && l.sniff {
		if off < l.next { // entry data and padding
			skip := int(min(l.next-off, int64(len(b))))
			if l.paxLeft > 0 {
				c := int(min(l.paxLeft, int64(skip)))
				l.pax = append(l.pax, b[:c]...)
				l.paxLeft -= int64(c)
				if l.paxLeft == 0 {
					l.parsePAX()
				}
			}
			b, off = b[skip:], off+int64(skip)
			continue
		}
		c := copy(l.hdr[l.hn:], b)
		l.hn += c
		b, off = b[c:], off+int64(c)
		if l.hn < len(l.hdr) {
			break
		}
		l.hn = 0
		if err := l.header(off); err != nil {
			return err
		}
	}
	return nil
}

// header handles the complete header in l.hdr, which ends at stream offset end.
func (l *limitReader) header(end int64) error {
	h := l.hdr[:]
	if !tarChecksumOK(h) { // the end-of-archive zero block too
		l.sniff = false
		return nil
	}
	size, ok := tarNumber(h[124:136])
	if !ok || size < 0 {
		l.sniff = false
		return nil
	}
	typ := h[156]
	switch typ {
	case 'x', 'g', 'L', 'K': // meta entries: their own size
		if typ == 'g' {
			l.paxSize, l.paxSparse = -1, false
		}
	case 'S':
		l.sniff = false
		return nil
	default:
		if l.paxSparse {
			l.sniff = false
			return nil
		}
		if l.paxSize >= 0 {
			size = l.paxSize
		}
		l.paxSize = -1
		switch typ {
		case '1', '2', '3', '4', '5', '6': // archive/tar reads no data for these
			size = 0
		}
	}
	if size > l.limit-end {
		name := string(h[:100])
		if i := bytes.IndexByte(h[:100], 0); i >= 0 {
			name = name[:i]
		}
		return l.tooLarge(fmt.Sprintf("tar entry %q declaring %d bytes at offset %d", name, size, end))
	}
	next := end + size
	if next > math.MaxInt64-511 {
		l.sniff = false
		return nil
	}
	l.next = (next + 511) &^ 511
	if typ == 'x' && size > 0 {
		if size > maxPAXScan {
			l.sniff = false
			return nil
		}
		l.pax, l.paxLeft = l.pax[:0], size
	}
	return nil
}

// parsePAX reads the "size" and GNU.sparse records of the collected PAX content.
func (l *limitReader) parsePAX() {
	b := l.pax
	for len(b) > 0 {
		sp := bytes.IndexByte(b, ' ')
		if sp <= 0 {
			l.sniff = false
			return
		}
		n, err := strconv.Atoi(string(b[:sp]))
		if err != nil || n <= sp+1 || n > len(b) || b[n-1] != '\n' {
			l.sniff = false
			return
		}
		kv := b[sp+1 : n-1]
		b = b[n:]
		k, v, ok := bytes.Cut(kv, []byte("="))
		if !ok {
			l.sniff = false
			return
		}
		switch {
		case string(k) == "size":
			s, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil || s < 0 {
				l.sniff = false
				return
			}
			l.paxSize = s
		case bytes.HasPrefix(k, []byte("GNU.sparse.")):
			l.paxSparse = true
		}
	}
}

// tarChecksumOK checks a header's checksum, signed or unsigned, as archive/tar does.
func tarChecksumOK(h []byte) bool {
	want, ok := tarNumber(h[148:156])
	if !ok {
		return false
	}
	var unsigned, signed int64
	for i, c := range h {
		if i >= 148 && i < 156 {
			c = ' '
		}
		unsigned += int64(c)
		signed += int64(int8(c))
	}
	return want == unsigned || want == signed
}

// tarNumber parses a numeric header field: octal, or base-256 (GNU) when the high
// bit of the first byte is set. Negative base-256 numbers are not ok; too large ones
// give math.MaxInt64.
func tarNumber(f []byte) (int64, bool) {
	if len(f) > 0 && f[0]&0x80 != 0 {
		if f[0]&0x40 != 0 {
			return 0, false
		}
		v := int64(f[0] & 0x3f)
		for _, c := range f[1:] {
			if v > math.MaxInt64>>8 {
				return math.MaxInt64, true
			}
			v = v<<8 | int64(c)
		}
		return v, true
	}
	f = bytes.Trim(f, " \x00")
	if len(f) == 0 {
		return 0, true
	}
	v, err := strconv.ParseInt(string(f), 8, 64)
	if err != nil {
		return 0, false
	}
	return v, true
}
