package gvariant

import (
	"fmt"
	"testing"
)

func benchDirtree(n int) []any {
	csum := make([]byte, 32)
	files := make([]any, n)
	for i := range files {
		files[i] = []any{fmt.Sprintf("file-%06d.txt", i), csum}
	}
	return []any{files, []any{[]any{"sub", csum, csum}}}
}

func BenchmarkMarshalDirtree15k(b *testing.B) {
	v := benchDirtree(15000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal("(a(say)a(sayay))", v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnmarshalDirtree15k(b *testing.B) {
	data, err := Marshal("(a(say)a(sayay))", benchDirtree(15000))
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := Unmarshal("(a(say)a(sayay))", data); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshalFileHeader(b *testing.B) {
	v := []any{uint32(0), uint32(0), uint32(0xa4810000), uint32(0), "",
		[]any{[]any{[]byte("user.a\x00"), []byte("v")}}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Marshal("(uuuusa(ayay))", v); err != nil {
			b.Fatal(err)
		}
	}
}
