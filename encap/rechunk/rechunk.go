package rechunk

import (
	"context"
	"fmt"
	"io"
	"maps"
	"runtime"
	"sort"
	"time"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// CreatedBy is the author and created_by of every history entry.
const CreatedBy = "ocitree"

// Labels removed from the input's: they would make importers take the
// plain image for an ostree one (§2.1).
var droppedLabels = []string{"ostree.final-diffid", "ostree.commit", "ostree.diffid"}

// Options control Rechunk.
type Options struct {
	PlanOptions
	// Compression of every layer (Gzip when empty).
	Compression blob.Compression
	// Created is the image's creation time, the history entries' and the
	// clamp of every mtime: SOURCE_DATE_EPOCH, else the input's.
	Created time.Time
	// Config is the input image's config: its architecture, runtime fields
	// (User, WorkingDir, StopSignal, Entrypoint, Cmd, Env, ExposedPorts,
	// Volumes) and labels are kept. Nil for a commit or a directory.
	Config *v1.Image
	// Labels are set (after the input's); RemoveLabels are removed.
	Labels       map[string]string
	RemoveLabels []string
	// Annotations are the manifest's annotations.
	Annotations map[string]string
}

// Result describes the image Rechunk wrote.
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
	Layer      Layer
}

// InputLabels are the labels an input commit stands for, as encapsulate
// writes them: org.opencontainers.image.version from the commit's version,
// ostree.bootable and containers.bootc=1 when it is bootable, ostree.linux.
func InputLabels(repo *ostree.Repo, commit ostree.Checksum) (map[string]string, error) {
	cm, err := repo.ReadCommit(commit)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit, err)
	}
	l := map[string]string{}
	if v := cm.Metadata.String("version"); v != "" {
		l["org.opencontainers.image.version"] = v
	}
	if v, ok := cm.Metadata.Lookup("ostree.bootable"); ok {
		if b, _ := v.Value.(bool); b {
			l["ostree.bootable"] = "true"
		}
	}
	if v := cm.Metadata.String("ostree.linux"); v != "" {
		l["ostree.linux"] = v
	}
	return l, nil
}

// Rechunk writes commit as a plain, package-aware image to w (see the
// package comment) and commits w. The same commit and options give the same
// bytes: tar streams are deterministic, compressors pinned, times come from
// opts.Created. Layers are built in parallel, streamed from the repository.
func Rechunk(ctx context.Context, repo *ostree.Repo, commit ostree.Checksum, w oci.Writer, opts Options) (*Result, error) {
	plan, err := PlanLayers(repo, commit, opts.PlanOptions)
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
	created := opts.Created.UTC().Truncate(time.Second)
	layers, err := writeLayers(ctx, repo, plan, w, comp, mediaType, created)
	if err != nil {
		return nil, err
	}
	cfg := imageConfig(opts, created)
	for _, l := range layers {
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, l.DiffID)
		cfg.History = append(cfg.History, v1.History{Created: &created, Author: CreatedBy, CreatedBy: CreatedBy, Comment: l.Layer.Annotation()})
	}
	res := &Result{Layers: layers}
	var descs []oci.Descriptor
	for _, l := range layers {
		descs = append(descs, l.Descriptor)
	}
	var annotations map[string]string
	if len(opts.Annotations) > 0 {
		annotations = maps.Clone(opts.Annotations)
	}
	wi, err := encap.WriteImage(ctx, w, cfg, descs, annotations)
	if err != nil {
		return nil, err
	}
	res.Config, res.Manifest, res.ManifestDigest = wi.Config, wi.Manifest, wi.ManifestDigest
	return res, nil
}

// imageConfig is the output config without layers (§3.5): os linux, the
// input's architecture (this machine's without one), created, the input's
// runtime fields and labels, then the label edits.
func imageConfig(opts Options, created time.Time) v1.Image {
	cfg := v1.Image{
		Created:  &created,
		Platform: v1.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		RootFS:   v1.RootFS{Type: "layers"},
	}
	labels := map[string]string{}
	if in := opts.Config; in != nil {
		if in.Architecture != "" {
			cfg.Architecture, cfg.Variant = in.Architecture, in.Variant
		}
		c := in.Config
		cfg.Config = v1.ImageConfig{User: c.User, WorkingDir: c.WorkingDir, StopSignal: c.StopSignal,
			Entrypoint: c.Entrypoint, Cmd: c.Cmd, Env: c.Env, ExposedPorts: c.ExposedPorts, Volumes: c.Volumes}
		maps.Copy(labels, c.Labels)
	}
	maps.Copy(labels, opts.Labels)
	for _, k := range droppedLabels {
		delete(labels, k)
	}
	if _, ok := labels["ostree.bootable"]; ok {
		if _, ok := labels["containers.bootc"]; !ok {
			labels["containers.bootc"] = "1"
		}
	}
	for _, k := range opts.RemoveLabels {
		delete(labels, k)
	}
	if len(labels) > 0 {
		cfg.Config.Labels = labels
	}
	return cfg
}

// writeLayers builds every layer, largest first, on all cores.
func writeLayers(ctx context.Context, repo *ostree.Repo, plan *Plan, w oci.Writer, comp blob.Compression, mediaType string, created time.Time) ([]LayerResult, error) {
	order := make([]int, len(plan.Layers))
	for i := range order {
		order[i] = i
	}
	sort.SliceStable(order, func(a, b int) bool { return plan.Layers[order[a]].Size > plan.Layers[order[b]].Size })
	results := make([]LayerResult, len(plan.Layers))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(runtime.GOMAXPROCS(0))
	for _, i := range order {
		g.Go(func() error {
			l := &plan.Layers[i]
			desc, diffID, err := blob.WriteLayer(ctx, w, func(tw io.Writer) error {
				return writeLayer(tw, repo, plan, l, created)
			}, comp, mediaType)
			if err != nil {
				return fmt.Errorf("layer %d (%s): %w", i, l.Annotation(), err)
			}
			desc.Annotations = blob.MergeAnnotations(desc.Annotations, map[string]string{
				ComponentAnnotation: l.Annotation(),
				StabilityAnnotation: l.StabilityString(),
			})
			results[i] = LayerResult{Descriptor: desc, DiffID: diffID, Layer: *l}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return results, nil
}
