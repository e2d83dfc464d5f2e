package integration

import (
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// builderEnv is one isolated buildah: its own storage under the test's
// directory, the vfs driver (unless newOverlayBuilderEnv) and chroot
// isolation, so that builds need neither overlay nor user namespaces and
// leave nothing behind.
type builderEnv struct {
	root, runroot string
	driver        string
}

func newBuilderEnv(t *testing.T, dir string) *builderEnv {
	t.Helper()
	return &builderEnv{root: filepath.Join(dir, "buildah-root"), runroot: filepath.Join(dir, "buildah-run"), driver: "vfs"}
}

func (b *builderEnv) run(t *testing.T, args ...string) string {
	t.Helper()
	full := append([]string{"--root", b.root, "--runroot", b.runroot, "--storage-driver", b.driver}, args...)
	return must(t, runCmd(t, nil, "buildah", full...))
}

// bud builds the Containerfile in ctx as tag and pushes it to dest (an oci:
// or docker:// reference).
func (b *builderEnv) bud(t *testing.T, ctx, tag, dest string) {
	t.Helper()
	b.run(t, "bud", "--isolation", "chroot", "--layers=false", "-t", tag, ctx)
	b.run(t, "push", "--tls-verify=false", tag, dest)
}

// layoutDir returns a directory for oci: layouts that buildah reads: it
// names a local image after the layout's path, which must then be a valid
// lowercase repository name (the test's workDir has the test name in it).
func layoutDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp(testBase, "ocitree-buildah-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// builderBase encapsulates fixtures.BusyboxOS into the oci: layout
// LAYOUTS/base:1.0 and returns the layout directory and the source tree.
func builderBase(t *testing.T, dir, layouts string) (layout, src string) {
	t.Helper()
	src = tree(t, "busybox")
	build := filepath.Join(dir, "build")
	ocitreeInit(t, build, "bare")
	ocitreeCommit(t, build, "os/main", src, commitOpts{subject: "BusyboxOS 1.0", bootable: true, metadata: []string{"version=1.0"}})
	layout = filepath.Join(layouts, "base")
	encapsulate(t, build, "os/main", "oci:"+layout+":1.0")
	return layout, src
}

// builderView unpacks image (a layout:tag for umoci) with the real umoci as
// root and turns it into what the store must hold: sysroot/ostree (the
// base's object files) and the encapsulation's var/tmp left out, etc at
// usr/etc, tmp emptied, and the empty etc/hostname and etc/resolv.conf that
// buildah leaves removed (the merge commit drops them, §5.9).
func builderView(t *testing.T, dir, image, src string) string {
	t.Helper()
	bundle := filepath.Join(dir, "bundle-"+strings.NewReplacer("/", "_", ":", "_").Replace(filepath.Base(image)))
	must(t, runCmd(t, nil, "umoci", "unpack", "--image", image, bundle))
	rootfs := filepath.Join(bundle, "rootfs")
	normalizeUmociRootfs(t, rootfs, src)
	for _, p := range []string{"usr/etc/hostname", "usr/etc/resolv.conf"} {
		if fi, err := os.Lstat(filepath.Join(rootfs, p)); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
			if err := os.Remove(filepath.Join(rootfs, p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return rootfs
}

// layoutBlobDiffIDs returns the sha256 of each uncompressed layer of an
// oci: image (what its config's diff_ids must be).
func layoutBlobDiffIDs(t *testing.T, layout, tag string) []string {
	t.Helper()
	m := layoutManifest(t, "oci:"+layout+":"+tag)
	var out []string
	for _, l := range m.Layers {
		f, err := os.Open(filepath.Join(layout, "blobs", l.Digest.Algorithm().String(), l.Digest.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			f.Close()
			t.Fatalf("layer %s: %v", l.Digest, err)
		}
		h := sha256.New()
		if _, err := io.Copy(h, zr); err != nil {
			t.Fatal(err)
		}
		f.Close()
		out = append(out, "sha256:"+hex.EncodeToString(h.Sum(nil)))
	}
	return out
}

func imageDiffIDs(t *testing.T, imgref string) []string {
	t.Helper()
	var cfg v1.Image
	if err := json.Unmarshal([]byte(must(t, runCmd(t, nil, "skopeo", "inspect", "--config", "--raw", imgref))), &cfg); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, d := range cfg.RootFS.DiffIDs {
		out = append(out, d.String())
	}
	return out
}

// builderCase is one Containerfile built on the busybox base.
type builderCase struct {
	name string
	// containerfile; BASE is replaced by the base image reference and
	// PREV by the previous case's image (for stacked builds).
	containerfile string
	// context files (path → content; a "->" prefix makes a symlink, a
	// "=>" prefix a hardlink to another context path).
	context map[string]string
	// check looks at the checkout beyond the comparison with umoci.
	check func(t *testing.T, co string)
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Error(err)
	}
	return string(b)
}

// builderCases are the cases built with buildah's storage driver driver.
func builderCases(driver string) []builderCase {
	return []builderCase{
		{name: "append", containerfile: "FROM BASE\nRUN echo more >> /etc/motd && echo line >> /usr/share/data/two && touch /usr/share/data/one\n",
			check: func(t *testing.T, co string) {
				if got := readFile(t, filepath.Join(co, "usr/etc/motd")); got != "Welcome to BusyboxOS\nmore\n" {
					t.Errorf("usr/etc/motd = %q", got)
				}
				if got := readFile(t, filepath.Join(co, "usr/share/data/two")); got != "two\nline\n" {
					t.Errorf("usr/share/data/two = %q, want the appended content", got)
				}
				// vfs: both names are one inode, so both see the append.
				// overlay: copy-up breaks the hard link (containers/storage
				// mounts without overlay's inode index), so the second
				// name keeps the base content in the builder's own view;
				// the comparison with umoci's unpack pins which.
				got := readFile(t, filepath.Join(co, "usr/share/data/two-again"))
				if got != "two\nline\n" && (driver != "overlay" || got != "two\n") {
					t.Errorf("usr/share/data/two-again = %q, want the appended content (both names of the base inode) with %s", got, driver)
				}
			}},
		{name: "sed", containerfile: "FROM BASE\nRUN sed -i s/level=1/level=2/ /etc/app/app.conf\n",
			check: func(t *testing.T, co string) {
				if got := readFile(t, filepath.Join(co, "usr/etc/app/app.conf")); got != "mode=base\nlevel=2\n" {
					t.Errorf("app.conf = %q", got)
				}
			}},
		{name: "adduser", containerfile: "FROM BASE\nRUN adduser alice 1000 && adduser bob 1001 /bin/false\n",
			check: func(t *testing.T, co string) {
				for f, want := range map[string]string{"passwd": "\nalice:x:1000:1000::/home/alice:/bin/sh\nbob:x:1001:1001::/home/bob:/bin/false\n", "shadow": "\nalice:!:", "group": "\nalice:x:1000:\nbob:x:1001:\n"} {
					if got := readFile(t, filepath.Join(co, "usr/etc", f)); !strings.HasPrefix(got, "root:") || !strings.Contains(got, want) {
						t.Errorf("usr/etc/%s = %q, want root's line and %q", f, got, want)
					}
				}
			}},
		{name: "delete", containerfile: "FROM BASE\nRUN rm /usr/share/data/one /etc/app/extra.conf && rm -r /usr/share/data/sub\n",
			check: func(t *testing.T, co string) {
				for _, p := range []string{"usr/share/data/one", "usr/share/data/sub", "usr/etc/app/extra.conf"} {
					if _, err := os.Lstat(filepath.Join(co, p)); err == nil {
						t.Errorf("%s was deleted by the build but is in the checkout", p)
					}
				}
			}},
		{name: "chmod-chown", containerfile: "FROM BASE\nRUN chmod 0600 /usr/share/data/script && chown 1000:1000 /etc/motd /usr/share/data/two && chmod 0750 /usr/share/data/sub\n",
			check: func(t *testing.T, co string) {
				if fi, err := os.Lstat(filepath.Join(co, "usr/share/data/script")); err != nil || fi.Mode().Perm() != 0o600 {
					t.Errorf("usr/share/data/script: %v %v, want 0600", fi.Mode(), err)
				}
			}},
		{name: "hardlink-new", containerfile: "FROM BASE\nRUN ln /usr/share/data/one /usr/share/data/one-link && ln /etc/motd /etc/motd.link\n",
			check: func(t *testing.T, co string) {
				if got := readFile(t, filepath.Join(co, "usr/share/data/one-link")); got != "one\n" {
					t.Errorf("one-link = %q", got)
				}
			}},
		{name: "copy-context", containerfile: "FROM BASE\nCOPY tree/ /usr/share/copied/\n",
			context: map[string]string{"tree/a": "a\n", "tree/sub/b": "b\n", "tree/b-link": "=>tree/sub/b", "tree/sym": "->sub/b", "tree/dangling": "->nowhere"},
			check: func(t *testing.T, co string) {
				if l, err := os.Readlink(filepath.Join(co, "usr/share/copied/sym")); err != nil || l != "sub/b" {
					t.Errorf("copied/sym -> %q, %v", l, err)
				}
			}},
		{name: "multistage", containerfile: "FROM BASE AS build\nRUN mkdir -p /out && echo built > /out/artifact && ln /out/artifact /out/artifact2\n" +
			"FROM BASE\nCOPY --from=build /out/ /usr/share/artifacts/\n",
			check: func(t *testing.T, co string) {
				if got := readFile(t, filepath.Join(co, "usr/share/artifacts/artifact")); got != "built\n" {
					t.Errorf("artifact = %q", got)
				}
			}},
		{name: "var-tmp", containerfile: "FROM BASE\nRUN mkdir -p /var/lib/app /var/log && echo state > /var/lib/app/state && echo log >> /var/log/app.log && echo scratch > /tmp/scratch\n",
			check: func(t *testing.T, co string) {
				if got := readFile(t, filepath.Join(co, "var/lib/app/state")); got != "state\n" {
					t.Errorf("var/lib/app/state = %q", got)
				}
				if ents, _ := os.ReadDir(filepath.Join(co, "tmp")); len(ents) != 0 {
					t.Errorf("tmp holds %d entries, want none", len(ents))
				}
			}},
		{name: "stacked", containerfile: "FROM PREV\nRUN echo again >> /etc/motd && echo stacked > /usr/share/stacked\n",
			check: func(t *testing.T, co string) {
				if got := readFile(t, filepath.Join(co, "usr/etc/motd")); got != "Welcome to BusyboxOS\nmore\nagain\n" {
					t.Errorf("usr/etc/motd = %q (want the first derived image's append, then this one's)", got)
				}
			}},
	}
}

func writeContext(t *testing.T, ctx string, files map[string]string) {
	t.Helper()
	keys := make([]string, 0, len(files))
	for k := range files {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { // plain files first, then links
		li, lj := strings.HasPrefix(files[keys[i]], "=>") || strings.HasPrefix(files[keys[i]], "->"), strings.HasPrefix(files[keys[j]], "=>") || strings.HasPrefix(files[keys[j]], "->")
		if li != lj {
			return !li
		}
		return keys[i] < keys[j]
	})
	for _, k := range keys {
		v, p := files[k], filepath.Join(ctx, k)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		var err error
		switch {
		case strings.HasPrefix(v, "->"):
			err = os.Symlink(v[2:], p)
		case strings.HasPrefix(v, "=>"):
			err = os.Link(filepath.Join(ctx, v[2:]), p)
		default:
			err = os.WriteFile(p, []byte(v), 0o644)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestBuilderImages builds derived images with the real buildah (chroot
// isolation, vfs storage) on the busybox base, one Containerfile per case:
// in-place appends to base files (which buildah writes as the base's object
// path under sysroot/ostree/repo/objects plus hardlinks to it), sed -i in
// /etc, adduser, deleting a file and a directory, chmod and chown, a new
// hardlink to a base file, COPY of a context directory with hardlinks and
// symlinks, a multi-stage COPY --from, writes under /var and /tmp, and an
// image built FROM the first derived one. For each, `ocitree image pull`
// from the oci: layout buildah pushed to gives a checkout equal to the real
// umoci's unpack of the same image (etc as usr/etc, sysroot/ left out);
// the store passes `ostree fsck`; a second pull fetches nothing; and
// `image push` back to an oci: layout rebuilds every layer byte for byte
// (the uncompressed layers hash to the image's diff_ids; where buildah's
// gzip is not reproduced push says so and the re-pulled tree is the same).
func TestBuilderImages(t *testing.T) {
	setup(t, "buildah", "umoci", "skopeo")
	dir := workDir(t)
	builderImages(t, dir, newBuilderEnv(t, dir))
}

// builderImages is TestBuilderImages with the buildah bld.
func builderImages(t *testing.T, dir string, bld *builderEnv) {
	layouts := layoutDir(t)
	base, src := builderBase(t, dir, layouts)
	out := filepath.Join(layouts, "derived")
	store := filepath.Join(dir, "store")
	ocitreeInit(t, store, "bare-user")
	prev := ""
	for _, c := range builderCases(bld.driver) {
		ok := t.Run(c.name, func(t *testing.T) {
			ctx := filepath.Join(dir, "ctx-"+c.name)
			writeContext(t, ctx, c.context)
			cf := strings.ReplaceAll(c.containerfile, "BASE", "oci:"+base+":1.0")
			if strings.Contains(cf, "PREV") {
				if prev == "" {
					t.Fatal("no previous image to build on")
				}
				cf = strings.ReplaceAll(cf, "PREV", "oci:"+out+":"+prev)
			}
			if err := os.MkdirAll(ctx, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(ctx, "Containerfile"), []byte(cf), 0o644); err != nil {
				t.Fatal(err)
			}
			ref := "oci:" + out + ":" + c.name
			bld.bud(t, ctx, "localhost/case-"+c.name, ref)
			view := builderView(t, dir, out+":"+c.name, src)

			merge := imagePull(t, store, ref)
			co := filepath.Join(dir, "co-"+c.name)
			must(t, ocitree(t, "repo", "checkout", "--repo", store, merge, co))
			assertSameTree(t, "checkout vs buildah's image unpacked by umoci", view, co, cmpOpts{})
			c.check(t, co)
			if _, err := os.Lstat(filepath.Join(co, "sysroot", "ostree")); err == nil {
				t.Error("sysroot/ostree reached the checkout")
			}

			// A second pull fetches nothing.
			r := ocitree(t, "image", "pull", "--progress=never", "--repo", store, ref)
			if got := strings.TrimSpace(must(t, r)); got != merge {
				t.Errorf("second pull gave %s, first %s", got, merge)
			}
			if !strings.Contains(r.stderr, "already stored") {
				t.Errorf("second pull of the same image: stderr %q, want it to say the image is already stored", r.stderr)
			}

			// Push back: every layer rebuilt byte for byte.
			back := filepath.Join(dir, "back")
			pr := ocitree(t, "image", "push", "--repo", store, ref, "oci:"+back+":"+c.name)
			must(t, pr)
			want := imageDiffIDs(t, ref)
			if got := layoutBlobDiffIDs(t, back, c.name); strings.Join(got, " ") != strings.Join(want, " ") {
				t.Errorf("pushed layers uncompress to\n%s\nwant the image's diff_ids\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			if digestOf(t, "oci:"+back+":"+c.name) != digestOf(t, ref) {
				if !strings.Contains(pr.stderr, "recompressed") {
					t.Errorf("push changed the manifest digest without saying so: %q", pr.stderr)
				}
				store2 := filepath.Join(dir, "store2-"+c.name)
				ocitreeInit(t, store2, "bare-user")
				merge2 := imagePull(t, store2, "oci:"+back+":"+c.name)
				co2 := filepath.Join(dir, "co2-"+c.name)
				must(t, ocitree(t, "repo", "checkout", "--repo", store2, merge2, co2))
				assertSameTree(t, "re-pulled pushed image vs the first checkout", co, co2, cmpOpts{})
				ostreeFsck(t, store2)
				os.RemoveAll(store2)
				os.RemoveAll(co2)
			}
			os.RemoveAll(co)
			os.RemoveAll(filepath.Dir(view))
		})
		if ok && c.name == "append" {
			prev = c.name
		}
	}
	ostreeFsck(t, store)
	if out := must(t, ocitree(t, "repo", "fsck", "--repo", store)); strings.Contains(out, "corrupt") {
		t.Errorf("ocitree repo fsck: %s", out)
	}
}

// TestBuilderRegistry: a derived image buildah pushes to the real
// docker-registry (in-place append to a base file and its second name, a
// new user) pulls into a store that has the base: only the derived layer's
// blob is fetched (buildah recompresses the base's layers, which the store
// knows by their diff_ids), the checkout equals umoci's unpack of the
// same image, and a second pull fetches no blob at all (by tag or by
// digest).
func TestBuilderRegistry(t *testing.T) {
	setup(t, "buildah", "umoci", "skopeo", "docker-registry")
	reg := startRegistry(t)
	dir := workDir(t)
	base, src := builderBase(t, dir, layoutDir(t))
	bld := newBuilderEnv(t, dir)
	must(t, ocitree(t, "image", "copy", "--tls-verify=false", "oci:"+base+":1.0", "docker://"+reg.addr+"/busybox/os:1.0"))
	ctx := filepath.Join(dir, "ctx")
	writeContext(t, ctx, map[string]string{"Containerfile": fmt.Sprintf("FROM oci:%s:1.0\nRUN echo more >> /etc/motd && echo line >> /usr/share/data/two && adduser bob 1001\n", base)})
	bld.bud(t, ctx, "localhost/reg-derived", "docker://"+reg.addr+"/busybox/os:1.0-derived")
	layout := filepath.Join(dir, "copy")
	must(t, runCmd(t, nil, "skopeo", "copy", "--src-tls-verify=false", "docker://"+reg.addr+"/busybox/os:1.0-derived", "oci:"+layout+":d"))
	view := builderView(t, dir, layout+":d", src)

	store := filepath.Join(dir, "store")
	ocitreeInit(t, store, "bare-user")
	imagePull(t, store, "docker://"+reg.proxyAddr+"/busybox/os:1.0")

	derived := registryManifest(t, "docker://"+reg.addr+"/busybox/os:1.0-derived")
	reg.served()
	merge := imagePull(t, store, "docker://"+reg.proxyAddr+"/busybox/os:1.0-derived")
	got := reg.served()
	// buildah recompresses the base layers it pushes (new blob digests),
	// but the store knows their content (same diff_ids): only the derived
	// layer's blob is fetched, once.
	last := derived.Layers[len(derived.Layers)-1]
	var fetched []string
	for d, n := range got {
		if d != derived.Config.Digest.String() {
			fetched = append(fetched, fmt.Sprintf("%s %d", d, n))
		}
	}
	sort.Strings(fetched)
	if want := fmt.Sprintf("%s %d", last.Digest, last.Size); strings.Join(fetched, "\n") != want {
		t.Errorf("the derived pull fetched layer blobs\n%s\nwant only the derived layer\n%s", strings.Join(fetched, "\n"), want)
	}
	co := filepath.Join(dir, "co")
	must(t, ocitree(t, "repo", "checkout", "--repo", store, merge, co))
	assertSameTree(t, "checkout of the registry pull vs umoci's unpack", view, co, cmpOpts{})
	if b := readFile(t, filepath.Join(co, "usr/etc/motd")); b != "Welcome to BusyboxOS\nmore\n" {
		t.Errorf("usr/etc/motd = %q", b)
	}
	r := ocitree(t, "image", "pull", "--tls-verify=false", "--progress=never", "--repo", store, "docker://"+reg.proxyAddr+"/busybox/os:1.0-derived")
	if m := strings.TrimSpace(must(t, r)); m != merge {
		t.Errorf("second pull gave %s, first %s", m, merge)
	}
	// The stored image is recognized from the manifest alone (as
	// ostree-ext's prepare does): not even the config blob is fetched.
	for d, n := range reg.served() {
		t.Errorf("the second pull of the same image fetched blob %s (%d bytes)", d, n)
	}
	// By digest the same: the manifest is fetched (containers/image, like
	// bootc's skopeo proxy, reads it to verify it), then nothing. The first
	// pull under the digested reference reads the config (another image
	// ref), the second one nothing.
	var insp struct{ Digest string }
	if err := json.Unmarshal([]byte(must(t, runCmd(t, nil, "skopeo", "inspect", "--tls-verify=false", "docker://"+reg.addr+"/busybox/os:1.0-derived"))), &insp); err != nil {
		t.Fatal(err)
	}
	byDigest := "docker://" + reg.proxyAddr + "/busybox/os@" + insp.Digest
	reg.served()
	if m := imagePull(t, store, byDigest); m != merge {
		t.Errorf("pull by digest gave %s, by tag %s", m, merge)
	}
	for d, n := range reg.served() {
		if d != derived.Config.Digest.String() {
			t.Errorf("the first pull by digest fetched layer blob %s (%d bytes)", d, n)
		}
	}
	imagePull(t, store, byDigest)
	for d, n := range reg.served() {
		t.Errorf("the second pull by digest fetched blob %s (%d bytes)", d, n)
	}
	ostreeFsck(t, store)
}

// registryManifest reads the manifest of an image in the local registry.
func registryManifest(t *testing.T, imgref string) v1.Manifest {
	t.Helper()
	var m v1.Manifest
	if err := json.Unmarshal([]byte(must(t, runCmd(t, nil, "skopeo", "inspect", "--tls-verify=false", "--raw", imgref))), &m); err != nil {
		t.Fatal(err)
	}
	return m
}
