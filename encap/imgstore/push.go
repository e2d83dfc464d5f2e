package imgstore

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// PushOptions control Push.
type PushOptions struct {
	// Fallback compresses layers that cannot be reproduced (Gzip when
	// empty); their blobs, and so the manifest digest, change.
	Fallback blob.Compression
	// RequireIdentical fails instead of recompressing a layer.
	RequireIdentical bool
	// Parallel is how many layers are rebuilt at once (2 when 0).
	Parallel int
}

// PushLayer says how one layer was pushed.
type PushLayer struct {
	Digest digest.Digest `json:"digest"`
	// Compressor is the compressor that reproduced the blob; empty when
	// the destination had the blob already or the layer was recompressed.
	Compressor string `json:"compressor,omitempty"`
	// Recompressed: the blob could not be reproduced; Digest is the new one.
	Recompressed bool `json:"recompressed,omitempty"`
	// Why says why a layer was recompressed.
	Why string `json:"why,omitempty"`
}

// PushResult says what Push did.
type PushResult struct {
	ManifestDigest digest.Digest `json:"manifest_digest"`
	// Identical: the pushed manifest is byte for byte the pulled one.
	Identical bool        `json:"identical"`
	Layers    []PushLayer `json:"layers"`
}

// ErrNotReproducible is returned with RequireIdentical when a layer blob
// cannot be rebuilt byte for byte.
var ErrNotReproducible = errors.New("layer blob cannot be reproduced")

// Push writes the stored image imgref (as pulled) to w without the
// original blobs: every layer's tar is rebuilt from its record and the
// store's objects, and compressed with the compressor that reproduces the
// blob (recompress.go), so the layer digests, the config and the manifest
// are those of the pulled image. A layer no compressor reproduces (or with
// no record: pulled by an older version) is compressed with Fallback and
// the manifest is rewritten to match, unless RequireIdentical. The blob
// contents are verified against their digests while they stream to w.
func Push(ctx context.Context, repo *ostree.Repo, imgref string, w oci.Writer, opts PushOptions) (*PushResult, error) {
	si, err := Image(repo, imgref)
	if err != nil {
		return nil, err
	}
	if si.Config == nil {
		return nil, fmt.Errorf("image %s: its merge commit holds no config", imgref)
	}
	layout, err := storedLayout(si.Manifest, si.Config)
	if err != nil {
		return nil, err
	}
	m := layout.Manifest
	res := &PushResult{Layers: make([]PushLayer, len(m.Layers))}
	if err := pushLayers(ctx, repo, w, layout, res, opts); err != nil {
		return nil, err
	}
	if _, err := w.PutBlob(ctx, bytes.NewReader(si.Config), m.Config); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	mb := si.Manifest
	changed := false
	for _, l := range res.Layers {
		changed = changed || l.Recompressed // its descriptor is in m already
	}
	if changed {
		if mb, err = json.Marshal(m); err != nil {
			return nil, err
		}
	}
	mt := m.MediaType
	if mt == "" {
		mt = v1.MediaTypeImageManifest
	}
	if err := w.PutManifest(ctx, mb, mt); err != nil {
		return nil, err
	}
	if err := w.Commit(ctx); err != nil {
		return nil, err
	}
	res.ManifestDigest = digest.FromBytes(mb)
	res.Identical = !changed
	return res, nil
}

