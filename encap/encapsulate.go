package encap

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"sort"
	"time"

	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/encap/ostreetar"
	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/encap/pkgdb"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Options control Encapsulate.
type Options struct {
	// MaxLayers bounds the image's layers, the commit layer included
	// (DefaultMaxLayers when 0; at least MinMaxLayers).
	MaxLayers int
	// Compression of every layer (Gzip when empty).
	Compression blob.Compression
	// Labels are added to the config and the manifest annotations; they
	// override the ones derived from the commit.
	Labels map[string]string
	// ContentMeta is a --contentmeta file (see AttributeOptions).
	ContentMeta string
	// Prior is the component layout of a previous build (see PriorLayers):
	// components keep their layers so unchanged layers keep their digests.
	Prior []pack.PriorLayer
	// Warn receives notes that do not stop the build.
	Warn func(string)
}

// Result describes the image Encapsulate wrote.
type Result struct {
	Manifest       []byte
	ManifestDigest digest.Digest
	Config         []byte
	Layers         []LayerResult
}

// LayerResult is one written layer.
type LayerResult struct {
	Descriptor oci.Descriptor
	DiffID     digest.Digest
	CreatedBy  string
}

// Encapsulate writes commit as a chunked ostree container image (ostree-ext
// "chunked v1", spec §4) to w: the commit layer first, then the component
// layers, labels and history as ostree-ext writes them, and commits w. The
// same commit and options always give the same manifest digest: tar streams
// are deterministic, compressors are pinned, times come from the commit.
// Layers are built in parallel, streamed from the repository to w.
func Encapsulate(ctx context.Context, repo *ostree.Repo, commit ostree.Checksum, w oci.Writer, opts Options) (*Result, error) {
	plan, err := PlanLayers(repo, commit, opts)
	if err != nil {
		return nil, err
	}
	cm, err := repo.ReadCommit(commit)
	if err != nil {
		return nil, err
	}
	comp := opts.Compression
	if comp == "" {
		comp = blob.Gzip
	}
	mediaType, err := blob.MediaType(comp)
	if err != nil {
		return nil, err
	}
	layers, err := writeLayers(ctx, repo, commit, cm.Subject, plan, w, comp, mediaType)
	if err != nil {
		return nil, err
	}
	res := &Result{Layers: layers}
	created := time.Unix(int64(cm.Timestamp), 0).UTC()
	labels := imageLabels(commit, cm, layers, opts.Labels)
	cfg := v1.Image{
		Created:  &created,
		Platform: v1.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config:   v1.ImageConfig{Labels: labels},
		RootFS:   v1.RootFS{Type: "layers"},
	}
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
		cfg.History = append(cfg.History, v1.History{Created: &created, CreatedBy: l.CreatedBy})
	}
	var descs []oci.Descriptor
	for _, l := range layers {
		descs = append(descs, l.Descriptor)
	}
	var annotations map[string]string
	if len(labels) > 0 {
		annotations = maps.Clone(labels)
	}
	wi, err := WriteImage(ctx, w, cfg, descs, annotations)
	if err != nil {
		return nil, err
	}
	res.Config, res.Manifest, res.ManifestDigest = wi.Config, wi.Manifest, wi.ManifestDigest
	return res, nil
}

// Plan is the layer assignment of a commit's content objects.
type Plan struct {
	// Rest are the objects of the commit layer (those no component took).
	Rest ostreetar.Chunk
	// Components are the component layers, in image order.
	Components []PlannedLayer
}

// PlannedLayer is one component layer with its objects.
type PlannedLayer struct {
	pack.Layer
	Chunk ostreetar.Chunk
}

