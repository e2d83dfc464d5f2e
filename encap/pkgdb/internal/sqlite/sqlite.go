// Package sqlite is a minimal read-only reader of SQLite 3 database files, written from the
// file format documentation (https://www.sqlite.org/fileformat2.html), just
// enough to read rpm's rpmdb.sqlite without cgo or a dependency: the database
// header, the schema table on page 1, table b-trees (interior and leaf pages),
// payload overflow chains and the record format. Indexes, WITHOUT ROWID
// tables, UTF-16 databases and the write-ahead log are not supported; a
// database whose last changes are still only in its -wal file reads as it was
// at the last checkpoint (a database committed into a tree has no -wal).
//
// The whole file is held in memory (the caller bounds its size): a b-tree is
// random access, and the databases this reads are small (an rpmdb of a full
// distribution is tens of MiB). Every offset, length and page number read
// from the file is checked, and traversals refuse to visit a page twice, so
// corrupt or hostile files give an error, never a panic or an endless loop.
package sqlite

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strings"
)

// DB is an opened database file.
type DB struct {
	data     []byte
	pageSize int    // 512..65536
	usable   int    // page size minus the reserved bytes at the end of each page
	npages   uint32 // pages in the file
}

// Value is one column of a record.
type Value struct {
	Type  Type
	Int   int64
	Float float64
	Bytes []byte // TEXT (UTF-8) or BLOB; it aliases the database's memory unless the payload overflowed
}

// Type is the storage class of a Value.
type Type uint8

// The storage classes.
const (
	Null Type = iota
	Integer
	Float
	Text
	Blob
)

// String is the storage class name, as SQLite spells it.
func (t Type) String() string {
	return [...]string{"NULL", "INTEGER", "REAL", "TEXT", "BLOB"}[t]
}

const (
	sqliteHeaderSize = 100
	// sqliteMaxDepth bounds the depth of a b-tree; a real one of 2^32 pages
	// of 512 bytes is far less deep.
	sqliteMaxDepth = 64
)

var errSQLiteCorrupt = errors.New("sqlite: malformed database")

func sqliteCorrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errSQLiteCorrupt, fmt.Sprintf(format, args...))
}

