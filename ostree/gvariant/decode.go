package gvariant

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math"
)

// Unmarshal decodes data as a value of type typ. It accepts only GVariant
// normal form: exact sizes for fixed-size values, zero padding, booleans 0 or
// 1, NUL-terminated valid UTF-8 strings without embedded NUL, valid object
// paths and signatures, in-bounds non-decreasing framing offsets of the
// minimal width, no trailing bytes, variants holding one definite type, and
// nesting below 128. Errors name the problem and its byte offset in data.
//
// The result uses the Go mapping described in the package documentation and
// never aliases data.
func Unmarshal(typ string, data []byte) (any, error) {
	t, err := lookupType(typ)
	if err != nil {
		return nil, err
	}
	d := decoder{data: data}
	return d.decode(t, 0, len(data), 0)
}

// IsNormal reports whether data is the normal-form serialization of a value of
// type typ, that is, whether Unmarshal(typ, data) succeeds.
func IsNormal(typ string, data []byte) bool {
	_, err := Unmarshal(typ, data)
	return err == nil
}

type decoder struct {
	data  []byte
	elems int // array elements decoded so far (byte arrays aside)
}

// MaxElements bounds the array elements one Unmarshal decodes, byte arrays
// aside. An element can cost one byte of input (an empty array in an
// array) but some 50 bytes of memory once decoded: without a bound, 10 MiB
// of metadata would be half a GiB. The largest honest value, a dirtree of
// ostree-ext's 10 MiB limit, has under 300,000 entries.
const MaxElements = 1 << 20

// count adds n array elements to the decoder's budget.
func (d *decoder) count(t *typeInfo, off, n int) error {
	d.elems += n
	if d.elems > MaxElements {
		return d.errf(t, off, "more than %d array elements in a value of %d bytes", MaxElements, len(d.data))
	}
	return nil
}

func (d *decoder) errf(t *typeInfo, off int, format string, args ...any) error {
	return fmt.Errorf("gvariant: %s at offset %d (type %s)", fmt.Sprintf(format, args...), off, shortQuote(t.str))
}

// widthForSize is the framing offset width a reader uses for a container of
// the given total size.
func widthForSize(size int) int {
	s := uint64(size)
	switch {
	case s == 0:
		return 0
	case s <= math.MaxUint8:
		return 1
	case s <= math.MaxUint16:
		return 2
	case s <= math.MaxUint32:
		return 4
	}
	return 8
}

// readLE reads a w-byte little-endian framing offset at data[pos:].
func (d *decoder) readLE(pos, w int) uint64 {
	var v uint64
	for i := range w {
		v |= uint64(d.data[pos+i]) << (8 * i)
	}
	return v
}

// decode decodes data[start:end] as a value of type t at nesting depth depth.
func (d *decoder) decode(t *typeInfo, start, end, depth int) (any, error) {
	size := end - start
	if t.fixed > 0 && size != t.fixed {
		return nil, d.errf(t, start, "fixed-size value has %d bytes, want %d", size, t.fixed)
	}
	switch t.code {
	case 'a':
		return d.decodeArray(t, start, end, depth)
	case 'm':
		return d.decodeMaybe(t, start, end, depth)
	case '(':
		vals := make([]any, len(t.members))
		if err := d.decodeTuple(t, start, end, depth, vals); err != nil {
			return nil, err
		}
		return vals, nil
	case '{':
		var kv [2]any
		if err := d.decodeTuple(t, start, end, depth, kv[:]); err != nil {
			return nil, err
		}
		return DictEntry{Key: kv[0], Value: kv[1]}, nil
	case 'v':
		return d.decodeVariant(t, start, end, depth)
	}
	if depth >= maxDepth {
		return nil, d.errf(t, start, "value nested deeper than %d", maxDepth)
	}
	b := d.data[start:end]
	le := binary.LittleEndian
	switch t.code {
	case 'y':
		return b[0], nil
	case 'b':
		if b[0] > 1 {
			return nil, d.errf(t, start, "boolean byte is 0x%02x, not 0 or 1", b[0])
		}
		return b[0] == 1, nil
	case 'n':
		return int16(le.Uint16(b)), nil
	case 'q':
		return le.Uint16(b), nil
	case 'i', 'h':
		return int32(le.Uint32(b)), nil
	case 'u':
		return le.Uint32(b), nil
	case 'x':
		return int64(le.Uint64(b)), nil
	case 't':
		return le.Uint64(b), nil
	case 'd':
		return math.Float64frombits(le.Uint64(b)), nil
	case 's', 'o', 'g':
		if size == 0 || b[size-1] != 0 {
			return nil, d.errf(t, start, "string is not NUL-terminated")
		}
		s := string(b[:size-1])
		if err := checkStringOf(t.code, s); err != nil {
			return nil, d.errf(t, start, "%v", err)
		}
		return s, nil
	}
	return nil, d.errf(t, start, "internal error: unknown type code %q", t.code)
}

