package integration

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ocitree/ocitree/fixtures"
	"golang.org/x/sys/unix"
)

// Plain bootable images (no ostree layer): built with the real umoci and
// the real buildah, imported by `ocitree image pull`, compared with umoci's
// unpack and with an oracle made by the real ostree CLI (spec
// plain-images §5: each layer filtered by ostree-ext's path rules and
// committed with `ostree commit --tree=tar`, then `ostree checkout --union
// --whiteouts` of every layer and `ostree commit --tree=dir`).

// plainRootfs returns a root filesystem laid out as a Containerfile build
// leaves it: BusyboxOS with usr/etc at etc, plus content for each path
// rule (etc hardlinks, run and tmp content, var, opt, an empty boot, an
// empty etc/hostname) and, where the file system takes them, a user.*
// xattr. mutate edits it first.
func plainRootfs(t *testing.T, dir, name string, mutate func(root string)) string {
	t.Helper()
	root := filepath.Join(dir, name)
	copyDir(t, tree(t, "busybox"), root)
	at := func(p string) string { return filepath.Join(root, p) }
	if err := os.Rename(at("usr/etc"), at("etc")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, at("etc/hostname"), "")
	if err := os.Link(at("etc/passwd"), at("etc/passwd-")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, at("run/lock/app.pid"), "1\n")
	writeFile(t, at("tmp/scratch"), "scratch\n")
	writeFile(t, at("var/lib/app/state"), "state\n")
	writeFile(t, at("opt/tool/bin/tool"), "#!/bin/sh\necho tool\n")
	if err := os.MkdirAll(at("boot"), 0o755); err != nil {
		t.Fatal(err)
	}
	if fixtures.UserXattrsSupported(dir) {
		if err := unix.Lsetxattr(at("usr/share/data/two"), "user.component", []byte("data"), 0); err != nil {
			t.Fatal(err)
		}
	}
	if mutate != nil {
		mutate(root)
	}
	return root
}

// umociPlainImage builds rootfs into the oci: image LAYOUT:tag with the real
// umoci (new, unpack, repack), labelled with labels (k=v).
func umociPlainImage(t *testing.T, dir, layout, tag, rootfs string, labels ...string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(layout, "index.json")); err != nil {
		must(t, runCmd(t, nil, "umoci", "init", "--layout", layout))
	}
	must(t, runCmd(t, nil, "umoci", "new", "--image", layout+":"+tag))
	bundle := filepath.Join(dir, "umoci-bundle-"+tag)
	must(t, runCmd(t, nil, "umoci", "unpack", "--image", layout+":"+tag, bundle))
	must(t, runCmd(t, nil, "cp", "-a", rootfs+"/.", filepath.Join(bundle, "rootfs")+"/"))
	must(t, runCmd(t, nil, "umoci", "repack", "--image", layout+":"+tag, bundle))
	if len(labels) > 0 {
		args := []string{"config", "--image", layout + ":" + tag}
		for _, l := range labels {
			args = append(args, "--config.label", l)
		}
		must(t, runCmd(t, nil, "umoci", args...))
	}
	must(t, runCmd(t, nil, "umoci", "gc", "--layout", layout))
}

