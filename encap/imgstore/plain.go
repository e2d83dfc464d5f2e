package imgstore

// Plain images (spec plain-images §2): bootable images without an ostree
// layer, built straight from a Containerfile (`FROM scratch` + `COPY
// rootfs /`, `FROM debian` + `RUN apt-get ...`) or by a rechunker such as
// chunkah. As bootc (ostree-ext ≥ 0.15) does, an image is plain when its
// config has no ostree.final-diffid label; then every layer is a derived
// layer, applied in manifest order onto an empty tree, with the top-level
// paths other than usr, etc and var kept (ostree-ext's allow_nonusr for
// generic images). Layers are stored, recorded and reused (by blob ref, then
// by diff_id) exactly as the derived layers of an ostree image are, so an
// upgrade between two plain images fetches only the layers that changed.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/encap/derived"
	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Labels that make an image bootable for a host pull (bootc's
// new_importer: either one, any value).
const (
	LabelBootable    = "ostree.bootable"
	LabelBootcMarker = "containers.bootc"
)

// ErrNotBootable: a host pull of an image without the bootable label or
// for another architecture.
var ErrNotBootable = errors.New("not a bootable image for this host")

// ErrSELinuxPolicy: a plain image whose merged tree enables an SELinux
// policy. bootc labels every file with it; ocitree cannot label yet, and an
// unlabelled tree would not boot under that policy, so the pull is refused.
var ErrSELinuxPolicy = errors.New("SELinux policy labelling is not supported yet")

// plainImage reports whether the image with this manifest and config is
// plain: no ostree.final-diffid label (nor the chunked-v0 ostree.diffid,
// which ParseImageLayout refuses with its own message), read as
// ParseImageLayout reads labels.
func plainImage(mb, cb []byte) (bool, error) {
	var m v1.Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return false, fmt.Errorf("parsing manifest: %w", err)
	}
	var cfg v1.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return false, fmt.Errorf("parsing image config: %w", err)
	}
	for _, k := range []string{"ostree.final-diffid", "ostree.diffid"} {
		if cfg.Config.Labels[k] != "" || m.Annotations[k] != "" {
			return false, nil
		}
	}
	return true, nil
}

// parsePlainLayout reads a plain image's manifest and config into an
// ImageLayout without ostree layers (OstreeLayers 0: every layer derived).
func parsePlainLayout(mb, cb []byte) (*encap.ImageLayout, error) {
	var l encap.ImageLayout
	if err := json.Unmarshal(mb, &l.Manifest); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	if err := json.Unmarshal(cb, &l.Config); err != nil {
		return nil, fmt.Errorf("parsing image config: %w", err)
	}
	if len(l.Manifest.Layers) == 0 {
		return nil, errors.New("plain image has no layers in its manifest")
	}
	if len(l.Config.RootFS.DiffIDs) != len(l.Manifest.Layers) {
		return nil, fmt.Errorf("image config lists %d diff_ids for %d layers", len(l.Config.RootFS.DiffIDs), len(l.Manifest.Layers))
	}
	return &l, nil
}

// storedLayout parses a stored image's manifest and config: a plain image
// as parsePlainLayout does (every layer derived), else with
// encap.ParseImageLayout.
func storedLayout(mb, cb []byte) (*encap.ImageLayout, error) {
	plain, err := plainImage(mb, cb)
	if err != nil {
		return nil, err
	}
	if plain {
		return parsePlainLayout(mb, cb)
	}
	return encap.ParseImageLayout(mb, cb)
}

// hostChecks finds out whether mb/cb is a plain image and applies the
// host-pull checks of opts to it.
func hostChecks(mb, cb []byte, opts PullOptions) (plain bool, warnings []string, err error) {
	if plain, err = plainImage(mb, cb); err != nil {
		return false, nil, err
	}
	warnings, err = checkHostImage(cb, plain, opts)
	return plain, warnings, err
}

