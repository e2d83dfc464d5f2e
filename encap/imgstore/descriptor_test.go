package imgstore

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestPullRefusesBadDescriptors: layer descriptors with a size that is not
// positive or not the blob's (class 4), or with urls (class 6), are refused
// with the layer and the rule named, no request goes to a url, the store
// stays sound and the image stored before pulls again (issue 11).
func TestPullRefusesBadDescriptors(t *testing.T) {
	var hits atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.Error(w, "gone", http.StatusNotFound)
	}))
	defer srv.Close()
	src := storeRepo(t)
	ca := storeCommit(t, src, storeFiles(), 1700000000)
	dir := filepath.Join(t.TempDir(), "layout")
	imgA := storeEncap(t, src, ca, dir, "a", nil)
	layer := derivedRecordLayer(t)
	var mA v1.Manifest
	json.Unmarshal(imgA.Manifest, &mA)
	derivedDesc := v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: digest.FromBytes(layer), Size: -1}
	withDerived := func(m *v1.Manifest, cfg *v1.Image, d v1.Descriptor) {
		m.Layers = append(m.Layers, d)
		cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, digest.FromBytes(layer))
		cfg.History = append(cfg.History, v1.History{CreatedBy: "RUN derive"})
	}
	for _, tc := range []struct {
		name   string
		extra  [][]byte
		mutate func(m *v1.Manifest, cfg *v1.Image)
		want   []string
	}{
		{"commit layer size 0", nil, func(m *v1.Manifest, _ *v1.Image) { m.Layers[0].Size = 0 },
			[]string{"layer 0", mA.Layers[0].Digest.String(), "positive descriptor size"}},
		{"component layer size -1", nil, func(m *v1.Manifest, _ *v1.Image) { m.Layers[1].Size = -1 },
			[]string{"layer 1", mA.Layers[1].Digest.String(), "positive descriptor size"}},
		{"endless uncompressed derived layer", [][]byte{layer}, func(m *v1.Manifest, cfg *v1.Image) { withDerived(m, cfg, derivedDesc) },
			[]string{derivedDesc.Digest.String(), "positive descriptor size"}},
		{"derived layer size short by one", [][]byte{layer}, func(m *v1.Manifest, cfg *v1.Image) {
			d := derivedDesc
			d.Size = int64(len(layer)) - 1
			withDerived(m, cfg, d)
		}, []string{derivedDesc.Digest.String(), "size"}},
		{"ostree layer with urls", nil, func(m *v1.Manifest, _ *v1.Image) { m.Layers[2].URLs = []string{srv.URL + "/blob"} },
			[]string{"layer 2", mA.Layers[2].Digest.String(), "urls"}},
		{"commit layer with urls", nil, func(m *v1.Manifest, _ *v1.Image) {
			m.Layers[0].URLs = []string{srv.URL + "/x", "http://127.0.0.1:1/dead"}
		},
			[]string{"layer 0", "urls"}},
		{"derived layer with urls", [][]byte{layer}, func(m *v1.Manifest, cfg *v1.Image) {
			d := derivedDesc
			d.Size, d.URLs = int64(len(layer)), []string{srv.URL + "/derived"}
			withDerived(m, cfg, d)
		}, []string{derivedDesc.Digest.String(), "urls"}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			repo := storeRepo(t)
			if _, err := storePull(t, repo, "oci:"+dir+":a", PullOptions{}); err != nil {
				t.Fatal(err)
			}
			before := refMap(t, repo)
			tag := "h-" + strings.ReplaceAll(tc.name, " ", "-")
			craftImage(t, dir, tag, imgA, tc.extra, tc.mutate)
			_, err := pullAs(t, repo, dir, tag, tag)
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Fatalf("pull: %v, want an error with %q", err, w)
				}
			}
			if strings.Contains(tc.name, "urls") && !errors.Is(err, ErrBadDescriptor) {
				t.Errorf("%v does not wrap ErrBadDescriptor", err)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("%d requests to a layer's urls", n)
			}
			after := refMap(t, repo)
			for n, c := range before {
				if after[n] != c {
					t.Errorf("ref %s moved", n)
				}
			}
			storeSound(t, repo)
			if res, err := pullAs(t, repo, dir, "a", "again"); err != nil || res.BaseCommit != ca {
				t.Errorf("legitimate pull after the hostile image: %+v, %v", res, err)
			}
		})
	}
}