func (d *decoder) decodeMaybe(t *typeInfo, start, end, depth int) (any, error) {
	size := end - start
	if size == 0 {
		return nil, nil
	}
	el := t.elem
	var v any
	var err error
	if el.fixed > 0 {
		if size != el.fixed {
			return nil, d.errf(t, start, "maybe of fixed-size type has %d bytes, want 0 or %d", size, el.fixed)
		}
		v, err = d.decode(el, start, end, depth+1)
	} else {
		if d.data[end-1] != 0 {
			return nil, d.errf(t, end-1, "maybe value does not end with a zero byte")
		}
		v, err = d.decode(el, start, end-1, depth+1)
	}
	if err != nil {
		return nil, err
	}
	if v == nil {
		return nil, d.errf(t, start, "Just(Nothing) of a nested maybe type cannot be represented")
	}
	return v, nil
}

func (d *decoder) decodeVariant(t *typeInfo, start, end, depth int) (any, error) {
	b := d.data[start:end]
	sep := bytes.LastIndexByte(b, 0)
	if sep < 0 {
		return nil, d.errf(t, start, "variant has no zero byte before its type string")
	}
	ct, err := lookupTypeBytes(b[sep+1:])
	if err != nil {
		return nil, d.errf(t, start+sep+1, "variant type string is not one definite type: %v", err)
	}
	if depth+ct.depth >= maxDepth {
		return nil, d.errf(t, start, "variant of type %s nested deeper than %d", shortQuote(ct.str), maxDepth)
	}
	v, err := d.decode(ct, start, start+sep, depth+1)
	if err != nil {
		return nil, err
	}
	return Variant{Type: ct.str, Value: v}, nil
}

func (d *decoder) decodeArray(t *typeInfo, start, end, depth int) (any, error) {
	el := t.elem
	size := end - start
	if el.fixed > 0 {
		if size%el.fixed != 0 {
			return nil, d.errf(t, start, "array of %d bytes is not a multiple of the element size %d", size, el.fixed)
		}
		n := size / el.fixed
		if el.code == 'y' {
			if n > 0 && depth+1 >= maxDepth {
				return nil, d.errf(t, start, "value nested deeper than %d", maxDepth)
			}
			out := make([]byte, n)
			copy(out, d.data[start:end])
			return out, nil
		}
		if err := d.count(t, start, n); err != nil {
			return nil, err
		}
		if el.code == '{' {
			out := make([]DictEntry, n)
			for i := range out {
				p := start + i*el.fixed
				v, err := d.decode(el, p, p+el.fixed, depth+1)
				if err != nil {
					return nil, err
				}
				out[i] = v.(DictEntry)
			}
			return out, nil
		}
		out := make([]any, n)
		for i := range out {
			p := start + i*el.fixed
			v, err := d.decode(el, p, p+el.fixed, depth+1)
			if err != nil {
				return nil, err
			}
			out[i] = v
		}
		return out, nil
	}

	// Variable-size elements: body, then one framing offset per element.
	var n, w int
	if size > 0 {
		w = widthForSize(size)
		lastEnd := d.readLE(end-w, w)
		if lastEnd > uint64(size) {
			return nil, d.errf(t, end-w, "last framing offset %d is past the array end %d", lastEnd, size)
		}
		table := size - int(lastEnd)
		if table%w != 0 {
			return nil, d.errf(t, start+int(lastEnd), "framing offset table of %d bytes is not a multiple of the offset width %d", table, w)
		}
		n = table / w
		if n == 0 {
			return nil, d.errf(t, start, "non-empty array has no elements")
		}
		if frameWidth(int(lastEnd), n) != w {
			return nil, d.errf(t, start+int(lastEnd), "framing offsets are %d bytes wide, not the minimal width", w)
		}
	}
	if err := d.count(t, start, n); err != nil {
		return nil, err
	}
	var strs []string
	var des []DictEntry
	var anys []any
	switch el.code {
	case 's':
		strs = make([]string, n)
	case '{':
		des = make([]DictEntry, n)
	default:
		anys = make([]any, n)
	}
	tableStart := end - n*w
	off := 0
	bodyEnd := tableStart - start
	for i := range n {
		pos := tableStart + i*w
		e := d.readLE(pos, w)
		if e < uint64(off) || e > uint64(bodyEnd) {
			return nil, d.errf(t, pos, "framing offset %d of element %d is out of order or out of bounds", e, i)
		}
		elemEnd := int(e)
		for off&(el.align-1) != 0 {
			if off >= elemEnd {
				return nil, d.errf(t, start+off, "element %d does not leave room for its alignment padding", i)
			}
			if d.data[start+off] != 0 {
				return nil, d.errf(t, start+off, "non-zero padding byte 0x%02x", d.data[start+off])
			}
			off++
		}
		v, err := d.decode(el, start+off, start+elemEnd, depth+1)
		if err != nil {
			return nil, err
		}
		switch {
		case strs != nil:
			strs[i] = v.(string)
		case des != nil:
			des[i] = v.(DictEntry)
		default:
			anys[i] = v
		}
		off = elemEnd
	}
	switch el.code {
	case 's':
		return strs, nil
	case '{':
		return des, nil
	}
	return anys, nil
}

