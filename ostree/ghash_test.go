package ostree

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestGStrHash(t *testing.T) {
	// djb2 over SIGNED chars (GLib g_str_hash), worked out by hand:
	// h0 = 5381; h = h*33 + (signed char)c, mod 2^32.
	tests := []struct {
		in   string
		want uint32
	}{
		{"", 5381},
		{"a", 5381*33 + 97},                  // 177670
		{"ab", (5381*33+97)*33 + 98},         // 5863208
		{"\x80", 5381*33 - 128},              // 177445: 0x80 is -128
		{"\xff\xff", (5381*33-1)*33 - 1},     // 5859875: 0xff is -1
		{"é", (5381*33-61)*33 - 87},          // 0xc3 0xa9 = -61, -87: 5857809
		{"ostree.linux", 920638133},          // reduced mod 2^32
		{"ostree.bootable", 3347910893},      // reduced mod 2^32
		{"ostree.ref-binding", 2917692970},   // reduced mod 2^32
		{"\x7f", 5381*33 + 127},              // the largest positive char
		{"\x80\x7f", (5381*33-128)*33 + 127}, // mixed signs
		{"A\xfe", (5381*33+65)*33 - 2},       // 5863077
	}
	for _, tc := range tests {
		if got := gStrHash(tc.in); got != tc.want {
			t.Errorf("gStrHash(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

// TestGStrHashLongKeys checks the mod-2^32 wrap on keys long enough to
// overflow many times, against a direct evaluation of the definition.
func TestGStrHashLongKeys(t *testing.T) {
	for _, s := range []string{"ostree.collection-binding", "ostree.commit.timestamp", "\xff\x80\x01abcdefghijklmnopqrstuvwxyz"} {
		var h uint64 = 5381
		for i := 0; i < len(s); i++ {
			c := int64(s[i])
			if c >= 128 {
				c -= 256
			}
			h = uint64((int64(h)*33 + c) & 0xffffffff)
		}
		if got := gStrHash(s); uint64(got) != h {
			t.Errorf("gStrHash(%q) = %d, want %d", s, got, h)
		}
	}
}

func keysOf(md Metadata) []string {
	var out []string
	for _, e := range md {
		out = append(out, e.Key)
	}
	return out
}

func bootableVector(t *testing.T) vector {
	for _, v := range vectorsOf(t, "commit") {
		for _, m := range v.Inputs.Metadata {
			if m.Key == "ostree.bootable" {
				return v
			}
		}
	}
	t.Fatal("no bootable commit vector")
	return vector{}
}

func TestHashTableOrderBootableVector(t *testing.T) {
	v := bootableVector(t)
	want := metaFromVector(t, v.Inputs.Metadata)
	byKey := map[string]MetaEntry{}
	for _, e := range want {
		byKey[e.Key] = e
	}
	// ot-builtin-commit.c inserts ref-binding first, then --bootable's keys.
	in := Metadata{byKey["ostree.ref-binding"], byKey["ostree.bootable"], byKey["ostree.linux"]}
	got := hashTableOrder(in)
	if !reflect.DeepEqual(keysOf(got), keysOf(want)) {
		t.Fatalf("hashTableOrder keys = %v, want %v (the vector's order)", keysOf(got), keysOf(want))
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("hashTableOrder = %#v, want %#v", got, want)
	}
}

func TestHashTableOrderDuplicates(t *testing.T) {
	in := Metadata{
		{Key: "a", Value: StringVariant("1")},
		{Key: "b", Value: StringVariant("2")},
		{Key: "a", Value: StringVariant("3")},
	}
	got := hashTableOrder(in)
	if len(got) != 2 {
		t.Fatalf("hashTableOrder kept %d entries: %v", len(got), keysOf(got))
	}
	if got.String("a") != "3" || got.String("b") != "2" {
		t.Errorf("values a=%q b=%q, want 3 and 2", got.String("a"), got.String("b"))
	}
	// Many keys force the table to grow; every key must come out once.
	var many Metadata
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		k := "key." + string(rune('a'+i%26)) + string(rune('A'+i/26))
		many = append(many, MetaEntry{Key: k, Value: StringVariant(k)})
		seen[k] = false
	}
	out := hashTableOrder(many)
	if len(out) != len(many) {
		t.Fatalf("%d keys in, %d out", len(many), len(out))
	}
	for _, e := range out {
		if done, ok := seen[e.Key]; !ok || done {
			t.Fatalf("key %q missing from the input or repeated", e.Key)
		}
		seen[e.Key] = true
		if e.Value.Value != e.Key {
			t.Errorf("key %q carries value %v", e.Key, e.Value.Value)
		}
	}
}

// kernelTree is a root holding usr/lib/modules/VERSION/vmlinuz for each
// version.
func kernelTree(t *testing.T, versions ...string) *MutableTree {
	root := NewMutableTree()
	mods := root
	for _, p := range []string{"usr", "lib", "modules"} {
		var err error
		if mods, err = mods.EnsureDir(p); err != nil {
			t.Fatal(err)
		}
	}
	for _, v := range versions {
		d, err := mods.EnsureDir(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.SetFile("vmlinuz", mustChecksum(t, sumHello)); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

func TestFindKernel(t *testing.T) {
	if v, err := FindKernel(kernelTree(t, "6.1.0-test")); err != nil || v != "6.1.0-test" {
		t.Errorf("FindKernel = %q, %v", v, err)
	}
	if _, err := FindKernel(kernelTree(t)); err == nil {
		t.Error("FindKernel found a kernel in an empty modules dir")
	}
	if _, err := FindKernel(NewMutableTree()); err == nil {
		t.Error("FindKernel found a kernel without /usr/lib/modules")
	}
	if _, err := FindKernel(kernelTree(t, "6.1", "6.2")); err == nil {
		t.Error("FindKernel accepted two kernels")
	}
	// A modules dir without vmlinuz does not count.
	root := kernelTree(t, "6.1")
	mods, _ := walkMutable(root, "usr", "lib", "modules")
	if _, err := mods.EnsureDir("5.0-nokernel"); err != nil {
		t.Fatal(err)
	}
	if v, err := FindKernel(root); err != nil || v != "6.1" {
		t.Errorf("FindKernel with an extra modules dir = %q, %v", v, err)
	}
}

// TestCommitMetadataVectors builds the metadata of each CLI-made commit
// vector the way commitMetadata does and checks the commit bytes.
func TestCommitMetadataVectors(t *testing.T) {
	vecs := map[string]vector{}
	for _, v := range vectorsOf(t, "commit") {
		vecs[v.Inputs.Subject] = v
	}
	r := newRepo(t, ModeArchive)
	// A second repository with a collection id.
	collPath := filepath.Join(t.TempDir(), "coll")
	rc := newRepoAt(t, collPath, ModeArchive, false)
	f, err := os.OpenFile(filepath.Join(collPath, "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("collection-id=org.example.Test\n")
	f.Close()
	rc.Close()
	if rc, err = Open(collPath); err != nil {
		t.Fatal(err)
	}
	defer rc.Close()

	tests := []struct {
		subject string
		repo    *Repo
		root    *MutableTree
		opts    CommitOptions
	}{
		{"Test commit", r, NewMutableTree(), CommitOptions{Branch: "test/main", Metadata: Metadata{{Key: "version", Value: StringVariant("1.0")}}}},
		{"Two entries", r, NewMutableTree(), CommitOptions{Branch: "x", NoBindings: true}},
		{"Bootable", r, kernelTree(t, "6.1.0-test"), CommitOptions{Branch: "test/boot", Bootable: true}},
		{"c", rc, NewMutableTree(), CommitOptions{Branch: "app/x86_64"}},
	}
	for _, tc := range tests {
		t.Run(tc.subject, func(t *testing.T) {
			v, ok := vecs[tc.subject]
			if !ok {
				t.Fatalf("no commit vector with subject %q", tc.subject)
			}
			txn, err := tc.repo.Begin()
			if err != nil {
				t.Fatal(err)
			}
			defer txn.Abort()
			md, err := txn.commitMetadata(tc.root, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			want := metaFromVector(t, v.Inputs.Metadata)
			if !reflect.DeepEqual(md, want) && !(len(md) == 0 && len(want) == 0) {
				t.Fatalf("commitMetadata = %v, want %v", keysOf(md), keysOf(want))
			}
			c := commitFromVector(t, v)
			c.Metadata = md
			b, err := c.Encode()
			if err != nil {
				t.Fatal(err)
			}
			if got := SumBytes(b).String(); got != *v.Checksum {
				t.Errorf("commit checksum %s, want %s", got, *v.Checksum)
			}
		})
	}
}

// TestCommitMetadataCollectionOverride: like ot-builtin-commit.c's
// fill_bindings, a collection binding given in the metadata is kept and the
// repository's is not added a second time.
func TestCommitMetadataCollectionOverride(t *testing.T) {
	path := filepath.Join(t.TempDir(), "coll")
	r := newRepoAt(t, path, ModeArchive, false)
	f, _ := os.OpenFile(filepath.Join(path, "config"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("collection-id=org.example.Test\n")
	f.Close()
	r.Close()
	r, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	txn := beginT(t, r)
	md, err := txn.commitMetadata(NewMutableTree(), CommitOptions{Branch: "main", Metadata: Metadata{{Key: "ostree.collection-binding", Value: StringVariant("org.example.Other")}}})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range md {
		if e.Key == "ostree.collection-binding" {
			n++
		}
	}
	if n != 1 || md.String("ostree.collection-binding") != "org.example.Other" {
		t.Errorf("metadata %v: %d collection bindings, want exactly the given one", keysOf(md), n)
	}
}
