package ostree

// GLib's GVariantDict keeps its entries in a GHashTable, so when `ostree
// commit --bootable` re-inserts the metadata through one, the serialized
// order is the hash table's iteration order. hashTableOrder reproduces that
// order (GLib 2.74 ghash.c: g_str_hash, open addressing with quadratic
// probing, index = hash*11 % prime, growth when occupancy passes 15/16) so
// our commits get the same bytes, and so the same checksum.

var ghashPrimes = []uint32{1, 2, 3, 7, 13, 31, 61, 127, 251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521}

func gStrHash(s string) uint32 {
	h := uint32(5381)
	for i := 0; i < len(s); i++ {
		h = h<<5 + h + uint32(int32(int8(s[i]))) // GLib hashes signed chars
	}
	return h
}

type ghashTable struct {
	shift  int
	hashes []uint32
	keys   []string
	nnodes int
}

func newGHashTable(shift int) *ghashTable {
	size := 1 << shift
	return &ghashTable{shift: shift, hashes: make([]uint32, size), keys: make([]string, size)}
}

func (t *ghashTable) mod() uint32  { return ghashPrimes[t.shift] }
func (t *ghashTable) mask() uint32 { return uint32(len(t.hashes) - 1) }

// slot finds key's node, or the empty node where it would go.
func (t *ghashTable) slot(key string, h uint32) uint32 {
	idx := (h * 11) % t.mod()
	for step := uint32(0); t.hashes[idx] != 0; {
		if t.hashes[idx] == h && t.keys[idx] == key {
			return idx
		}
		step++
		idx = (idx + step) & t.mask()
	}
	return idx
}

func (t *ghashTable) insert(key string) {
	h := gStrHash(key)
	if h < 2 {
		h = 2
	}
	idx := t.slot(key, h)
	if t.hashes[idx] != 0 {
		return // replacing a value keeps the node where it is
	}
	t.hashes[idx], t.keys[idx] = h, key
	t.nnodes++
	size := len(t.hashes)
	if size <= t.nnodes+t.nnodes/16 {
		t.resize()
	}
}

func (t *ghashTable) resize() {
	shift := 0
	for n := int(float64(t.nnodes) * 1.333); n > 0; n >>= 1 {
		shift++
	}
	if shift < 3 {
		shift = 3
	}
	nt := newGHashTable(shift)
	for i, h := range t.hashes {
		if h >= 2 {
			idx := nt.slot(t.keys[i], h)
			nt.hashes[idx], nt.keys[idx] = h, t.keys[i]
			nt.nnodes++
		}
	}
	*t = *nt
}

func (t *ghashTable) order() []string {
	var out []string
	for i, h := range t.hashes {
		if h >= 2 {
			out = append(out, t.keys[i])
		}
	}
	return out
}

// hashTableOrder returns md's entries in the order a GVariantDict built by
// inserting them one by one would serialize them. Later duplicates replace
// earlier values.
func hashTableOrder(md Metadata) Metadata {
	t := newGHashTable(3)
	vals := map[string]MetaEntry{}
	for _, e := range md {
		t.insert(e.Key)
		vals[e.Key] = e
	}
	out := make(Metadata, 0, len(vals))
	for _, k := range t.order() {
		out = append(out, vals[k])
	}
	return out
}
