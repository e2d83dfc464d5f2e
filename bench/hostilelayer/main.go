// Command hostilelayer builds a hostile-shaped derived layer for
// bench/rows_hostile.sh and appends it to an image in an oci: layout
// (fixtures.AppendLayer):
//
//	go run ./bench/hostilelayer LAYOUTDIR FROMTAG TOTAG deep|many N
//
// deep: every directory of a chain N deep under usr/ (usr/d, usr/d/d, ...)
// and one file at the bottom, the shape that made the derived-layer applier
// quadratic per entry (issue 11, class 2); the names grow with the depth, so
// the tar grows with N². many: N small files spread over N/1000 directories
// under usr/share/many/, a whiteout every 100 files. Both as
// encap/derived's BenchmarkApplyDeepChain and BenchmarkApplyManyEntries
// write them; the same inputs always give the same blob.
package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/ocitree/ocitree/fixtures"
)

const usage = "usage: hostilelayer LAYOUTDIR FROMTAG TOTAG deep|many N"

func main() {
	if len(os.Args) != 6 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	n, err := strconv.Atoi(os.Args[5])
	if err != nil || n <= 0 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	var layer bytes.Buffer
	switch os.Args[4] {
	case "deep":
		err = deepChain(&layer, n)
	case "many":
		err = manyEntries(&layer, n)
	default:
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err == nil {
		err = fixtures.AppendLayer(os.Args[1], os.Args[2], os.Args[3], layer.Bytes())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "hostilelayer:", err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "hostilelayer: %s %d: %d bytes of tar\n", os.Args[4], n, layer.Len())
}

func hdr(name string, typ byte, mode int64, size int) *tar.Header {
	return &tar.Header{Name: name, Typeflag: typ, Mode: mode, Size: int64(size), ModTime: fixtures.FixedMtime, Format: tar.FormatPAX}
}

func deepChain(w io.Writer, depth int) error {
	tw := tar.NewWriter(w)
	var p strings.Builder
	p.WriteString("usr")
	for range depth {
		p.WriteString("/d")
		if err := tw.WriteHeader(hdr(p.String()+"/", tar.TypeDir, 0o755, 0)); err != nil {
			return err
		}
	}
	body := "bottom\n"
	if err := tw.WriteHeader(hdr(p.String()+"/f", tar.TypeReg, 0o644, len(body))); err != nil {
		return err
	}
	if _, err := io.WriteString(tw, body); err != nil {
		return err
	}
	return tw.Close()
}

func manyEntries(w io.Writer, n int) error {
	tw := tar.NewWriter(w)
	for i := range n {
		dir := fmt.Sprintf("usr/share/many/%04d", i/1000)
		if i%1000 == 0 {
			if err := tw.WriteHeader(hdr(dir+"/", tar.TypeDir, 0o755, 0)); err != nil {
				return err
			}
		}
		name, body := fmt.Sprintf("%s/f%06d", dir, i), fmt.Sprintf("%d\n", i)
		if i%100 == 99 {
			name, body = fmt.Sprintf("%s/.wh.f%06d", dir, i-1), ""
		}
		if err := tw.WriteHeader(hdr(name, tar.TypeReg, 0o644, len(body))); err != nil {
			return err
		}
		if _, err := io.WriteString(tw, body); err != nil {
			return err
		}
	}
	return tw.Close()
}