// PlanLayers attributes the commit's objects to components and packs them
// into layers.
func PlanLayers(repo *ostree.Repo, commit ostree.Checksum, opts Options) (*Plan, error) {
	limit := opts.MaxLayers
	if limit == 0 {
		limit = pack.DefaultMaxLayers
	}
	objs, err := ostree.CommitObjects(repo, commit)
	if err != nil {
		return nil, err
	}
	comps, err := pkgdb.Attribute(repo, commit, objs, pkgdb.AttributeOptions{ContentMeta: opts.ContentMeta, Warn: opts.Warn})
	if err != nil {
		return nil, err
	}
	if opts.ContentMeta != "" {
		// Every listed component gets its layer, as in ostree-ext.
		limit = max(limit, pack.LayersNeeded(comps))
	}
	packed, err := pack.Pack(comps, limit, opts.Prior)
	if err != nil {
		return nil, err
	}
	byCsum := make(map[ostree.Checksum]ostree.ContentObject, len(objs))
	for _, o := range objs {
		byCsum[o.Checksum] = o
	}
	plan := &Plan{}
	for _, l := range packed {
		pl := PlannedLayer{Layer: l}
		for _, c := range l.Objects {
			o, ok := byCsum[c]
			if !ok {
				return nil, fmt.Errorf("packing put unknown object %s in layer %q", c, l.Name)
			}
			delete(byCsum, c)
			pl.Chunk.Objects = append(pl.Chunk.Objects, o)
		}
		plan.Components = append(plan.Components, pl)
	}
	rest := slices.SortedFunc(maps.Keys(byCsum), func(a, b ostree.Checksum) int { return bytes.Compare(a[:], b[:]) })
	for _, c := range rest {
		plan.Rest.Objects = append(plan.Rest.Objects, byCsum[c])
	}
	return plan, nil
}

// writeLayers builds every layer, largest first, on all cores.
func writeLayers(ctx context.Context, repo *ostree.Repo, commit ostree.Checksum, subject string, plan *Plan, w oci.Writer, comp blob.Compression, mediaType string) ([]LayerResult, error) {
	type job struct {
		size      int64
		write     func(io.Writer) error
		createdBy string
		annot     map[string]string
	}
	createdBy := subject
	if createdBy == "" {
		createdBy = "ostree export of commit " + commit.String()
	}
	jobs := []job{{size: chunkSize(plan.Rest), createdBy: createdBy,
		write: func(w io.Writer) error { return ostreetar.WriteCommitLayer(w, repo, commit, plan.Rest) }}}
	for _, pl := range plan.Components {
		jobs = append(jobs, job{size: chunkSize(pl.Chunk), createdBy: pl.Name,
			annot: map[string]string{pack.ComponentsAnnotation: pl.Annotation()},
			write: func(w io.Writer) error { return ostreetar.WriteChunkLayer(w, repo, pl.Chunk) }})
	}
	order := make([]int, len(jobs))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return jobs[order[a]].size > jobs[order[b]].size })
	results := make([]LayerResult, len(jobs))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, i := range order {
		g.Go(func() error {
			j := jobs[i]
			desc, diffID, err := blob.WriteLayer(ctx, w, j.write, comp, mediaType)
			if err != nil {
				return fmt.Errorf("layer %d (%s): %w", i, j.createdBy, err)
			}
			desc.Annotations = blob.MergeAnnotations(desc.Annotations, j.annot)
			results[i] = LayerResult{Descriptor: desc, DiffID: diffID, CreatedBy: j.createdBy}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return results, nil
}

func chunkSize(c ostreetar.Chunk) int64 {
	var n int64
	for _, o := range c.Objects {
		n += o.Size
	}
	return n
}

// imageLabels are the config labels and manifest annotations of §4.3.
func imageLabels(commit ostree.Checksum, cm *ostree.Commit, layers []LayerResult, extra map[string]string) map[string]string {
	l := map[string]string{"ostree.commit": commit.String()}
	if v := cm.Metadata.String("version"); v != "" {
		l["org.opencontainers.image.version"] = v
	}
	if v, ok := cm.Metadata.Lookup("ostree.bootable"); ok {
		b, _ := v.Value.(bool)
		l["ostree.bootable"] = fmt.Sprint(b)
		l["containers.bootc"] = "1"
	}
	if v := cm.Metadata.String("ostree.linux"); v != "" {
		l["ostree.linux"] = v
	}
	maps.Copy(l, extra)
	l["ostree.final-diffid"] = layers[len(layers)-1].DiffID.String()
	return l
}