// decodeTuple decodes a tuple or dictionary entry into vals, which has one
// slot per member.
func (d *decoder) decodeTuple(t *typeInfo, start, end, depth int, vals []any) error {
	size := end - start
	w := widthForSize(size)
	if t.nOffsets > 0 && size == 0 {
		return d.errf(t, start, "empty data for a tuple that needs %d framing offsets", t.nOffsets)
	}
	ptr := size // start of the framing offset table, relative to start
	off := 0
	for i, m := range t.members {
		for off&(m.align-1) != 0 {
			if off >= ptr {
				return d.errf(t, start+off, "member %d starts past the end of the tuple body", i)
			}
			if d.data[start+off] != 0 {
				return d.errf(t, start+off, "non-zero padding byte 0x%02x", d.data[start+off])
			}
			off++
		}
		var mEnd int
		switch {
		case m.fixed > 0:
			mEnd = off + m.fixed
			if mEnd > ptr {
				return d.errf(t, start+off, "member %d (%d bytes) runs past the tuple body", i, m.fixed)
			}
		case i == len(t.members)-1:
			if off > ptr {
				return d.errf(t, start+off, "last member starts past the tuple body")
			}
			mEnd = ptr
		default:
			if ptr < w+off {
				return d.errf(t, start, "framing offset table overlaps member %d", i)
			}
			ptr -= w
			e := d.readLE(start+ptr, w)
			if e < uint64(off) || e > uint64(ptr) {
				return d.errf(t, start+ptr, "framing offset %d of member %d is out of order or out of bounds", e, i)
			}
			mEnd = int(e)
		}
		v, err := d.decode(m, start+off, start+mEnd, depth+1)
		if err != nil {
			return err
		}
		vals[i] = v
		off = mEnd
	}
	if t.fixed > 0 {
		// size == t.fixed was checked by decode; check the trailing padding.
		if len(t.members) == 0 {
			if d.data[start] != 0 {
				return d.errf(t, start, "unit tuple byte is 0x%02x, not 0", d.data[start])
			}
			off = 1
		}
		for ; off < size; off++ {
			if d.data[start+off] != 0 {
				return d.errf(t, start+off, "non-zero padding byte 0x%02x", d.data[start+off])
			}
		}
	}
	if off != ptr {
		return d.errf(t, start+off, "%d unexpected bytes after the last member", ptr-off)
	}
	if t.nOffsets > 0 && frameWidth(ptr, t.nOffsets) != w {
		return d.errf(t, start+ptr, "framing offsets are %d bytes wide, not the minimal width", w)
	}
	return nil
}