// plainTopLayer is a layer a build adds on top: a changed etc file, a
// whiteout, an opaque directory with new content, an etc hardlink within
// the layer, run content (dropped) and version, whose content makes two
// such layers differ.
func plainTopLayer(t *testing.T, version string) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := time.Unix(1700000000, 0)
	add := func(h *tar.Header, body string) {
		h.ModTime, h.Format = mt, tar.FormatPAX
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if body != "" {
			if _, err := tw.Write([]byte(body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	dir := func(name string) { add(&tar.Header{Name: name, Typeflag: tar.TypeDir, Mode: 0o755}, "") }
	file := func(name, body string) { add(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644}, body) }
	dir("etc/")
	file("etc/motd", "Welcome to plain BusyboxOS "+version+"\n")
	dir("etc/app/")
	file("etc/app/new.conf", "new=1\n")
	add(&tar.Header{Name: "etc/app/new-link.conf", Typeflag: tar.TypeLink, Linkname: "etc/app/new.conf"}, "")
	dir("usr/")
	dir("usr/share/")
	dir("usr/share/data/")
	file("usr/share/data/.wh.one", "")
	dir("usr/share/data/sub/")
	file("usr/share/data/sub/.wh..wh..opq", "")
	file("usr/share/data/sub/c", "c\n")
	file("usr/share/version", version+"\n")
	dir("run/")
	file("run/build.log", "built\n")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// plainView unpacks an oci: image with the real umoci and applies the
// store's rules for plain images: etc at usr/etc, the children of run,
// tmp, proc, sys and dev removed, empty etc/hostname and etc/resolv.conf
// removed.
func plainView(t *testing.T, dir, image string) string {
	t.Helper()
	bundle := filepath.Join(dir, "view-"+strings.NewReplacer("/", "_", ":", "_").Replace(filepath.Base(image)))
	must(t, runCmd(t, nil, "umoci", "unpack", "--image", image, bundle))
	rootfs := filepath.Join(bundle, "rootfs")
	if _, err := os.Lstat(filepath.Join(rootfs, "usr", "etc")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("umoci's rootfs has usr/etc (%v); a plain image carries /etc", err)
	}
	if err := os.Rename(filepath.Join(rootfs, "etc"), filepath.Join(rootfs, "usr", "etc")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{"run", "tmp", "proc", "sys", "dev"} {
		ents, _ := os.ReadDir(filepath.Join(rootfs, d))
		for _, e := range ents {
			if err := os.RemoveAll(filepath.Join(rootfs, d, e.Name())); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, p := range []string{"usr/etc/hostname", "usr/etc/resolv.conf"} {
		if fi, err := os.Lstat(filepath.Join(rootfs, p)); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
			if err := os.Remove(filepath.Join(rootfs, p)); err != nil {
				t.Fatal(err)
			}
		}
	}
	return rootfs
}

// oracleFilter rewrites one uncompressed layer as ostree-ext's tar filter
// does for a plain image (spec plain-images §2.3): paths made relative, etc
// renamed usr/etc (hardlink targets too), the children of run, tmp, proc,
// sys and dev dropped, everything else kept; PAX records other than xattrs
// dropped so that the rename sticks.
func oracleFilter(t *testing.T, in io.Reader, out io.Writer) {
	t.Helper()
	tr := tar.NewReader(in)
	tw := tar.NewWriter(out)
	mapName := func(name string) (string, bool) {
		name = strings.TrimPrefix(strings.TrimLeft(name, "/"), "./")
		parts := strings.Split(strings.TrimSuffix(name, "/"), "/")
		switch parts[0] {
		case "etc":
			parts[0] = "usr/etc"
		case "run", "tmp", "proc", "sys", "dev":
			if len(parts) > 1 {
				return "", false
			}
		}
		n := strings.Join(parts, "/")
		if strings.HasSuffix(name, "/") {
			n += "/"
		}
		return n, true
	}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if h.Name == "./" || h.Name == "." || h.Name == "/" {
			h.Name = "./"
		} else {
			n, ok := mapName(h.Name)
			if !ok {
				continue
			}
			h.Name = n
		}
		if h.Typeflag == tar.TypeLink {
			n, ok := mapName(h.Linkname)
			if !ok {
				t.Fatalf("hardlink %s -> %s into a dropped path", h.Name, h.Linkname)
			}
			h.Linkname = n
		}
		recs := map[string]string{}
		for k, v := range h.PAXRecords {
			if strings.HasPrefix(k, "SCHILY.xattr.") {
				recs[k] = v
			}
		}
		h.PAXRecords, h.Xattrs, h.Format = recs, nil, tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
}

// plainOracle builds the merge of the oci: image layout:tag with the real
// ostree CLI and returns the oracle repository and its merge commit.
func plainOracle(t *testing.T, dir, layout, tag string) (string, string) {
	t.Helper()
	repo := filepath.Join(dir, "oracle-"+tag)
	must(t, ostree(t, "init", "--repo="+repo, "--mode=bare"))
	m := layoutManifest(t, "oci:"+layout+":"+tag)
	co := filepath.Join(dir, "oracle-co-"+tag)
	for i, l := range m.Layers {
		f, err := os.Open(filepath.Join(layout, "blobs", l.Digest.Algorithm().String(), l.Digest.Encoded()))
		if err != nil {
			t.Fatal(err)
		}
		var r io.Reader = f
		if strings.HasSuffix(l.MediaType, "+gzip") {
			zr, err := gzip.NewReader(f)
			if err != nil {
				t.Fatal(err)
			}
			r = zr
		}
		filtered := filepath.Join(dir, fmt.Sprintf("oracle-%s-layer%d.tar", tag, i))
		out, err := os.Create(filtered)
		if err != nil {
			t.Fatal(err)
		}
		oracleFilter(t, r, out)
		out.Close()
		f.Close()
		branch := fmt.Sprintf("layer/%d", i)
		must(t, ostree(t, "commit", "--repo="+repo, "--tree=tar="+filtered, "--tar-autocreate-parents", "--no-bindings", "--branch="+branch))
		must(t, ostree(t, "checkout", "--repo="+repo, "--union", "--whiteouts", branch, co))
	}
	for _, p := range []string{"usr/etc/hostname", "usr/etc/resolv.conf"} {
		if fi, err := os.Lstat(filepath.Join(co, p)); err == nil && fi.Mode().IsRegular() && fi.Size() == 0 {
			os.Remove(filepath.Join(co, p))
		}
	}
	out := must(t, ostree(t, "commit", "--repo="+repo, "--tree=dir="+co, "--no-bindings", "--branch=merge"))
	return repo, strings.TrimSpace(out)
}

// assertOracle compares the merge commit of our store with the oracle's:
// the full `ostree ls -R -C` listings (every dirtree, dirmeta and content
// checksum) and the root dirtree.
func assertOracle(t *testing.T, what, ours, merge, oracle, oracleMerge string) {
	t.Helper()
	got := must(t, ostree(t, "ls", "--repo="+ours, "-R", "-C", merge))
	want := must(t, ostree(t, "ls", "--repo="+oracle, "-R", "-C", oracleMerge))
	if got != want {
		t.Errorf("%s: the merge commit's tree differs from the ostree CLI oracle:\n%s", what, lineDiff(want, got))
	}
	if g, w := lsDirtree(t, got, "/"), lsDirtree(t, want, "/"); g != w {
		t.Errorf("%s: root dirtree %s, oracle %s", what, g, w)
	}
}

// TestPlainImageImport: plain images built with the real umoci (a rootfs
// layer, then a hand-made layer with a whiteout, an opaque directory, etc
// hardlinks and run content) and with the real buildah (`FROM scratch`,
// `COPY rootfs /`, then a `RUN` layer) are imported by `ocitree image
// pull`: the merge commit has no parent, its checkout equals umoci's unpack
// with etc at usr/etc and the path rules applied, its listing (root
// dirtree included) equals the ostree CLI oracle's, `ostree fsck` passes
// and the dropped run/tmp content is reported. Through a real registry,
// after one image, a second that shares all layers but one fetches that
// one layer blob only.
func TestPlainImageImport(t *testing.T) {
	setup(t, "umoci", "ostree", "skopeo", "docker-registry", "buildah")
	dir := workDir(t)
	layouts := layoutDir(t)
	layout := filepath.Join(layouts, "plain")
	rootfs := plainRootfs(t, dir, "rootfs", nil)
	umociPlainImage(t, dir, layout, "base", rootfs, "containers.bootc=1", "org.opencontainers.image.version=1.0")
	for _, v := range []string{"a", "b"} {
		if err := fixtures.AppendLayer(layout, "base", v, plainTopLayer(t, v)); err != nil {
			t.Fatal(err)
		}
	}

	store := filepath.Join(dir, "store")
	ocitreeInit(t, store, "bare-user")
	for _, tag := range []string{"base", "a"} {
		t.Run("umoci-"+tag, func(t *testing.T) {
			ref := "oci:" + layout + ":" + tag
			r := ocitree(t, "image", "pull", "--progress=never", "--repo", store, ref)
			merge := strings.TrimSpace(must(t, r))
			if !strings.Contains(r.stderr, "warning: layer 0: image contains non-ostree compatible file paths (dropped): run: 2, tmp: 1") {
				t.Errorf("pull did not report the dropped run/tmp content:\n%s", r.stderr)
			}
			show := must(t, ostree(t, "show", "--repo="+store, merge))
			if strings.Contains(show, "Parent:") {
				t.Errorf("the merge commit of a plain image has a parent:\n%s", show)
			}
			co := filepath.Join(dir, "co-"+tag)
			must(t, ocitree(t, "repo", "checkout", "--repo", store, merge, co))
			assertSameTree(t, "checkout of the plain image vs umoci's unpack", plainView(t, dir, layout+":"+tag), co, cmpOpts{})
			for _, p := range []string{"usr/etc/passwd-", "opt/tool/bin/tool", "var/lib/app/state", "boot"} {
				if _, err := os.Lstat(filepath.Join(co, p)); err != nil {
					t.Errorf("%s: %v", p, err)
				}
			}
			oracle, oracleMerge := plainOracle(t, dir, layout, tag)
			assertOracle(t, "umoci image "+tag, store, merge, oracle, oracleMerge)
		})
	}
	// The known difference, pinned: a later layer's entry for an existing
	// directory applies its mode (OCI, umoci); libostree's union checkout
	// keeps the first layer's. Everything else stays equal to the oracle.
	t.Run("umoci-chmod-dir", func(t *testing.T) {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, h := range []*tar.Header{
			{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "usr/share/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "usr/share/data/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "usr/share/data/sub/", Typeflag: tar.TypeDir, Mode: 0o700},
		} {
			h.ModTime = time.Unix(1700000000, 0)
			if err := tw.WriteHeader(h); err != nil {
				t.Fatal(err)
			}
		}
		tw.Close()
		if err := fixtures.AppendLayer(layout, "base", "chmod", buf.Bytes()); err != nil {
			t.Fatal(err)
		}
		merge := imagePull(t, store, "oci:"+layout+":chmod", "--progress=never")
		merge = strings.TrimSpace(merge)
		co := filepath.Join(dir, "co-chmod")
		must(t, ocitree(t, "repo", "checkout", "--repo", store, merge, co))
		assertSameTree(t, "checkout of the chmod image vs umoci's unpack", plainView(t, dir, layout+":chmod"), co, cmpOpts{})
		oracle, oracleMerge := plainOracle(t, dir, layout, "chmod")
		got := must(t, ostree(t, "ls", "--repo="+store, "-R", merge))
		want := must(t, ostree(t, "ls", "--repo="+oracle, "-R", oracleMerge))
		diff := lineDiff(want, got)
		lines := strings.Split(diff, "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "- d00755 ") || !strings.HasPrefix(lines[1], "+ d00700 ") ||
			!strings.HasSuffix(lines[0], " /usr/share/data/sub") || !strings.HasSuffix(lines[1], " /usr/share/data/sub") {
			t.Errorf("want exactly the mode of usr/share/data/sub to differ from the oracle (0700 here, 0755 there), got:\n%s", diff)
		}
	})
	ostreeFsck(t, store)

	t.Run("buildah", func(t *testing.T) {
		bld := newBuilderEnv(t, dir)
		ctx := filepath.Join(dir, "ctx-scratch")
		if err := os.MkdirAll(ctx, 0o755); err != nil {
			t.Fatal(err)
		}
		copyDir(t, plainRootfs(t, dir, "rootfs-buildah", nil), filepath.Join(ctx, "rootfs"))
		writeFile(t, filepath.Join(ctx, "Containerfile"), "FROM scratch\nCOPY rootfs /\nLABEL containers.bootc=1\n")
		bout := filepath.Join(layouts, "buildah")
		bld.bud(t, ctx, "localhost/plain-scratch", "oci:"+bout+":scratch")
		ctx2 := filepath.Join(dir, "ctx-run")
		writeFile(t, filepath.Join(ctx2, "Containerfile"), "FROM oci:"+bout+":scratch\n"+
			"RUN echo more >> /etc/motd && rm /usr/share/data/one && rm -r /usr/share/data/sub && mkdir -p /var/lib/run && echo s > /var/lib/run/s && ln /etc/motd /etc/motd.link && echo x > /tmp/x\n")
		bld.bud(t, ctx2, "localhost/plain-run", "oci:"+bout+":run")
		if m := layoutManifest(t, "oci:"+bout+":run"); len(m.Layers) != 2 {
			t.Fatalf("buildah's image has %d layers, want 2 (COPY, RUN)", len(m.Layers))
		}
		bstore := filepath.Join(dir, "bstore")
		ocitreeInit(t, bstore, "bare-user")
		merge := imagePull(t, bstore, "oci:"+bout+":run", "--progress=never")
		co := filepath.Join(dir, "co-buildah")
		must(t, ocitree(t, "repo", "checkout", "--repo", bstore, merge, co))
		assertSameTree(t, "checkout of buildah's plain image vs umoci's unpack", plainView(t, dir, bout+":run"), co, cmpOpts{})
		if got := readFile(t, filepath.Join(co, "usr/etc/motd.link")); got != "Welcome to BusyboxOS\nmore\n" {
			t.Errorf("usr/etc/motd.link = %q", got)
		}
		for _, p := range []string{"usr/share/data/one", "usr/share/data/sub"} {
			if _, err := os.Lstat(filepath.Join(co, p)); err == nil {
				t.Errorf("%s was removed by the RUN layer but is in the checkout", p)
			}
		}
		oracle, oracleMerge := plainOracle(t, dir, bout, "run")
		assertOracle(t, "buildah image", bstore, merge, oracle, oracleMerge)
		ostreeFsck(t, bstore)
	})

	t.Run("registry", func(t *testing.T) {
		reg := startRegistry(t)
		for _, tag := range []string{"a", "b"} {
			must(t, ocitree(t, "image", "copy", "--tls-verify=false", "oci:"+layout+":"+tag, "docker://"+reg.addr+"/plain/os:"+tag))
		}
		ma := layoutManifest(t, "oci:"+layout+":a")
		mb := layoutManifest(t, "oci:"+layout+":b")
		rstore := filepath.Join(dir, "rstore")
		ocitreeInit(t, rstore, "bare-user")
		layerBlobs := func() []string {
			var out []string
			for d, n := range reg.served() {
				if d != ma.Config.Digest.String() && d != mb.Config.Digest.String() {
					out = append(out, fmt.Sprintf("%s %d", d, n))
				}
			}
			sort.Strings(out)
			return out
		}
		reg.served()
		imagePull(t, rstore, "docker://"+reg.proxyAddr+"/plain/os:a", "--progress=never")
		if got := layerBlobs(); len(got) != len(ma.Layers) {
			t.Errorf("first pull fetched %d layer blobs, want %d:\n%s", len(got), len(ma.Layers), strings.Join(got, "\n"))
		}
		check := must(t, ocitree(t, "image", "pull", "--check", "--tls-verify=false", "--repo", rstore, "docker://"+reg.proxyAddr+"/plain/os:b"))
		last := mb.Layers[len(mb.Layers)-1]
		if want := fmt.Sprintf("layers already present: %d; layers needed: 1 (%d bytes)\n", len(mb.Layers)-1, last.Size); check != want {
			t.Errorf("check of the second image: %q, want %q", check, want)
		}
		if got := layerBlobs(); len(got) != 0 {
			t.Errorf("--check fetched layer blobs: %v", got)
		}
		merge := imagePull(t, rstore, "docker://"+reg.proxyAddr+"/plain/os:b", "--progress=never")
		if got, want := strings.Join(layerBlobs(), "\n"), fmt.Sprintf("%s %d", last.Digest, last.Size); got != want {
			t.Errorf("second pull fetched:\n%s\nwant only the changed layer:\n%s", got, want)
		}
		oracle, oracleMerge := plainOracle(t, dir, layout, "b")
		assertOracle(t, "registry pull of b", rstore, strings.TrimSpace(merge), oracle, oracleMerge)
		ostreeFsck(t, rstore)
	})
}

// TestPlainImageHost: a plain bootable image installs into a sysroot that
// the stock `ostree admin status` reads; upgrade --check reports version,
// digest and the layer diff; the upgrade to an image that shares all layers
// but one fetches that layer only. Images without the bootable label,
// without a kernel or with two are refused at install and switch, naming
// the problem, and leave no image ref.
func TestPlainImageHost(t *testing.T) {
	setup(t, "umoci", "ostree", "skopeo", "docker-registry")
	dir := workDir(t)
	layout := filepath.Join(layoutDir(t), "plain")
	kdir := "usr/lib/modules/" + fixtures.BusyboxKernel
	umociPlainImage(t, dir, layout, "base", plainRootfs(t, dir, "rootfs", nil), "containers.bootc=1", "org.opencontainers.image.version=1.0")
	umociPlainImage(t, dir, layout, "nolabel", plainRootfs(t, dir, "rootfs-nolabel", nil))
	umociPlainImage(t, dir, layout, "nokernel", plainRootfs(t, dir, "rootfs-nokernel", func(root string) {
		if err := os.Remove(filepath.Join(root, kdir, "vmlinuz")); err != nil {
			t.Fatal(err)
		}
	}), "containers.bootc=1")
	umociPlainImage(t, dir, layout, "twokernels", plainRootfs(t, dir, "rootfs-twokernels", func(root string) {
		writeFile(t, filepath.Join(root, "usr/lib/modules/9.9.9-other/vmlinuz"), "other kernel\n")
	}), "containers.bootc=1")
	for _, v := range []string{"a", "b"} {
		if err := fixtures.AppendLayer(layout, "base", v, plainTopLayer(t, v)); err != nil {
			t.Fatal(err)
		}
	}
	reg := startRegistry(t)
	push := func(from, to string) {
		must(t, ocitree(t, "image", "copy", "--tls-verify=false", "oci:"+layout+":"+from, "docker://"+reg.addr+"/plain/os:"+to))
	}
	push("a", "latest")
	sys := sysrootDir(t, dir, "sys")
	imgref := "docker://" + reg.proxyAddr + "/plain/os:latest"
	must(t, ocitree(t, "install", "--tls-verify=false", "--sysroot", sys, imgref))
	ds := ostreeAdminStatus(t, sys)
	if len(ds) != 1 || ds[0].Version != "1.0" {
		t.Errorf("ostree admin status after installing the plain image: %+v; want one deployment, version 1.0", ds)
	}
	if got := readFile(t, filepath.Join(sys, "ostree/deploy/default/deploy", ds[0].Name, "etc/motd")); got != "Welcome to plain BusyboxOS a\n" {
		t.Errorf("deployed /etc/motd = %q", got)
	}

	push("b", "latest")
	mb := layoutManifest(t, "oci:"+layout+":b")
	last := mb.Layers[len(mb.Layers)-1]
	ma := layoutManifest(t, "oci:"+layout+":a")
	removed := ma.Layers[len(ma.Layers)-1]
	check := must(t, ocitree(t, "upgrade", "--check", "--tls-verify=false", "--sysroot", sys))
	var total int64
	for _, l := range mb.Layers {
		total += l.Size
	}
	for _, want := range []string{"Update available: ", "version: 1.0", "digest: sha256:",
		fmt.Sprintf("download: 1 layers, %d bytes", last.Size),
		fmt.Sprintf("layers: %d total (%d bytes); added: 1 (%d bytes); removed: 1 (%d bytes)", len(mb.Layers), total, last.Size, removed.Size)} {
		if !strings.Contains(check, want) {
			t.Errorf("upgrade --check output lacks %q:\n%s", want, check)
		}
	}
	reg.served()
	must(t, ocitree(t, "upgrade", "--tls-verify=false", "--sysroot", sys))
	var fetched []string
	for d := range reg.served() {
		if d != mb.Config.Digest.String() {
			fetched = append(fetched, d)
		}
	}
	if strings.Join(fetched, " ") != last.Digest.String() {
		t.Errorf("upgrade fetched blobs %v, want only the changed layer %s", fetched, last.Digest)
	}
	if ds := ostreeAdminStatus(t, sys); len(ds) != 2 {
		t.Errorf("ostree admin status after the upgrade: %+v; want two deployments", ds)
	}

	imageRefs := func(sys string) string {
		out := must(t, ostree(t, "refs", "--repo="+filepath.Join(sys, "ostree/repo")))
		var refs []string
		for _, l := range strings.Split(out, "\n") {
			if strings.HasPrefix(l, "ostree/container/image/") {
				refs = append(refs, l)
			}
		}
		return strings.Join(refs, " ")
	}
	before := imageRefs(sys)
	for _, c := range []struct{ tag, want string }{
		{"nolabel", "does not have ostree.bootable label"},
		{"nokernel", "no kernel"},
		{"twokernels", "two kernels"},
	} {
		t.Run(c.tag, func(t *testing.T) {
			ref := "oci:" + layout + ":" + c.tag
			fresh := sysrootDir(t, dir, "sys-"+c.tag)
			r := ocitree(t, "install", "--sysroot", fresh, ref)
			if r.code != 1 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("install of %s: want exit 1 and %q:\n%s", c.tag, c.want, r)
			}
			if _, err := os.Stat(filepath.Join(fresh, "ostree/repo")); err == nil {
				if got := imageRefs(fresh); got != "" {
					t.Errorf("refused install left image refs: %s", got)
				}
			}
			r = ocitree(t, "switch", "--sysroot", sys, ref)
			if r.code != 1 || !strings.Contains(r.stderr, c.want) {
				t.Fatalf("switch to %s: want exit 1 and %q:\n%s", c.tag, c.want, r)
			}
			if got := imageRefs(sys); got != before {
				t.Errorf("refused switch changed the image refs: %s, was %s", got, before)
			}
		})
	}
}