// checkHostImage applies the checks of a host pull (PullOptions.Bootable,
// Arch) to the image config cb, before anything is fetched: the
// architecture for every image, and for a plain image the bootable label
// (an ostree image carries its commit's own ostree.bootable; deploy checks
// its kernel). Warnings are bootc's notices about containers.bootc.
func checkHostImage(cb []byte, plain bool, opts PullOptions) (warnings []string, err error) {
	if !opts.Bootable && opts.Arch == "" {
		return nil, nil
	}
	var cfg v1.Image
	if err := json.Unmarshal(cb, &cfg); err != nil {
		return nil, fmt.Errorf("parsing image config: %w", err)
	}
	if opts.Arch != "" && cfg.Architecture != opts.Arch {
		return nil, fmt.Errorf("image has architecture %q; expected %q: %w", cfg.Architecture, opts.Arch, ErrNotBootable)
	}
	if !opts.Bootable || !plain {
		return nil, nil
	}
	labels := cfg.Config.Labels
	_, bootable := labels[LabelBootable]
	marker, hasMarker := labels[LabelBootcMarker]
	if !bootable && !hasMarker {
		return nil, fmt.Errorf("target image does not have %s label (nor %s): a host deploys only images built as bootable: %w", LabelBootable, LabelBootcMarker, ErrNotBootable)
	}
	switch {
	case !hasMarker:
		warnings = append(warnings, "image is missing label: "+LabelBootcMarker)
	case marker != "1":
		warnings = append(warnings, fmt.Sprintf("unknown %s value %q", LabelBootcMarker, marker))
	}
	return warnings, nil
}

// historyWarning returns the warning for an image whose config history has
// fewer (non-empty) entries than layers: bootc refuses it ("Truncated
// history"); ocitree only needs the history for `image history`.
func historyWarning(layout *encap.ImageLayout) string {
	n := 0
	for _, h := range layout.Config.History {
		if !h.EmptyLayer {
			n++
		}
	}
	if n >= len(layout.Manifest.Layers) {
		return ""
	}
	return fmt.Sprintf("image config has %d history entries for %d layers (bootc refuses this as truncated history); imported anyway", n, len(layout.Manifest.Layers))
}

// preparePlain fills p for the plain image mb/cb (plain.go's part of
// Prepare): every layer is a derived layer onto an empty tree, present when
// its blob ref (or a stored layer of the same diff_id) exists.
func preparePlain(repo *ostree.Repo, p *Prepared, mb, cb []byte, warnings []string) error {
	layout, err := parsePlainLayout(mb, cb)
	if err != nil {
		return err
	}
	p.Plain, p.Config, p.layout, p.Warnings = true, cb, layout, warnings
	if w := historyWarning(layout); w != "" {
		p.Warnings = append(p.Warnings, w)
	}
	layers, err := derivedLayers(repo, layout)
	if err != nil {
		return err
	}
	if len(fetchedDescs(layers)) > 0 {
		stored, err := storedByDiffID(repo)
		if err != nil {
			return err
		}
		for _, d := range layers {
			if s, ok := stored[d.diffID]; ok && !d.have && s.kind == recordDerived {
				d.reuse = &s
			}
		}
	}
	p.derived = layers
	p.Layers = preparedLayers(nil, layers)
	if !p.Previous.IsZero() {
		// ostree-ext's "cached update", as for ostree images.
		if err := writeCachedUpdate(repo, p.Previous, p.ManifestDigest, mb, cb); err != nil {
			return err
		}
	}
	return nil
}

// importPlain is Import for a prepared plain image: the layers are applied
// in manifest order onto an empty tree and the merge commit (no parent) is
// written with the image ref, in one transaction.
func importPlain(ctx context.Context, repo *ostree.Repo, p *Prepared, res *PullResult, opts PullOptions) (*PullResult, error) {
	if opts.Progress != nil {
		opts.Progress.Begin(res.LayersFetched, res.BytesFetched)
	}
	if err := fpPullBeforeMerge.Hit(); err != nil {
		return nil, err
	}
	merge, dropped, err := writePlainMerge(ctx, repo, p.r, p.derived, res.ManifestDigest, p.Manifest, p.Config, p.refName, opts)
	if err != nil {
		return nil, err
	}
	res.Warnings = append(res.Warnings, dropped...)
	res.MergeCommit = merge
	return finishImport(repo, res, opts)
}

