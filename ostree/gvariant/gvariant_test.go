package gvariant

import (
	"bytes"
	"encoding/hex"
	"math"
	"reflect"
	"strings"
	"testing"
)

func h(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

// Known encodings: the examples of the GVariant specification plus edge cases
// worked out by hand from the framing rules.
var knownEncodings = []struct {
	name  string
	typ   string
	value any
	data  []byte
}{
	{"string", "s", "hello world", []byte("hello world\x00")},
	{"empty string", "s", "", h("00")},
	{"maybe string just", "ms", "hello world", []byte("hello world\x00\x00")},
	{"maybe string nothing", "ms", nil, []byte{}},
	{"maybe empty string", "ms", "", h("00 00")},
	{"maybe fixed just", "mu", uint32(7), h("07000000")},
	{"maybe fixed nothing", "mu", nil, []byte{}},
	{"maybe empty array", "mas", []string{}, h("00")},
	{"maybe unit", "m()", []any{}, h("00")},
	{"maybe tuple", "m(ss)", []any{"a", "b"}, h("6100 6200 02 00")},
	{"array of maybe", "amy", []any{uint8(1), nil, uint8(3)}, h("01 03 01 01 02")},
	{"array of bool", "ab", []any{true, false, true}, h("01 00 01")},
	{"tuple si", "(si)", []any{"foo", int32(-1)}, h("666f6f00 ffffffff 04")},
	{"array of tuples", "a(si)", []any{[]any{"foo", int32(-1)}, []any{"bar", int32(-1)}},
		h("666f6f00ffffffff04 000000 626172 00ffffffff04 09 15")},
	{"array of strings", "as", []string{"i", "can", "has", "strings?"},
		h("6900 63616e00 68617300 737472696e67733f00 02 06 0a 13")},
	{"unit", "()", []any{}, h("00")},
	{"nested units", "((()))", []any{[]any{[]any{}}}, h("00")},
	{"unit after byte", "(y())", []any{uint8(5), []any{}}, h("05 00")},
	{"fixed tuple padded", "(uy)", []any{uint32(1), uint8(2)}, h("01000000 02 000000")},
	{"fixed tuple inner padding", "(yu)", []any{uint8(2), uint32(1)}, h("02 000000 01000000")},
	{"fixed tuple 8", "(yt)", []any{uint8(1), uint64(2)}, h("01 00000000000000 0200000000000000")},
	{"empty string array", "as", []string{}, []byte{}},
	{"empty byte array", "ay", []byte{}, []byte{}},
	{"empty dict", "a{sv}", []DictEntry{}, []byte{}},
	{"empty fixed array", "au", []any{}, []byte{}},
	{"tuple of one empty array", "(as)", []any{[]string{}}, []byte{}},
	{"tuple of two empty arrays", "(asas)", []any{[]string{}, []string{}}, h("00")},
	{"empty dirtree", "(a(say)a(sayay))", []any{[]any{}, []any{}}, h("00")},
	{"array of empty strings", "as", []string{"", ""}, h("00 00 01 02")},
	{"array of empty arrays", "aas", []any{[]string{}, []string{}}, h("00 00")},
	{"fixed array of fixed tuples", "a(yu)", []any{[]any{uint8(1), uint32(2)}},
		h("01 000000 02000000")},
	{"array of variants", "av", []any{Variant{"s", "a"}, Variant{"ay", []byte{}}},
		h("6100 00 73 00000000 00 6179 04 0b")},
	{"variant string", "v", Variant{"s", "x"}, h("7800 00 73")},
	{"variant unit", "v", Variant{"()", []any{}}, h("00 00 2829")},
	{"variant fixed", "v", Variant{"u", uint32(5)}, h("05000000 00 75")},
	{"nested variants", "v", Variant{"v", Variant{"v", Variant{"s", "x"}}},
		h("7800 00 73 00 76 00 76")},
	{"variant in tuple", "(yv)", []any{uint8(1), Variant{"t", uint64(1)}},
		h("01 00000000000000 0100000000000000 00 74")},
	{"dict entry", "{sv}", DictEntry{"k", Variant{"b", true}}, h("6b00 000000000000 01 00 62 02")},
	{"dict of fixed entries", "a{yy}", []DictEntry{{uint8(1), uint8(2)}, {uint8(3), uint8(4)}}, h("0102 0304")},
	{"integers", "(ynqiuxtdh)", []any{uint8(1), int16(-2), uint16(3), int32(-4), uint32(5), int64(-6), uint64(7), 1.5, int32(8)},
		h("01 00 feff 0300 0000 fcffffff 05000000 faffffffffffffff 0700000000000000 000000000000f83f 08000000 00000000")},
	{"object path", "o", "/org/example_1/x", []byte("/org/example_1/x\x00")},
	{"root object path", "o", "/", []byte("/\x00")},
	{"signature", "g", "a{sv}(ii)", []byte("a{sv}(ii)\x00")},
	{"empty signature", "g", "", h("00")},
	{"utf8 string", "s", "é€😀", []byte("é€😀\x00")},
}

// str is a serialized string: n copies of c and a NUL.
func str(c string, n int) []byte {
	return append([]byte(strings.Repeat(c, n)), 0)
}

func cat(parts ...[]byte) []byte {
	return bytes.Join(parts, nil)
}

func TestKnownEncodings(t *testing.T) {
	for _, tc := range knownEncodings {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Marshal(tc.typ, tc.value)
			if err != nil {
				t.Fatalf("Marshal(%q): %v", tc.typ, err)
			}
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("Marshal(%q)\n got %x\nwant %x", tc.typ, got, tc.data)
			}
			back, err := Unmarshal(tc.typ, tc.data)
			if err != nil {
				t.Fatalf("Unmarshal(%q, %x): %v", tc.typ, tc.data, err)
			}
			if !valuesEqual(back, tc.value) {
				t.Fatalf("Unmarshal(%q) = %#v, want %#v", tc.typ, back, tc.value)
			}
		})
	}
}

