// Package tarsplit writes and reads tar-split records: everything of an uncompressed layer tar except the file
// payloads (raw headers, padding, the end-of-archive blocks and anything
// after them), as tar-split's newline-delimited JSON entries, gzip
// compressed. With the payloads taken back from the store the exact tar —
// and so the diff_id — can be rebuilt, and with the same compressor the
// exact blob (imgstore.Push).
//
// The entry format is tar-split's (storage.Entry: type 2 segments with raw
// bytes, type 1 files with name, size and the CRC-64/ISO of the payload), so
// the records can be read by tar-split's tools, with three differences that
// tar-split's own packer does not allow: a path may appear more than once
// (layers may hold duplicates; payloads are found by their order, not their
// name), and a payload may be kept inline as a segment (small non-object
// entries of ostree layers, such as xattrs blobs, that the store cannot
// give back by name), and file entries carry no CRC-64 (the rebuilt tar is
// checked against the layer's diff_id).
package tarsplit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc64"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/ocitree/ocitree/encap/tarrules"
	tstar "github.com/vbatts/tar-split/archive/tar"
	"github.com/vbatts/tar-split/tar/storage"
)

// crcTable is tar-split's payload checksum (CRC-64/ISO).
var crcTable = crc64.MakeTable(crc64.ISO)

// Limits on payloads kept inline in a record: they are held in memory and
// end up in commit metadata.
const (
	maxInlinePayload = 1 << 20
	maxInlineTotal   = 8 << 20
)

// MaxTrailing is the most bytes a layer may carry after its tar
// end-of-archive blocks. GNU tar pads an archive to its record size (10 KiB
// by default, 64 KiB with -b 128); Go's writer adds nothing.
const MaxTrailing = 1 << 20

// ErrTrailingData: a layer carries more than MaxTrailing bytes after the
// end of its tar.
var ErrTrailingData = errors.New("too much data after the end of the tar")

// splitPayload is one payload a record references: the n-th file entry with
// a non-empty payload that was not kept inline.
type splitPayload struct {
	Name string
	Size int64
}

// Recorder records a tar stream while it passes through.
type Recorder struct {
	// inline reports the entries whose payload is kept in the record; nil
	// keeps none.
	inline func(name string) bool

	// failed is set when the layer cannot be recorded (too much to keep
	// inline); the stream still passes through, bytes reports it.
	failed   error
	buf      bytes.Buffer
	zw       *gzip.Writer
	enc      *json.Encoder
	pos      int
	inlined  int64
	payloads []splitPayload
	copyBuf  []byte
}

// NewRecorder returns a recorder that keeps inline the payloads of the
// entries for which inline(name) is true (within the inline limits).
func NewRecorder(inline func(name string) bool) *Recorder {
	s := &Recorder{inline: inline}
	s.zw, _ = gzip.NewWriterLevel(&s.buf, gzip.BestSpeed) // ~25 MB of JSON per GB of layers: speed first
	s.enc = json.NewEncoder(s.zw)
	return s
}

// Stream is the pass-through side of a recording.
type Stream struct {
	pr *io.PipeReader
	// br reads the pipe in large chunks: every pipe read is a handoff
	// between goroutines, and tar readers read 512 bytes at a time.
	br   *bufio.Reader
	done chan error
}

// Record returns a reader that yields exactly the bytes of src while the
// recorder parses and records them. The caller must end with Finish (all
// went well) or Abort.
func (s *Recorder) Record(src io.Reader) *Stream {
	pr, pw := io.Pipe()
	st := &Stream{pr: pr, br: bufio.NewReaderSize(pr, 256<<10), done: make(chan error, 1)}
	go func() {
		// Hand the consumer large chunks: the tar reader reads 512-byte
		// headers, and a pipe write per header costs a goroutine switch.
		bw := bufio.NewWriterSize(pw, 256<<10)
		err := s.run(io.TeeReader(src, bw))
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		st.done <- err
	}()
	return st
}

