package imgstore

// Layer records: what the store keeps of a pulled layer besides its
// content, so that the layer's tar (and, with the same compressor, its
// blob) can be rebuilt for a push, and a derived layer can be applied again
// onto another base without fetching it.
//
// A record is a commit with no parent, timestamp 0 and the metadata keys
// below. For a derived layer it is what the layer's blob ref points at and
// its root directory holds the layer's payloads as content objects, named
// by their order in the tar ("00000000", "00000001", ...), so that every
// payload stays reachable — also those of entries the merge drops (/tmp
// children, whiteouts with content) and earlier duplicates of a path. For
// an ostree layer (whose blob ref points at the ostree commit or the §5.6
// object-set commit) the record sits under its own ref, TarSplitRefPrefix +
// escaped digest: its payloads are the objects the tar names.
//
// The tar-split itself is a content object in the record's root named
// tarSplitFile (no payload name looks like it), so that the commit stays a
// few hundred bytes: a pull reads every record's kind and diff_id to find
// stored layers by diff_id, and a record of a large layer carries MBs of
// tar-split. Records written before keep it in the commit metadata
// (recordMetaTarSplit); both are read.

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/encap/imgstore/internal/tarsplit"
	"github.com/ocitree/ocitree/encap/ostreetar"
	"github.com/ocitree/ocitree/ostree"
	"github.com/ocitree/ocitree/ostree/gvariant"
	"github.com/opencontainers/go-digest"
)

// TarSplitRefPrefix + EscapeRef(layer digest) points at the record of a
// pulled ostree layer.
const TarSplitRefPrefix = "ostree/container/tarsplit/"

// Record commit metadata keys.
const (
	recordMetaKind      = "ocitree.layer.kind"      // s: recordDerived or recordOstree
	recordMetaTarSplit  = "ocitree.layer.tar-split" // ay: records of older versions
	recordMetaDiffID    = "ocitree.layer.diff-id"
	recordMetaMediaType = "ocitree.layer.media-type"
	recordMetaSize      = "ocitree.layer.size" // t: compressed blob size
	recordMetaPrefix    = "ocitree.layer.blob-prefix"

	recordDerived = "derived"
	recordOstree  = "ostree"
)

// tarSplitFile names the tar-split object in a record's root.
const tarSplitFile = "tar-split.json.gz"

// maxTarSplit bounds the tar-split object read back into memory (a
// layer's headers, gzip-compressed: ~25 MB per GB of layer).
const maxTarSplit = 256 << 20

// layerRecord is a parsed record commit.
type layerRecord struct {
	Kind string
	// inlineSplit is the tar-split of an older record (in its metadata);
	// newer ones keep it in their root (tarSplit reads it).
	inlineSplit []byte
	DiffID      digest.Digest
	MediaType   string
	Size        int64
	Prefix      string
	// root lists the payload objects of a derived record.
	root *ostree.MutableTree
}

// TarSplitRefName returns the ref of an ostree layer's record.
func TarSplitRefName(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("layer digest %q: %w", d, err)
	}
	e, err := EscapeRef(d.String())
	if err != nil {
		return "", err
	}
	return TarSplitRefPrefix + e, nil
}

// payloadName names the i-th payload in a derived record's root.
func payloadName(i int) string { return fmt.Sprintf("%08d", i) }

// writeLayerRecord writes a record commit into txn. payloads are the
// content objects of a derived layer's payloads in tar order (nil for an
// ostree layer).
func writeLayerRecord(txn *ostree.Txn, kind string, desc *blobDesc, info *blob.Info, split []byte, payloads []ostree.Checksum) (ostree.Checksum, error) {
	names := make([]string, 0, len(payloads)+1)
	for i := range payloads {
		names = append(names, payloadName(i))
	}
	sc, err := txn.WriteContent(&ostree.FileMeta{Mode: 0o100644}, bytes.NewReader(split), int64(len(split)))
	if err != nil {
		return ostree.Checksum{}, fmt.Errorf("storing the tar-split: %w", err)
	}
	names = append(names, tarSplitFile)
	objs := append(payloads[:len(payloads):len(payloads)], sc)
	md := ostree.Metadata{
		{Key: recordMetaKind, Value: ostree.StringVariant(kind)},
		{Key: recordMetaDiffID, Value: ostree.StringVariant(desc.diffID.String())},
		{Key: recordMetaMediaType, Value: ostree.StringVariant(desc.mediaType)},
		{Key: recordMetaSize, Value: gvariant.Variant{Type: "t", Value: uint64(desc.size)}},
		{Key: recordMetaPrefix, Value: ostree.StringVariant(info.Prefix)},
	}
	return writeFlatCommit(txn, names, objs, md)
}

