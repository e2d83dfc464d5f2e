package rechunk

import (
	"fmt"
	"slices"
	"strings"

	"github.com/ocitree/ocitree/ostree"
)

// outName is a commit path's name in the output: relative, with usr/etc
// shown as etc (a plain image keeps /etc where a container has it; the
// importers move it back).
func outName(p string) string {
	rel := strings.TrimPrefix(p, "/")
	if rel == "usr/etc" {
		return "etc"
	}
	if rest, ok := strings.CutPrefix(rel, "usr/etc/"); ok {
		return "etc/" + rest
	}
	return rel
}

// pruner drops output paths: a rule "p" drops p and below, "p/" only below.
type pruner struct {
	subtree  []string // p: p itself and p/...
	children []string // p/: p/... only
}

func newPruner(rules []string) (*pruner, error) {
	pr := &pruner{}
	for _, r := range rules {
		if !strings.HasPrefix(r, "/") || strings.Contains(r, "//") || strings.Contains("/"+r+"/", "/../") || strings.Contains("/"+r+"/", "/./") {
			return nil, fmt.Errorf("prune %q: want an absolute clean path (/p, or /p/ for its children only)", r)
		}
		rel := outName(strings.TrimSuffix(r, "/"))
		switch {
		case rel == "":
			return nil, fmt.Errorf("prune %q: the root cannot be pruned", r)
		case strings.HasSuffix(r, "/"):
			pr.children = append(pr.children, rel)
		default:
			pr.subtree = append(pr.subtree, rel)
		}
	}
	return pr, nil
}

// drop reports whether the output path n (relative) is pruned.
func (pr *pruner) drop(n string) bool {
	for _, p := range pr.subtree {
		if n == p || strings.HasPrefix(n, p+"/") {
			return true
		}
	}
	for _, p := range pr.children {
		if strings.HasPrefix(n, p+"/") {
			return true
		}
	}
	return false
}

// treeInfo is what the layer writers need about the commit's directories.
type treeInfo struct {
	// meta is the dirmeta of every kept directory, by output name ("" is
	// the root).
	meta map[string]*ostree.DirMeta
	// files marks the kept directories with a kept file somewhere below.
	files map[string]bool
	// order lists the kept directories in walk order.
	order []string
	// dirClaim is the user.component claim in force in each directory.
	dirClaim map[string]xattrClaim
}

// walkTree reads the commit's directories (not its files' content).
func walkTree(repo *ostree.Repo, commit ostree.Checksum, pr *pruner) (*treeInfo, error) {
	cm, err := repo.ReadCommit(commit)
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit, err)
	}
	t := &treeInfo{meta: map[string]*ostree.DirMeta{}, files: map[string]bool{}, dirClaim: map[string]xattrClaim{}}
	metas := map[ostree.Checksum]*ostree.DirMeta{}
	readMeta := func(c ostree.Checksum) (*ostree.DirMeta, error) {
		if m, ok := metas[c]; ok {
			return m, nil
		}
		m, err := repo.ReadDirMeta(c)
		if err != nil {
			return nil, fmt.Errorf("dirmeta %s: %w", c, err)
		}
		metas[c] = m
		return m, nil
	}
	hasEtc, hasUsrEtc := false, false
	var walk func(commitPath string, tree, meta ostree.Checksum, claim xattrClaim, claimed bool) (bool, error)
	walk = func(commitPath string, tree, meta ostree.Checksum, claim xattrClaim, claimed bool) (bool, error) {
		name := outName(commitPath)
		m, err := readMeta(meta)
		if err != nil {
			return false, err
		}
		if cl, ok, err := claimOf(m.Xattrs); err != nil {
			return false, fmt.Errorf("/%s: %w", commitPath, err)
		} else if ok {
			claim, claimed = cl, true
		}
		t.meta[name] = m
		t.order = append(t.order, name)
		if claimed {
			t.dirClaim[name] = claim
		}
		dt, err := repo.ReadDirTree(tree)
		if err != nil {
			return false, fmt.Errorf("dirtree %s of /%s: %w", tree, commitPath, err)
		}
		any := false
		for _, f := range dt.Files {
			if !pr.drop(outName(join(commitPath, f.Name))) {
				any = true
			}
		}
		for _, d := range dt.Dirs {
			p := join(commitPath, d.Name)
			switch p {
			case "etc":
				hasEtc = true
			case "usr/etc":
				hasUsrEtc = true
			}
			if pr.drop(outName(p)) {
				continue
			}
			sub, err := walk(p, d.Tree, d.Meta, claim, claimed)
			if err != nil {
				return false, err
			}
			any = any || sub
		}
		t.files[name] = any
		return any, nil
	}
	if _, err := walk("", cm.RootTree, cm.RootMeta, xattrClaim{}, false); err != nil {
		return nil, err
	}
	if hasEtc && hasUsrEtc {
		return nil, fmt.Errorf("commit %s has both /etc and /usr/etc; a plain image can hold only one of them", commit)
	}
	return t, nil
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

// emptyDirs are the kept directories with no kept file below them, which no
// layer writes as a parent.
func (t *treeInfo) emptyDirs() []string {
	var out []string
	for _, d := range t.order {
		if d != "" && !t.files[d] {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, comparePaths)
	return out
}

// comparePaths orders relative paths component by component, so that a
// directory's entries follow it directly ("a/b" before "a-b").
func comparePaths(a, b string) int {
	for {
		ha, ra, okA := strings.Cut(a, "/")
		hb, rb, okB := strings.Cut(b, "/")
		if c := strings.Compare(ha, hb); c != 0 {
			return c
		}
		switch {
		case !okA && !okB:
			return 0
		case !okA:
			return -1
		case !okB:
			return 1
		}
		a, b = ra, rb
	}
}
