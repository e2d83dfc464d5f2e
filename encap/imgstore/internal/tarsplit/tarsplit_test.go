package tarsplit

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"testing"
)

// splitTar builds a tar exercising what a record must reproduce: PAX
// records, GNU long names, a duplicate path, empty files, links, and
// (optionally) bytes after the end-of-archive blocks.
func splitTar(t *testing.T, trailing []byte) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	add := func(h *tar.Header, body string) {
		h.Size = int64(len(body))
		if h.Typeflag == 0 {
			h.Typeflag = tar.TypeReg
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, body); err != nil {
			t.Fatal(err)
		}
	}
	add(&tar.Header{Name: "usr/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(&tar.Header{Name: "usr/a", Mode: 0o644}, "first a\n")
	add(&tar.Header{Name: "usr/" + strings.Repeat("long", 40), Mode: 0o644, Format: tar.FormatGNU}, strings.Repeat("x", 1000))
	add(&tar.Header{Name: "usr/xattr", Mode: 0o644, PAXRecords: map[string]string{"SCHILY.xattr.user.k": "v"}}, "with xattr")
	add(&tar.Header{Name: "usr/empty", Mode: 0o644}, "")
	add(&tar.Header{Name: "usr/link", Typeflag: tar.TypeLink, Linkname: "usr/a"}, "")
	add(&tar.Header{Name: "usr/sym", Typeflag: tar.TypeSymlink, Linkname: "a"}, "")
	add(&tar.Header{Name: "usr/a", Mode: 0o600}, "second a, longer\n")
	add(&tar.Header{Name: "sysroot/ostree/repo/config", Mode: 0o644}, "[core]\n")
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return append(b.Bytes(), trailing...)
}

// recordModes are the two ways to record a layer: Record (a goroutine
// parses, the consumer reads the bytes through a pipe) and Reader (the
// consumer reads entries through the recorder). consume reads the tar,
// taking at most part bytes of each payload (all when part < 0), and
// finishes the recording.
var recordModes = []struct {
	name    string
	consume func(rec *Recorder, in []byte, part int64) error
}{
	{"pipe", func(rec *Recorder, in []byte, part int64) error {
		st := rec.Record(bytes.NewReader(in))
		if err := readEntries(tar.NewReader(st), part); err != nil {
			st.Abort(err)
			return err
		}
		return st.Finish()
	}},
	{"reader", func(rec *Recorder, in []byte, part int64) error {
		tr := rec.Reader(bytes.NewReader(in))
		if err := readEntries(tr, part); err != nil {
			return err
		}
		return tr.Finish()
	}},
}

// readEntries reads a tar to its end, at most part bytes of each payload
// (all when part < 0).
func readEntries(tr interface {
	Next() (*tar.Header, error)
	io.Reader
}, part int64) error {
	for {
		_, err := tr.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		var r io.Reader = tr
		if part >= 0 {
			r = io.LimitReader(tr, part)
		}
		if _, err := io.Copy(io.Discard, r); err != nil {
			return err
		}
	}
}

// referencedPayloads returns the payloads of in a record references.
func referencedPayloads(t *testing.T, in []byte, inline func(string) bool) [][]byte {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(in))
	var payloads [][]byte
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return payloads
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(tr)
		if h.Size > 0 && (inline == nil || !inline(h.Name)) {
			payloads = append(payloads, b)
		}
	}
}

func TestTarSplitRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		trailing []byte
		inline   func(string) bool
		// part: how much of each payload the consumer reads (all when < 0).
		part int64
	}{
		{"plain", nil, nil, -1},
		{"trailing zeros and garbage", append(make([]byte, 3000), "junk"...), nil, -1},
		{"inline some", nil, func(n string) bool { return strings.HasPrefix(n, "sysroot/") || strings.HasSuffix(n, "xattr") }, -1},
		{"payloads left unread", nil, nil, 0},
		{"payloads read in part", append(make([]byte, 1024), "junk"...), func(n string) bool { return strings.HasSuffix(n, "xattr") }, 3},
	} {
		for _, mode := range recordModes {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				in := splitTar(t, tc.trailing)
				rec := NewRecorder(tc.inline)
				if err := mode.consume(rec, in, tc.part); err != nil {
					t.Fatal(err)
				}
				payloads := referencedPayloads(t, in, tc.inline)
				roundTrip(t, rec, in, payloads)
			})
		}
	}
}