// writePlainMerge applies every layer onto an empty tree (as writeMerge
// applies derived layers onto the base), refuses a tree that enables an
// SELinux policy, and writes the merge commit (no parent) and the image ref,
// all in one transaction: a refused image leaves no ref at all. It returns
// bootc-like warnings for the entries the path rules dropped.
func writePlainMerge(ctx context.Context, repo *ostree.Repo, r oci.Reader, layers []*derivedState, md digest.Digest, mb, cb []byte, imageRef string, opts PullOptions) (ostree.Checksum, []string, error) {
	var zero ostree.Checksum
	txn, err := repo.Begin()
	if err != nil {
		return zero, nil, err
	}
	defer txn.Abort()
	tree := ostree.NewMutableTree()
	// The root of an empty tree, until a layer's "./" entry says otherwise:
	// what libostree's tar import autocreates (root-owned 0755).
	rootMeta, err := (&ostree.DirMeta{Mode: 0o040755}).Encode()
	if err != nil {
		return zero, nil, err
	}
	rm, err := txn.WriteMetadata(ostree.ObjDirMeta, rootMeta)
	if err != nil {
		return zero, nil, err
	}
	tree.SetMeta(rm)
	dopts := opts.Derived
	dopts.AllowNonUsr = true // ostree-ext's allow_nonusr for generic images
	var dropped map[string]int
	outer := dopts.OnDrop
	dopts.OnDrop = func(key string) {
		dropped[key]++
		if outer != nil {
			outer(key)
		}
	}
	var warnings []string
	for _, d := range layers {
		dropped = map[string]int{}
		switch {
		case d.have:
			err = reapplyDerived(repo, txn, tree, d.record, d, dopts)
		case d.reuse != nil:
			err = reuseDerived(repo, txn, tree, d, dopts)
		default:
			err = fetchDerived(ctx, txn, r, tree, d, dopts, opts.fetch())
		}
		if err != nil {
			return zero, nil, fmt.Errorf("layer %d (%s): %w", d.index, d.desc.Digest, err)
		}
		if w := droppedWarning(d.index, dropped); w != "" {
			warnings = append(warnings, w)
		}
	}
	if err := checkSELinuxPolicy(txn, tree); err != nil {
		return zero, nil, err
	}
	merge, err := derived.WritePlainMergeCommit(txn, tree, md.String(), mb, cb)
	if err != nil {
		return zero, nil, err
	}
	if err := txn.SetRef(imageRef, &merge); err != nil {
		return zero, nil, err
	}
	txn.BeforeRefs(fpPullBeforeImageRef.Hit)
	if err := txn.Commit(); err != nil {
		return zero, nil, err
	}
	return merge, warnings, nil
}

// droppedWarning formats bootc's "non-ostree compatible file paths"
// warning for one layer: the count of dropped entries per top-level name.
func droppedWarning(index int, dropped map[string]int) string {
	if len(dropped) == 0 {
		return ""
	}
	keys := make([]string, 0, len(dropped))
	for k := range dropped {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, dropped[k])
	}
	return fmt.Sprintf("layer %d: image contains non-ostree compatible file paths (dropped): %s", index, strings.Join(parts, ", "))
}

// selinuxConfigMax bounds how much of an selinux/config is read.
const selinuxConfigMax = 1 << 20

// checkSELinuxPolicy refuses a merged tree that enables an SELinux policy,
// decided as libostree's OstreeSePolicy does for a root (ostree-sepolicy.c):
// etc/selinux/config, else usr/etc/selinux/config (the tree only has the
// latter: etc is stored at usr/etc); enabled when a line starts with
// SELINUX=enforcing or SELINUX=permissive. A config that is not a regular
// file is refused too: whether it enables a policy cannot be told.
func checkSELinuxPolicy(txn *ostree.Txn, tree *ostree.MutableTree) error {
	dir := tree
	for _, p := range []string{"usr", "etc", "selinux"} {
		sub, ok, err := dir.Dir(p)
		if err != nil || !ok {
			return err
		}
		dir = sub
	}
	c, ok, err := dir.File("config")
	if err != nil || !ok {
		return err
	}
	content, err := txn.OpenContent(c)
	if err != nil {
		return fmt.Errorf("usr/etc/selinux/config: %w", err)
	}
	defer content.Payload.Close()
	if content.Meta.IsSymlink() {
		return fmt.Errorf("usr/etc/selinux/config is a symlink (to %q): cannot tell whether the image enables an SELinux policy: %w", content.Meta.Target, ErrSELinuxPolicy)
	}
	var mode, typ string
	sc := bufio.NewScanner(io.LimitReader(content.Payload, selinuxConfigMax))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "SELINUXTYPE="); ok {
			typ = v
		} else if v, ok := strings.CutPrefix(line, "SELINUX="); ok {
			mode = v
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("usr/etc/selinux/config: %w", err)
	}
	if strings.HasPrefix(mode, "enforcing") || strings.HasPrefix(mode, "permissive") {
		return fmt.Errorf("the image enables SELinux (usr/etc/selinux/config: SELINUX=%s, SELINUXTYPE=%s; policy in usr/etc/selinux/%s): bootc labels every file with that policy, ocitree cannot yet, and an unlabelled tree would not boot under it; set SELINUX=disabled in the image to import it unlabelled: %w", mode, typ, typ, ErrSELinuxPolicy)
	}
	return nil
}
