package ostree

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Reachable collects the objects reachable from commit c: the commit, its
// detached metadata's commit, and every dirtree, dirmeta and file below its
// root. With parents, parent commits are followed while present. Missing
// objects are reported through onMissing (when nil, they are an error).
func (r *Repo) Reachable(c Checksum, parents bool, seen map[ObjectName]struct{}, onMissing func(ObjectName, Checksum)) error {
	for {
		name := ObjectName{c, ObjCommit}
		if _, ok := seen[name]; ok {
			return nil
		}
		cm, err := r.ReadCommit(c)
		var missing *MissingObjectError
		if errors.As(err, &missing) && onMissing != nil {
			onMissing(name, c)
			return nil
		}
		if err != nil {
			return err
		}
		seen[name] = struct{}{}
		if err := r.reachTree(c, cm.RootTree, cm.RootMeta, seen, onMissing); err != nil {
			return err
		}
		if !parents || cm.Parent.IsZero() {
			return nil
		}
		if ok, _ := r.HasObject(cm.Parent, ObjCommit); !ok {
			return nil // history may be truncated, as after a shallow pull
		}
		c = cm.Parent
	}
}

func (r *Repo) reachTree(commit, tree, meta Checksum, seen map[ObjectName]struct{}, onMissing func(ObjectName, Checksum)) error {
	seen[ObjectName{meta, ObjDirMeta}] = struct{}{}
	tn := ObjectName{tree, ObjDirTree}
	if _, ok := seen[tn]; ok {
		return nil
	}
	dt, err := r.ReadDirTree(tree)
	var missing *MissingObjectError
	if errors.As(err, &missing) && onMissing != nil {
		onMissing(tn, commit)
		return nil
	}
	if err != nil {
		return fmt.Errorf("dirtree %s: %w", tree, err)
	}
	seen[tn] = struct{}{}
	for _, f := range dt.Files {
		seen[ObjectName{f.Checksum, ObjFile}] = struct{}{}
	}
	for _, d := range dt.Dirs {
		if err := r.reachTree(commit, d.Tree, d.Meta, seen, onMissing); err != nil {
			return err
		}
	}
	return nil
}

// ListObjects lists the loose objects of the given type (commits, dirtrees,
// dirmetas, files) by scanning objects/.
func (r *Repo) ListObjects(want func(ObjectType) bool) ([]ObjectName, error) {
	var out []ObjectName
	root := filepath.Join(r.path, "objects")
	dirs, err := os.ReadDir(root)
	if err != nil {
		return nil, err
	}
	for _, d := range dirs {
		if !d.IsDir() || len(d.Name()) != 2 || !isHex(d.Name()) {
			continue
		}
		ents, err := os.ReadDir(filepath.Join(root, d.Name()))
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			rest, ext, ok := strings.Cut(e.Name(), ".")
			if !ok || len(rest) != 62 || !isHex(rest) {
				continue
			}
			t, ok := typeFromExt(ext, r.mode)
			if !ok || !want(t) {
				continue
			}
			c, err := ParseChecksum(d.Name() + rest)
			if err != nil {
				continue
			}
			out = append(out, ObjectName{c, t})
		}
	}
	return out, nil
}

func typeFromExt(ext string, m Mode) (ObjectType, bool) {
	for _, t := range []ObjectType{ObjFile, ObjDirTree, ObjDirMeta, ObjCommit, ObjTombstone, ObjCommitMeta} {
		if extension(t, m) == ext {
			return t, true
		}
	}
	return 0, false
}
