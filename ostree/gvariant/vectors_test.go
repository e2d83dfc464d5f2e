package gvariant

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"math/bits"
	"os"
	"path/filepath"
	"testing"
)

// vectorsPath is where the ostree byte vectors live (testdata/README.md says
// where they come from).
var vectorsPath = filepath.Join("..", "..", "testdata", "ostree-test-vectors.json")

type testVector struct {
	Kind              string          `json:"kind"`
	Description       string          `json:"description"`
	Inputs            json.RawMessage `json:"inputs"`
	VariantType       string          `json:"variant_type"`
	Hex               *string         `json:"hex"`
	HeaderVariantType string          `json:"header_variant_type"`
	HeaderVariantHex  string          `json:"header_variant_hex"`
	HeaderPrefixedHex string          `json:"header_prefixed_hex"`
	Checksum          *string         `json:"checksum"`
	ContentChecksum   string          `json:"content_checksum"`
}

// variantBytes returns the GVariant type and bytes a vector holds, or ok=false
// for kinds that are not a single GVariant.
func (v *testVector) variantBytes(t testing.TB) (typ string, data []byte, ok bool) {
	switch v.Kind {
	case "file", "archive-filez":
		return v.HeaderVariantType, mustHex(t, v.HeaderVariantHex), true
	case "bare-user-ostreemeta", "dirmeta", "dirtree", "commit", "commitmeta", "tombstone-commit", "summary":
		return v.VariantType, mustHex(t, *v.Hex), true
	}
	return "", nil, false
}

