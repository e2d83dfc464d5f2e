package imgstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/encap/derived"
	"github.com/ocitree/ocitree/encap/imgstore/internal/tarsplit"
	"github.com/ocitree/ocitree/encap/ostreetar"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sync/errgroup"
)

// Ref namespaces of the image store (spec §5.1).
const (
	// BlobRefPrefix + EscapeRef(layer digest) points at a pulled ostree
	// layer: the synthetic object-set commit of a component layer, or the
	// original commit for the commit layer.
	BlobRefPrefix = "ostree/container/blob/"
	// ImageRefPrefix + EscapeRef(image reference) points at an image's
	// merge commit.
	ImageRefPrefix = "ostree/container/image/"
	// BaseImageRefPrefix holds further GC roots (bootc's base images).
	BaseImageRefPrefix = "ostree/container/baseimage/"
)

// gcRootPrefixes are the ref namespaces whose commits' manifests keep
// layer refs alive (§5.10), besides ImageRefPrefix.
var gcRootPrefixes = []string{"ostree/0/", "ostree/1/", "rpmostree/base/", BaseImageRefPrefix}

// DefaultPullParallelism is how many ostree layers Pull fetches at once.
const DefaultPullParallelism = 3

// PullOptions control Pull and Import.
type PullOptions struct {
	// Check makes Pull stop after Prepare: only the manifest and config
	// are fetched, and the result reports what a pull would download. Only
	// the cached update of a stored image is written (as ostree-ext does).
	// Import ignores it.
	Check bool
	// Parallel is how many ostree layers are fetched at once
	// (DefaultPullParallelism when 0).
	Parallel int
	// Derived is passed to derived.Apply for derived layers.
	Derived derived.Options
	// NoGC leaves unreferenced layer refs in place after the pull.
	NoGC bool
	// Progress, when not nil, is told what is fetched.
	Progress PullProgress
	// VerifyCommit, when set, checks the image's ostree commit (e.g. its
	// signature, from the detached metadata): after its layer is imported
	// and before that layer's transaction commits, or, when the commit was
	// stored already (by this image, another one with the same diff_id, or
	// an earlier unverified pull), before the merge. A refusal fails the
	// pull with a *RefusedError and removes the layer refs the pull
	// created (their objects stay until a prune).
	VerifyCommit func(txn *ostree.Txn, commit ostree.Checksum) error
	// Limits bound each layer's uncompressed stream (blob.DefaultLimits
	// when nil).
	Limits *blob.Limits
	// Bootable makes the pull a host pull (bootc's): a plain image must
	// carry the label ostree.bootable or containers.bootc (plain.go).
	Bootable bool
	// Arch, when set, must equal the image config's architecture (Go
	// names, e.g. runtime.GOARCH).
	Arch string
}

// PullResult says what Pull or Import did (or, with Check, would do).
type PullResult struct {
	// MergeCommit is the commit the image ref points at (zero with Check).
	MergeCommit ostree.Checksum
	// BaseCommit is the image's ostree commit (zero with Check unless its
	// layer is present).
	BaseCommit     ostree.Checksum
	ManifestDigest digest.Digest
	// AlreadyPresent: the image ref already held this manifest (or this
	// config); nothing was fetched.
	AlreadyPresent bool
	// LayersFetched and BytesFetched count the layer blobs downloaded (with
	// Check: those that would be), derived layers included; bytes are the
	// compressed blob sizes from the manifest.
	LayersFetched int
	BytesFetched  int64
	// LayersPresent counts the layers whose blob ref existed already.
	LayersPresent int
	// GCRemoved counts layer refs removed by the layer GC after the pull.
	GCRemoved int
	// Plain: the image has no ostree layer (plain.go).
	Plain bool
	// Warnings are what the pull accepted but a user should know (bootc
	// logs them): a missing containers.bootc label, a truncated history,
	// dropped paths.
	Warnings []string
}

// ImageRefName returns the ref under which the image imgref (a plain image
// reference in display form, e.g. docker://quay.io/x/y:tag) is stored.
func ImageRefName(imgref string) (string, error) {
	e, err := EscapeRef(imgref)
	if err != nil {
		return "", err
	}
	return ImageRefPrefix + e, nil
}

