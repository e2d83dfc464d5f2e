package pkgdb

import (
	"encoding/binary"
	"slices"
	"strings"
	"testing"
)

type rpmTestEntry struct {
	tag, typ uint32
	count    uint32
	data     []byte
}

func rpmStrings(s ...string) []byte { return []byte(strings.Join(s, "\x00") + "\x00") }

func rpmInt32s(v ...uint32) []byte {
	var b []byte
	for _, x := range v {
		b = binary.BigEndian.AppendUint32(b, x)
	}
	return b
}

// rpmTestHeader encodes entries as an rpmdb header blob.
func rpmTestHeader(entries ...rpmTestEntry) []byte {
	var data []byte
	out := binary.BigEndian.AppendUint32(nil, uint32(len(entries)))
	for _, e := range entries {
		if e.typ == rpmTypeInt32 {
			for len(data)%4 != 0 {
				data = append(data, 0)
			}
		}
		out = binary.BigEndian.AppendUint32(out, e.tag)
		out = binary.BigEndian.AppendUint32(out, e.typ)
		out = binary.BigEndian.AppendUint32(out, uint32(len(data)))
		out = binary.BigEndian.AppendUint32(out, e.count)
		data = append(data, e.data...)
	}
	out = slices.Insert(out, 4, binary.BigEndian.AppendUint32(nil, uint32(len(data)))...)
	return append(out, data...)
}

func testRpmEntries() []rpmTestEntry {
	return []rpmTestEntry{
		{rpmTagName, rpmTypeString, 1, rpmStrings("bash")},
		{rpmTagVersion, rpmTypeString, 1, rpmStrings("5.2.15")},
		{rpmTagRelease, rpmTypeString, 1, rpmStrings("1.fc38")},
		{rpmTagEpoch, rpmTypeInt32, 1, rpmInt32s(0)},
		{rpmTagArch, rpmTypeString, 1, rpmStrings("x86_64")},
		{rpmTagSourceRPM, rpmTypeString, 1, rpmStrings("bash-5.2.15-1.fc38.src.rpm")},
		{rpmTagBuildTime, rpmTypeInt32, 1, rpmInt32s(1700000000)},
		{rpmTagChangelogTime, rpmTypeInt32, 2, rpmInt32s(1690000000, 1600000000)},
		{rpmTagBasenames, rpmTypeStringArray, 3, rpmStrings("bash", "bashrc", "sh")},
		{rpmTagDirnames, rpmTypeStringArray, 2, rpmStrings("/usr/bin/", "/etc/")},
		{rpmTagDirIndexes, rpmTypeInt32, 3, rpmInt32s(0, 1, 0)},
		{rpmTagFileFlags, rpmTypeInt32, 3, rpmInt32s(0, 1, rpmFileGhost)},
	}
}

func TestRPMHeader(t *testing.T) {
	p, err := rpmPackageFromHeader(rpmTestHeader(testRpmEntries()...))
	if err != nil {
		t.Fatal(err)
	}
	if p.nevra() != "bash-0:5.2.15-1.fc38.x86_64" || p.sourceRPM != "bash-5.2.15-1.fc38.src.rpm" ||
		p.buildTime != 1700000000 || !slices.Equal(p.changelogTimes, []int64{1690000000, 1600000000}) ||
		!slices.Equal(p.files, []string{"/usr/bin/bash", "/etc/bashrc"}) {
		t.Errorf("package %+v (%s)", p, p.nevra())
	}

	type mod func([]rpmTestEntry) []rpmTestEntry
	set := func(i int, e rpmTestEntry) mod {
		return func(es []rpmTestEntry) []rpmTestEntry { es[i] = e; return es }
	}
	for _, tc := range []struct {
		name string
		blob func() []byte
		want string
	}{
		{"short", func() []byte { return []byte{0, 0, 0} }, "too short"},
		{"no entries", func() []byte { return make([]byte, 8) }, "0 index entries"},
		{"huge il", func() []byte { return []byte{0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0} }, "index entries"},
		{"dl beyond blob", func() []byte {
			b := rpmTestHeader(testRpmEntries()...)
			binary.BigEndian.PutUint32(b[4:], 1<<31)
			return b
		}, "blob has"},
		{"offset beyond data", func() []byte {
			b := rpmTestHeader(testRpmEntries()...)
			binary.BigEndian.PutUint32(b[8+8:], 1<<30)
			return b
		}, "beyond the"},
		{"string not terminated", func() []byte {
			b := rpmTestHeader(testRpmEntries()...)
			return b[:len(b)-1] // dl now says one byte more than there is
		}, "blob has"},
		{"unterminated last string", func() []byte {
			es := testRpmEntries()
			es = append(es, rpmTestEntry{rpmTagOldFilenames, rpmTypeStringArray, 1, []byte("abc")})
			return rpmTestHeader(es...)
		}, ""}, // OLDFILENAMES is not read when BASENAMES exists
		{"too many strings", func() []byte {
			return rpmTestHeader(set(8, rpmTestEntry{rpmTagBasenames, rpmTypeStringArray, 1 << 30, rpmStrings("x")})(testRpmEntries())...)
		}, "cannot fit"},
		{"string past the end", func() []byte {
			es := testRpmEntries()
			name := rpmTestEntry{rpmTagName, rpmTypeString, 1, []byte("bash")} // no NUL, last in the data
			return rpmTestHeader(append(es[1:], name)...)
		}, "not terminated"},
		{"dirindex out of range", func() []byte {
			return rpmTestHeader(set(10, rpmTestEntry{rpmTagDirIndexes, rpmTypeInt32, 3, rpmInt32s(0, 7, 0)})(testRpmEntries())...)
		}, "dirindex 7"},
		{"dirindexes count", func() []byte {
			return rpmTestHeader(set(10, rpmTestEntry{rpmTagDirIndexes, rpmTypeInt32, 2, rpmInt32s(0, 1)})(testRpmEntries())...)
		}, "3 basenames but 2 dirindexes"},
		{"ints overrun", func() []byte {
			return rpmTestHeader(set(7, rpmTestEntry{rpmTagChangelogTime, rpmTypeInt32, 1 << 29, rpmInt32s(1)})(testRpmEntries())...)
		}, "overrun the data"},
		{"wrong type", func() []byte {
			return rpmTestHeader(set(0, rpmTestEntry{rpmTagName, rpmTypeInt32, 1, rpmInt32s(1)})(testRpmEntries())...)
		}, "want a string type"},
		{"no name", func() []byte { return rpmTestHeader(testRpmEntries()[1:]...) }, "no NAME"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rpmPackageFromHeader(tc.blob())
			if tc.want == "" {
				if err != nil {
					t.Errorf("error %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

func FuzzRPMHeader(f *testing.F) {
	f.Add(rpmTestHeader(testRpmEntries()...))
	f.Fuzz(func(t *testing.T, blob []byte) {
		rpmPackageFromHeader(blob)
	})
}
