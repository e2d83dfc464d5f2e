package etcsnap

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func TestChanged(t *testing.T) {
	dir := t.TempDir()
	w := func(p, data string) {
		t.Helper()
		os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755)
		if err := os.WriteFile(filepath.Join(dir, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	w("a", "1")
	w("sub/b", "2")
	w("sub/c", "3")
	os.Symlink("a", filepath.Join(dir, "l"))
	old, err := Take(dir, "x.0")
	if err != nil {
		t.Fatal(err)
	}
	b, err := old.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if old, err = Parse(b); err != nil {
		t.Fatal(err)
	}
	if again, _ := Take(dir, "x.0"); len(Changed(old, again)) != 0 {
		t.Errorf("unchanged /etc: %v", Changed(old, again))
	}
	w("a", "1 edited")                           // content
	os.Chmod(filepath.Join(dir, "sub/b"), 0o600) // mode
	os.Remove(filepath.Join(dir, "sub/c"))       // removed
	w("new", "")                                 // added
	os.Remove(filepath.Join(dir, "l"))
	os.Symlink("sub", filepath.Join(dir, "l")) // retargeted
	cur, err := Take(dir, "x.0")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := Changed(old, cur), []string{"a", "l", "new", "sub/b", "sub/c"}; !reflect.DeepEqual(got, want) {
		t.Errorf("changed %v, want %v", got, want)
	}
	for _, bad := range []string{`{"version":2,"entries":{}}`, `{"version":1,"entries":{"../x":{}}}`, `{"version":1,"entries":{"/x":{}}}`, `nope`} {
		if _, err := Parse([]byte(bad)); err == nil {
			t.Errorf("Parse(%s) accepted", bad)
		}
	}
}