// BlobRefName returns the ref of a pulled layer blob.
func BlobRefName(d digest.Digest) (string, error) {
	if err := d.Validate(); err != nil {
		return "", fmt.Errorf("layer digest %q: %w", d, err)
	}
	e, err := EscapeRef(d.String())
	if err != nil {
		return "", err
	}
	return BlobRefPrefix + e, nil
}

// readRefMaybe resolves a ref; ok is false when it does not exist.
func readRefMaybe(repo *ostree.Repo, name string) (ostree.Checksum, bool, error) {
	c, err := repo.ReadRef(name)
	if errors.Is(err, ostree.ErrRefNotFound) {
		return ostree.Checksum{}, false, nil
	}
	if err != nil {
		return ostree.Checksum{}, false, err
	}
	return c, true, nil
}

// layerState is one ostree layer of the image being pulled.
type layerState struct {
	index  int
	desc   v1.Descriptor
	diffID digest.Digest
	ref    string
	commit ostree.Checksum
	have   bool
	// reused: served by diff_id from another layer; no ref of its own.
	reused bool
}

// Pull imports the ostree container image r reads into repo and
// points the image ref for imgref (ImageRefName) at its merge commit
// (spec §5.3–§5.7, §5.9, §5.10): New(repo).Pull, that is Prepare, then
// (unless opts.Check) Import.
func Pull(ctx context.Context, repo *ostree.Repo, r oci.Reader, imgref string, opts PullOptions) (*PullResult, error) {
	return New(repo).Pull(ctx, r, imgref, opts)
}

