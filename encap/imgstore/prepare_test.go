package imgstore

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"path/filepath"
	"reflect"
	"sync"
	"testing"

	"github.com/ocitree/ocitree/oci"
	"github.com/ocitree/ocitree/ostree"
)

// countingReader is an oci.Reader that counts what a pull asks the source
// for beyond the manifest (which oci.NewReader has read already).
type countingReader struct {
	oci.Reader
	mu      sync.Mutex
	configs int
	blobs   []oci.Descriptor
}

func (c *countingReader) Config(ctx context.Context) ([]byte, error) {
	c.mu.Lock()
	c.configs++
	c.mu.Unlock()
	return c.Reader.Config(ctx)
}

func (c *countingReader) Blob(ctx context.Context, d oci.Descriptor) (io.ReadCloser, error) {
	c.mu.Lock()
	c.blobs = append(c.blobs, d)
	c.mu.Unlock()
	return c.Reader.Blob(ctx, d)
}

func openCounting(t *testing.T, imgref string) (*countingReader, string) {
	t.Helper()
	ref, err := oci.ParseRef(imgref)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := oci.NewReader(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return &countingReader{Reader: rd}, ref.ImageString()
}

// derivedLayout writes an ostree image (tag v1) and a derived image on it
// (tag derived) into a fresh layout.
func derivedLayout(t *testing.T) (dir string, base ostree.Checksum) {
	t.Helper()
	src := storeRepo(t)
	base = storeCommit(t, src, storeFiles(), 1700000000)
	dir = filepath.Join(t.TempDir(), "layout")
	img := storeEncap(t, src, base, dir, "v1", nil)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	body := "added by a derived layer\n"
	if err := tw.WriteHeader(&tar.Header{Name: "usr/share/doc/EXTRA", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(body))
	tw.Close()
	storeDerive(t, dir, img, tb.Bytes(), "derived")
	return dir, base
}

// TestPrepareThenImport: Prepare fetches the config and no layer, writes
// nothing into a store that has no image under the ref, and lists every
// layer with whether it is stored; Import fetches exactly the layers listed
// as missing.
func TestPrepareThenImport(t *testing.T) {
	dir, base := derivedLayout(t)
	repo := storeRepo(t)
	s := New(repo)
	ctx := context.Background()

	// The base image first: the derived image then lacks only its own layer.
	rd, name := openCounting(t, "oci:"+dir+":v1")
	if _, err := s.Pull(ctx, rd, name, PullOptions{}); err != nil {
		t.Fatal(err)
	}
	before := refMap(t, repo)

	rd, name = openCounting(t, "oci:"+dir+":derived")
	p, err := s.Prepare(ctx, rd, name, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rd.configs != 1 || len(rd.blobs) != 0 {
		t.Errorf("Prepare fetched the config %d times and blobs %v; want the config once and no blob", rd.configs, rd.blobs)
	}
	if after := refMap(t, repo); !reflect.DeepEqual(after, before) {
		t.Errorf("Prepare changed the refs:\n before %v\n after  %v", before, after)
	}
	if p.AlreadyPresent || p.BaseCommit != base || len(p.Layers) < 2 {
		t.Fatalf("prepared: already %v base %s, %d layers; want a new image on base %s", p.AlreadyPresent, p.BaseCommit, len(p.Layers), base)
	}
	last := len(p.Layers) - 1
	for i, l := range p.Layers {
		if l.Derived != (i == last) || l.Present != (i != last) {
			t.Errorf("layer %d: derived %v present %v; want only the last one derived and missing", i, l.Derived, l.Present)
		}
		if want := refMap(t, repo)[l.Ref]; l.Present && l.Commit != want {
			t.Errorf("layer %d: commit %s, its blob ref %s", i, l.Commit, want)
		}
	}
	n, bytes := p.LayersToFetch()
	if n != 1 || bytes != p.Layers[last].Descriptor.Size || p.LayersPresent() != last {
		t.Errorf("to fetch %d layers (%d bytes), %d present; want 1 (%d bytes), %d", n, bytes, p.LayersPresent(), p.Layers[last].Descriptor.Size, last)
	}

	res, err := s.Import(ctx, p, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(rd.blobs) != 1 || rd.blobs[0].Digest != p.Layers[last].Descriptor.Digest {
		t.Errorf("Import fetched %v; want only the derived layer %s", rd.blobs, p.Layers[last].Descriptor.Digest)
	}
	if res.LayersFetched != 1 || res.LayersPresent != last || res.BaseCommit != base || res.MergeCommit.IsZero() {
		t.Errorf("import: %+v", res)
	}
	if _, ok := storeLookup(t, repo, res.MergeCommit, "usr/share/doc/EXTRA"); !ok {
		t.Error("merge commit lacks usr/share/doc/EXTRA")
	}
}

// TestPullSameDerivedImageTwice (issue 10): the second pull of a derived
// image fetches nothing but the manifest: not even the config. Prepare
// answers AlreadyPresent from the stored merge commit, whose config it
// returns; Import returns the stored merge commit.
func TestPullSameDerivedImageTwice(t *testing.T) {
	dir, base := derivedLayout(t)
	repo := storeRepo(t)
	s := New(repo)
	ctx := context.Background()

	rd, name := openCounting(t, "oci:"+dir+":derived")
	first, err := s.Pull(ctx, rd, name, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rd.configs != 1 || first.AlreadyPresent {
		t.Fatalf("first pull: %d config fetches, %+v", rd.configs, first)
	}
	config, err := rd.Config(ctx)
	if err != nil {
		t.Fatal(err)
	}
	before := refMap(t, repo)

	for _, check := range []bool{true, false} {
		rd, name := openCounting(t, "oci:"+dir+":derived")
		res, err := s.Pull(ctx, rd, name, PullOptions{Check: check})
		if err != nil {
			t.Fatal(err)
		}
		if rd.configs != 0 || len(rd.blobs) != 0 {
			t.Errorf("check=%v: second pull fetched the config %d times and blobs %v; want nothing", check, rd.configs, rd.blobs)
		}
		if !res.AlreadyPresent || res.LayersFetched != 0 || res.BytesFetched != 0 || res.LayersPresent != first.LayersFetched+first.LayersPresent {
			t.Errorf("check=%v: second pull %+v", check, res)
		}
		if !check && (res.MergeCommit != first.MergeCommit || res.BaseCommit != base) {
			t.Errorf("second pull: merge %s base %s; want %s on %s", res.MergeCommit, res.BaseCommit, first.MergeCommit, base)
		}
	}
	if after := refMap(t, repo); !reflect.DeepEqual(after, before) {
		t.Errorf("the second pulls changed the refs:\n before %v\n after  %v", before, after)
	}

	rd, name = openCounting(t, "oci:"+dir+":derived")
	p, err := s.Prepare(ctx, rd, name, PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !p.AlreadyPresent || p.Previous != first.MergeCommit || !bytes.Equal(p.Config, config) || len(p.Layers) != 0 {
		t.Errorf("prepared: already %v previous %s, config equal %v, layers %v", p.AlreadyPresent, p.Previous, bytes.Equal(p.Config, config), p.Layers)
	}
	if p.LayersPresent() != first.LayersFetched+first.LayersPresent {
		t.Errorf("prepared: %d layers present, want all %d", p.LayersPresent(), first.LayersFetched+first.LayersPresent)
	}
}