// pushLayers pushes the layers, Parallel at a time; a recompressed layer's
// new descriptor is left in layout.Manifest.Layers.
func pushLayers(ctx context.Context, repo *ostree.Repo, w oci.Writer, layout *encap.ImageLayout, res *PushResult, opts PushOptions) error {
	parallel := opts.Parallel
	if parallel <= 0 {
		parallel = 2
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	for i := range layout.Manifest.Layers {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := pushLayer(gctx, repo, w, layout, i, &res.Layers[i], opts); err != nil {
				return fmt.Errorf("layer %d (%s): %w", i, layout.Manifest.Layers[i].Digest, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// layerRecordFor finds the record of layer i of a stored image.
func layerRecordFor(repo *ostree.Repo, layout *encap.ImageLayout, i int) (*layerRecord, error) {
	d := layout.Manifest.Layers[i].Digest
	name, err := TarSplitRefName(d)
	if i >= layout.OstreeLayers {
		name, err = BlobRefName(d)
	}
	if err != nil {
		return nil, err
	}
	c, ok, err := readRefMaybe(repo, name)
	if err != nil {
		return nil, err
	}
	if !ok {
		// Reused by diff_id (store_reuse.go): no record under this
		// digest; a stored layer's of the same diff_id rebuilds the tar
		// and the blob digest is checked by findCompressor.
		stored, err := storedByDiffID(repo)
		if err != nil {
			return nil, err
		}
		s, found := stored[layout.Config.RootFS.DiffIDs[i]]
		if !found {
			return nil, nil
		}
		rec, err := readLayerRecord(repo, s.record)
		if err != nil {
			return nil, err
		}
		// The fingerprint is the other blob's: this one's compressor is
		// found on whole blobs against this descriptor.
		d := layout.Manifest.Layers[i]
		rec.Prefix, rec.MediaType, rec.Size = "", d.MediaType, d.Size
		return rec, nil
	}
	rec, err := readLayerRecord(repo, c)
	if err != nil {
		return nil, err
	}
	if rec.DiffID != layout.Config.RootFS.DiffIDs[i] {
		return nil, fmt.Errorf("record %s is of diff_id %s, the image says %s", c, rec.DiffID, layout.Config.RootFS.DiffIDs[i])
	}
	return rec, nil
}

func pushLayer(ctx context.Context, repo *ostree.Repo, w oci.Writer, layout *encap.ImageLayout, i int, out *PushLayer, opts PushOptions) error {
	desc := layout.Manifest.Layers[i]
	out.Digest = desc.Digest
	rec, err := layerRecordFor(repo, layout, i)
	if err != nil {
		return err
	}
	if rec == nil {
		return recompressLayer(ctx, repo, w, layout, i, nil, out, opts, "no record of the layer in the store (pulled by an older ocitree?)")
	}
	// The lazy reader finds the compressor only if the destination reads:
	// a registry that has the blob already is not sent it.
	lr := &lazyBlob{start: func() (io.ReadCloser, error) {
		c, ok, err := findCompressor(repo, rec, desc)
		if err != nil {
			return nil, err
		}
		if !ok {
			out.Why = "no known compressor reproduces the blob"
			return nil, errNoCompressor
		}
		out.Compressor = c.name
		return compressedTar(repo, rec, c), nil
	}}
	defer lr.Close()
	_, err = w.PutBlob(ctx, lr, desc)
	if err != nil && lr.err == errNoCompressor {
		return recompressLayer(ctx, repo, w, layout, i, rec, out, opts, out.Why)
	}
	return err
}

var errNoCompressor = errors.New("no known compressor reproduces the blob")

// lazyBlob opens its stream on the first Read.
type lazyBlob struct {
	start func() (io.ReadCloser, error)
	rc    io.ReadCloser
	err   error
}

func (l *lazyBlob) Read(p []byte) (int, error) {
	if l.rc == nil && l.err == nil {
		l.rc, l.err = l.start()
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.rc.Read(p)
}

func (l *lazyBlob) Close() error {
	if l.rc != nil {
		return l.rc.Close()
	}
	return nil
}

// compressedTar streams the record's tar compressed by c.
func compressedTar(repo *ostree.Repo, rec *layerRecord, c layerCompressor) io.ReadCloser {
	pr, pw := io.Pipe()
	go func() {
		cw, err := c.new(pw)
		if err == nil {
			bw := bufio.NewWriterSize(cw, 256<<10)
			err = rec.assemble(repo, bw)
			if err == nil {
				err = bw.Flush()
			}
			if cerr := cw.Close(); err == nil {
				err = cerr
			}
		}
		pw.CloseWithError(err)
	}()
	return pr
}

// recompressLayer pushes layer i compressed with opts.Fallback (gzip by
// default) and records the new descriptor.
func recompressLayer(ctx context.Context, repo *ostree.Repo, w oci.Writer, layout *encap.ImageLayout, i int, rec *layerRecord, out *PushLayer, opts PushOptions, why string) error {
	if opts.RequireIdentical || rec == nil {
		return fmt.Errorf("%w: %s", ErrNotReproducible, why)
	}
	comp := opts.Fallback
	if comp == "" {
		comp = blob.Gzip
	}
	mt, err := blob.MediaType(comp)
	if err != nil {
		return err
	}
	desc, _, err := blob.WriteLayer(ctx, w, func(bw io.Writer) error {
		return rec.assemble(repo, bw)
	}, comp, mt)
	if err != nil {
		return err
	}
	desc.Annotations = blob.MergeAnnotations(withoutChunkedAnnotations(layout.Manifest.Layers[i].Annotations), desc.Annotations)
	layout.Manifest.Layers[i] = desc
	*out = PushLayer{Digest: desc.Digest, Recompressed: true, Why: why}
	return nil
}

// withoutChunkedAnnotations drops the zstd:chunked annotations, which
// describe the old blob.
func withoutChunkedAnnotations(a map[string]string) map[string]string {
	var out map[string]string
	for k, v := range a {
		if strings.HasPrefix(k, "io.github.containers.") {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[k] = v
	}
	return out
}