// TestOffsetWidths builds arrays and tuples around the 1/2/4-byte framing
// offset boundaries and checks the width and the round trip.
func TestOffsetWidths(t *testing.T) {
	tests := []struct {
		name   string
		strLen []int // lengths of the strings (without NUL) in an "as"
		size   int   // expected total size
		width  int   // expected offset width
	}{
		{"one string, total 255", []int{253}, 255, 1},
		{"one string, body 255", []int{254}, 257, 2},
		{"three strings, body 252", []int{83, 83, 83}, 255, 1},
		{"three strings, body 253", []int{83, 83, 84}, 259, 2},
		{"many strings > 255 bytes", repeat(9, 40), 480, 2},
		{"total 65535", []int{65532}, 65535, 2},
		{"body 65534, offset would not fit in 2 bytes", []int{65533}, 65538, 4},
		{"many strings > 65535 bytes", repeat(99, 1000), 100000 + 4000, 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var ss []string
			for i, n := range tc.strLen {
				ss = append(ss, strings.Repeat(string(rune('a'+i%26)), n))
			}
			data, err := Marshal("as", ss)
			if err != nil {
				t.Fatal(err)
			}
			if len(data) != tc.size {
				t.Fatalf("size %d, want %d", len(data), tc.size)
			}
			// The last offset is the end of the last string.
			w := tc.width
			var last uint64
			for i := range w {
				last |= uint64(data[len(data)-w+i]) << (8 * i)
			}
			if int(last) != len(data)-w*len(ss) {
				t.Fatalf("last offset %d with width %d, want %d", last, w, len(data)-w*len(ss))
			}
			back, err := Unmarshal("as", data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, ss) {
				t.Fatal("round trip changed the value")
			}
			// The same value in a tuple with a variable non-last member.
			tup := []any{ss, "z"}
			data, err = Marshal("(ass)", tup)
			if err != nil {
				t.Fatal(err)
			}
			back, err = Unmarshal("(ass)", data)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back, tup) {
				t.Fatal("tuple round trip changed the value")
			}
		})
	}
}

func repeat(n, count int) []int {
	out := make([]int, count)
	for i := range out {
		out[i] = n
	}
	return out
}

func TestDeepDirtree2ByteOffsets(t *testing.T) {
	// A dirtree with enough entries that the tuple and the array need 2-byte
	// offsets while each element keeps 1-byte ones.
	csum := bytes.Repeat([]byte{0xab}, 32)
	files := []any{}
	for i := range 20 {
		files = append(files, []any{"file" + string(rune('a'+i)), csum})
	}
	v := []any{files, []any{[]any{"d", csum, csum}}}
	data, err := Marshal("(a(say)a(sayay))", v)
	if err != nil {
		t.Fatal(err)
	}
	back, err := Unmarshal("(a(say)a(sayay))", data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, v) {
		t.Fatal("round trip changed the value")
	}
}