// Read reads the recorded stream.
func (st *Stream) Read(p []byte) (int, error) { return st.br.Read(p) }

// Finish reads what the consumer left (end-of-archive blocks, trailing
// bytes) and waits for the recorder.
func (st *Stream) Finish() error {
	_, cerr := io.Copy(io.Discard, st.br)
	if err := <-st.done; err != nil {
		return fmt.Errorf("recording the layer's tar-split: %w", err)
	}
	return cerr
}

// Abort stops the recorder after the consumer failed.
func (st *Stream) Abort(err error) {
	st.pr.CloseWithError(err)
	<-st.done
}

func (s *Recorder) add(e storage.Entry) error {
	if s.failed != nil {
		return nil
	}
	e.Position = s.pos
	s.pos++
	return s.enc.Encode(e)
}

func (s *Recorder) segment(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	return s.add(storage.Entry{Type: storage.SegmentType, Payload: b})
}

// run parses the tar with tar-split's reader, which accounts for every byte
// that is not payload.
func (s *Recorder) run(src io.Reader) error {
	tr := tstar.NewReader(src)
	tr.RawAccounting = true
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			if err := s.segment(tr.RawBytes()); err != nil {
				return err
			}
			break
		}
		if err != nil {
			return err
		}
		if err := s.segment(tr.RawBytes()); err != nil {
			return err
		}
		if err := s.file(hdr, tr); err != nil {
			return err
		}
		if err := s.segment(tr.RawBytes()); err != nil {
			return err
		}
	}
	return s.trailing(src)
}

