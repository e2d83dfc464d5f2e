package gvariant

import (
	"bytes"
	"strings"
	"testing"
)

// TestUnmarshalElementBudget: a value made of empty arrays in arrays (one
// byte of input per element, some 50 bytes decoded) is refused once it
// holds more than MaxElements elements, with the limit named; byte arrays
// of any length do not count (issue 11, class 3: any length field).
func TestUnmarshalElementBudget(t *testing.T) {
	// aay of 255-byte inner arrays, each holding 255 empty ay: one framing
	// offset byte per element.
	inner := func() []any {
		v := make([]any, 0, 200)
		for range 200 {
			v = append(v, []byte{})
		}
		return v
	}
	build := func(outer int) []byte {
		v := make([]any, outer)
		for i := range v {
			v[i] = inner()
		}
		b, err := Marshal("aaay", v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	small := build(100)
	if _, err := Unmarshal("aaay", small); err != nil {
		t.Fatalf("%d elements: %v", 100*201, err)
	}
	big := build(MaxElements/200 + 10)
	_, err := Unmarshal("aaay", big)
	if err == nil || !strings.Contains(err.Error(), "more than 1048576 array elements") {
		t.Fatalf("%d bytes of empty arrays: %v, want the element limit named", len(big), err)
	}
	if _, err := Unmarshal("ay", bytes.Repeat([]byte{1}, 2*MaxElements)); err != nil {
		t.Errorf("a long byte array: %v", err)
	}
}
