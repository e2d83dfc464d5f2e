package integration

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestZstdChunkedAcrossTimeZones encapsulates one commit with
// --compression zstd:chunked in separate ocitree processes whose TZ differ
// (UTC, UTC+05:45, UTC-03:30 with DST rules): the table of contents of a
// zstd:chunked layer records mtimes, which Go renders in the process's local
// zone, so only a CLI that pins its zone to UTC prints the same manifest
// digest in each. The zones are checked to be installed and distinct, so
// that the comparison cannot pass because TZ was ignored.
func TestZstdChunkedAcrossTimeZones(t *testing.T) {
	setup(t)
	t.Parallel()
	zones := []string{"UTC", "Asia/Kathmandu", "America/St_Johns"}
	epoch := time.Unix(0, 0)
	offsets := map[int]string{}
	for _, z := range zones {
		loc, err := time.LoadLocation(z)
		if err != nil {
			t.Fatalf("time zone %s is not installed (tzdata): %v", z, err)
		}
		_, off := epoch.In(loc).Zone()
		if prev, ok := offsets[off]; ok {
			t.Fatalf("zones %s and %s have the same offset at mtime 0", prev, z)
		}
		offsets[off] = z
	}

	dir := workDir(t)
	repo := filepath.Join(dir, "repo")
	ocitreeInit(t, repo, "bare-user")
	ocitreeCommit(t, repo, "os/main", tree(t, "minios"), commitOpts{subject: "MiniOS zstd:chunked"})
	var first string
	for i, z := range zones {
		layout := filepath.Join(dir, "oci-"+strings.ReplaceAll(z, "/", "-"))
		r := runCmdEnv(t, []string{"TZ=" + z}, nil, ocitreeBin, "encapsulate", "--repo", repo,
			"--compression", "zstd:chunked", "--previous-build", "none", "os/main", "oci:"+layout+":latest")
		got := strings.TrimSpace(must(t, r))
		if !strings.HasPrefix(got, "sha256:") {
			t.Fatalf("encapsulate printed %q", r.stdout)
		}
		img := readOCI(t, layout)
		for _, l := range img.manifest.Layers {
			if !strings.HasSuffix(l.MediaType, "+zstd") || !hasChunkedAnnotation(l.Annotations) {
				t.Fatalf("TZ=%s: layer %s is %s with annotations %v, not zstd:chunked", z, l.Digest, l.MediaType, l.Annotations)
			}
		}
		t.Logf("TZ=%s: %s", z, got)
		if i == 0 {
			first = got
			continue
		}
		if got != first {
			t.Errorf("TZ=%s gives manifest %s, TZ=%s gave %s", z, got, zones[0], first)
			diffLayers(t, filepath.Join(dir, "oci-"+zones[0]), layout)
		}
	}
}

// hasChunkedAnnotation reports whether a layer descriptor carries the
// io.github.containers.zstd-chunked.* annotations.
func hasChunkedAnnotation(a map[string]string) bool {
	for k := range a {
		if strings.HasPrefix(k, "io.github.containers.zstd-chunked.") {
			return true
		}
	}
	return false
}

// diffLayers logs which layer digests of two layouts' latest images differ.
func diffLayers(t *testing.T, a, b string) {
	t.Helper()
	la, lb := readOCI(t, a).manifest.Layers, readOCI(t, b).manifest.Layers
	for i := range min(len(la), len(lb)) {
		if la[i].Digest != lb[i].Digest {
			t.Logf("layer %d: %s vs %s", i, la[i].Digest, lb[i].Digest)
		}
	}
}