// Prepare fetches the manifest and config of the ostree container image r
// reads (nothing else) and finds out which of its layers the store holds
// (spec §5.3). When the image ref for imgref (ImageRefName) holds another
// image, the new manifest and config are recorded as its cached update
// (ostree-ext's, so that a later check can answer offline); nothing else
// is written.
//
// Ostree layers whose blob ref exists are present; so are layers whose
// diff_id is stored under another layer's ref (store_reuse.go). A blob ref
// that disagrees with the image (kind, diff_id, the ostree.commit label) is
// never trusted: its layer is fetched again.
//
// Of opts only the host-pull checks (Bootable, Arch) apply here; a plain
// image (no ostree layer, plain.go) is prepared as derived layers onto an
// empty tree.
func (s *Store) Prepare(ctx context.Context, r oci.Reader, imgref string, opts PullOptions) (*Prepared, error) {
	repo := s.repo
	imageRef, err := ImageRefName(imgref)
	if err != nil {
		return nil, fmt.Errorf("image reference %q: %w", imgref, err)
	}
	mb, _, err := r.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	var m v1.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	if err := checkDescriptors(&m); err != nil {
		return nil, err
	}
	p := &Prepared{ImageRef: imgref, ManifestDigest: digest.FromBytes(mb), Manifest: mb,
		r: r, refName: imageRef, layerCount: len(m.Layers)}

	// §5.3 step 3: the same image is stored already. Decided from the
	// manifest alone, as ostree-ext does: the config is not fetched.
	prev, prevOK, err := readRefMaybe(repo, imageRef)
	if err != nil {
		return nil, err
	}
	if prevOK {
		p.Previous = prev
		same, err := sameImage(repo, prev, p.ManifestDigest, m.Config.Digest)
		if err != nil {
			return nil, err
		}
		if same {
			p.AlreadyPresent = true
			cm, err := repo.ReadCommit(prev)
			if err != nil {
				return nil, err
			}
			p.BaseCommit = cm.Parent
			if c := cm.Metadata.String(derived.MergeMetaImageConfig); c != "" && c != "null" {
				p.Config = []byte(c)
			}
			// A host pull checks a stored image too (it may have been
			// stored by a plain `image pull`), from the stored config.
			if p.Config != nil {
				if p.Plain, p.Warnings, err = hostChecks(mb, p.Config, opts); err != nil {
					return nil, err
				}
			}
			return p, nil
		}
	}

	cb, err := r.Config(ctx)
	if err != nil {
		return nil, err
	}
	// Plain images and host-pull checks: plain.go.
	plain, warnings, err := hostChecks(mb, cb, opts)
	if err != nil {
		return nil, err
	}
	if plain {
		if err := preparePlain(repo, p, mb, cb, warnings); err != nil {
			return nil, err
		}
		return p, nil
	}
	p.Warnings = warnings
	layout, err := encap.ParseImageLayout(mb, cb)
	if err != nil {
		return nil, err
	}
	p.Config, p.layout = cb, layout

	var ostreeLayers []*layerState
	for i := 0; i < layout.OstreeLayers; i++ {
		desc := layout.Manifest.Layers[i]
		ref, err := BlobRefName(desc.Digest)
		if err != nil {
			return nil, fmt.Errorf("layer %d: %w", i, err)
		}
		c, ok, err := readRefMaybe(repo, ref)
		if err != nil {
			return nil, err
		}
		l := &layerState{index: i, desc: desc, diffID: layout.Config.RootFS.DiffIDs[i], ref: ref, commit: c, have: ok}
		if ok {
			// Never trusted as is: a ref that disagrees is fetched again.
			agrees, err := ostreeRefAgrees(repo, l, layout.Commit)
			if err != nil {
				return nil, err
			}
			if !agrees {
				l.commit, l.have = ostree.Checksum{}, false
			}
		}
		ostreeLayers = append(ostreeLayers, l)
	}
	var missing []*layerState
	for _, l := range ostreeLayers {
		if !l.have {
			missing = append(missing, l)
		}
	}
	derived, err := derivedLayers(repo, layout)
	if err != nil {
		return nil, err
	}
	// created lists the refs this pull may create for ostree layers: a
	// refused signature removes them again.
	p.created = layerRefs(missing)
	if len(missing) > 0 || len(fetchedDescs(derived)) > 0 {
		stored, err := storedByDiffID(repo)
		if err != nil {
			return nil, err
		}
		missing = reuseOstreeLayers(missing, stored)
		for _, d := range derived {
			if s, ok := stored[d.diffID]; ok && !d.have && s.kind == recordDerived {
				d.reuse = &s
			}
		}
	}
	p.freshCommit = len(missing) > 0 && missing[0].index == 0
	if ostreeLayers[0].have {
		p.BaseCommit = ostreeLayers[0].commit
	}
	p.ostree, p.missing, p.derived = ostreeLayers, missing, derived
	p.Layers = preparedLayers(ostreeLayers, derived)
	if prevOK {
		// ostree-ext's "cached update": lets a later check answer offline.
		if err := writeCachedUpdate(repo, prev, p.ManifestDigest, mb, cb); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// Import pulls a prepared image: missing ostree layers are fetched
// opts.Parallel at a time, each streamed (no temporary copy), verified
// (blob digest, diff_id, every object checksum) and imported in a
// transaction of its own that also writes its blob ref: a component layer's
// ref points at a synthetic object-set commit (§5.6), the commit layer's
// ref at the image's ostree commit, checked complete first. So layers that
// finished survive an interrupted pull and a ref never points at partial
// content. Every fetched layer is also recorded with tar-split
// (layerrecord.go) so that Push can rebuild it. Derived layers are then
// applied in manifest order onto the base commit's tree and the merge
// commit is written, in one more transaction that sets the image ref; a
// derived layer whose blob ref exists is rebuilt from its record instead of
// being fetched again. An image that was AlreadyPresent is not fetched;
// its stored commit is only verified (opts.VerifyCommit). opts.Check is
// ignored.
//
// Unless NoGC, layer refs that no stored image's manifest lists are deleted
// afterwards (objects are not pruned). A GC running while another process
// pulls may delete the layer refs of that pull (ostree-ext has the same
// race); the objects stay until a prune and the next pull fetches them again.
func (s *Store) Import(ctx context.Context, p *Prepared, opts PullOptions) (*PullResult, error) {
	repo, r := s.repo, p.r
	res := p.result()
	if p.Plain && opts.VerifyCommit != nil {
		// An ostree-remote signature is on an ostree commit; a plain
		// image has none, so it cannot be verified that way.
		return nil, errors.New("a plain image (no ostree layer) has no ostree commit to verify: ostree-remote-image: references need an ostree container image; use ostree-image-signed: (containers-policy.json)")
	}
	if p.AlreadyPresent {
		res.MergeCommit, res.BaseCommit = p.Previous, p.BaseCommit
		// Stored before, maybe by an unverified pull.
		if err := verifyStoredCommit(repo, res.BaseCommit, opts.VerifyCommit); err != nil {
			return nil, err
		}
		return res, nil
	}
	if p.Plain {
		return importPlain(ctx, repo, p, res, opts)
	}
	missing, derived, created := p.missing, p.derived, p.created

	if opts.Progress != nil {
		opts.Progress.Begin(res.LayersFetched, res.BytesFetched)
	}
	if err := fetchOstreeLayers(ctx, repo, r, missing, opts); err != nil {
		return nil, undoRefused(repo, err, created)
	}
	base := p.ostree[0].commit
	if !p.freshCommit {
		// The commit layer was stored (or reused by diff_id), maybe by
		// an unverified pull: verify it now.
		if err := verifyStoredCommit(repo, base, opts.VerifyCommit); err != nil {
			return nil, undoRefused(repo, err, created)
		}
	}
	if p.layout.Commit != "" && p.layout.Commit != base.String() {
		return nil, fmt.Errorf("image label ostree.commit=%s but its commit layer carries %s", p.layout.Commit, base)
	}
	res.BaseCommit = base

	if err := fpPullBeforeMerge.Hit(); err != nil {
		return nil, err
	}
	merge, err := writeMerge(ctx, repo, r, derived, base, res.ManifestDigest, p.Manifest, p.Config, p.refName, opts.Derived, opts.fetch())
	if err != nil {
		return nil, err
	}
	res.MergeCommit = merge
	return finishImport(repo, res, opts)
}

func descs(ls []*layerState) []v1.Descriptor {
	out := make([]v1.Descriptor, len(ls))
	for i, l := range ls {
		out[i] = l.desc
	}
	return out
}

// sameImage reports whether the merge commit prev was made from the
// manifest md or an image with config digest cfg.
func sameImage(repo *ostree.Repo, prev ostree.Checksum, md, cfg digest.Digest) (bool, error) {
	cm, err := repo.ReadCommit(prev)
	if err != nil {
		return false, err
	}
	if cm.Metadata.String(derived.MergeMetaManifestDigest) == md.String() {
		return true, nil
	}
	var m v1.Manifest
	if s := cm.Metadata.String(derived.MergeMetaManifest); s != "" && json.Unmarshal([]byte(s), &m) == nil {
		return m.Config.Digest != "" && m.Config.Digest == cfg, nil
	}
	return false, nil
}

// fetchOstreeLayers imports the missing ostree layers, parallel at a time,
// each in its own transaction. The commit layer's transaction is committed
// only after every component layer is, so that VerifyCommitComplete sees
// their objects. On the first error the other fetches are cancelled.
func fetchOstreeLayers(ctx context.Context, repo *ostree.Repo, r oci.Reader, missing []*layerState, opts PullOptions) error {
	parallel, progress := opts.Parallel, opts.fetch()
	if len(missing) == 0 {
		return nil
	}
	if parallel <= 0 {
		parallel = DefaultPullParallelism
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(parallel)
	var (
		compWG     sync.WaitGroup
		mu         sync.Mutex
		compFailed bool
	)
	// Components first, the commit layer last (§5.5); it may run
	// alongside the last components. Being last, it holds its slot while it
	// waits for them without keeping any layer from starting.
	order := append([]*layerState{}, missing...)
	sort.SliceStable(order, func(i, j int) bool { return order[i].index != 0 && order[j].index == 0 })
	for _, l := range order {
		if l.index != 0 {
			compWG.Add(1)
		}
	}
	for _, l := range order {
		if gctx.Err() != nil {
			// Not started: the commit layer, last, is not started either.
			break
		}
		g.Go(func() error {
			var err error
			if l.index == 0 {
				err = importCommitLayerBlob(gctx, repo, r, l, progress, opts.VerifyCommit, func() bool {
					compWG.Wait()
					mu.Lock()
					defer mu.Unlock()
					return !compFailed
				})
			} else {
				err = importChunkLayerBlob(gctx, repo, r, l, progress)
				if err != nil {
					mu.Lock()
					compFailed = true
					mu.Unlock()
				}
				compWG.Done()
			}
			if err != nil {
				return fmt.Errorf("layer %d (%s): %w", l.index, l.desc.Digest, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// importChunkLayerBlob fetches one component layer and commits it with its
// object-set commit and blob ref.
func importChunkLayerBlob(ctx context.Context, repo *ostree.Repo, r oci.Reader, l *layerState, progress fetchConfig) error {
	txn, err := repo.Begin()
	if err != nil {
		return err
	}
	defer txn.Abort()
	var objs []ostree.Checksum
	rec := tarsplit.NewRecorder(inlineOstreePayload)
	info, err := blob.Fetch(ctx, r, l.desc, l.diffID, progress.options(rec), func(tr io.Reader) (err error) {
		objs, err = ostreetar.ImportChunkLayerObjects(txn, tr)
		return err
	})
	if err != nil {
		return err
	}
	if err := writeOstreeRecord(txn, l, rec, info); err != nil {
		return err
	}
	c, err := writeObjectSetCommit(txn, objs)
	if err != nil {
		return err
	}
	if err := txn.SetRef(l.ref, &c); err != nil {
		return err
	}
	txn.BeforeRefs(fpPullLayerBeforeBlobRef.Hit)
	if err := txn.Commit(); err != nil {
		return err
	}
	l.commit, l.have = c, true
	return fpPullLayerCommitted.Hit()
}

// importCommitLayerBlob fetches the commit layer; before committing it
// calls wait, which reports whether every component layer was imported.
func importCommitLayerBlob(ctx context.Context, repo *ostree.Repo, r oci.Reader, l *layerState, progress fetchConfig, verify func(*ostree.Txn, ostree.Checksum) error, wait func() bool) error {
	txn, err := repo.Begin()
	if err != nil {
		return err
	}
	defer txn.Abort()
	var commit ostree.Checksum
	rec := tarsplit.NewRecorder(inlineOstreePayload)
	info, err := blob.Fetch(ctx, r, l.desc, l.diffID, progress.options(rec), func(tr io.Reader) error {
		c, err := ostreetar.ImportCommitLayer(txn, tr)
		commit = c
		return err
	})
	if err != nil {
		return err
	}
	if err := writeOstreeRecord(txn, l, rec, info); err != nil {
		return err
	}
	if !wait() {
		return errors.New("not committed: a component layer failed")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := ostreetar.VerifyCommitComplete(txn, commit); err != nil {
		return err
	}
	if verify != nil {
		if err := verify(txn, commit); err != nil {
			return &RefusedError{Commit: commit, Err: err}
		}
	}
	if err := txn.SetRef(l.ref, &commit); err != nil {
		return err
	}
	txn.BeforeRefs(fpPullLayerBeforeBlobRef.Hit)
	if err := txn.Commit(); err != nil {
		return err
	}
	l.commit, l.have = commit, true
	return fpPullLayerCommitted.Hit()
}

// writeOstreeRecord writes the record of an ostree layer and its ref, when
// the layer could be recorded (a layer that cannot is still imported; a
// push then recompresses it).
func writeOstreeRecord(txn *ostree.Txn, l *layerState, rec *tarsplit.Recorder, info *blob.Info) error {
	split, err := rec.Bytes()
	if err != nil {
		return nil
	}
	c, err := writeLayerRecord(txn, recordOstree, &blobDesc{diffID: l.diffID, mediaType: l.desc.MediaType, size: l.desc.Size}, info, split, nil)
	if err != nil {
		return err
	}
	ref, err := TarSplitRefName(l.desc.Digest)
	if err != nil {
		return err
	}
	return txn.SetRef(ref, &c)
}

// writeObjectSetCommit writes the synthetic commit of a component layer
// (§5.6): a root dirtree with one file per object named by its checksum,
// root dirmeta 0/0/040755 without xattrs, no parent, subject, body or
// metadata, timestamp 0.
func writeObjectSetCommit(txn *ostree.Txn, objs []ostree.Checksum) (ostree.Checksum, error) {
	names := make([]string, len(objs))
	for i, o := range objs {
		names[i] = o.String()
	}
	return writeFlatCommit(txn, names, objs, nil)
}

// writeFlatCommit writes a commit without parent, subject or body, at
// timestamp 0, whose root (dirmeta 0/0/040755, no xattrs) holds the files
// names[i] -> objs[i] and nothing else: the shape of object-set commits and
// of layer records.
func writeFlatCommit(txn *ostree.Txn, names []string, objs []ostree.Checksum, md ostree.Metadata) (ostree.Checksum, error) {
	var zero ostree.Checksum
	mb, err := (&ostree.DirMeta{UID: 0, GID: 0, Mode: 0o40755}).Encode()
	if err != nil {
		return zero, err
	}
	meta, err := txn.WriteMetadata(ostree.ObjDirMeta, mb)
	if err != nil {
		return zero, err
	}
	root := ostree.NewMutableTree()
	root.SetMeta(meta)
	for i, o := range objs {
		if err := root.SetFile(names[i], o); err != nil {
			return zero, err
		}
	}
	tree, err := txn.WriteTree(root)
	if err != nil {
		return zero, err
	}
	cb, err := (&ostree.Commit{RootTree: tree, RootMeta: meta, Metadata: md}).Encode()
	if err != nil {
		return zero, err
	}
	return txn.WriteMetadata(ostree.ObjCommit, cb)
}

// manifestOf reads the manifest stored in a merge commit's metadata; ok is
// false when the commit has none.
func manifestOf(repo *ostree.Repo, c ostree.Checksum) (m *v1.Manifest, ok bool, err error) {
	cm, err := repo.ReadCommit(c)
	if err != nil {
		return nil, false, err
	}
	s := cm.Metadata.String(derived.MergeMetaManifest)
	if s == "" {
		return nil, false, nil
	}
	m = new(v1.Manifest)
	if err := json.Unmarshal([]byte(s), m); err != nil {
		return nil, false, fmt.Errorf("commit %s: parsing %s: %w", c, derived.MergeMetaManifest, err)
	}
	return m, true, nil
}

// GC deletes every layer ref (BlobRefPrefix, TarSplitRefPrefix) whose digest no
// stored image lists (§5.10): the roots are the manifests of all image refs
// and of the commits under ostree/0/, ostree/1/, rpmostree/base/ and
// ostree/container/baseimage/ that carry one. Objects are not pruned.
// It returns how many layer blob refs were deleted (a layer's record ref
// goes with it and is not counted).
func GC(repo *ostree.Repo) (int, error) {
	refs, err := repo.ListRefs()
	if err != nil {
		return 0, err
	}
	keep := map[string]bool{}
	var blobs []string
	for _, ref := range refs {
		if strings.HasPrefix(ref.Name, BlobRefPrefix) || strings.HasPrefix(ref.Name, TarSplitRefPrefix) {
			blobs = append(blobs, ref.Name)
			continue
		}
		isImage := strings.HasPrefix(ref.Name, ImageRefPrefix)
		root := isImage
		for _, p := range gcRootPrefixes {
			root = root || strings.HasPrefix(ref.Name, p)
		}
		if !root {
			continue
		}
		m, ok, err := manifestOf(repo, ref.Checksum)
		if err != nil {
			return 0, fmt.Errorf("ref %s: %w", ref.Name, err)
		}
		if !ok {
			if isImage {
				return 0, fmt.Errorf("ref %s: commit %s has no %s metadata", ref.Name, ref.Checksum, derived.MergeMetaManifest)
			}
			continue
		}
		for _, l := range m.Layers {
			keep[l.Digest.String()] = true
		}
	}
	var del []string
	for _, name := range blobs {
		esc, ok := strings.CutPrefix(name, BlobRefPrefix)
		if !ok {
			esc = strings.TrimPrefix(name, TarSplitRefPrefix)
		}
		d, err := UnescapeRef(esc)
		if err != nil {
			continue // not a name we write: leave it alone
		}
		if !keep[d] {
			del = append(del, name)
		}
	}
	if len(del) == 0 {
		return 0, nil
	}
	txn, err := repo.Begin()
	if err != nil {
		return 0, err
	}
	defer txn.Abort()
	for _, name := range del {
		if err := txn.SetRef(name, nil); err != nil {
			return 0, err
		}
	}
	if err := txn.Commit(); err != nil {
		return 0, err
	}
	n := 0
	for _, name := range del {
		if strings.HasPrefix(name, BlobRefPrefix) {
			n++
		}
	}
	return n, nil
}

// ImageInfo describes one stored image.
type ImageInfo struct {
	// ImageRef is the image reference the image was pulled as.
	ImageRef       string          `json:"image"`
	MergeCommit    ostree.Checksum `json:"-"`
	ManifestDigest string          `json:"manifest_digest"`
	// Version is the label org.opencontainers.image.version, else version.
	Version string `json:"version,omitempty"`
	// Created is the config's created time (RFC 3339) as the image says it.
	Created string `json:"created,omitempty"`
	// CachedUpdate is the newer manifest the last pull or check saw, if it
	// differs from the stored one.
	CachedUpdate *CachedUpdate `json:"cached_update,omitempty"`
}

// MarshalJSON adds the merge commit as hex.
func (i ImageInfo) MarshalJSON() ([]byte, error) {
	type plain ImageInfo
	return json.Marshal(struct {
		plain
		MergeCommit string `json:"merge_commit"`
	}{plain(i), i.MergeCommit.String()})
}

// List lists the images stored under ImageRefPrefix, sorted by
// image reference.
func List(repo *ostree.Repo) ([]ImageInfo, error) {
	refs, err := repo.ListRefs()
	if err != nil {
		return nil, err
	}
	var out []ImageInfo
	for _, ref := range refs {
		esc, ok := strings.CutPrefix(ref.Name, ImageRefPrefix)
		if !ok {
			continue
		}
		name, err := UnescapeRef(esc)
		if err != nil {
			return nil, fmt.Errorf("ref %s: %w", ref.Name, err)
		}
		cm, err := repo.ReadCommit(ref.Checksum)
		if err != nil {
			return nil, fmt.Errorf("ref %s: %w", ref.Name, err)
		}
		info := ImageInfo{ImageRef: name, MergeCommit: ref.Checksum, ManifestDigest: cm.Metadata.String(derived.MergeMetaManifestDigest)}
		var cfg v1.Image
		if s := cm.Metadata.String(derived.MergeMetaImageConfig); s != "" && s != "null" {
			if err := json.Unmarshal([]byte(s), &cfg); err != nil {
				return nil, fmt.Errorf("ref %s: parsing %s: %w", ref.Name, derived.MergeMetaImageConfig, err)
			}
		}
		labels := cfg.Config.Labels
		info.Version = labels["org.opencontainers.image.version"]
		if info.Version == "" {
			info.Version = labels["version"]
		}
		if cfg.Created != nil {
			info.Created = cfg.Created.UTC().Format("2006-01-02T15:04:05Z07:00")
		}
		if info.CachedUpdate, err = readCachedUpdate(repo, ref.Checksum, info.ManifestDigest); err != nil {
			return nil, fmt.Errorf("ref %s: %w", ref.Name, err)
		}
		out = append(out, info)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ImageRef < out[j].ImageRef })
	return out, nil
}

// ErrBadDescriptor: a layer or config descriptor the store refuses (issue
// 11, classes 4 and 6).
var ErrBadDescriptor = errors.New("descriptor refused")

// checkDescriptors refuses, before anything is fetched, descriptors whose
// size is not positive (a size of 0 or -1 would turn off the size check
// and the compression-ratio limit, and an uncompressed blob of unknown size
// could be read forever) and layers with urls (foreign layers: ostree
// images never carry them, and a pull must make no request on a
// descriptor's say-so).
func checkDescriptors(m *v1.Manifest) error {
	if c := m.Config; c.Size <= 0 {
		return fmt.Errorf("config %s: size %d: a positive descriptor size is required: %w", c.Digest, c.Size, ErrBadDescriptor)
	}
	for i, l := range m.Layers {
		if l.Size <= 0 {
			return fmt.Errorf("layer %d (%s): size %d: a positive descriptor size is required: %w", i, l.Digest, l.Size, ErrBadDescriptor)
		}
		if len(l.URLs) > 0 {
			return fmt.Errorf("layer %d (%s): has urls %q: foreign layers are not pulled: %w", i, l.Digest, l.URLs, ErrBadDescriptor)
		}
	}
	return nil
}

// finishImport runs the layer GC after an image was stored (unless
// opts.NoGC); ostree and plain imports end alike.
func finishImport(repo *ostree.Repo, res *PullResult, opts PullOptions) (*PullResult, error) {
	if err := fpPullBeforeLayerGC.Hit(); err != nil {
		return res, err
	}
	if !opts.NoGC {
		n, err := GC(repo)
		if err != nil {
			return res, fmt.Errorf("image stored, but layer GC failed: %w", err)
		}
		res.GCRemoved = n
	}
	return res, nil
}
