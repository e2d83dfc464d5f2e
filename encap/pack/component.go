package pack

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math"
	"strings"

	"github.com/ocitree/ocitree/ostree"
)

// Component is a set of content objects that change together: a package,
// the kernel, the unpackaged rest, or a directory group. Components are what
// Pack distributes over layers; their names are what the layer annotation
// ostree.components lists (spec §4.4, ObjectSourceMeta).
type Component struct {
	// Name is the human name, e.g. a package name; it goes into the
	// ostree.components annotation and is what a later build matches against
	// (§4.6). It must not be empty nor contain a comma.
	Name string
	// Identifier is unique among the components of one build, e.g.
	// name_version_arch for a Debian package (NEVRA for rpm). Empty means Name.
	Identifier string
	// SrcID names the source the component is built from (source package).
	SrcID string
	// Size is the sum of the payload sizes of Objects.
	Size int64
	// ChangeTimeOffset is the number of hours between the oldest component's
	// last change and this one's (rpm-ostree's change_time_offset); 0 when
	// unknown. MaxFrequency marks content that changes with every build.
	ChangeTimeOffset uint32
	// ChangeFrequency is how often the component changed in the last year
	// (changelog entries within 365 days of the newest one in the tree).
	// 0 means no change or unknown; MaxFrequency means every build.
	ChangeFrequency uint32
	// Exclusive asks for a layer that holds this component alone (the kernel;
	// every entry of a --contentmeta file).
	Exclusive bool
	// Objects are the content objects of the component, sorted by checksum.
	// Every object of a commit belongs to exactly one component.
	Objects []ostree.Checksum
}

// ID is the component's identifier, or its name when it has none.
func (c *Component) ID() string {
	if c.Identifier != "" {
		return c.Identifier
	}
	return c.Name
}

// MaxFrequency is the change frequency (and change-time offset) of content
// that is expected to differ in every build, like rpm-ostree's u32::MAX.
const MaxFrequency = math.MaxUint32

// CompareComponents orders components by name, then identifier.
func CompareComponents(a, b *Component) int {
	return cmp.Or(strings.Compare(a.Name, b.Name), strings.Compare(a.ID(), b.ID()))
}

// ParseSized parses rpm-ostree's sized component list (JSON, not compressed):
// [{"identifier","name","srcid","change_time_offset","change_frequency","size"}...].
// The components have no Objects.
func ParseSized(data []byte) ([]Component, error) {
	var raw []struct {
		Identifier       string  `json:"identifier"`
		Name             string  `json:"name"`
		SrcID            string  `json:"srcid"`
		ChangeTimeOffset *uint32 `json:"change_time_offset"`
		ChangeFrequency  *uint32 `json:"change_frequency"`
		Size             int64   `json:"size"`
	}
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("sized components: %w", err)
	}
	out := make([]Component, 0, len(raw))
	for i, r := range raw {
		if r.Name == "" || r.ChangeFrequency == nil || r.ChangeTimeOffset == nil {
			return nil, fmt.Errorf("sized components: entry %d: name, change_frequency and change_time_offset are required", i)
		}
		if r.Size < 0 {
			return nil, fmt.Errorf("sized components: entry %d (%s): negative size", i, r.Name)
		}
		out = append(out, Component{
			Name: r.Name, Identifier: r.Identifier, SrcID: r.SrcID, Size: r.Size,
			ChangeFrequency: *r.ChangeFrequency, ChangeTimeOffset: *r.ChangeTimeOffset,
		})
	}
	return out, nil
}