// blobDesc is what a record says of its blob.
type blobDesc struct {
	diffID    digest.Digest
	mediaType string
	size      int64
}

// readLayerRecord reads the record commit c.
func readLayerRecord(repo *ostree.Repo, c ostree.Checksum) (*layerRecord, error) {
	cm, err := repo.ReadCommit(c)
	if err != nil {
		return nil, err
	}
	rec := &layerRecord{
		Kind:      cm.Metadata.String(recordMetaKind),
		DiffID:    digest.Digest(cm.Metadata.String(recordMetaDiffID)),
		MediaType: cm.Metadata.String(recordMetaMediaType),
		Prefix:    cm.Metadata.String(recordMetaPrefix),
	}
	if rec.Kind != recordDerived && rec.Kind != recordOstree {
		return nil, fmt.Errorf("commit %s is not a layer record", c)
	}
	if v, ok := cm.Metadata.Lookup(recordMetaSize); ok {
		if n, ok := v.Value.(uint64); ok {
			rec.Size = int64(n)
		}
	}
	if v, ok := cm.Metadata.Lookup(recordMetaTarSplit); ok {
		b, isBytes := v.Value.([]byte)
		if !isBytes {
			return nil, fmt.Errorf("layer record %s: %s is not bytes", c, recordMetaTarSplit)
		}
		rec.inlineSplit = b
	}
	rec.root = ostree.NewMutableTreeFrom(repo, cm.RootTree, cm.RootMeta)
	return rec, nil
}

// tarSplit returns the record's tar-split.
func (rec *layerRecord) tarSplit(repo *ostree.Repo) ([]byte, error) {
	if rec.inlineSplit != nil {
		return rec.inlineSplit, nil
	}
	c, ok, err := rec.root.File(tarSplitFile)
	if err != nil {
		return nil, fmt.Errorf("layer record: %w", err)
	}
	if !ok {
		return nil, fmt.Errorf("layer record of %s has no tar-split", rec.DiffID)
	}
	rc, err := openPayload(repo, c)
	if err != nil {
		return nil, fmt.Errorf("layer record tar-split: %w", err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxTarSplit+1))
	if err == nil && len(b) > maxTarSplit {
		err = fmt.Errorf("over %d bytes", maxTarSplit)
	}
	if err != nil {
		return nil, fmt.Errorf("layer record tar-split: %w", err)
	}
	return b, nil
}

// assemble writes the tar the record describes to w.
func (rec *layerRecord) assemble(repo *ostree.Repo, w io.Writer) error {
	split, err := rec.tarSplit(repo)
	if err != nil {
		return err
	}
	return tarsplit.Assemble(w, split, rec.opener(repo))
}

// opener returns the payloads of the record from repo.
func (rec *layerRecord) opener(repo *ostree.Repo) tarsplit.PayloadOpener {
	if rec.Kind == recordDerived {
		return func(i int, name string, size int64) (io.ReadCloser, error) {
			c, ok, err := rec.root.File(payloadName(i))
			if err != nil {
				return nil, err
			}
			if !ok {
				return nil, fmt.Errorf("payload %d missing from the layer record", i)
			}
			return openPayload(repo, c)
		}
	}
	return func(i int, name string, size int64) (io.ReadCloser, error) {
		c, typ, ok := ostreetar.ObjectOfTarName(name)
		if !ok {
			return nil, fmt.Errorf("%q is not an object of the store", name)
		}
		if typ == ostree.ObjFile {
			return openPayload(repo, c)
		}
		b, err := repo.LoadMeta(c, typ)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(strings.NewReader(string(b))), nil
	}
}

func openPayload(repo *ostree.Repo, c ostree.Checksum) (io.ReadCloser, error) {
	ct, err := repo.OpenContent(c)
	if err != nil {
		return nil, err
	}
	return ct.Payload, nil
}

// inlineOstreePayload: payloads of an ostree layer that the store cannot
// give back by name are kept in the record.
func inlineOstreePayload(name string) bool {
	_, _, ok := ostreetar.ObjectOfTarName(name)
	return !ok
}
