package ostree

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sort"
	"sync"
)

// FsckProblem is one bad or missing object.
type FsckProblem struct {
	Object   ObjectName
	Path     string   // below the repository, e.g. objects/ab/cdef….file
	Actual   Checksum // the checksum the object's content has (zero if unreadable)
	Err      error    // what is wrong
	Commit   Checksum // for a missing object, the commit that needs it
	Missing  bool
	Corrupt  bool
	Unparsed bool
}

func (p FsckProblem) String() string {
	switch {
	case p.Missing:
		return fmt.Sprintf("missing object %s (%s), referenced by commit %s", p.Object, p.Path, p.Commit)
	case p.Corrupt:
		return fmt.Sprintf("corrupted object %s: checksum expected=%s actual=%s", p.Path, p.Object.Checksum, p.Actual)
	}
	return fmt.Sprintf("bad object %s: %v", p.Path, p.Err)
}

// FsckResult summarizes a check.
type FsckResult struct {
	Commits  int
	Objects  int
	Problems []FsckProblem
}

// Fsck re-hashes every object reachable from every ref and every commit
// object in the repository, on all cores, and reports each bad one. It
// changes nothing.
func (r *Repo) Fsck() (*FsckResult, error) {
	unlock, err := r.lock(false)
	if err != nil {
		return nil, err
	}
	defer unlock()
	res := &FsckResult{}
	refs, err := r.ListRefs()
	if err != nil {
		return nil, err
	}
	commits, err := r.ListObjects(func(t ObjectType) bool { return t == ObjCommit })
	if err != nil {
		return nil, err
	}
	roots := map[Checksum]bool{}
	for _, ref := range refs {
		if ok, _ := r.HasObject(ref.Checksum, ObjCommit); !ok {
			res.Problems = append(res.Problems, FsckProblem{Object: ObjectName{ref.Checksum, ObjCommit}, Path: r.objectPath(ref.Checksum, ObjCommit),
				Missing: true, Err: fmt.Errorf("ref %s points at a missing commit", ref.Name)})
			continue
		}
		roots[ref.Checksum] = true
	}
	for _, c := range commits {
		roots[c.Checksum] = true
	}
	seen := map[ObjectName]struct{}{}
	for c := range roots {
		before := len(seen)
		err := r.Reachable(c, false, seen, func(n ObjectName, commit Checksum) {
			res.Problems = append(res.Problems, FsckProblem{Object: n, Path: r.objectPath(n.Checksum, n.Type), Missing: true, Commit: commit})
		})
		if err != nil {
			res.Problems = append(res.Problems, FsckProblem{Object: ObjectName{c, ObjCommit}, Path: r.objectPath(c, ObjCommit), Err: err, Unparsed: true})
		}
		if len(seen) > before {
			res.Commits++
		}
	}
	names := make([]ObjectName, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return names[i].String() < names[j].String() })
	res.Objects = len(names)
	res.Problems = append(res.Problems, r.verifyAll(names)...)
	sort.SliceStable(res.Problems, func(i, j int) bool { return res.Problems[i].Path < res.Problems[j].Path })
	return res, nil
}

func (r *Repo) verifyAll(names []ObjectName) []FsckProblem {
	var mu sync.Mutex
	var out []FsckProblem
	jobs := make(chan ObjectName)
	var wg sync.WaitGroup
	for i := 0; i < runtime.GOMAXPROCS(0)*2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range jobs {
				if p := r.verifyObject(n); p != nil {
					mu.Lock()
					out = append(out, *p)
					mu.Unlock()
				}
			}
		}()
	}
	for _, n := range names {
		jobs <- n
	}
	close(jobs)
	wg.Wait()
	return out
}

// verifyObject recomputes one object's checksum and checks its structure.
func (r *Repo) verifyObject(n ObjectName) *FsckProblem {
	p := &FsckProblem{Object: n, Path: r.objectPath(n.Checksum, n.Type)}
	var actual Checksum
	var err error
	if n.Type == ObjFile {
		actual, err = r.fileChecksum(n.Checksum)
	} else {
		var b []byte
		if b, err = r.LoadMeta(n.Checksum, n.Type); err == nil {
			actual = SumBytes(b)
			if actual == n.Checksum {
				err = validateMeta(n.Type, b)
			}
		}
	}
	var missing *MissingObjectError
	switch {
	case errors.As(err, &missing):
		p.Missing, p.Err = true, err
	case err != nil:
		p.Err = err
	case actual != n.Checksum:
		p.Corrupt, p.Actual = true, actual
		p.Err = fmt.Errorf("checksum mismatch")
	default:
		return nil
	}
	return p
}

func validateMeta(t ObjectType, b []byte) error {
	var err error
	switch t {
	case ObjCommit:
		_, err = DecodeCommit(b)
	case ObjDirTree:
		_, err = DecodeDirTree(b)
	case ObjDirMeta:
		_, err = DecodeDirMeta(b)
	}
	return err
}

// fileChecksum recomputes a content object's checksum from what is stored.
func (r *Repo) fileChecksum(c Checksum) (Checksum, error) {
	cont, err := r.OpenContent(c)
	if err != nil {
		return Checksum{}, err
	}
	defer cont.Payload.Close()
	if err := cont.Meta.Validate(); err != nil {
		return Checksum{}, err
	}
	header, err := cont.Meta.encodeHeader()
	if err != nil {
		return Checksum{}, err
	}
	h := sha256.New()
	h.Write(streamPrefix(header))
	n, err := io.Copy(h, cont.Payload)
	if err != nil {
		return Checksum{}, fmt.Errorf("reading content: %w", err)
	}
	if n != cont.Size {
		return Checksum{}, fmt.Errorf("content is %d bytes, expected %d", n, cont.Size)
	}
	var out Checksum
	h.Sum(out[:0])
	return out, nil
}
