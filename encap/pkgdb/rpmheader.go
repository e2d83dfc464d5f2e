package pkgdb

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path"
)

// rpm header tags this package reads (rpmtag.h).
const (
	rpmTagName          = 1000
	rpmTagVersion       = 1001
	rpmTagRelease       = 1002
	rpmTagEpoch         = 1003
	rpmTagBuildTime     = 1006
	rpmTagFileFlags     = 1037
	rpmTagArch          = 1022
	rpmTagOldFilenames  = 1027
	rpmTagSourceRPM     = 1044
	rpmTagChangelogTime = 1080
	rpmTagDirIndexes    = 1116
	rpmTagBasenames     = 1117
	rpmTagDirnames      = 1118
)

// rpm header data types.
const (
	rpmTypeInt16       = 3
	rpmTypeInt32       = 4
	rpmTypeInt64       = 5
	rpmTypeString      = 6
	rpmTypeBin         = 7
	rpmTypeStringArray = 8
	rpmTypeI18NString  = 9
)

// rpmFileGhost marks a %ghost file: listed, but not in the package payload.
const rpmFileGhost = 1 << 6

// rpmHeaderMaxTags bounds the index of one header (rpm itself refuses
// 0xffff and more).
const rpmHeaderMaxTags = 0xffff

// rpmHeader is a parsed header blob as rpm stores it in its database: the
// header without lead, magic and reserved bytes.
//
//	il  uint32 BE  number of index entries
//	dl  uint32 BE  size of the data store
//	il × {tag, type, offset, count uint32 BE}
//	dl bytes of data
type rpmHeader struct {
	data    []byte
	entries map[uint32]rpmEntry
}

type rpmEntry struct{ typ, off, count uint32 }

func parseRPMHeader(blob []byte) (*rpmHeader, error) {
	if len(blob) < 8 {
		return nil, fmt.Errorf("rpm header: %d bytes, too short", len(blob))
	}
	il, dl := binary.BigEndian.Uint32(blob), binary.BigEndian.Uint32(blob[4:])
	if il == 0 || il >= rpmHeaderMaxTags {
		return nil, fmt.Errorf("rpm header: %d index entries", il)
	}
	need := 8 + 16*uint64(il) + uint64(dl)
	if need > uint64(len(blob)) {
		return nil, fmt.Errorf("rpm header: %d index entries and %d data bytes need %d bytes, blob has %d", il, dl, need, len(blob))
	}
	h := &rpmHeader{data: blob[8+16*int(il) : need], entries: make(map[uint32]rpmEntry, il)}
	for i := range int(il) {
		e := blob[8+16*i:]
		tag := binary.BigEndian.Uint32(e)
		ent := rpmEntry{typ: binary.BigEndian.Uint32(e[4:]), off: binary.BigEndian.Uint32(e[8:]), count: binary.BigEndian.Uint32(e[12:])}
		if ent.off > dl {
			return nil, fmt.Errorf("rpm header: tag %d at offset %d beyond the %d data bytes", tag, ent.off, dl)
		}
		// Entries after the immutable region ("dribbles") replace those in it.
		h.entries[tag] = ent
	}
	return h, nil
}

// strings returns the values of a STRING, STRING_ARRAY or I18NSTRING tag
// (for I18NSTRING, one per locale, the first the untranslated one); nil
// when the header lacks it.
func (h *rpmHeader) strings(tag uint32) ([]string, error) {
	e, ok := h.entries[tag]
	if !ok {
		return nil, nil
	}
	switch e.typ {
	case rpmTypeString:
		if e.count != 1 {
			return nil, fmt.Errorf("rpm header: tag %d: STRING with count %d", tag, e.count)
		}
	case rpmTypeStringArray, rpmTypeI18NString:
	default:
		return nil, fmt.Errorf("rpm header: tag %d: type %d, want a string type", tag, e.typ)
	}
	// Every string takes at least its NUL byte.
	if uint64(e.count) > uint64(len(h.data))-uint64(e.off) {
		return nil, fmt.Errorf("rpm header: tag %d: %d strings cannot fit in %d bytes", tag, e.count, len(h.data)-int(e.off))
	}
	out := make([]string, 0, e.count)
	b := h.data[e.off:]
	for i := range e.count {
		n := bytes.IndexByte(b, 0)
		if n < 0 {
			return nil, fmt.Errorf("rpm header: tag %d: string %d not terminated", tag, i)
		}
		out = append(out, string(b[:n]))
		b = b[n+1:]
	}
	return out, nil
}

