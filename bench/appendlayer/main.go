// Command appendlayer builds the derived layer of bench/run.sh's `derived`
// row and appends it to an image in an oci: layout (fixtures.AppendLayer):
//
//	go run ./bench/appendlayer LAYOUTDIR FROMTAG TOTAG BASEROOT [KIB] [LAYER_TAR_OUT]
//
// The layer is what a `RUN install benchpkg` step would write: KIB (default
// 1024) KiB of new files under usr/lib/benchpkg/ (64 KiB each, pseudo-random
// so that gzip cannot shrink them: the blob is about KIB KiB), a symlink,
// usr/share/doc/benchpkg/README, and two /etc changes at etc/ as layers carry
// them: etc/passwd rewritten (BASEROOT's usr/etc/passwd plus one user) and a
// new etc/benchpkg.conf. Every parent directory is listed, root-owned 0755,
// mtime fixtures.FixedMtime: the same inputs always give the same blob. With
// LAYER_TAR_OUT the uncompressed layer is also written there (for the peer).
package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"

	"github.com/ocitree/ocitree/fixtures"
)

const usage = "usage: appendlayer LAYOUTDIR FROMTAG TOTAG BASEROOT [KIB] [LAYER_TAR_OUT]"

func main() {
	if len(os.Args) < 5 || len(os.Args) > 7 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	kib := 1024
	if len(os.Args) >= 6 {
		n, err := strconv.Atoi(os.Args[5])
		if err != nil || n <= 0 {
			fmt.Fprintln(os.Stderr, usage)
			os.Exit(2)
		}
		kib = n
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3], os.Args[4], kib, os.Args[6:]); err != nil {
		fmt.Fprintln(os.Stderr, "appendlayer:", err)
		os.Exit(1)
	}
}

func run(layout, fromTag, toTag, baseRoot string, kib int, out []string) error {
	passwd, err := os.ReadFile(filepath.Join(baseRoot, "usr/etc/passwd"))
	if err != nil {
		return err
	}
	passwd = append(passwd, "benchpkg:x:990:990:benchpkg:/nonexistent:/usr/sbin/nologin\n"...)
	layer, err := buildLayer(passwd, kib)
	if err != nil {
		return err
	}
	if err := fixtures.AppendLayer(layout, fromTag, toTag, layer); err != nil {
		return err
	}
	if len(out) == 1 {
		if err := os.WriteFile(out[0], layer, 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("%s = %s + a %d-byte layer\n", toTag, fromTag, len(layer))
	return nil
}

func buildLayer(passwd []byte, kib int) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mt := fixtures.FixedMtime
	dir := func(name string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o755, ModTime: mt, Format: tar.FormatPAX})
	}
	file := func(name string, mode int64, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: mt, Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	rng := rand.New(rand.NewPCG(1, 2))
	chunk := func(n int) []byte {
		b := make([]byte, n)
		for i := 0; i+8 <= n; i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8; j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		return b
	}
	steps := []func() error{
		func() error { return dir("etc") },
		func() error { return file("etc/benchpkg.conf", 0o644, []byte("# benchpkg\nlevel=3\n")) },
		func() error { return file("etc/passwd", 0o644, passwd) },
		func() error { return dir("usr") },
		func() error { return dir("usr/lib") },
		func() error { return dir("usr/lib/benchpkg") },
	}
	for _, s := range steps {
		if err := s(); err != nil {
			return nil, err
		}
	}
	const fileKiB = 64
	for i := 0; i*fileKiB < kib; i++ {
		n := min(fileKiB, kib-i*fileKiB) << 10
		if err := file(fmt.Sprintf("usr/lib/benchpkg/part%03d.so", i), 0o755, chunk(n)); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "usr/lib/benchpkg/current.so", Linkname: "part000.so", Mode: 0o777, ModTime: mt, Format: tar.FormatPAX}); err != nil {
		return nil, err
	}
	for _, d := range []string{"usr/share", "usr/share/doc", "usr/share/doc/benchpkg"} {
		if err := dir(d); err != nil {
			return nil, err
		}
	}
	if err := file("usr/share/doc/benchpkg/README", 0o644, []byte("benchpkg: bench/run.sh's derived layer\n")); err != nil {
		return nil, err
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
