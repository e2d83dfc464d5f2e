package encap

import (
	"context"
	"fmt"

	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/oci"
)

// ReadImageLayout reads the manifest and config of the image ref names and
// parses them (see ParseImageLayout).
func ReadImageLayout(ctx context.Context, ref *oci.Ref, opts ...oci.Option) (*ImageLayout, error) {
	rd, err := oci.NewReader(ctx, ref, opts...)
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	mb, _, err := rd.Manifest(ctx)
	if err != nil {
		return nil, err
	}
	cb, err := rd.Config(ctx)
	if err != nil {
		return nil, err
	}
	return ParseImageLayout(mb, cb)
}

// Prior returns the image's component layout, from its layers'
// ostree.components annotations, as a previous build for Options.Prior.
func (l *ImageLayout) Prior() ([]pack.PriorLayer, error) {
	ann, err := l.ComponentAnnotations()
	if err != nil {
		return nil, err
	}
	return pack.PriorLayers(ann), nil
}

// PriorBuild reads the component layout of the previous build of an image
// about to be written to dest, for Options.Prior. When prev is set, it is
// that image's layout, and any failure to read it is an error. Otherwise it
// is the layout of the image already at dest: none when dest cannot be read
// (a first build), and none, with a note to warn, when the image there has
// no usable layout.
func PriorBuild(ctx context.Context, prev, dest *oci.Ref, warn func(string)) ([]pack.PriorLayer, error) {
	ref := dest
	if prev != nil {
		ref = prev
	}
	layout, err := ReadImageLayout(ctx, ref)
	if err != nil {
		if prev == nil {
			return nil, nil // no earlier image at the destination: a first build
		}
		return nil, err
	}
	prior, err := layout.Prior()
	if err != nil {
		if prev == nil {
			if warn != nil {
				warn(fmt.Sprintf("not reusing the layout of %s: %v", dest, err))
			}
			return nil, nil
		}
		return nil, err
	}
	return prior, nil
}
