// Package gvariant encodes and decodes GVariant values in normal form, the
// serialization libostree uses for every metadata object (commits, dirtrees,
// dirmeta, file headers, summaries).
//
// Values are represented by plain Go values chosen by the GVariant type:
//
//	y uint8     b bool     n int16    q uint16   i int32   u uint32
//	x int64     t uint64   h int32    d float64
//	s, o, g     string
//	v           Variant
//	ay          []byte
//	as          []string
//	a{KV}       []DictEntry
//	aT (other)  []any, each element in the mapping of T
//	{KV}        DictEntry (a dictionary entry outside an array)
//	(T1...Tn)   []any of length n ("()" is []any{})
//	mT          nil for Nothing, otherwise the value of T
//
// Marshal accepts exactly these Go types and Unmarshal returns exactly these
// (empty arrays decode to empty, non-nil slices). Integers are written in
// little-endian order, the GVariant native order on the hosts ostree runs on;
// callers that store big-endian fields (as ostree does) swap them first.
//
// Unmarshal is strict: it accepts only the unique normal form that Marshal
// produces, so Marshal(Unmarshal(b)) == b whenever Unmarshal succeeds. The one
// value the mapping cannot express, Just(Nothing) of a nested maybe type such
// as "mmu", is rejected by Unmarshal and cannot be produced by Marshal.
package gvariant