func TestDepthLimit(t *testing.T) {
	// 127 nested variants around a string are fine at top level only while
	// depth + type depth < 128.
	nest := func(n int) Variant {
		v := Variant{"s", "x"}
		for range n {
			v = Variant{"v", v}
		}
		return v
	}
	ok := nest(126) // outermost variant at depth 0 ... innermost "s" at depth 127
	data, err := Marshal("v", ok)
	if err != nil {
		t.Fatalf("Marshal of 127 variants: %v", err)
	}
	if _, err := Unmarshal("v", data); err != nil {
		t.Fatalf("Unmarshal of 127 variants: %v", err)
	}
	if _, err := Marshal("v", nest(127)); err == nil {
		t.Fatal("Marshal of 128 nested variants succeeded")
	}
	// Build 128 levels by hand and check Unmarshal refuses them.
	deep := append(append([]byte{}, data...), 0, 'v')
	if _, err := Unmarshal("v", deep); err == nil {
		t.Fatal("Unmarshal of 128 nested variants succeeded")
	}

	if !ValidType(strings.Repeat("a", 128) + "y") {
		t.Fatal("128 nested arrays should be a valid type")
	}
	if ValidType(strings.Repeat("a", 129) + "y") {
		t.Fatal("129 nested arrays should not be a valid type")
	}
	// The innermost unit tuple has no member, so it may sit at the limit.
	if !ValidType(strings.Repeat("(", 129) + strings.Repeat(")", 129)) {
		t.Fatal("129 nested tuples should be a valid type")
	}
	if ValidType(strings.Repeat("(", 130) + strings.Repeat(")", 130)) {
		t.Fatal("130 nested tuples should not be a valid type")
	}
}

func TestValidType(t *testing.T) {
	valid := []string{"y", "b", "n", "q", "i", "u", "x", "t", "h", "d", "s", "o", "g", "v",
		"ay", "as", "a{sv}", "()", "(uuua(ayay))", "(a{sv}aya(say)sstayay)", "mmu", "{yv}", "a{o(ii)}", "((()))"}
	invalid := []string{"", "a", "(", ")", "(s", "s)", "{sv", "{vs}", "{(s)s}", "{s}", "{sss}", "ss", "r", "*", "?",
		"a*", "m", "z", "a{sv}x", "(}"}
	for _, s := range valid {
		if !ValidType(s) {
			t.Errorf("ValidType(%q) = false", s)
		}
	}
	for _, s := range invalid {
		if ValidType(s) {
			t.Errorf("ValidType(%q) = true", s)
		}
		if _, err := Marshal(s, nil); err == nil {
			t.Errorf("Marshal with type %q succeeded", s)
		}
		if _, err := Unmarshal(s, nil); err == nil {
			t.Errorf("Unmarshal with type %q succeeded", s)
		}
	}
}

func TestAlignAndFixedSize(t *testing.T) {
	tests := []struct {
		typ          string
		align, fixed int
	}{
		{"y", 1, 1}, {"b", 1, 1}, {"n", 2, 2}, {"q", 2, 2}, {"i", 4, 4}, {"u", 4, 4}, {"h", 4, 4},
		{"x", 8, 8}, {"t", 8, 8}, {"d", 8, 8}, {"s", 1, 0}, {"o", 1, 0}, {"g", 1, 0}, {"v", 8, 0},
		{"ay", 1, 0}, {"at", 8, 0}, {"mt", 8, 0}, {"()", 1, 1}, {"(yu)", 4, 8}, {"(uy)", 4, 8},
		{"(yt)", 8, 16}, {"(yy)", 1, 2}, {"{yu}", 4, 8}, {"(su)", 4, 0}, {"(uuua(ayay))", 4, 0},
		{"(a{sv}aya(say)sstayay)", 8, 0}, {"((y)(q))", 2, 4}, {"bogus", 0, 0},
	}
	for _, tc := range tests {
		if a := AlignOf(tc.typ); a != tc.align {
			t.Errorf("AlignOf(%q) = %d, want %d", tc.typ, a, tc.align)
		}
		if f := FixedSize(tc.typ); f != tc.fixed {
			t.Errorf("FixedSize(%q) = %d, want %d", tc.typ, f, tc.fixed)
		}
	}
}

