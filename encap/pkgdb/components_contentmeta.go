package pkgdb

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/ostree"
)

// ContentMeta is a parsed --contentmeta file: exactly one of Raw and Sized is set.
type ContentMeta struct {
	// Raw is ostree-ext's RawMeta form (spec §4.7).
	Raw *RawMeta
	// Sized is rpm-ostree's sized component list (what
	// `--write-contentmeta-json` writes and the fedora-coreos-contentmeta
	// fixture holds): metadata and sizes, no objects.
	Sized []pack.Component
}

// RawMeta is ostree-ext's `container encapsulate --contentmeta` input:
//
//	{"version": 1, "created": "2024-01-01T00:00:00Z", "labels": {...},
//	 "layers": {"ID": "human name", ...}, "mapping": {"<object checksum>": "ID", ...},
//	 "ordered": false}
//
// Every layer ID becomes a component of its own layer, in file order, plus
// the empty layer for new packages; so a build with it needs
// maxLayers >= len(Layers) + 2 (the commit layer, the listed layers, the
// reserved one; ostree-ext sets its max_layers to len(Layers) + 1, not
// counting the commit layer).
type RawMeta struct {
	Version int
	// Created overrides the image creation time when set.
	Created string
	// Labels are added to the image config labels.
	Labels map[string]string
	// Layers are the layer IDs and their human names, in file order.
	Layers []RawLayer
	// Mapping maps object checksums to layer IDs.
	Mapping map[ostree.Checksum]string
}

// RawLayer is one entry of RawMeta's "layers".
type RawLayer struct{ ID, Name string }

// ReadContentMeta reads a contentmeta file, gzip-compressed or not.
func ReadContentMeta(file string) (*ContentMeta, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("contentmeta: %w", err)
	}
	cm, err := ParseContentMeta(data)
	if err != nil {
		return nil, fmt.Errorf("contentmeta %s: %w", file, err)
	}
	return cm, nil
}

// ParseContentMeta parses a contentmeta document (gzip-compressed or not):
// a JSON object is RawMeta, a JSON array a sized component list.
func ParseContentMeta(data []byte) (*ContentMeta, error) {
	data, err := maybeGunzip(data)
	if err != nil {
		return nil, err
	}
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '[' {
		comps, err := pack.ParseSized(trimmed)
		if err != nil {
			return nil, err
		}
		return &ContentMeta{Sized: comps}, nil
	}
	raw, err := parseRawMeta(trimmed)
	if err != nil {
		return nil, err
	}
	return &ContentMeta{Raw: raw}, nil
}

func maybeGunzip(data []byte) ([]byte, error) {
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		return data, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	return out, nil
}

func parseRawMeta(data []byte) (*RawMeta, error) {
	var top struct {
		Version *int              `json:"version"`
		Created *string           `json:"created"`
		Labels  map[string]string `json:"labels"`
		Layers  json.RawMessage   `json:"layers"`
		Mapping map[string]string `json:"mapping"`
		Ordered *bool             `json:"ordered"`
	}
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, err
	}
	if top.Version == nil || *top.Version != 1 {
		v := "missing"
		if top.Version != nil {
			v = fmt.Sprint(*top.Version)
		}
		return nil, fmt.Errorf("unsupported metadata version %s; supported: 1", v)
	}
	if top.Ordered != nil && *top.Ordered {
		return nil, errors.New(`"ordered": true is not supported (nor by ostree-ext)`)
	}
	if top.Layers == nil || top.Mapping == nil {
		return nil, errors.New(`"layers" and "mapping" are required`)
	}
	rm := &RawMeta{Version: 1, Labels: top.Labels, Mapping: make(map[ostree.Checksum]string, len(top.Mapping))}
	if top.Created != nil {
		rm.Created = *top.Created
	}
	layers, err := orderedStringObject(top.Layers)
	if err != nil {
		return nil, fmt.Errorf("layers: %w", err)
	}
	seen := make(map[string]bool)
	for _, kv := range layers {
		if seen[kv.ID] {
			return nil, fmt.Errorf("layers: %q listed twice", kv.ID)
		}
		seen[kv.ID] = true
		rm.Layers = append(rm.Layers, kv)
	}
	for k, v := range top.Mapping {
		c, err := ostree.ParseChecksum(k)
		if err != nil {
			return nil, fmt.Errorf("mapping: %w", err)
		}
		if !seen[v] {
			return nil, fmt.Errorf("mapping: object %s names layer %q, which \"layers\" does not list", k, v)
		}
		rm.Mapping[c] = v
	}
	return rm, nil
}

// orderedStringObject decodes a JSON object of strings keeping key order.
func orderedStringObject(data json.RawMessage) ([]RawLayer, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not an object")
	}
	var out []RawLayer
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, _ := tok.(string)
		var val string
		if err := dec.Decode(&val); err != nil {
			return nil, fmt.Errorf("%q: %w", key, err)
		}
		out = append(out, RawLayer{ID: key, Name: val})
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	return out, nil
}

// attributeRawMeta makes one Exclusive component per RawMeta layer, in file
// order, with ostree-ext's change data (frequency 1, or MaxFrequency for the
// ID "unpackaged"). Sizes are the real object sizes (ostree-ext uses 1; only
// the layer order matters there). Objects the mapping misses go to the
// "unpackaged" layer, created when the file has none.
func attributeRawMeta(rm *RawMeta, objs []ostree.ContentObject, opts *AttributeOptions) ([]pack.Component, error) {
	comps := make([]pack.Component, 0, len(rm.Layers)+1)
	idx := make(map[string]int, len(rm.Layers))
	add := func(id, name string) int {
		freq := uint32(1)
		if id == UnpackagedComponent {
			freq = pack.MaxFrequency
		}
		if name == "" {
			name = id
		}
		comps = append(comps, pack.Component{Name: name, Identifier: id, SrcID: id,
			ChangeFrequency: freq, ChangeTimeOffset: 1, Exclusive: true})
		idx[id] = len(comps) - 1
		return len(comps) - 1
	}
	for _, l := range rm.Layers {
		add(l.ID, l.Name)
	}
	inCommit := 0
	gaps := 0
	for _, o := range objs {
		id, ok := rm.Mapping[o.Checksum]
		if ok {
			inCommit++
		} else {
			gaps++
			id = UnpackagedComponent
			if _, ok := idx[id]; !ok {
				add(id, id)
			}
		}
		c := &comps[idx[id]]
		c.Objects = append(c.Objects, o.Checksum)
		c.Size += o.Size
	}
	if gaps > 0 {
		opts.warnf("contentmeta: %d objects of the commit are not in the mapping; they go to the %q layer", gaps, UnpackagedComponent)
	}
	if extra := len(rm.Mapping) - inCommit; extra > 0 {
		opts.warnf("contentmeta: %d mapped objects are not in the commit", extra)
	}
	for i := range comps {
		// objs is sorted by checksum when it comes from ListObjects; make sure.
		ostree.SortChecksums(comps[i].Objects)
	}
	return comps, nil
}
