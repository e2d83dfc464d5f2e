package gvariant

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Marshal serializes v as a value of type typ in GVariant normal form. v must
// use exactly the Go mapping described in the package documentation; a wrong
// Go type, a tuple of the wrong length, a string with a NUL byte or invalid
// UTF-8, an invalid object path or signature, or a Variant with an invalid
// type string is an error.
func Marshal(typ string, v any) ([]byte, error) {
	t, err := lookupType(typ)
	if err != nil {
		return nil, err
	}
	e := encoder{buf: make([]byte, 0, 128)}
	if err := e.encode(t, v, 0); err != nil {
		return nil, err
	}
	return e.buf, nil
}

type encoder struct {
	buf  []byte
	ends []int // stack of pending framing offsets, shared by nested containers
}

// pad appends zero bytes up to a multiple of align. The top-level value starts
// at offset 0 of buf and every container starts at a multiple of its own
// alignment, so aligning on the absolute offset is aligning relative to the
// parent, as GVariant requires.
func (e *encoder) pad(align int) {
	for len(e.buf)&(align-1) != 0 {
		e.buf = append(e.buf, 0)
	}
}

func mismatch(t *typeInfo, v any) error {
	return fmt.Errorf("gvariant: cannot marshal Go value of type %T as GVariant type %s", v, shortQuote(t.str))
}

func (e *encoder) encode(t *typeInfo, v any, depth int) error {
	switch t.code {
	case 'a':
		return e.encodeArray(t, v, depth)
	case 'm':
		if v == nil {
			return nil
		}
		if err := e.encode(t.elem, v, depth+1); err != nil {
			return err
		}
		if t.elem.fixed == 0 {
			e.buf = append(e.buf, 0)
		}
		return nil
	case '(':
		vals, ok := v.([]any)
		if !ok {
			return mismatch(t, v)
		}
		if len(vals) != len(t.members) {
			return fmt.Errorf("gvariant: tuple %s needs %d members, got %d", shortQuote(t.str), len(t.members), len(vals))
		}
		return e.encodeTuple(t, vals, nil, depth)
	case '{':
		de, ok := v.(DictEntry)
		if !ok {
			return mismatch(t, v)
		}
		return e.encodeTuple(t, nil, &de, depth)
	case 'v':
		vv, ok := v.(Variant)
		if !ok {
			return mismatch(t, v)
		}
		ct, err := lookupType(vv.Type)
		if err != nil {
			return err
		}
		if depth+ct.depth >= maxDepth {
			return fmt.Errorf("gvariant: variant of type %s nested deeper than %d", shortQuote(ct.str), maxDepth)
		}
		// The variant starts 8-aligned, so its child needs no padding.
		if err := e.encode(ct, vv.Value, depth+1); err != nil {
			return err
		}
		e.buf = append(e.buf, 0)
		e.buf = append(e.buf, ct.str...)
		return nil
	}
	if depth >= maxDepth {
		return fmt.Errorf("gvariant: value nested deeper than %d", maxDepth)
	}
	return e.encodeBasic(t, v)
}

func (e *encoder) encodeBasic(t *typeInfo, v any) error {
	le := binary.LittleEndian
	switch t.code {
	case 'y':
		x, ok := v.(uint8)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = append(e.buf, x)
	case 'b':
		x, ok := v.(bool)
		if !ok {
			return mismatch(t, v)
		}
		if x {
			e.buf = append(e.buf, 1)
		} else {
			e.buf = append(e.buf, 0)
		}
	case 'n':
		x, ok := v.(int16)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = le.AppendUint16(e.buf, uint16(x))
	case 'q':
		x, ok := v.(uint16)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = le.AppendUint16(e.buf, x)
	case 'i', 'h':
		x, ok := v.(int32)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = le.AppendUint32(e.buf, uint32(x))
	case 'u':
		x, ok := v.(uint32)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = le.AppendUint32(e.buf, x)
	case 'x':
		x, ok := v.(int64)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = le.AppendUint64(e.buf, uint64(x))
	case 't':
		x, ok := v.(uint64)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = le.AppendUint64(e.buf, x)
	case 'd':
		x, ok := v.(float64)
		if !ok {
			return mismatch(t, v)
		}
		e.buf = le.AppendUint64(e.buf, math.Float64bits(x))
	case 's', 'o', 'g':
		x, ok := v.(string)
		if !ok {
			return mismatch(t, v)
		}
		if err := checkStringOf(t.code, x); err != nil {
			return fmt.Errorf("gvariant: cannot marshal %s as type %s: %v", shortQuote(x), shortQuote(t.str), err)
		}
		e.buf = append(e.buf, x...)
		e.buf = append(e.buf, 0)
	default:
		return fmt.Errorf("gvariant: internal error: unknown type code %q", t.code)
	}
	return nil
}