// TestNonNormalRejected feeds data that is not in normal form; every case must
// be rejected by Unmarshal and IsNormal.
func TestNonNormalRejected(t *testing.T) {
	tests := []struct {
		name string
		typ  string
		data []byte
	}{
		{"nonzero padding in fixed tuple", "(yu)", h("02 000100 01000000")},
		{"nonzero trailing padding in fixed tuple", "(uy)", h("01000000 02 000001")},
		{"nonzero padding in variable tuple", "(yt)", h("01 00000000000001 0200000000000000")},
		{"nonzero padding before variant", "(yv)", h("01 00000000000001 0100000000000000 00 74")},
		{"nonzero padding between array elements", "av", h("6100 00 73 00000001 00 6179 04 0b")},
		{"commit padding byte set", "(a{sv}aya(say)sstayay)", h("54776f20656e747269657300426f6479206c696e6500 0001 000000005f5e1000" +
			"29ca41f2098ac7159e7e906ae61c3864f03bef0e0bba6d3cf4e1015ed4ceffbf446a0ef11b7cc167f3b603e585c7eeeeb675faa412d5ec73f62988eb0b6c5488 40160c000000")},
		{"non-minimal offset width (2 bytes where 1 fits)", "as", h("6100 6200 0200 0400")},
		{"non-minimal offset width at the 255 boundary", "as", cat(str("a", 82), str("b", 82), str("c", 83), h("5300 a600 fa00"))},
		{"non-minimal tuple offset width", "(ss)", cat(str("a", 100), str("b", 152), h("6500"))},
		{"decreasing array offsets", "aay", h("010203 02 01 03")},
		{"array offset past the body", "as", h("6100 6200 05 04")},
		{"array last offset past the end", "as", h("6100 09")},
		{"decreasing tuple offsets", "(ayayay)", h("010203 01 02")},
		{"tuple offset past the body", "(ss)", h("6100 6200 07")},
		{"tuple offset before member start", "(yayay)", h("01 aa bb 00")},
		{"unit tuple nonzero", "()", h("01")},
		{"unit tuple empty", "()", []byte{}},
		{"bool 2", "b", h("02")},
		{"bool ff in array", "ab", h("01 ff")},
		{"bool in tuple", "(yb)", h("00 02")},
		{"string without NUL", "s", []byte("abc")},
		{"empty string data", "s", []byte{}},
		{"string with embedded NUL", "s", []byte("ab\x00c\x00")},
		{"string invalid UTF-8", "s", []byte("a\xffb\x00")},
		{"string surrogate", "s", []byte("\xed\xa0\x80\x00")},
		{"string overlong", "s", []byte("\xc0\xaf\x00")},
		{"object path not absolute", "o", []byte("org\x00")},
		{"object path trailing slash", "o", []byte("/org/\x00")},
		{"object path double slash", "o", []byte("/a//b\x00")},
		{"object path bad char", "o", []byte("/a-b\x00")},
		{"signature bad char", "g", []byte("z\x00")},
		{"signature maybe", "g", []byte("ms\x00")},
		{"signature incomplete", "g", []byte("a\x00")},
		{"trailing byte after fixed", "u", h("0100000000")},
		{"short fixed", "u", h("010000")},
		{"trailing byte after fixed tuple", "(yy)", h("010203")},
		{"fixed array not multiple", "au", h("0100000002")},
		{"fixed array of byte pairs not multiple", "a(yy)", h("010203")},
		{"variable array S>0 zero elements", "as", h("01")},
		{"variable dict S>0 zero elements", "a{sv}", h("00 00 03")},
		{"variable array element not aligned", "a(ts)", h("0100000000000000 00 0200000000000000 00 09 12")},
		{"gap before tuple offsets", "(sy)", h("6100 01 00 02")},
		{"tuple needs offsets but empty", "(asas)", []byte{}},
		{"tuple last member overruns", "(sy)", h("6100 05")},
		{"variant invalid type", "v", h("05000000 00 7a")},
		{"variant two types", "v", h("05000000 00 7575")},
		{"variant empty type", "v", h("05000000 00")},
		{"variant indefinite type", "v", h("05000000 00 2a")},
		{"variant no separator", "v", h("7575")},
		{"variant empty", "v", []byte{}},
		{"variant child wrong size", "v", h("050000 00 75")},
		{"variant child not normal", "v", h("02 00 62")},
		{"variant child empty string", "v", h("00 73")},
		{"maybe fixed wrong size", "mu", h("0100")},
		{"maybe variable without zero", "ms", h("6100 01")},
		{"maybe Just(Nothing) nested", "mmu", h("00")},
		{"dict entry padding", "a{yu}", h("01 010000 02000000")},
		{"dict with non-minimal offsets", "a{sv}", h("6b00 000000000000 01 00 62 02 0d00")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, err := Unmarshal(tc.typ, tc.data)
			if err == nil {
				t.Fatalf("Unmarshal(%q, %x) = %#v, want an error", tc.typ, tc.data, v)
			}
			if !strings.Contains(err.Error(), "offset") && !strings.Contains(err.Error(), "type string") {
				t.Errorf("error does not give an offset: %v", err)
			}
			if IsNormal(tc.typ, tc.data) {
				t.Fatalf("IsNormal(%q, %x) = true", tc.typ, tc.data)
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	tests := []struct {
		name  string
		typ   string
		value any
	}{
		{"int for uint32", "u", 5},
		{"uint64 for uint32", "u", uint64(5)},
		{"string for bytes", "ay", "abc"},
		{"[]any for bytes", "ay", []any{uint8(1)}},
		{"[]any for strings", "as", []any{"a"}},
		{"[]string for object paths", "ao", []string{"/a"}},
		{"map for dict", "a{sv}", map[string]any{"a": Variant{"s", "b"}}},
		{"non-variant in a{sv}", "a{sv}", []DictEntry{{"a", "b"}}},
		{"wrong key type", "a{sv}", []DictEntry{{uint32(1), Variant{"s", "b"}}}},
		{"pointer to variant", "v", &Variant{"s", "x"}},
		{"variant invalid type", "v", Variant{"z", uint8(1)}},
		{"variant empty type", "v", Variant{"", nil}},
		{"variant value mismatch", "v", Variant{"u", "x"}},
		{"tuple too short", "(uu)", []any{uint32(1)}},
		{"tuple too long", "(u)", []any{uint32(1), uint32(2)}},
		{"unit with member", "()", []any{uint8(1)}},
		{"nil for tuple", "(u)", nil},
		{"nil for string", "s", nil},
		{"string with NUL", "s", "a\x00b"},
		{"string invalid UTF-8", "s", "a\xffb"},
		{"string in array with NUL", "as", []string{"ok", "a\x00"}},
		{"bad object path", "o", "no/slash"},
		{"bad signature", "g", "(s"},
		{"maybe of wrong type", "mu", "x"},
		{"dict entry value", "{sv}", []any{"k", Variant{"s", "v"}}},
		{"nested error in tuple", "(a(say)a(sayay))", []any{[]any{[]any{"a", "notbytes"}}, []any{}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if b, err := Marshal(tc.typ, tc.value); err == nil {
				t.Fatalf("Marshal(%q, %#v) = %x, want an error", tc.typ, tc.value, b)
			}
		})
	}
}

func TestNaNRoundTrip(t *testing.T) {
	nan := math.Float64frombits(0x7ff8000000000abc)
	data, err := Marshal("d", nan)
	if err != nil {
		t.Fatal(err)
	}
	v, err := Unmarshal("d", data)
	if err != nil {
		t.Fatal(err)
	}
	if math.Float64bits(v.(float64)) != 0x7ff8000000000abc {
		t.Fatalf("NaN payload changed: %x", math.Float64bits(v.(float64)))
	}
}

func TestUnmarshalDoesNotAlias(t *testing.T) {
	data := []byte("abc")
	v, err := Unmarshal("ay", data)
	if err != nil {
		t.Fatal(err)
	}
	data[0] = 'x'
	if string(v.([]byte)) != "abc" {
		t.Fatal("Unmarshal result aliases its input")
	}
}

// valuesEqual compares decoded values like reflect.DeepEqual but compares
// float64 by bits, so NaN equals itself.
func valuesEqual(a, b any) bool {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		return ok && math.Float64bits(x) == math.Float64bits(y)
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !valuesEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case []DictEntry:
		y, ok := b.([]DictEntry)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !valuesEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case DictEntry:
		y, ok := b.(DictEntry)
		return ok && valuesEqual(x.Key, y.Key) && valuesEqual(x.Value, y.Value)
	case Variant:
		y, ok := b.(Variant)
		return ok && x.Type == y.Type && valuesEqual(x.Value, y.Value)
	}
	return reflect.DeepEqual(a, b)
}
