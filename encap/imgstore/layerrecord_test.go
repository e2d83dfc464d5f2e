package imgstore

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/ostree"
	"github.com/ocitree/ocitree/ostree/gvariant"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestLayerRecordFormats: a record keeps its tar-split as an object in its
// root, so the commit a pull reads for every stored layer stays small; a
// record of the older form (tar-split in the commit metadata) is still
// read, found by diff_id and rebuilds its layer.
func TestLayerRecordFormats(t *testing.T) {
	src := storeRepo(t)
	c1 := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	img1 := storeEncap(t, src, c1, dir, "v1", nil)
	storeDerive(t, dir, img1, derivedRecordLayer(t), "d1")
	repo := storeRepo(t)
	res, err := storePull(t, repo, "oci:"+dir+":d1", PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var m v1.Manifest
	if err := json.Unmarshal([]byte(mustMergeMeta(t, repo, res.MergeCommit, "ostree.manifest")), &m); err != nil {
		t.Fatal(err)
	}
	last := len(m.Layers) - 1
	recordRef := func(i int) string {
		name, _ := TarSplitRefName(m.Layers[i].Digest)
		if i == last {
			name, _ = BlobRefName(m.Layers[i].Digest)
		}
		return name
	}
	want := make([][]byte, len(m.Layers))
	for i := range m.Layers {
		c, err := repo.ReadRef(recordRef(i))
		if err != nil {
			t.Fatal(err)
		}
		b, err := repo.LoadMeta(c, ostree.ObjCommit)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > 2048 {
			t.Errorf("layer %d: record commit is %d bytes, want the tar-split outside it", i, len(b))
		}
		rec, err := readLayerRecord(repo, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok, _ := rec.root.File(tarSplitFile); !ok || rec.inlineSplit != nil {
			t.Errorf("layer %d: record root lacks %s", i, tarSplitFile)
		}
		want[i] = rebuiltLayer(t, repo, m.Layers[i].Digest, i == last)
	}

	// Rewrite every record into the older form: same payloads, the
	// tar-split inline.
	txn, err := repo.Begin()
	if err != nil {
		t.Fatal(err)
	}
	for i := range m.Layers {
		old := inlineRecord(t, repo, txn, recordRef(i))
		if err := txn.SetRef(recordRef(i), &old); err != nil {
			t.Fatal(err)
		}
	}
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	stored, err := storedByDiffID(repo)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := os.ReadFile(filepath.Join(dir, "blobs", "sha256", m.Config.Digest.Encoded()))
	if err != nil {
		t.Fatal(err)
	}
	var config v1.Image
	if err := json.Unmarshal(cfg, &config); err != nil {
		t.Fatal(err)
	}
	for i := range m.Layers {
		if got := rebuiltLayer(t, repo, m.Layers[i].Digest, i == last); !bytes.Equal(got, want[i]) {
			t.Errorf("layer %d: rebuilt from the older record form (%d bytes), want %d bytes", i, len(got), len(want[i]))
		}
		if _, ok := stored[config.RootFS.DiffIDs[i]]; !ok {
			t.Errorf("layer %d: older record not found by diff_id", i)
		}
	}
}

// inlineRecord writes the record under ref again in the form of older
// versions: its payloads in the root, the tar-split in the metadata.
func inlineRecord(t *testing.T, repo *ostree.Repo, txn *ostree.Txn, ref string) ostree.Checksum {
	t.Helper()
	c, err := repo.ReadRef(ref)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := readLayerRecord(repo, c)
	if err != nil {
		t.Fatal(err)
	}
	split, err := rec.tarSplit(repo)
	if err != nil {
		t.Fatal(err)
	}
	cm, err := repo.ReadCommit(c)
	if err != nil {
		t.Fatal(err)
	}
	dt, err := repo.ReadDirTree(cm.RootTree)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	var objs []ostree.Checksum
	for _, f := range dt.Files {
		if strings.HasPrefix(f.Name, "0") {
			names, objs = append(names, f.Name), append(objs, f.Checksum)
		}
	}
	md := append(cm.Metadata, ostree.MetaEntry{Key: recordMetaTarSplit, Value: gvariant.Variant{Type: "ay", Value: split}})
	old, err := writeFlatCommit(txn, names, objs, md)
	if err != nil {
		t.Fatal(err)
	}
	return old
}
