package derived

import (
	"archive/tar"

	"github.com/ocitree/ocitree/encap/tarrules"
)

// Limits of what the store can hold and give back (issue 11, class 5); see
// package tarrules.
const (
	MaxNameBytes   = tarrules.MaxNameBytes
	MaxTargetBytes = tarrules.MaxTargetBytes
	MaxXattrBytes  = tarrules.MaxXattrBytes
)

// ErrEntryRefused: a layer entry the store cannot hold.
var ErrEntryRefused = tarrules.ErrEntryRefused

// checkEntryRules refuses a tar entry (its path components parts) the store
// cannot hold, naming the rule; the caller names the entry.
func checkEntryRules(hdr *tar.Header, parts []string) error {
	return tarrules.CheckHeader(hdr, parts)
}