func (e *encoder) encodeArray(t *typeInfo, v any, depth int) error {
	el := t.elem
	switch el.code {
	case 'y':
		b, ok := v.([]byte)
		if !ok {
			return mismatch(t, v)
		}
		if depth+1 >= maxDepth && len(b) > 0 {
			return fmt.Errorf("gvariant: value nested deeper than %d", maxDepth)
		}
		e.buf = append(e.buf, b...)
		return nil
	case 's':
		ss, ok := v.([]string)
		if !ok {
			return mismatch(t, v)
		}
		start, base := len(e.buf), len(e.ends)
		if depth+1 >= maxDepth && len(ss) > 0 {
			return fmt.Errorf("gvariant: value nested deeper than %d", maxDepth)
		}
		for _, s := range ss {
			if err := checkString(s); err != nil {
				return fmt.Errorf("gvariant: cannot marshal %s as type \"s\": %v", shortQuote(s), err)
			}
			e.buf = append(e.buf, s...)
			e.buf = append(e.buf, 0)
			e.ends = append(e.ends, len(e.buf)-start)
		}
		e.finishOffsets(start, base, false)
		return nil
	case '{':
		des, ok := v.([]DictEntry)
		if !ok {
			return mismatch(t, v)
		}
		start, base := len(e.buf), len(e.ends)
		for i := range des {
			e.pad(el.align)
			if err := e.encodeTuple(el, nil, &des[i], depth+1); err != nil {
				return err
			}
			if el.fixed == 0 {
				e.ends = append(e.ends, len(e.buf)-start)
			}
		}
		if el.fixed == 0 {
			e.finishOffsets(start, base, false)
		}
		return nil
	}
	vals, ok := v.([]any)
	if !ok {
		return mismatch(t, v)
	}
	start, base := len(e.buf), len(e.ends)
	for _, x := range vals {
		// Fixed-size elements have a size that is a multiple of their
		// alignment, so padding only ever happens for variable-size ones.
		e.pad(el.align)
		if err := e.encode(el, x, depth+1); err != nil {
			return err
		}
		if el.fixed == 0 {
			e.ends = append(e.ends, len(e.buf)-start)
		}
	}
	if el.fixed == 0 {
		e.finishOffsets(start, base, false)
	}
	return nil
}

// encodeTuple writes a tuple (vals) or a dictionary entry (de).
func (e *encoder) encodeTuple(t *typeInfo, vals []any, de *DictEntry, depth int) error {
	start, base := len(e.buf), len(e.ends)
	for i, m := range t.members {
		var x any
		if de != nil {
			if i == 0 {
				x = de.Key
			} else {
				x = de.Value
			}
		} else {
			x = vals[i]
		}
		e.pad(m.align)
		if err := e.encode(m, x, depth+1); err != nil {
			return err
		}
		if m.fixed == 0 && i != len(t.members)-1 {
			e.ends = append(e.ends, len(e.buf)-start)
		}
	}
	if t.fixed > 0 {
		if len(t.members) == 0 {
			e.buf = append(e.buf, 0)
		}
		for len(e.buf)-start < t.fixed {
			e.buf = append(e.buf, 0)
		}
		return nil
	}
	e.finishOffsets(start, base, true)
	return nil
}

// finishOffsets appends the framing offsets e.ends[base:] of the container
// that starts at start, in reverse order for tuples, and pops them.
func (e *encoder) finishOffsets(start, base int, reverse bool) {
	ends := e.ends[base:]
	n := len(ends)
	if n == 0 {
		return
	}
	w := frameWidth(len(e.buf)-start, n)
	for i := range n {
		j := i
		if reverse {
			j = n - 1 - i
		}
		e.buf = appendLE(e.buf, uint64(ends[j]), w)
	}
	e.ends = e.ends[:base]
}

// frameWidth is GLib's choice of framing offset width for a container with a
// body of the given size and n offsets: the smallest w in {1,2,4,8} with
// body + w*n <= 2^(8w)-1.
func frameWidth(body, n int) int {
	b, c := uint64(body), uint64(n)
	switch {
	case n == 0:
		return 0
	case b+c <= math.MaxUint8:
		return 1
	case b+2*c <= math.MaxUint16:
		return 2
	case b+4*c <= math.MaxUint32:
		return 4
	}
	return 8
}

func appendLE(buf []byte, v uint64, w int) []byte {
	for i := range w {
		buf = append(buf, byte(v>>(8*i)))
	}
	return buf
}