// roundTrip rebuilds in from the finished record and the payloads it
// references, and checks that a changed payload is caught.
func roundTrip(t *testing.T, rec *Recorder, in []byte, payloads [][]byte) {
	t.Helper()
	split, err := rec.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	if len(rec.payloads) != len(payloads) {
		t.Fatalf("recorded %d payloads, the tar has %d referenced", len(rec.payloads), len(payloads))
	}
	var out bytes.Buffer
	err = Assemble(&out, split, func(i int, name string, size int64) (io.ReadCloser, error) {
		if rec.payloads[i].Name != name || rec.payloads[i].Size != size {
			return nil, fmt.Errorf("payload %d is %q/%d, recorded %+v", i, name, size, rec.payloads[i])
		}
		return io.NopCloser(bytes.NewReader(payloads[i])), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(out.Bytes(), in) {
		t.Fatalf("rebuilt tar differs: %d bytes, want %d", out.Len(), len(in))
	}
	// A payload of another size in the store is caught (other changes by
	// the diff_id check of withAssembledTar).
	err = Assemble(io.Discard, split, func(i int, name string, size int64) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(payloads[i][1:])), nil
	})
	if !errors.Is(err, ErrRecordMismatch) {
		t.Errorf("changed payload: %v, want ErrRecordMismatch", err)
	}
}

func TestTarSplitInlineLimit(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	big := bytes.Repeat([]byte{'y'}, maxInlinePayload+1)
	tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: int64(len(big)), Typeflag: tar.TypeReg})
	tw.Write(big)
	tw.Close()
	for _, mode := range recordModes {
		t.Run(mode.name, func(t *testing.T) {
			// The layer is read as usual; only the record is refused.
			rec := NewRecorder(func(string) bool { return true })
			if err := mode.consume(rec, b.Bytes(), -1); err != nil {
				t.Fatal(err)
			}
			if _, err := rec.Bytes(); err == nil || !strings.Contains(err.Error(), "too many to keep") {
				t.Errorf("record of an oversized inline payload: %v", err)
			}
		})
	}
	// The pipe passes the stream through untouched.
	st := NewRecorder(func(string) bool { return true }).Record(bytes.NewReader(b.Bytes()))
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Finish(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, b.Bytes()) {
		t.Error("pass-through changed the stream")
	}
}

// TestTarSplitTrailingLimit: up to MaxTrailing bytes after the tar's end
// are recorded (and rebuilt by the round trip above); one more is refused
// with the limit named, whatever the bytes, instead of being kept in
// memory (issue 11, class 3: 12 MB of junk took 90 MiB).
func TestTarSplitTrailingLimit(t *testing.T) {
	junk := make([]byte, MaxTrailing+1)
	for i := range junk {
		junk[i] = byte(i*7 + i>>8)
	}
	for _, tc := range []struct {
		name     string
		trailing []byte
		wantErr  bool
	}{
		{"junk at the limit", junk[:MaxTrailing], false},
		{"junk over the limit", junk, true},
		{"zeros over the limit", make([]byte, 3*MaxTrailing), true},
	} {
		for _, mode := range recordModes {
			t.Run(mode.name+"/"+strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
				in := splitTar(t, tc.trailing)
				rec := NewRecorder(nil)
				err := mode.consume(rec, in, 0)
				if !tc.wantErr {
					if err != nil {
						t.Fatal(err)
					}
					if _, err := rec.Bytes(); err != nil {
						t.Fatal(err)
					}
					return
				}
				if !errors.Is(err, ErrTrailingData) || !strings.Contains(err.Error(), "after the tar end-of-archive; the limit is 1048576") {
					t.Fatalf("%v, want ErrTrailingData naming the limit", err)
				}
			})
		}
	}
}

// TestReaderRefuses: a sparse entry is refused before its holes are
// expanded (sparse-pax.tar: a 1 TiB PAX sparse file, see
// ../../testdata/README.md), and a recording whose tar was not read to its
// end cannot be finished (its record would lack the rest).
func TestReaderRefuses(t *testing.T) {
	sparse, err := os.ReadFile("../../testdata/sparse-pax.tar")
	if err != nil {
		t.Fatal(err)
	}
	tr := NewRecorder(nil).Reader(bytes.NewReader(sparse))
	if _, err := tr.Next(); err == nil || !strings.Contains(err.Error(), "sparse files are not supported") {
		t.Errorf("sparse entry: %v, want it refused", err)
	}
	if _, err := tr.Next(); err == nil || err == io.EOF {
		t.Errorf("Next after a refusal: %v, want the refusal again", err)
	}

	tr = NewRecorder(nil).Reader(bytes.NewReader(splitTar(t, nil)))
	if _, err := tr.Next(); err != nil {
		t.Fatal(err)
	}
	if err := tr.Finish(); err == nil || !strings.Contains(err.Error(), "not read to its end") {
		t.Errorf("Finish after one entry: %v, want the tar not read to its end", err)
	}
}