// str returns the first string of a string tag, "" when absent.
func (h *rpmHeader) str(tag uint32) (string, error) {
	s, err := h.strings(tag)
	if err != nil || len(s) == 0 {
		return "", err
	}
	return s[0], nil
}

// ints returns the values of an integer tag (INT16, INT32 or INT64); nil
// when the header lacks it.
func (h *rpmHeader) ints(tag uint32) ([]int64, error) {
	e, ok := h.entries[tag]
	if !ok {
		return nil, nil
	}
	var size uint64
	switch e.typ {
	case rpmTypeInt16:
		size = 2
	case rpmTypeInt32:
		size = 4
	case rpmTypeInt64:
		size = 8
	default:
		return nil, fmt.Errorf("rpm header: tag %d: type %d, want an integer type", tag, e.typ)
	}
	if uint64(e.count)*size > uint64(len(h.data))-uint64(e.off) {
		return nil, fmt.Errorf("rpm header: tag %d: %d values of %d bytes overrun the data", tag, e.count, size)
	}
	out := make([]int64, e.count)
	b := h.data[e.off:]
	for i := range out {
		switch size {
		case 2:
			out[i] = int64(binary.BigEndian.Uint16(b[2*i:]))
		case 4:
			out[i] = int64(binary.BigEndian.Uint32(b[4*i:]))
		case 8:
			out[i] = int64(binary.BigEndian.Uint64(b[8*i:]))
		}
	}
	return out, nil
}

// rpmPackage is what attribution needs from one installed package.
type rpmPackage struct {
	name, version, release, arch, sourceRPM string
	epoch                                   *int64
	buildTime                               int64
	changelogTimes                          []int64
	files                                   []string // absolute paths, %ghost files left out
}

// nevra is name-[epoch:]version-release[.arch], as rpm's NEVRA tag.
func (p *rpmPackage) nevra() string {
	s := p.name + "-"
	if p.epoch != nil {
		s += fmt.Sprintf("%d:", *p.epoch)
	}
	s += p.version + "-" + p.release
	if p.arch != "" {
		s += "." + p.arch
	}
	return s
}

// rpmPackageFromHeader extracts the package data from a header blob.
func rpmPackageFromHeader(blob []byte) (*rpmPackage, error) {
	h, err := parseRPMHeader(blob)
	if err != nil {
		return nil, err
	}
	p := &rpmPackage{}
	for _, f := range []struct {
		tag uint32
		dst *string
	}{
		{rpmTagName, &p.name}, {rpmTagVersion, &p.version}, {rpmTagRelease, &p.release},
		{rpmTagArch, &p.arch}, {rpmTagSourceRPM, &p.sourceRPM},
	} {
		if *f.dst, err = h.str(f.tag); err != nil {
			return nil, err
		}
	}
	if p.name == "" {
		return nil, fmt.Errorf("rpm header: no NAME")
	}
	if e, err := h.ints(rpmTagEpoch); err != nil {
		return nil, err
	} else if len(e) > 0 {
		p.epoch = &e[0]
	}
	if bt, err := h.ints(rpmTagBuildTime); err != nil {
		return nil, err
	} else if len(bt) > 0 {
		p.buildTime = bt[0]
	}
	if p.changelogTimes, err = h.ints(rpmTagChangelogTime); err != nil {
		return nil, err
	}
	flags, err := h.ints(rpmTagFileFlags)
	if err != nil {
		return nil, err
	}
	base, err := h.strings(rpmTagBasenames)
	if err != nil {
		return nil, err
	}
	if base != nil {
		dirs, err := h.strings(rpmTagDirnames)
		if err != nil {
			return nil, err
		}
		idx, err := h.ints(rpmTagDirIndexes)
		if err != nil {
			return nil, err
		}
		if len(idx) != len(base) {
			return nil, fmt.Errorf("rpm header: %s: %d basenames but %d dirindexes", p.name, len(base), len(idx))
		}
		p.files = make([]string, 0, len(base))
		for i, b := range base {
			if idx[i] < 0 || idx[i] >= int64(len(dirs)) {
				return nil, fmt.Errorf("rpm header: %s: dirindex %d of %d dirnames", p.name, idx[i], len(dirs))
			}
			p.files = append(p.files, dirs[idx[i]]+b)
		}
	} else if p.files, err = h.strings(rpmTagOldFilenames); err != nil {
		return nil, err
	}
	if flags != nil && len(flags) == len(p.files) {
		kept := p.files[:0]
		for i, f := range p.files {
			if flags[i]&rpmFileGhost == 0 {
				kept = append(kept, f)
			}
		}
		p.files = kept
	}
	for i, f := range p.files {
		p.files[i] = path.Clean("/" + f)
	}
	return p, nil
}
