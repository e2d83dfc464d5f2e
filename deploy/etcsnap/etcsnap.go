// Package etcsnap records what a deployment's /etc looked like (path →
// type, mode, owner, content hash or link target) and tells which paths
// changed since. upgrade stores one beside the new deployment, taken of
// the merge source's /etc right after the /etc merge; finalize compares it
// with the booted /etc at shutdown to find the edits made after the
// upgrade. Extended attributes and timestamps are not recorded, as the
// /etc merge does not compare them either.
package etcsnap

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"syscall"
)

// Version is the format version written in every snapshot.
const Version = 1

// Entry is one path of an /etc.
type Entry struct {
	// Type is "f" (regular file), "d", "l" (symlink) or "o" (other).
	Type string `json:"type"`
	// Mode is the permission bits with setuid, setgid and sticky (07777).
	Mode   uint32 `json:"mode"`
	UID    uint32 `json:"uid"`
	GID    uint32 `json:"gid"`
	SHA256 string `json:"sha256,omitempty"`
	Target string `json:"target,omitempty"`
}

// Snapshot is a recorded /etc.
type Snapshot struct {
	Version int `json:"version"`
	// Source names the deployment whose /etc this is ($CSUM.$SERIAL).
	Source  string           `json:"source"`
	Entries map[string]Entry `json:"entries"`
}

// Take records the /etc directory dir of deployment source. It never
// follows symlinks.
func Take(dir, source string) (*Snapshot, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("etc snapshot: %w", err)
	}
	defer r.Close()
	s := &Snapshot{Version: Version, Source: source, Entries: map[string]Entry{}}
	var walk func(rel string) error
	walk = func(rel string) error {
		f, err := r.Open(rel)
		if err != nil {
			return err
		}
		names, err := f.Readdirnames(-1)
		f.Close()
		if err != nil {
			return err
		}
		for _, n := range names {
			p := n
			if rel != "." {
				p = rel + "/" + n
			}
			fi, err := r.Lstat(p)
			if err != nil {
				return err
			}
			e := Entry{Mode: uint32(fi.Mode().Perm())}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				e.Mode, e.UID, e.GID = st.Mode&0o7777, st.Uid, st.Gid
			}
			switch m := fi.Mode(); {
			case m.IsRegular():
				e.Type = "f"
				if e.SHA256, err = hashFile(r, p); err != nil {
					return err
				}
			case m.IsDir():
				e.Type = "d"
			case m&fs.ModeSymlink != 0:
				e.Type = "l"
				if e.Target, err = r.Readlink(p); err != nil {
					return err
				}
			default:
				e.Type = "o"
			}
			s.Entries[p] = e
			if e.Type == "d" {
				if err := walk(p); err != nil {
					return err
				}
			}
		}
		return nil
	}
	if err := walk("."); err != nil {
		return nil, fmt.Errorf("etc snapshot of %s: %w", dir, err)
	}
	return s, nil
}

func hashFile(r *os.Root, p string) (string, error) {
	f, err := r.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Changed lists, sorted, the paths whose entry differs between old and
// cur, or that only one of them has.
func Changed(old, cur *Snapshot) []string {
	var out []string
	for p, e := range cur.Entries {
		if o, ok := old.Entries[p]; !ok || o != e {
			out = append(out, p)
		}
	}
	for p := range old.Entries {
		if _, ok := cur.Entries[p]; !ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// Marshal encodes s.
func (s *Snapshot) Marshal() ([]byte, error) { return json.Marshal(s) }

// Parse decodes a snapshot, refusing other format versions.
func Parse(b []byte) (*Snapshot, error) {
	var s Snapshot
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("etc snapshot: %w", err)
	}
	if s.Version != Version {
		return nil, fmt.Errorf("etc snapshot: format version %d, want %d", s.Version, Version)
	}
	for p := range s.Entries {
		if p == "" || path.IsAbs(p) || path.Clean(p) != p || p == ".." || len(p) > 2 && p[:3] == "../" {
			return nil, errors.New("etc snapshot: bad path " + p)
		}
	}
	return &s, nil
}
