package derived

import (
	"archive/tar"
	"fmt"
	"io"
	"strings"

	"github.com/ocitree/ocitree/ostree"
)

// Builder-made layers and the base image's object files.
//
// In an encapsulated base image every regular file is also a hardlink to its
// object under sysroot/ostree/repo/objects/. A builder RUN step that changes
// such a file in place (`echo x >> /etc/motd`, chmod, apt appending to
// dpkg.log) changes the shared inode, so the builder's layer carries both
// names: the object path and the real path, one as the file and the other as
// a hardlink to it, in either order. The tree only keeps real paths, so the
// object path is resolved here (the semantics of ostree-ext's filter_tar,
// ostree-rs-ext#405/#408/#558/#648):
//
//   - A regular-file entry at an object path is written as a content object
//     (staged in the transaction's directory under the repo's tmp/, never
//     held in memory) and set aside under that path; it is not put into the
//     tree.
//   - A hardlink from a real path to that object path makes the real path
//     the canonical file with that content and the object entry's metadata;
//     further hardlinks to the same object path get the same content object,
//     which is what a hardlink to the canonical file gives in an ostree tree.
//   - A hardlink entry at an object path whose target is a real path (the
//     real path came first) sets that target's content aside under the object
//     path, so that later hardlinks to the object path resolve to it.
//   - Object-path entries nothing links to are dropped and counted under
//     "sysroot", as every other sysroot/ entry is. This holds with
//     [Options.AllowNonUsr] too: object paths never reach the tree.
//   - Refused: a hardlink to an object path no entry of the layer provides,
//     and an object-path entry that is a directory, a symlink or anything
//     else than a regular file or hardlink.

// repoObjectsDir is where an encapsulated base image keeps its object files.
var repoObjectsDir = []string{"sysroot", "ostree", "repo", "objects"}

// objectPaths is what a layer set aside at object paths.
type objectPaths struct {
	// content maps an object path (slash-joined, normalized) to the content
	// object its entry provided.
	content map[string]ostree.Checksum
	// used records the object paths a real path took content from.
	used map[string]bool
}

// isObjectPath reports whether normalized parts name something below
// sysroot/ostree/repo/objects/XX/, i.e. an object file or anything claiming
// to live where object files are.
func isObjectPath(parts []string) bool {
	if len(parts) <= len(repoObjectsDir)+1 {
		return false
	}
	for i, p := range repoObjectsDir {
		if parts[i] != p {
			return false
		}
	}
	return true
}

// objectEntry handles an entry at an object path; handled is false for any
// other path.
func (a *derivedApplier) objectEntry(parts []string, hdr *tar.Header, tr io.Reader) (handled bool, err error) {
	if !isObjectPath(parts) {
		return false, nil
	}
	if a.objs.content == nil {
		a.objs.content = map[string]ostree.Checksum{}
		a.objs.used = map[string]bool{}
	}
	key := strings.Join(parts, "/")
	if len(parts) != len(repoObjectsDir)+2 {
		return true, fmt.Errorf("object path %q is nested below an object directory entry", key)
	}
	switch hdr.Typeflag {
	case tar.TypeReg:
		xattrs, err := ostree.TarXattrs(hdr)
		if err != nil {
			return true, err
		}
		meta := &ostree.FileMeta{UID: uint32(hdr.Uid), GID: uint32(hdr.Gid), Mode: 0o100000 | uint32(hdr.Mode)&0o7777, Xattrs: xattrs}
		c, err := a.txn.WriteContent(meta, tr, hdr.Size)
		if err != nil {
			return true, err
		}
		if a.onPayload != nil && hdr.Size > 0 {
			a.onPayload(c)
			a.reported = true
		}
		a.objs.content[key] = c
		delete(a.objs.used, key)
		return true, nil
	case tar.TypeLink:
		c, err := a.linkTarget(hdr)
		if err != nil {
			return true, err
		}
		a.objs.content[key] = c
		// The real path it links to already holds the content.
		a.objs.used[key] = true
		return true, nil
	case tar.TypeDir:
		return true, fmt.Errorf("object path %q is a directory", key)
	case tar.TypeSymlink:
		return true, fmt.Errorf("object path %q is a symlink", key)
	}
	return true, fmt.Errorf("object path %q has unsupported tar entry type %q", key, hdr.Typeflag)
}

// objectLinkTarget resolves a hardlink target at an object path to the
// content set aside for it; handled is false for any other target.
func (a *derivedApplier) objectLinkTarget(target []string) (c ostree.Checksum, handled bool, err error) {
	if !isObjectPath(target) {
		return ostree.Checksum{}, false, nil
	}
	key := strings.Join(target, "/")
	c, ok := a.objs.content[key]
	if !ok {
		return ostree.Checksum{}, true, fmt.Errorf("target is an object path no entry of this layer provides (before this entry)")
	}
	a.objs.used[key] = true
	return c, true, nil
}

// finishObjects counts the object-path entries nothing took content from.
func (a *derivedApplier) finishObjects() {
	for key := range a.objs.content {
		if !a.objs.used[key] {
			a.drop("sysroot")
		}
	}
}
