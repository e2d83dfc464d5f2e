package tarsplit

import (
	"archive/tar"
	"bufio"
	"bytes"
	"fmt"
	"io"

	tstar "github.com/vbatts/tar-split/archive/tar"
)

// A Reader reads a tar entry by entry, like archive/tar's Reader, and
// records it while its consumer reads: one parse of the tar on the
// consumer's goroutine. ([Recorder.Record] parses on a goroutine of its own
// and hands the bytes on through a pipe, for consumers that take an
// io.Reader.)
type Reader struct {
	s  *Recorder
	br *bufio.Reader
	tr *tstar.Reader
	// cur is the entry being read; its file record is written when the
	// next entry is asked for (payload bytes counted in n, or kept in
	// inline when the record keeps them).
	cur    *tstar.Header
	n      int64
	inline *bytes.Buffer
	eof    bool
	err    error
}

// Reader returns a reader of the tar in src that records it into s. The
// caller reads entries up to io.EOF and then calls Finish.
func (s *Recorder) Reader(src io.Reader) *Reader {
	// The tar reader reads 512-byte headers: large reads below it.
	br := bufio.NewReaderSize(src, 256<<10)
	tr := tstar.NewReader(br)
	tr.RawAccounting = true
	return &Reader{s: s, br: br, tr: tr}
}

// Next finishes the current entry (its unread payload is read and counted)
// and advances to the next one. It returns io.EOF at the end of the tar.
func (r *Reader) Next() (*tar.Header, error) {
	if r.err != nil {
		return nil, r.err
	}
	hdr, err := r.next()
	if err != nil {
		r.err = err
		return nil, err
	}
	return hdr, nil
}

func (r *Reader) next() (*tar.Header, error) {
	if err := r.endEntry(); err != nil {
		return nil, err
	}
	hdr, err := r.tr.Next()
	if err == io.EOF {
		r.eof = true
		if err := r.s.segment(r.tr.RawBytes()); err != nil {
			return nil, err
		}
		return nil, io.EOF
	}
	if err != nil {
		return nil, err
	}
	if err := r.s.segment(r.tr.RawBytes()); err != nil {
		return nil, err
	}
	if err := notSparse(hdr); err != nil {
		return nil, err
	}
	r.cur, r.n, r.inline = hdr, 0, nil
	if r.s.keepInline(hdr.Name, hdr.Size) {
		r.inline = bytes.NewBuffer(make([]byte, 0, hdr.Size))
	}
	return stdHeader(hdr), nil
}

// endEntry reads what the consumer left of the current entry's payload and
// records the entry.
func (r *Reader) endEntry() error {
	if r.cur == nil {
		return nil
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	var inline []byte
	if r.inline != nil {
		inline = r.inline.Bytes()
	}
	if err := r.s.fileEntry(r.cur.Name, r.n, inline); err != nil {
		return err
	}
	r.cur, r.inline = nil, nil
	return r.s.segment(r.tr.RawBytes())
}

// Read reads the current entry's payload.
func (r *Reader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	if r.cur == nil {
		return 0, io.EOF
	}
	n, err := r.tr.Read(p)
	r.n += int64(n)
	if r.inline != nil {
		r.inline.Write(p[:n])
	}
	if err != nil && err != io.EOF {
		r.err = err
	}
	return n, err
}

// Finish records the rest of the stream after the tar (its end-of-archive
// blocks were read by Next; trailing padding, at most MaxTrailing bytes).
// The stream is read to its end.
func (r *Reader) Finish() error {
	if r.err != nil && r.err != io.EOF {
		return r.err
	}
	if !r.eof {
		return fmt.Errorf("recording the layer's tar-split: the tar was not read to its end")
	}
	if err := r.s.trailing(r.br); err != nil {
		return fmt.Errorf("recording the layer's tar-split: %w", err)
	}
	return nil
}

// stdHeader converts a header of tar-split's fork of archive/tar into the
// standard library's type (the fork keeps the same fields).
func stdHeader(h *tstar.Header) *tar.Header {
	return &tar.Header{
		Typeflag:   h.Typeflag,
		Name:       h.Name,
		Linkname:   h.Linkname,
		Size:       h.Size,
		Mode:       h.Mode,
		Uid:        h.Uid,
		Gid:        h.Gid,
		Uname:      h.Uname,
		Gname:      h.Gname,
		ModTime:    h.ModTime,
		AccessTime: h.AccessTime,
		ChangeTime: h.ChangeTime,
		Devmajor:   h.Devmajor,
		Devminor:   h.Devminor,
		Xattrs:     h.Xattrs, //nolint:staticcheck // kept as the reader fills it
		PAXRecords: h.PAXRecords,
		Format:     tar.Format(h.Format),
	}
}