// trailing records the bytes after the end-of-archive blocks: they belong
// to the diff_id too, so they are kept in the record (in memory until the
// layer is done): a few blocks of padding from tools that write whole
// records, never a payload's worth.
func (s *Recorder) trailing(src io.Reader) error {
	buf := make([]byte, 64<<10)
	var trailing int64
	for {
		n, err := src.Read(buf)
		trailing += int64(n)
		if trailing > MaxTrailing {
			return fmt.Errorf("more than %d bytes after the tar end-of-archive; the limit is %d: %w", MaxTrailing, MaxTrailing, ErrTrailingData)
		}
		if n > 0 {
			if err := s.segment(buf[:n]); err != nil {
				return err
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// file records one entry's payload: inline as a segment, or by size for
// the store to give back. No CRC-64 is recorded (it cost a fifth of a pull's
// CPU): the rebuilt tar is checked against the diff_id instead, and a
// record that carries CRCs (tar-split's own) is still checked by them.
func (s *Recorder) file(hdr *tstar.Header, tr *tstar.Reader) error {
	if err := notSparse(hdr); err != nil {
		return err
	}
	if s.keepInline(hdr.Name, hdr.Size) {
		b, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		return s.fileEntry(hdr.Name, int64(len(b)), b)
	}
	if s.copyBuf == nil {
		s.copyBuf = make([]byte, 256<<10)
	}
	n, err := io.CopyBuffer(io.Discard, tr, s.copyBuf)
	if err != nil {
		return err
	}
	return s.fileEntry(hdr.Name, n, nil)
}

// fileEntry records a file entry whose payload was n bytes: kept in the
// record when inline is not nil, else referenced by its size.
func (s *Recorder) fileEntry(name string, n int64, inline []byte) error {
	e := storage.Entry{Type: storage.FileType}
	e.SetName(name)
	if inline != nil && n > 0 {
		s.inlined += n
		if err := s.add(e); err != nil { // the entry, payload-less
			return err
		}
		return s.segment(inline)
	}
	if n > 0 {
		e.Size = n
		s.payloads = append(s.payloads, splitPayload{Name: name, Size: n})
	}
	return s.add(e)
}

// keepInline reports whether the payload of an entry of size bytes is kept
// in the record. One over the inline limits fails the record (the stream
// still passes through; Bytes reports it).
func (s *Recorder) keepInline(name string, size int64) bool {
	if size <= 0 || s.inline == nil || s.failed != nil || !s.inline(name) {
		return false
	}
	if size > maxInlinePayload || s.inlined+size > maxInlineTotal {
		s.failed = fmt.Errorf("entry %q: %d bytes too many to keep in the record", name, size)
		return false
	}
	return true
}

// notSparse refuses a sparse entry before its payload is read: the tar
// reader expands the holes, so a few KiB of input could be a terabyte of
// zeros to count (no layer the store takes may hold one anyway).
func notSparse(hdr *tstar.Header) error {
	sparse := hdr.Typeflag == tstar.TypeGNUSparse
	for k := range hdr.PAXRecords {
		sparse = sparse || strings.HasPrefix(k, "GNU.sparse.")
	}
	if sparse {
		return fmt.Errorf("%.200s: sparse files are not supported: %w", hdr.Name, tarrules.ErrEntryRefused)
	}
	return nil
}

// Bytes returns the finished record (gzip-compressed JSON lines).
func (s *Recorder) Bytes() ([]byte, error) {
	if s.failed != nil {
		return nil, s.failed
	}
	if err := s.zw.Close(); err != nil {
		return nil, err
	}
	return s.buf.Bytes(), nil
}

// PayloadOpener returns the i-th referenced payload of a record (counting
// from 0) whose tar name is name and size is size.
type PayloadOpener func(i int, name string, size int64) (io.ReadCloser, error)

// ErrRecordMismatch: a payload from the store is not what was recorded.
var ErrRecordMismatch = errors.New("store content does not match the layer record")

// Assemble writes the tar a record describes to w.
func Assemble(w io.Writer, record []byte, open PayloadOpener) error {
	// Plain writes only: a compressor's ReadFrom (zstd's) may cut its
	// blocks differently, and the blob would not be reproduced.
	w = struct{ io.Writer }{w}
	zr, err := gzip.NewReader(bytes.NewReader(record))
	if err != nil {
		return fmt.Errorf("layer record: %w", err)
	}
	dec := json.NewDecoder(zr)
	i := 0
	for {
		var e storage.Entry
		if err := dec.Decode(&e); err == io.EOF {
			return nil
		} else if err != nil {
			return fmt.Errorf("layer record: %w", err)
		}
		switch e.Type {
		case storage.SegmentType:
			if _, err := w.Write(e.Payload); err != nil {
				return err
			}
		case storage.FileType:
			if e.Size == 0 {
				continue
			}
			if err := copyPayload(w, &e, i, open); err != nil {
				return err
			}
			i++
		default:
			return fmt.Errorf("layer record: unknown entry type %d", e.Type)
		}
	}
}

func copyPayload(w io.Writer, e *storage.Entry, i int, open PayloadOpener) error {
	name := e.GetName()
	rc, err := open(i, name, e.Size)
	if err != nil {
		return fmt.Errorf("payload of %q: %w", name, err)
	}
	defer rc.Close()
	var n int64
	if len(e.Payload) > 0 {
		h := crc64.New(crcTable)
		n, err = io.Copy(io.MultiWriter(w, h), io.LimitReader(rc, e.Size))
		if err == nil && n == e.Size && !bytes.Equal(h.Sum(nil), e.Payload) {
			return fmt.Errorf("payload of %q: CRC-64 differs: %w", name, ErrRecordMismatch)
		}
	} else {
		n, err = io.Copy(w, io.LimitReader(rc, e.Size))
	}
	if err != nil {
		return fmt.Errorf("payload of %q: %w", name, err)
	}
	if n != e.Size {
		return fmt.Errorf("payload of %q is %d bytes, want %d: %w", name, n, e.Size, ErrRecordMismatch)
	}
	return nil
}

// Payloads returns how many payloads the finished record references (the
// file payloads not kept inline).
func (s *Recorder) Payloads() int { return len(s.payloads) }