// Open checks the database header of data.
func Open(data []byte) (*DB, error) {
	if len(data) < sqliteHeaderSize || !bytes.Equal(data[:16], []byte("SQLite format 3\x00")) {
		return nil, fmt.Errorf("sqlite: not an SQLite 3 database (%d bytes)", len(data))
	}
	ps := int(binary.BigEndian.Uint16(data[16:]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps > 65536 || ps&(ps-1) != 0 {
		return nil, sqliteCorrupt("page size %d", ps)
	}
	if rv := data[19]; rv != 1 && rv != 2 {
		return nil, fmt.Errorf("sqlite: file format read version %d not supported", rv)
	}
	reserved := int(data[20])
	usable := ps - reserved
	if usable < 480 {
		return nil, sqliteCorrupt("usable page size %d (page size %d, %d reserved)", usable, ps, reserved)
	}
	if enc := binary.BigEndian.Uint32(data[56:]); enc != 1 && enc != 0 {
		// 0 only in a database with no schema yet; 2 and 3 are UTF-16.
		return nil, fmt.Errorf("sqlite: text encoding %d not supported (only UTF-8)", enc)
	}
	if len(data) < ps {
		return nil, sqliteCorrupt("file of %d bytes is shorter than one page of %d", len(data), ps)
	}
	npages := uint64(len(data) / ps)
	// The size in the header is valid when it is non-zero and the change
	// counter matches the version-valid-for number; it may be smaller than
	// the file (never trust it to be larger).
	if n := binary.BigEndian.Uint32(data[28:]); n != 0 &&
		binary.BigEndian.Uint32(data[24:]) == binary.BigEndian.Uint32(data[92:]) && uint64(n) < npages {
		npages = uint64(n)
	}
	return &DB{data: data, pageSize: ps, usable: usable, npages: uint32(min(npages, math.MaxUint32))}, nil
}

// page returns the usable bytes of page n (1-based).
func (db *DB) page(n uint32) ([]byte, error) {
	if n == 0 || n > db.npages {
		return nil, sqliteCorrupt("page %d out of range (database has %d pages)", n, db.npages)
	}
	off := int64(n-1) * int64(db.pageSize)
	return db.data[off : off+int64(db.usable)], nil
}

// readVarint decodes an SQLite varint (1-9 bytes, big-endian, the high bit
// of the first eight bytes marking continuation) from b.
func readVarint(b []byte) (uint64, int, bool) {
	var v uint64
	for i := 0; i < 9; i++ {
		if i >= len(b) {
			return 0, 0, false
		}
		if i == 8 {
			return v<<8 | uint64(b[i]), 9, true
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i]&0x80 == 0 {
			return v, i + 1, true
		}
	}
	return 0, 0, false // unreachable
}

// walkTable calls fn with the rowid and the full payload of every row of the
// table b-tree rooted at page root, in rowid order. A payload that fits its
// page aliases the database's memory: fn must not modify it.
func (db *DB) walkTable(root uint32, fn func(rowid int64, payload []byte) error) error {
	seen := make(map[uint32]bool)
	return db.walkPage(root, 0, seen, fn)
}

func (db *DB) walkPage(n uint32, depth int, seen map[uint32]bool, fn func(int64, []byte) error) error {
	if depth > sqliteMaxDepth {
		return sqliteCorrupt("b-tree deeper than %d at page %d", sqliteMaxDepth, n)
	}
	if seen[n] {
		return sqliteCorrupt("page %d reached twice in one b-tree", n)
	}
	seen[n] = true
	pg, err := db.page(n)
	if err != nil {
		return err
	}
	hdr := 0
	if n == 1 {
		hdr = sqliteHeaderSize
	}
	if len(pg) < hdr+8 {
		return sqliteCorrupt("page %d: too small for a b-tree page header", n)
	}
	kind := pg[hdr]
	ncells := int(binary.BigEndian.Uint16(pg[hdr+3:]))
	ptrs := hdr + 8
	switch kind {
	case 0x0d: // table leaf
	case 0x05: // table interior
		ptrs = hdr + 12
		if len(pg) < ptrs {
			return sqliteCorrupt("page %d: too small for an interior page header", n)
		}
	case 0x02, 0x0a:
		return sqliteCorrupt("page %d: index page (type %#x) in a table b-tree", n, kind)
	default:
		return sqliteCorrupt("page %d: not a b-tree page (type %#x)", n, kind)
	}
	if ptrs+2*ncells > len(pg) {
		return sqliteCorrupt("page %d: %d cell pointers overrun the page", n, ncells)
	}
	for i := 0; i < ncells; i++ {
		off := int(binary.BigEndian.Uint16(pg[ptrs+2*i:]))
		if off < ptrs+2*ncells || off >= len(pg) {
			return sqliteCorrupt("page %d: cell %d at offset %d outside the content area", n, i, off)
		}
		cell := pg[off:]
		if kind == 0x05 {
			if len(cell) < 4 {
				return sqliteCorrupt("page %d: cell %d truncated", n, i)
			}
			if err := db.walkPage(binary.BigEndian.Uint32(cell), depth+1, seen, fn); err != nil {
				return err
			}
			continue
		}
		size, k, ok := readVarint(cell)
		if !ok {
			return sqliteCorrupt("page %d: cell %d: truncated payload size", n, i)
		}
		rowid, k2, ok := readVarint(cell[k:])
		if !ok {
			return sqliteCorrupt("page %d: cell %d: truncated rowid", n, i)
		}
		payload, err := db.payload(cell[k+k2:], size, n, i, seen)
		if err != nil {
			return err
		}
		if err := fn(int64(rowid), payload); err != nil {
			return err
		}
	}
	if kind == 0x05 {
		return db.walkPage(binary.BigEndian.Uint32(pg[hdr+8:]), depth+1, seen, fn)
	}
	return nil
}

// payload assembles a table leaf cell's payload of size bytes: the part
// stored on the page (local) and, when it does not fit, the overflow chain
// whose first page number follows the local part. seen holds the pages the
// walk has visited: no page is part of two chains or of a chain and the tree,
// which bounds the work of a whole walk by the size of the file.
func (db *DB) payload(local []byte, size uint64, pgno uint32, cell int, seen map[uint32]bool) ([]byte, error) {
	u := uint64(db.usable)
	x := u - 35 // the most a table leaf cell keeps on its page
	if size <= x {
		if uint64(len(local)) < size {
			return nil, sqliteCorrupt("page %d: cell %d: payload of %d bytes overruns the page", pgno, cell, size)
		}
		return local[:size], nil
	}
	// Bounded by what the file could hold, which also bounds the chain walk.
	if size > uint64(len(db.data)) {
		return nil, sqliteCorrupt("page %d: cell %d: payload of %d bytes is larger than the file", pgno, cell, size)
	}
	m := (u-12)*32/255 - 23
	k := m + (size-m)%(u-4)
	if k > x {
		k = m
	}
	if uint64(len(local)) < k+4 {
		return nil, sqliteCorrupt("page %d: cell %d: local payload overruns the page", pgno, cell)
	}
	out := make([]byte, 0, size)
	out = append(out, local[:k]...)
	next := binary.BigEndian.Uint32(local[k:])
	for uint64(len(out)) < size {
		if next == 0 {
			return nil, sqliteCorrupt("page %d: cell %d: overflow chain ends after %d of %d bytes", pgno, cell, len(out), size)
		}
		if seen[next] {
			return nil, sqliteCorrupt("page %d: cell %d: overflow page %d already used (a loop, or shared with another page or cell)", pgno, cell, next)
		}
		seen[next] = true
		pg, err := db.page(next)
		if err != nil {
			return nil, fmt.Errorf("page %d: cell %d: overflow: %w", pgno, cell, err)
		}
		take := min(size-uint64(len(out)), u-4)
		out = append(out, pg[4:4+take]...)
		next = binary.BigEndian.Uint32(pg)
	}
	return out, nil
}

// parseRecord decodes a record (header of serial types, then the values).
func parseRecord(rec []byte) ([]Value, error) {
	hsize, k, ok := readVarint(rec)
	if !ok || hsize < uint64(k) || hsize > uint64(len(rec)) {
		return nil, sqliteCorrupt("record header size %d of a %d-byte record", hsize, len(rec))
	}
	hdr := rec[k:hsize]
	body := rec[hsize:]
	var vals []Value
	for len(hdr) > 0 {
		st, k, ok := readVarint(hdr)
		if !ok {
			return nil, sqliteCorrupt("record: truncated serial type of column %d", len(vals))
		}
		hdr = hdr[k:]
		var v Value
		n := uint64(0)
		switch {
		case st == 0:
		case st >= 1 && st <= 6:
			n = [...]uint64{0, 1, 2, 3, 4, 6, 8}[st]
			v.Type = Integer
		case st == 7:
			n = 8
			v.Type = Float
		case st == 8 || st == 9:
			v.Type, v.Int = Integer, int64(st-8)
		case st == 10 || st == 11:
			return nil, sqliteCorrupt("record: reserved serial type %d in column %d", st, len(vals))
		default:
			n = (st - 12) / 2
			v.Type = Blob
			if st%2 == 1 {
				v.Type = Text
			}
		}
		if n > uint64(len(body)) {
			return nil, sqliteCorrupt("record: column %d (%d bytes) overruns the record", len(vals), n)
		}
		b := body[:n]
		body = body[n:]
		switch v.Type {
		case Integer:
			if n > 0 {
				x := int64(int8(b[0])) // sign-extended big-endian two's complement
				for _, c := range b[1:] {
					x = x<<8 | int64(c)
				}
				v.Int = x
			}
		case Float:
			v.Float = math.Float64frombits(binary.BigEndian.Uint64(b))
		case Text, Blob:
			v.Bytes = b
		}
		vals = append(vals, v)
	}
	return vals, nil
}

// sqliteTable is a table found in the schema.
type sqliteTable struct {
	name    string
	root    uint32
	sql     string
	columns []string // column names in declaration order
	real    []bool   // which columns have REAL affinity
	rowidAt int      // index of the INTEGER PRIMARY KEY column (a rowid alias), or -1
}

// table looks name up in the schema table (page 1; columns type, name,
// tbl_name, rootpage, sql).
func (db *DB) table(name string) (*sqliteTable, error) {
	var found *sqliteTable
	err := db.walkTable(1, func(rowid int64, payload []byte) error {
		rec, err := parseRecord(payload)
		if err != nil {
			return fmt.Errorf("schema row %d: %w", rowid, err)
		}
		if len(rec) < 5 || rec[0].Type != Text || string(rec[0].Bytes) != "table" ||
			rec[1].Type != Text || !strings.EqualFold(string(rec[1].Bytes), name) {
			return nil
		}
		if rec[3].Type != Integer || rec[3].Int <= 0 || rec[3].Int > math.MaxUint32 {
			return sqliteCorrupt("schema row %d: table %s has root page %v", rowid, name, rec[3])
		}
		t := &sqliteTable{name: string(rec[1].Bytes), root: uint32(rec[3].Int), sql: string(rec[4].Bytes)}
		t.columns, t.real, t.rowidAt = parseCreateTable(t.sql)
		if t.columns == nil {
			return fmt.Errorf("sqlite: table %s: cannot read its columns from %q", name, t.sql)
		}
		if strings.Contains(strings.ToUpper(t.sql), "WITHOUT ROWID") {
			return fmt.Errorf("sqlite: table %s is a WITHOUT ROWID table, not supported", name)
		}
		found = t
		return nil
	})
	if err != nil {
		return nil, err
	}
	if found == nil {
		return nil, fmt.Errorf("sqlite: no table %s", name)
	}
	return found, nil
}

// parseCreateTable returns the column names of a CREATE TABLE statement and
// which of them is an INTEGER PRIMARY KEY (stored as NULL, its value is the
// rowid). It understands plain column lists, which is what rpm writes; nil
// when it cannot make sense of sql.
func parseCreateTable(sql string) (cols []string, reals []bool, rowidAt int) {
	open, end := strings.IndexByte(sql, '('), strings.LastIndexByte(sql, ')')
	if open < 0 || end < open {
		return nil, nil, -1
	}
	var defs []string
	depth, start := 0, open+1
	var quote byte
	for i := open + 1; i < end; i++ {
		c := sql[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"' || c == '`':
			quote = c
		case c == '[':
			quote = ']'
		case c == '(':
			depth++
		case c == ')':
			depth--
		case c == ',' && depth == 0:
			defs = append(defs, sql[start:i])
			start = i + 1
		}
	}
	defs = append(defs, sql[start:end])
	rowidAt = -1
	for _, d := range defs {
		d = strings.TrimSpace(d)
		var name, rest string
		if d != "" && strings.ContainsRune("'\"`[", rune(d[0])) {
			q := d[0]
			if q == '[' {
				q = ']'
			}
			end := strings.IndexByte(d[1:], q)
			if end < 0 {
				return nil, nil, -1
			}
			name, rest = d[1:1+end], d[2+end:]
		} else {
			name, rest = d, ""
			if i := strings.IndexAny(d, " \t\r\n"); i >= 0 {
				name, rest = d[:i], d[i:]
			}
		}
		if name == "" {
			return nil, nil, -1
		}
		switch strings.ToUpper(name) {
		case "CONSTRAINT", "PRIMARY", "UNIQUE", "CHECK", "FOREIGN":
			if d[0] == name[0] {
				continue // a table constraint, not a column
			}
		}
		f := strings.Fields(strings.ToUpper(rest))
		up := strings.Join(f, " ")
		if len(f) > 1 && f[0] == "INTEGER" && strings.Contains(up, "PRIMARY KEY") &&
			!strings.Contains(up, "PRIMARY KEY DESC") {
			rowidAt = len(cols)
		}
		cols = append(cols, name)
		reals = append(reals, realAffinity(f))
	}
	return cols, reals, rowidAt
}

// realAffinity reports whether a column whose definition after the name is
// words (upper case) has REAL affinity: SQLite stores whole REAL values as
// integers on disk and gives them back as REAL.
func realAffinity(words []string) bool {
	var typ []string
	for _, w := range words {
		switch w {
		case "CONSTRAINT", "PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK", "DEFAULT", "COLLATE", "REFERENCES", "GENERATED", "AS":
			return isReal(strings.Join(typ, " "))
		}
		typ = append(typ, w)
	}
	return isReal(strings.Join(typ, " "))
}

func isReal(typ string) bool {
	for _, s := range []string{"INT", "CHAR", "CLOB", "TEXT", "BLOB"} {
		if strings.Contains(typ, s) {
			return false
		}
	}
	return strings.Contains(typ, "REAL") || strings.Contains(typ, "FLOA") || strings.Contains(typ, "DOUB")
}

// SelectRows calls fn with the named columns of every row of table, in rowid
// order, like SELECT cols FROM table. Columns a record lacks (added by a
// later ALTER TABLE) are NULL; the INTEGER PRIMARY KEY column is the rowid.
func (db *DB) SelectRows(table string, cols []string, fn func(vals []Value) error) error {
	t, err := db.table(table)
	if err != nil {
		return err
	}
	idx := make([]int, len(cols))
	for i, c := range cols {
		idx[i] = -1
		for j, tc := range t.columns {
			if strings.EqualFold(tc, c) {
				idx[i] = j
			}
		}
		if idx[i] < 0 {
			return fmt.Errorf("sqlite: table %s has no column %s (columns %s)", t.name, c, strings.Join(t.columns, ", "))
		}
	}
	out := make([]Value, len(cols))
	return db.walkTable(t.root, func(rowid int64, payload []byte) error {
		rec, err := parseRecord(payload)
		if err != nil {
			return fmt.Errorf("table %s row %d: %w", t.name, rowid, err)
		}
		for i, j := range idx {
			switch {
			case j == t.rowidAt:
				out[i] = Value{Type: Integer, Int: rowid}
			case j < len(rec):
				out[i] = rec[j]
				if t.real[j] && rec[j].Type == Integer {
					out[i] = Value{Type: Float, Float: float64(rec[j].Int)}
				}
			default:
				out[i] = Value{}
			}
		}
		return fn(out)
	})
}
