package integration

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxHostileRSS is the generous fixed bound on the peak RSS of a pull of a
// hostile image (issue 11).
const maxHostileRSS = 300 << 20

// pullRSS runs `ocitree image pull` of ref into repo and returns the
// combined output, whether it succeeded, and the process's peak RSS in
// bytes (getrusage's ru_maxrss), with a generous timeout so that an
// endless input fails the test instead of hanging it.
func pullRSS(t *testing.T, repo, ref string) (string, bool, int64) {
	t.Helper()
	debug.FreeOSMemory()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ocitreeBin, "image", "pull", "--quiet", "--repo", repo, ref)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("pull of %s did not finish: %v", ref, ctx.Err())
	}
	var rss int64
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		rss = ru.Maxrss << 10 // KiB on Linux
	}
	return out.String(), err == nil, rss
}

// addLayoutEntry adds a manifest descriptor tagged tag to the layout's
// index.json.
func addLayoutEntry(t *testing.T, layout string, d v1.Descriptor, tag string) {
	t.Helper()
	p := filepath.Join(layout, "index.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var idx v1.Index
	if err := json.Unmarshal(b, &idx); err != nil {
		t.Fatal(err)
	}
	d.Annotations = map[string]string{v1.AnnotationRefName: tag}
	idx.Manifests = append(idx.Manifests, d)
	if b, err = json.Marshal(idx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// junkBlob stores an uncompressed layer blob: head, then n pseudo-random
// bytes, streamed.
func junkBlob(t *testing.T, layout string, head []byte, n int) v1.Descriptor {
	t.Helper()
	tmp := filepath.Join(layout, "blobs", "junk.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	dg := digest.SHA256.Digester()
	w := io.MultiWriter(f, dg.Hash())
	w.Write(head)
	rnd := rand.New(rand.NewPCG(11, 12))
	chunk := make([]byte, 1<<20)
	for left := n; left > 0; left -= len(chunk) {
		for i := 0; i < len(chunk); i += 8 {
			binary.LittleEndian.PutUint64(chunk[i:], rnd.Uint64())
		}
		w.Write(chunk[:min(left, len(chunk))])
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	d := dg.Digest()
	if err := os.Rename(tmp, filepath.Join(layout, "blobs", "sha256", d.Encoded())); err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: v1.MediaTypeImageLayer, Digest: d, Size: int64(len(head) + n)}
}

// padBlob stores the JSON of v followed by n spaces (still valid JSON)
// in the layout, streamed: the test process stays small, because a child's
// ru_maxrss includes the parent's RSS at the fork.
func padBlob(t *testing.T, layout, mt string, v any, n int) v1.Descriptor {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(layout, "blobs", "pad.tmp")
	f, err := os.Create(tmp)
	if err != nil {
		t.Fatal(err)
	}
	dg := digest.SHA256.Digester()
	w := io.MultiWriter(f, dg.Hash())
	w.Write(b)
	chunk := bytes.Repeat([]byte(" "), 1<<20)
	for left := n; left > 0; left -= len(chunk) {
		w.Write(chunk[:min(left, len(chunk))])
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	d := dg.Digest()
	if err := os.Rename(tmp, filepath.Join(layout, "blobs", "sha256", d.Encoded())); err != nil {
		t.Fatal(err)
	}
	return v1.Descriptor{MediaType: mt, Digest: d, Size: int64(len(b) + n)}
}

// TestPullHostileMemory: manifests and configs that never end or are far
// too large are refused with the limit named, before they are read into
// memory; peak RSS stays under 300 MiB, the store passes both fscks, and
// the image stored before pulls again (issue 11, class 3).
func TestPullHostileMemory(t *testing.T) {
	setup(t)
	dir := workDir(t)
	build := filepath.Join(dir, "build")
	ocitreeInit(t, build, "bare-user")
	ocitreeCommit(t, build, "os/main", tree(t, "minios"), commitOpts{subject: "MiniOS 1.0"})
	layout := filepath.Join(dir, "oci")
	encapsulate(t, build, "os/main", "oci:"+layout+":1.0")
	store := filepath.Join(dir, "store")
	ocitreeInit(t, store, "bare-user")
	if out, ok, _ := pullRSS(t, store, "oci:"+layout+":1.0"); !ok {
		t.Fatalf("legitimate pull: %s", out)
	}
	m := layoutManifest(t, "oci:"+layout+":1.0")
	const big = 50 << 20

	for _, tc := range []struct {
		name, want string
		make       func(t *testing.T) // adds the tag "h-<name>"
	}{
		{"endless manifest", "not a regular file", func(t *testing.T) {
			d := digest.FromString("endless")
			if err := os.Symlink("/dev/zero", filepath.Join(layout, "blobs", "sha256", d.Encoded())); err != nil {
				t.Fatal(err)
			}
			addLayoutEntry(t, layout, v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: d, Size: 1000}, "h-endless-manifest")
		}},
		{"big manifest", "the limit is 4194304 bytes", func(t *testing.T) {
			addLayoutEntry(t, layout, padBlob(t, layout, v1.MediaTypeImageManifest, m, big), "h-big-manifest")
		}},
		{"big manifest small descriptor", "the limit is 4194304 bytes", func(t *testing.T) {
			d := padBlob(t, layout, v1.MediaTypeImageManifest, m, big+1)
			d.Size = 1000
			addLayoutEntry(t, layout, d, "h-big-manifest-small-descriptor")
		}},
		{"junk after the tar", "after the tar end-of-archive; the limit is 1048576", func(t *testing.T) {
			// A derived layer of one file and 12 MB of incompressible
			// bytes after its end (90 MiB of RSS before the limit).
			var tb bytes.Buffer
			tw := tar.NewWriter(&tb)
			tw.WriteHeader(&tar.Header{Name: "usr/share/j", Typeflag: tar.TypeReg, Mode: 0o644, Size: 1})
			tw.Write([]byte("j"))
			tw.Close()
			ld := junkBlob(t, layout, tb.Bytes(), 12<<20)
			var cfg v1.Image
			b, err := os.ReadFile(filepath.Join(layout, "blobs", "sha256", m.Config.Digest.Encoded()))
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &cfg); err != nil {
				t.Fatal(err)
			}
			cfg.RootFS.DiffIDs = append(cfg.RootFS.DiffIDs, ld.Digest)
			cfg.History = append(cfg.History, v1.History{CreatedBy: "RUN junk"})
			hm := m
			hm.Layers = append(append([]v1.Descriptor{}, m.Layers...), ld)
			hm.Config = padBlob(t, layout, v1.MediaTypeImageConfig, cfg, 0)
			addLayoutEntry(t, layout, padBlob(t, layout, v1.MediaTypeImageManifest, hm, 0), "h-junk-after-the-tar")
		}},
		{"big config", "the limit is 4194304 bytes", func(t *testing.T) {
			cfg := padBlob(t, layout, v1.MediaTypeImageConfig, map[string]any{"architecture": "amd64", "os": "linux"}, big)
			hm := m
			hm.Config = cfg
			addLayoutEntry(t, layout, padBlob(t, layout, v1.MediaTypeImageManifest, hm, 0), "h-big-config")
		}},
	} {
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			tc.make(t)
			ref := "oci:" + layout + ":h-" + strings.ReplaceAll(tc.name, " ", "-")
			out, ok, rss := pullRSS(t, store, ref)
			t.Logf("peak RSS %d MiB", rss>>20)
			if ok || !strings.Contains(out, tc.want) {
				t.Errorf("pull of %s: ok=%v, want refused with %q:\n%s", tc.name, ok, tc.want, out)
			}
			if rss > maxHostileRSS {
				t.Errorf("peak RSS %d MiB, the bound is %d MiB", rss>>20, maxHostileRSS>>20)
			}
			ostreeFsck(t, store)
			must(t, ocitree(t, "repo", "fsck", "--repo", store))
			if out, ok, _ := pullRSS(t, store, "oci:"+layout+":1.0"); !ok {
				t.Errorf("legitimate pull after the hostile image: %s", out)
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 3 {
				t.Errorf("files next to the repositories: %v", ents)
			}
		})
	}
}
