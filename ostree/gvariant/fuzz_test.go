package gvariant

import (
	"bytes"
	"encoding/json"
	"os"
	"testing"
)

// fuzzTypes are the types FuzzRoundTrip decodes arbitrary bytes as: ostree's
// object types first, then a few generic ones that reach the other code paths
// (maybe, fixed-size tuples, object paths, signatures, nested variants).
var fuzzTypes = []string{
	"(a{sv}aya(say)sstayay)",
	"(a(say)a(sayay))",
	"(uuua(ayay))",
	"(uuuusa(ayay))",
	"(tuuuusa(ayay))",
	"a{sv}",
	"a(ayay)",
	"(a(s(taya{sv}))a{sv})",
	"v",
	"av",
	"aav",
	"m(sv)",
	"amy",
	"mmu",
	"(yqd)",
	"a(yt)",
	"a{ys}",
	"ao",
	"(gv)",
	"(asas)",
	"a()",
}

func fuzzTypeIndex(typ string) (uint8, bool) {
	for i, t := range fuzzTypes {
		if t == typ {
			return uint8(i), true
		}
	}
	return 0, false
}

func FuzzRoundTrip(f *testing.F) {
	// Seeds: every GVariant in the shared vectors (when present), and the
	// hand-made encodings of the unit tests whose type is fuzzed.
	if raw, err := os.ReadFile(vectorsPath); err == nil {
		var doc struct {
			Vectors []testVector `json:"vectors"`
		}
		if err := json.Unmarshal(raw, &doc); err != nil {
			f.Fatal(err)
		}
		for _, v := range doc.Vectors {
			typ, data, ok := v.variantBytes(f)
			if !ok {
				continue
			}
			i, ok := fuzzTypeIndex(typ)
			if !ok {
				f.Fatalf("vector type %q is not fuzzed", typ)
			}
			f.Add(i, data)
			// Also seed the commit metadata dictionaries on their own.
			if v.Kind == "commit" {
				if dec, err := Unmarshal(typ, data); err == nil {
					if md, err := Marshal("a{sv}", dec.([]any)[0]); err == nil {
						f.Add(uint8(5), md)
					}
				}
			}
		}
	}
	for _, tc := range knownEncodings {
		if i, ok := fuzzTypeIndex(tc.typ); ok {
			f.Add(i, tc.data)
		}
	}
	extra := []struct {
		typ   string
		value any
	}{
		{"(gv)", []any{"a{sv}", Variant{"u", uint32(7)}}},
		{"ao", []any{"/", "/org/x"}},
		{"(yqd)", []any{uint8(1), uint16(2), 0.5}},
		{"a(yt)", []any{[]any{uint8(1), uint64(2)}}},
		{"a{ys}", []DictEntry{{uint8(1), "x"}}},
		{"m(sv)", []any{"k", Variant{"as", []string{"a", "b"}}}},
		{"aav", []any{[]any{Variant{"v", Variant{"y", uint8(1)}}}, []any{}}},
		{"mmu", uint32(3)},
		{"a()", []any{[]any{}, []any{}}},
	}
	for _, e := range extra {
		data, err := Marshal(e.typ, e.value)
		if err != nil {
			f.Fatalf("seed %q: %v", e.typ, err)
		}
		i, _ := fuzzTypeIndex(e.typ)
		f.Add(i, data)
	}

	f.Fuzz(func(t *testing.T, sel uint8, data []byte) {
		typ := fuzzTypes[int(sel)%len(fuzzTypes)]
		v, err := Unmarshal(typ, data)
		if err != nil {
			if IsNormal(typ, data) {
				t.Fatalf("IsNormal true but Unmarshal failed: %v", err)
			}
			return
		}
		out, err := Marshal(typ, v)
		if err != nil {
			t.Fatalf("Marshal(%q) of decoded %x: %v", typ, data, err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("normal form not unique for %q:\n  in %x\n out %x", typ, data, out)
		}
		again, err := Unmarshal(typ, out)
		if err != nil {
			t.Fatalf("re-Unmarshal(%q, %x): %v", typ, out, err)
		}
		if !valuesEqual(again, v) {
			t.Fatalf("re-Unmarshal(%q) differs: %#v vs %#v", typ, again, v)
		}
	})
}
