package pkgdb

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/encap/pack"
	"github.com/ocitree/ocitree/ostree"
)

// pathsOwner maps every object path to the component holding the object.
func pathsOwner(t *testing.T, objs []ostree.ContentObject, comps []pack.Component) map[string]string {
	t.Helper()
	owner := make(map[ostree.Checksum]string)
	for _, c := range comps {
		for _, o := range c.Objects {
			if prev, dup := owner[o]; dup {
				t.Errorf("object %s in %q and %q", o, prev, c.Name)
			}
			owner[o] = c.Name
		}
	}
	out := make(map[string]string)
	for _, o := range objs {
		n, ok := owner[o.Checksum]
		if !ok {
			t.Errorf("object %s (%v) in no component", o.Checksum, o.Paths)
		}
		for _, p := range o.Paths {
			out[p] = n
		}
	}
	return out
}

func TestListObjects(t *testing.T) {
	repo, commit := commitTree(t, map[string]string{
		"usr/bin/a":           "same",
		"usr/lib/b":           "same",
		"usr/share/c":         "hello world",
		"bin":                 "->usr/bin",
		"usr/lib/modules/x/z": "zzz",
	})
	objs, err := ostree.ListObjects(repo, commit)
	if err != nil {
		t.Fatal(err)
	}
	got := make(map[string]int64)
	for i, o := range objs {
		if i > 0 && ostree.CompareChecksum(objs[i-1].Checksum, o.Checksum) >= 0 {
			t.Errorf("objects not sorted by checksum at %d", i)
		}
		if !slices.IsSorted(o.Paths) {
			t.Errorf("paths of %s not sorted: %v", o.Checksum, o.Paths)
		}
		got[strings.Join(o.Paths, " ")] = o.Size
	}
	want := map[string]int64{
		"/usr/bin/a /usr/lib/b": 4,
		"/usr/share/c":          11,
		"/bin":                  0,
		"/usr/lib/modules/x/z":  3,
	}
	if len(got) != len(want) {
		t.Errorf("got %d objects %v, want %d", len(got), got, len(want))
	}
	for k, v := range want {
		if gv, ok := got[k]; !ok || gv != v {
			t.Errorf("object at %q: size %d (present %v), want %d", k, gv, ok, v)
		}
	}
	if _, err := ostree.ListObjects(repo, ostree.Checksum{1}); err == nil {
		t.Error("ListObjects of a missing commit succeeded")
	}
}

func TestResolve(t *testing.T) {
	repo, commit := commitTree(t, map[string]string{
		"lib":                                "->usr/lib",
		"bin":                                "->/usr/bin",
		"usr/bin/sh":                         "->dash",
		"usr/bin/dash":                       "dash!",
		"usr/lib/x86_64-linux-gnu/libc.so.6": "libc",
		"usr/lib/up":                         "->../share/doc",
		"usr/share/doc/x":                    "doc",
		"usr/lib/escape":                     "->../../../../../usr/bin",
		"loop1":                              "->loop2",
		"loop2":                              "->loop1",
	})
	objs, err := ostree.ListObjects(repo, commit)
	if err != nil {
		t.Fatal(err)
	}
	ix := newTreeIndex(repo, objs)
	for _, tc := range []struct {
		in    string
		final bool
		want  string
		err   error
	}{
		{"/lib/x86_64-linux-gnu/libc.so.6", false, "/usr/lib/x86_64-linux-gnu/libc.so.6", nil},
		{"/bin/sh", false, "/usr/bin/sh", nil},
		{"/bin/sh", true, "/usr/bin/dash", nil},
		{"/lib", false, "/lib", nil},
		{"/lib", true, "/usr/lib", nil},
		{"/lib/up/x", false, "/usr/share/doc/x", nil},
		{"/usr/lib/escape/dash", false, "/usr/bin/dash", nil},
		{"/usr/./lib//x86_64-linux-gnu/../x86_64-linux-gnu/libc.so.6", false, "/usr/lib/x86_64-linux-gnu/libc.so.6", nil},
		{"/nonexistent/file", false, "/nonexistent/file", nil},
		{"/loop1/x", false, "", errLoop},
		{"/", false, "/", nil},
	} {
		got, err := ix.resolve(tc.in, tc.final)
		if !errors.Is(err, tc.err) || got != tc.want {
			t.Errorf("resolve(%q, %v) = %q, %v; want %q, %v", tc.in, tc.final, got, err, tc.want, tc.err)
		}
	}
	data, err := ix.readFile("/bin/sh", 100)
	if err != nil || string(data) != "dash!" {
		t.Errorf("readFile(/bin/sh) = %q, %v", data, err)
	}
	if _, err := ix.readFile("/usr/bin/dash", 2); err == nil {
		t.Error("readFile beyond its limit succeeded")
	}
	if _, err := ix.readFile("/usr/bin/missing", 100); !errors.Is(err, errNotInCommit) {
		t.Errorf("readFile of a missing file: %v", err)
	}
}
