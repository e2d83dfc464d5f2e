package tarsplit

import (
	"archive/tar"
	"bytes"
	"errors"
	"fmt"
	"io"
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

func TestTarSplitRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name     string
		trailing []byte
		inline   func(string) bool
	}{
		{"plain", nil, nil},
		{"trailing zeros and garbage", append(make([]byte, 3000), "junk"...), nil},
		{"inline some", nil, func(n string) bool { return strings.HasPrefix(n, "sysroot/") || strings.HasSuffix(n, "xattr") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := splitTar(t, tc.trailing)
			rec := NewRecorder(tc.inline)
			st := rec.Record(bytes.NewReader(in))
			// The consumer reads only up to the tar's end, as a tar reader does.
			tr := tar.NewReader(st)
			var payloads [][]byte
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(tr)
				if h.Size > 0 && (tc.inline == nil || !tc.inline(h.Name)) {
					payloads = append(payloads, b)
				}
			}
			if err := st.Finish(); err != nil {
				t.Fatal(err)
			}
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
			// A payload of another size in the store is caught (other
			// changes by the diff_id check of withAssembledTar).
			err = Assemble(io.Discard, split, func(i int, name string, size int64) (io.ReadCloser, error) {
				return io.NopCloser(bytes.NewReader(payloads[i][1:])), nil
			})
			if !errors.Is(err, ErrRecordMismatch) {
				t.Errorf("changed payload: %v, want ErrRecordMismatch", err)
			}
		})
	}
}

func TestTarSplitInlineLimit(t *testing.T) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	big := bytes.Repeat([]byte{'y'}, maxInlinePayload+1)
	tw.WriteHeader(&tar.Header{Name: "big", Mode: 0o644, Size: int64(len(big)), Typeflag: tar.TypeReg})
	tw.Write(big)
	tw.Close()
	rec := NewRecorder(func(string) bool { return true })
	st := rec.Record(bytes.NewReader(b.Bytes()))
	got, err := io.ReadAll(st)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Finish(); err != nil {
		t.Fatal(err)
	}
	// The stream passes through untouched; only the record is refused.
	if !bytes.Equal(got, b.Bytes()) {
		t.Error("pass-through changed the stream")
	}
	if _, err := rec.Bytes(); err == nil || !strings.Contains(err.Error(), "too many to keep") {
		t.Errorf("record of an oversized inline payload: %v", err)
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
		t.Run(strings.ReplaceAll(tc.name, " ", "-"), func(t *testing.T) {
			in := splitTar(t, tc.trailing)
			rec := NewRecorder(nil)
			st := rec.Record(bytes.NewReader(in))
			tr := tar.NewReader(st)
			for {
				if _, err := tr.Next(); err != nil {
					break
				}
			}
			err := st.Finish()
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