// loadVectors reads the vectors; they are part of the repository, so a
// missing file fails the test.
func loadVectors(t testing.TB) []testVector {
	t.Helper()
	raw, err := os.ReadFile(vectorsPath)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Vectors []testVector `json:"vectors"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("parse %s: %v", vectorsPath, err)
	}
	if len(doc.Vectors) == 0 {
		t.Fatalf("no vectors in %s", vectorsPath)
	}
	return doc.Vectors
}

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatalf("bad hex %q: %v", s, err)
	}
	return b
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func be32(x uint32) uint32 { return bits.ReverseBytes32(x) }
func be64(x uint64) uint64 { return bits.ReverseBytes64(x) }

type xattrInput struct {
	Name     string `json:"name"`
	ValueHex string `json:"value_hex"`
}

func xattrsValue(t testing.TB, xs []xattrInput) []any {
	out := []any{}
	for _, x := range xs {
		out = append(out, []any{append([]byte(x.Name), 0), mustHex(t, x.ValueHex)})
	}
	return out
}

type metaInput struct {
	Key                string          `json:"key"`
	Type               string          `json:"type"`
	Value              json.RawMessage `json:"value"`
	Encoding           string          `json:"encoding"`
	SerializedValueHex string          `json:"serialized_value_hex"`
}

// metaValue builds the Go value of one metadata entry. Integers are swapped
// only where the vector says they are stored big-endian.
func metaValue(t testing.TB, m metaInput) any {
	t.Helper()
	bigEndian := m.Encoding == "big-endian"
	switch m.Type {
	case "s":
		var s string
		mustJSON(t, m.Value, &s)
		return s
	case "as":
		var s []string
		mustJSON(t, m.Value, &s)
		return s
	case "b":
		var b bool
		mustJSON(t, m.Value, &b)
		return b
	case "u":
		var u uint32
		mustJSON(t, m.Value, &u)
		if bigEndian {
			u = be32(u)
		}
		return u
	case "t":
		var u uint64
		mustJSON(t, m.Value, &u)
		if bigEndian {
			u = be64(u)
		}
		return u
	case "aay":
		var entries []struct {
			EntryHex string `json:"entry_hex"`
		}
		mustJSON(t, m.Value, &entries)
		out := []any{}
		for _, e := range entries {
			out = append(out, mustHex(t, e.EntryHex))
		}
		return out
	}
	t.Fatalf("metadata %q: unsupported type %q in vector", m.Key, m.Type)
	return nil
}

// metaDict builds an a{sv} from entries and checks each entry's serialized
// variant against serialized_value_hex when the vector gives it.
func metaDict(t testing.TB, entries []metaInput) []DictEntry {
	t.Helper()
	out := []DictEntry{}
	for _, m := range entries {
		v := Variant{Type: m.Type, Value: metaValue(t, m)}
		if m.SerializedValueHex != "" {
			got, err := Marshal("v", v)
			if err != nil {
				t.Fatalf("metadata %q: Marshal: %v", m.Key, err)
			}
			if want := mustHex(t, m.SerializedValueHex); !bytes.Equal(got, want) {
				t.Errorf("metadata %q: serialized value\n got %x\nwant %x", m.Key, got, want)
			}
		}
		out = append(out, DictEntry{Key: m.Key, Value: v})
	}
	return out
}

func mustJSON(t testing.TB, raw json.RawMessage, v any) {
	t.Helper()
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("parse vector inputs %s: %v", raw, err)
	}
}

// fileHeaderInputs are the inputs of file, archive-filez, dirmeta and
// bare-user-ostreemeta vectors.
type fileHeaderInputs struct {
	UID           uint32       `json:"uid"`
	GID           uint32       `json:"gid"`
	Mode          uint32       `json:"mode"`
	Rdev          uint32       `json:"rdev"`
	Size          uint64       `json:"size"`
	SymlinkTarget *string      `json:"symlink_target"`
	ContentHex    *string      `json:"content_hex"`
	Xattrs        []xattrInput `json:"xattrs"`
}

func (in *fileHeaderInputs) target() string {
	if in.SymlinkTarget == nil {
		return ""
	}
	return *in.SymlinkTarget
}

// contentStream is ostree's checksum input for a content object:
// BE32(len(header)) || 4 zero bytes || header || payload.
func contentStream(t testing.TB, in *fileHeaderInputs) []byte {
	t.Helper()
	header, err := Marshal("(uuuusa(ayay))", []any{
		be32(in.UID), be32(in.GID), be32(in.Mode), be32(in.Rdev), in.target(), xattrsValue(t, in.Xattrs),
	})
	if err != nil {
		t.Fatalf("Marshal file header: %v", err)
	}
	stream := binary.BigEndian.AppendUint32(nil, uint32(len(header)))
	stream = append(stream, 0, 0, 0, 0)
	stream = append(stream, header...)
	if in.ContentHex != nil {
		stream = append(stream, mustHex(t, *in.ContentHex)...)
	}
	return stream
}

func TestVectorsRoundTrip(t *testing.T) {
	n := 0
	for i, v := range loadVectors(t) {
		typ, data, ok := v.variantBytes(t)
		if !ok {
			continue
		}
		n++
		got, err := Unmarshal(typ, data)
		if err != nil {
			t.Errorf("vector %d (%s: %s): Unmarshal %s: %v", i, v.Kind, v.Description, typ, err)
			continue
		}
		again, err := Marshal(typ, got)
		if err != nil {
			t.Errorf("vector %d (%s: %s): Marshal %s: %v", i, v.Kind, v.Description, typ, err)
			continue
		}
		if !bytes.Equal(again, data) {
			t.Errorf("vector %d (%s: %s): Marshal(Unmarshal(x)) != x\n got %x\nwant %x", i, v.Kind, v.Description, again, data)
		}
		if !IsNormal(typ, data) {
			t.Errorf("vector %d (%s): IsNormal = false", i, v.Kind)
		}
	}
	if n < 36 {
		t.Errorf("only %d GVariant vectors found, want 36", n)
	}
}

func TestVectorsFromInputs(t *testing.T) {
	counts := map[string]int{}
	for i, v := range loadVectors(t) {
		if v.Hex == nil {
			continue
		}
		want := mustHex(t, *v.Hex)
		var got []byte // bytes built from the inputs, compared with hex
		var sum []byte // bytes whose sha256 must equal checksum, if any
		var err error
		switch v.Kind {
		case "file":
			var in fileHeaderInputs
			mustJSON(t, v.Inputs, &in)
			got = contentStream(t, &in)
			sum = got
		case "archive-filez":
			var in fileHeaderInputs
			mustJSON(t, v.Inputs, &in)
			header, err := Marshal("(tuuuusa(ayay))", []any{
				be64(in.Size), be32(in.UID), be32(in.GID), be32(in.Mode), be32(in.Rdev), in.target(), xattrsValue(t, in.Xattrs),
			})
			if err != nil {
				t.Fatalf("vector %d: Marshal archive header: %v", i, err)
			}
			prefixed := binary.BigEndian.AppendUint32(nil, uint32(len(header)))
			prefixed = append(prefixed, 0, 0, 0, 0)
			prefixed = append(prefixed, header...)
			if wantP := mustHex(t, v.HeaderPrefixedHex); !bytes.Equal(prefixed, wantP) {
				t.Errorf("vector %d (%s): archive header\n got %x\nwant %x", i, v.Description, prefixed, wantP)
			}
			// The deflate stream is encoder-specific; the checksum is the
			// one of the uncompressed content stream.
			got = want
			sum = contentStream(t, &in)
		case "bare-user-ostreemeta", "dirmeta":
			var in fileHeaderInputs
			mustJSON(t, v.Inputs, &in)
			got, err = Marshal(v.VariantType, []any{be32(in.UID), be32(in.GID), be32(in.Mode), xattrsValue(t, in.Xattrs)})
			if v.Kind == "dirmeta" {
				sum = got
			}
		case "dirtree":
			var in struct {
				Files []struct{ Name, Checksum string }
				Dirs  []struct {
					Name         string
					TreeChecksum string `json:"tree_checksum"`
					MetaChecksum string `json:"meta_checksum"`
				}
			}
			mustJSON(t, v.Inputs, &in)
			files, dirs := []any{}, []any{}
			for _, f := range in.Files {
				files = append(files, []any{f.Name, mustHex(t, f.Checksum)})
			}
			for _, d := range in.Dirs {
				dirs = append(dirs, []any{d.Name, mustHex(t, d.TreeChecksum), mustHex(t, d.MetaChecksum)})
			}
			got, err = Marshal(v.VariantType, []any{files, dirs})
			sum = got
		case "commit":
			var in struct {
				Metadata  []metaInput
				Parent    *string
				Subject   string
				Body      string
				Timestamp uint64
				RootTree  string `json:"root_tree"`
				RootMeta  string `json:"root_meta"`
				Related   []any  `json:"related_objects"`
			}
			mustJSON(t, v.Inputs, &in)
			if len(in.Related) != 0 {
				t.Fatalf("vector %d: related objects are not supported by this test", i)
			}
			parent := []byte{}
			if in.Parent != nil {
				parent = mustHex(t, *in.Parent)
			}
			tree, meta := mustHex(t, in.RootTree), mustHex(t, in.RootMeta)
			got, err = Marshal(v.VariantType, []any{
				metaDict(t, in.Metadata), parent, []any{}, in.Subject, in.Body, be64(in.Timestamp), tree, meta,
			})
			sum = got
			if v.ContentChecksum != "" {
				if cs := sha256Hex(append(append([]byte{}, tree...), meta...)); cs != v.ContentChecksum {
					t.Errorf("vector %d: content checksum %s, want %s", i, cs, v.ContentChecksum)
				}
			}
		case "commitmeta":
			var in struct{ Metadata []metaInput }
			mustJSON(t, v.Inputs, &in)
			got, err = Marshal(v.VariantType, metaDict(t, in.Metadata))
		case "tombstone-commit":
			var in struct{ Commit string }
			mustJSON(t, v.Inputs, &in)
			got, err = Marshal(v.VariantType, []DictEntry{
				{Key: "commit", Value: Variant{Type: "ay", Value: append([]byte(in.Commit), 0)}},
			})
		case "summary":
			var in struct {
				Refs []struct {
					Name               string
					CommitSize         uint64 `json:"commit_size"`
					CommitSizeEncoding string `json:"commit_size_encoding"`
					Checksum           string
					Metadata           []metaInput
				}
				Metadata []metaInput
			}
			mustJSON(t, v.Inputs, &in)
			refs := []any{}
			for _, r := range in.Refs {
				size := r.CommitSize
				if r.CommitSizeEncoding == "big-endian" {
					size = be64(size)
				}
				refs = append(refs, []any{r.Name, []any{size, mustHex(t, r.Checksum), metaDict(t, r.Metadata)}})
			}
			got, err = Marshal(v.VariantType, []any{refs, metaDict(t, in.Metadata)})
			sum = got
		default:
			continue
		}
		if err != nil {
			t.Errorf("vector %d (%s: %s): Marshal from inputs: %v", i, v.Kind, v.Description, err)
			continue
		}
		counts[v.Kind]++
		if !bytes.Equal(got, want) {
			t.Errorf("vector %d (%s: %s): built from inputs\n got %x\nwant %x", i, v.Kind, v.Description, got, want)
		}
		if sum != nil && v.Checksum != nil {
			if s := sha256Hex(sum); s != *v.Checksum {
				t.Errorf("vector %d (%s: %s): checksum %s, want %s", i, v.Kind, v.Description, s, *v.Checksum)
			}
		}
	}
	for _, kind := range []string{"file", "dirmeta", "dirtree", "commit"} {
		if counts[kind] == 0 {
			t.Errorf("no %s vector was rebuilt from its inputs", kind)
		}
	}
}
