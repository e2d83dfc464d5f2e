package rechunk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ocitree/ocitree/encap"
	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/oci"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// PriorLayers reads the component layout of an image from its manifest and
// config: the org.chunkah.component annotations of a plain image (names
// split on spaces; chunkah's and this package's), or, for an ostree image
// (config label ostree.final-diffid), the ostree.components annotations of
// its component layers (encapsulate's; see encap.ImageLayout.Prior).
func PriorLayers(manifest, config []byte) ([]pack.PriorLayer, error) {
	var cfg v1.Image
	if err := json.Unmarshal(config, &cfg); err != nil {
		return nil, fmt.Errorf("parsing image config: %w", err)
	}
	if _, ok := cfg.Config.Labels["ostree.final-diffid"]; ok {
		layout, err := encap.ParseImageLayout(manifest, config)
		if err != nil {
			return nil, err
		}
		return layout.Prior()
	}
	var m v1.Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("parsing manifest: %w", err)
	}
	var out []pack.PriorLayer
	for i, l := range m.Layers {
		a, ok := l.Annotations[ComponentAnnotation]
		if !ok {
			return nil, fmt.Errorf("layer %d has no %s annotation", i, ComponentAnnotation)
		}
		out = append(out, pack.PriorLayer{Components: strings.Fields(a)})
	}
	if len(out) == 0 {
		return nil, errors.New("image has no layers")
	}
	return out, nil
}

// PriorBuild reads the layout of the previous build of an image about to be
// written to dest. When prev is set, it is that image's layout, and any
// failure to read it is an error. Otherwise it is the layout of the image
// already at dest: none when dest cannot be read (a first build), and none,
// with a note to warn, when the image there has no usable layout.
func PriorBuild(ctx context.Context, prev, dest *oci.Ref, warn func(string), opts ...oci.Option) ([]pack.PriorLayer, error) {
	ref := dest
	if prev != nil {
		ref = prev
	}
	prior, readErr, err := readPrior(ctx, ref, opts...)
	switch {
	case readErr != nil && prev == nil:
		return nil, nil // nothing at the destination: a first build
	case readErr != nil:
		return nil, readErr
	case err != nil && prev == nil:
		if warn != nil {
			warn(fmt.Sprintf("not reusing the layout of %s: %v", dest, err))
		}
		return nil, nil
	case err != nil:
		return nil, err
	}
	return prior, nil
}

// readPrior returns the layout of the image ref names; readErr when the
// image cannot be read, err when it has no usable layout.
func readPrior(ctx context.Context, ref *oci.Ref, opts ...oci.Option) (prior []pack.PriorLayer, readErr, err error) {
	rd, err := oci.NewReader(ctx, ref, opts...)
	if err != nil {
		return nil, err, nil
	}
	defer rd.Close()
	mb, _, err := rd.Manifest(ctx)
	if err != nil {
		return nil, err, nil
	}
	cb, err := rd.Config(ctx)
	if err != nil {
		return nil, err, nil
	}
	prior, err = PriorLayers(mb, cb)
	return prior, nil, err
}
