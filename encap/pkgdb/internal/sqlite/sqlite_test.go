package sqlite

import (
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// makeSQLite creates a database with the sqlite3 CLI.
func makeSQLite(t testing.TB, pageSize int, sql string) []byte {
	t.Helper()
	requireTool(t, "sqlite3")
	db := filepath.Join(t.TempDir(), "test.db")
	runTool(t, nil, "sqlite3", db, fmt.Sprintf("PRAGMA page_size=%d;\n%s", pageSize, sql))
	data, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if got := binary.BigEndian.Uint16(data[16:]); int(got) != pageSize%65536 && !(pageSize == 65536 && got == 1) {
		t.Fatalf("page size %d in the header, want %d", got, pageSize)
	}
	return data
}

// formatValue prints a value the way the queries in compareWithCLI do.
func formatValue(v Value) string {
	switch v.Type {
	case Null:
		return "NULL"
	case Integer:
		return fmt.Sprint(v.Int)
	case Float:
		return fmt.Sprintf("%.3f", v.Float)
	case Text:
		return string(v.Bytes)
	default:
		return "X'" + strings.ToUpper(hex.EncodeToString(v.Bytes)) + "'"
	}
}

// compareWithCLI reads every row of table with SelectRows and compares it
// with what sqlite3 prints for the same columns.
func compareWithCLI(t *testing.T, data []byte, table string, cols []string) int {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "db")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	var exprs []string
	for _, c := range cols {
		exprs = append(exprs, fmt.Sprintf("CASE typeof(%[1]s) WHEN 'null' THEN 'NULL' WHEN 'real' THEN printf('%%.3f', %[1]s) WHEN 'blob' THEN 'X''' || hex(%[1]s) || '''' ELSE %[1]s END", c))
	}
	want := runTool(t, nil, "sqlite3", "-readonly", "-separator", "|", path,
		"SELECT "+strings.Join(exprs, ", ")+" FROM "+table+" ORDER BY rowid")
	db, err := Open(data)
	if err != nil {
		t.Fatal(err)
	}
	var got strings.Builder
	n := 0
	err = db.SelectRows(table, cols, func(vals []Value) error {
		for i, v := range vals {
			if i > 0 {
				got.WriteString("|")
			}
			got.WriteString(formatValue(v))
		}
		got.WriteString("\n")
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got.String() != want {
		g, w := strings.Split(got.String(), "\n"), strings.Split(want, "\n")
		for i := range min(len(g), len(w)) {
			if g[i] != w[i] {
				t.Fatalf("%s: row %d differs:\n got %.200s\nwant %.200s", table, i, g[i], w[i])
			}
		}
		t.Fatalf("%s: %d rows, sqlite3 printed %d", table, len(g)-1, len(w)-1)
	}
	return n
}

const manyRowsSQL = `
CREATE TABLE 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT, blob BLOB NOT NULL);
CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, b BLOB, n INTEGER, f REAL, z);
CREATE INDEX t_name ON t(name);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 3000)
INSERT INTO t SELECT x, 'row ' || x, CAST(substr(hex(x*x*x), 1, x % 40) AS BLOB),
	CASE x % 5 WHEN 0 THEN -x*x*x*x*1000 WHEN 1 THEN x WHEN 2 THEN x*1000 WHEN 3 THEN NULL ELSE 0 END,
	x / 7.0, CASE WHEN x % 2 = 0 THEN 1 ELSE 'odd' END FROM c;
DELETE FROM t WHERE id % 97 = 0;
ALTER TABLE t ADD COLUMN late TEXT;
INSERT INTO t (id, name, late) VALUES (1000000, 'added later', 'late value');
INSERT INTO Packages (blob) VALUES (x'00');
`

func TestSQLiteManyRows(t *testing.T) {
	for _, ps := range []int{512, 4096, 65536} {
		t.Run(fmt.Sprint(ps), func(t *testing.T) {
			data := makeSQLite(t, ps, manyRowsSQL)
			n := compareWithCLI(t, data, "t", []string{"id", "name", "b", "n", "f", "z", "late"})
			if n != 3000-30+1 {
				t.Errorf("%d rows", n)
			}
			if ps == 512 {
				// enough rows that the table is at least two levels deep
				db, _ := Open(data)
				tab, err := db.table("t")
				if err != nil {
					t.Fatal(err)
				}
				pg, _ := db.page(tab.root)
				if pg[0] != 0x05 {
					t.Errorf("root page of t has type %#x, want an interior page", pg[0])
				}
				if tab.rowidAt != 0 || strings.Join(tab.columns, ",") != "id,name,b,n,f,z,late" {
					t.Errorf("columns %q, rowid alias %d", tab.columns, tab.rowidAt)
				}
			}
			compareWithCLI(t, data, "Packages", []string{"hnum", "blob"})
		})
	}
}

func TestSQLiteOverflow(t *testing.T) {
	for _, ps := range []int{512, 65536} {
		t.Run(fmt.Sprint(ps), func(t *testing.T) {
			// Sizes around the local-payload limits of both page sizes, and
			// blobs spanning many overflow pages.
			var sizes []string
			for _, s := range []int{0, 1, 400, 476, 477, 478, 479, 489, 500, 600, 1000, 1500, 5000, 65000,
				65500, 65501, 65502, 65535, 65536, 70000, 200000, 1 << 20} {
				sizes = append(sizes, fmt.Sprint(s))
			}
			sql := "CREATE TABLE big (k INTEGER PRIMARY KEY, v BLOB, s TEXT);\n"
			for i, s := range sizes {
				sql += fmt.Sprintf("INSERT INTO big VALUES (%d, randomblob(%s), substr(hex(randomblob(%d)), 1, %d));\n", i+1, s, i*50, i*97)
			}
			data := makeSQLite(t, ps, sql)
			if n := compareWithCLI(t, data, "big", []string{"k", "v", "s"}); n != len(sizes) {
				t.Errorf("%d rows, want %d", n, len(sizes))
			}
		})
	}
}

// ---- hand-made databases for hostile input ----

func sqliteVarint(v uint64) []byte {
	if v > 1<<56-1 {
		b := make([]byte, 9)
		b[8] = byte(v)
		v >>= 8
		for i := 7; i >= 0; i-- {
			b[i] = byte(v&0x7f) | 0x80
			v >>= 7
		}
		return b
	}
	var rev []byte
	for {
		rev = append(rev, byte(v&0x7f))
		v >>= 7
		if v == 0 {
			break
		}
	}
	out := make([]byte, len(rev))
	for i := range rev {
		out[i] = rev[len(rev)-1-i]
		if i < len(rev)-1 {
			out[i] |= 0x80
		}
	}
	return out
}

// sqliteRecord encodes values (nil, int64, string, []byte) as a record.
func sqliteRecord(vals ...any) []byte {
	var hdr, body []byte
	for _, v := range vals {
		switch v := v.(type) {
		case nil:
			hdr = append(hdr, sqliteVarint(0)...)
		case int64:
			hdr = append(hdr, sqliteVarint(6)...)
			body = binary.BigEndian.AppendUint64(body, uint64(v))
		case string:
			hdr = append(hdr, sqliteVarint(uint64(13+2*len(v)))...)
			body = append(body, v...)
		case []byte:
			hdr = append(hdr, sqliteVarint(uint64(12+2*len(v)))...)
			body = append(body, v...)
		}
	}
	n := len(hdr) + 1
	if len(sqliteVarint(uint64(n))) > 1 {
		n++
	}
	return append(append(sqliteVarint(uint64(n)), hdr...), body...)
}

// sqlitePage lays out a b-tree page: header at hdr (100 on page 1), cells
// from the end of the page backwards.
func sqlitePage(size, hdr int, kind byte, right uint32, cells ...[]byte) []byte {
	pg := make([]byte, size)
	pg[hdr] = kind
	binary.BigEndian.PutUint16(pg[hdr+3:], uint16(len(cells)))
	ptrs := hdr + 8
	if kind == 0x05 {
		binary.BigEndian.PutUint32(pg[hdr+8:], right)
		ptrs = hdr + 12
	}
	end := size
	for i, c := range cells {
		end -= len(c)
		copy(pg[end:], c)
		binary.BigEndian.PutUint16(pg[ptrs+2*i:], uint16(end))
	}
	binary.BigEndian.PutUint16(pg[hdr+5:], uint16(end))
	return pg
}

func leafCell(rowid uint64, payload []byte) []byte {
	return append(append(sqliteVarint(uint64(len(payload))), sqliteVarint(rowid)...), payload...)
}

// handDB is a 512-byte-page database with table t (x INTEGER PRIMARY KEY,
// v BLOB) rooted at page 2, built from the pages after page 1.
func handDB(pages ...[]byte) []byte {
	const ps = 512
	schema := sqliteRecord("table", "t", "t", int64(2), "CREATE TABLE t (x INTEGER PRIMARY KEY, v BLOB)")
	p1 := sqlitePage(ps, 100, 0x0d, 0, leafCell(1, schema))
	copy(p1, "SQLite format 3\x00")
	binary.BigEndian.PutUint16(p1[16:], ps)
	p1[18], p1[19], p1[21], p1[22], p1[23] = 1, 1, 64, 32, 32
	binary.BigEndian.PutUint32(p1[28:], uint32(1+len(pages)))
	binary.BigEndian.PutUint32(p1[56:], 1)
	out := p1
	for _, p := range pages {
		out = append(out, p...)
	}
	return out
}

// overflowCell is a leaf cell of a payload of more than 477 bytes on
// 512-byte pages (U=512: X=477, M=39; for 1004 bytes K=39+(1004-39)%508=496
// > X, so 39 bytes stay local)
// whose chain starts at page first.
func overflowCell(rowid uint64, payload []byte, first uint32) []byte {
	c := append(sqliteVarint(uint64(len(payload))), sqliteVarint(rowid)...)
	c = append(c, payload[:39]...)
	return binary.BigEndian.AppendUint32(c, first)
}

func overflowPage(next uint32, content []byte) []byte {
	pg := make([]byte, 512)
	binary.BigEndian.PutUint32(pg, next)
	copy(pg[4:], content)
	return pg
}

func readAll(data []byte) (rows [][]Value, err error) {
	db, err := Open(data)
	if err != nil {
		return nil, err
	}
	err = db.SelectRows("t", []string{"x", "v"}, func(v []Value) error {
		rows = append(rows, append([]Value(nil), v...))
		return nil
	})
	return rows, err
}

func TestSQLiteHandMade(t *testing.T) {
	blob := make([]byte, 0, 1000)
	for i := range 1000 {
		blob = append(blob, byte(i*31))
	}
	payload := sqliteRecord(nil, blob) // 1000+ bytes: header 4, body 1000
	leaf := sqlitePage(512, 0, 0x0d, 0, overflowCell(5, payload, 3))
	good := handDB(leaf, overflowPage(4, payload[39:39+508]), overflowPage(0, payload[39+508:]))
	rows, err := readAll(good)
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0][0].Int != 5 || string(rows[0][1].Bytes) != string(blob) {
		t.Fatalf("rows %v", rows)
	}

	small := sqliteRecord(nil, []byte("small"))
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"overflow cycle", handDB(leaf, overflowPage(3, payload[39:39+508])), "overflow page 3 already used"},
		{"overflow into the tree", handDB(leaf, overflowPage(2, payload[39:])), "overflow page 2 already used"},
		{"overflow chain too short", handDB(leaf, overflowPage(0, payload[39:])), "overflow chain ends"},
		{"overflow page out of range", handDB(leaf, overflowPage(9, payload[39:])), "page 9 out of range"},
		{"tree cycle", handDB(sqlitePage(512, 0, 0x05, 2, binary.BigEndian.AppendUint32(nil, 3)),
			sqlitePage(512, 0, 0x0d, 0, leafCell(1, small))), "page 2 reached twice"},
		{"child out of range", handDB(sqlitePage(512, 0, 0x05, 3, binary.BigEndian.AppendUint32(nil, 1234567))),
			"page 1234567 out of range"},
		{"page number zero", handDB(sqlitePage(512, 0, 0x05, 0)), "page 0 out of range"},
		{"index page", handDB(sqlitePage(512, 0, 0x0a, 0)), "index page"},
		{"not a b-tree page", handDB(make([]byte, 512)), "not a b-tree page"},
		{"truncated", handDB(leaf, overflowPage(4, payload[39:39+508]), overflowPage(0, payload[39+508:]))[:3*512+100], "page 4 out of range"},
		{"payload larger than the file", handDB(sqlitePage(512, 0, 0x0d, 0, append(sqliteVarint(1<<40), sqliteVarint(1)...))), "larger than the file"},
		{"cell pointer outside", func() []byte {
			pg := sqlitePage(512, 0, 0x0d, 0, leafCell(1, small))
			binary.BigEndian.PutUint16(pg[8:], 600)
			return handDB(pg)
		}(), "outside the content area"},
		{"too many cells", func() []byte {
			pg := sqlitePage(512, 0, 0x0d, 0, leafCell(1, small))
			binary.BigEndian.PutUint16(pg[3:], 60000)
			return handDB(pg)
		}(), "cell pointers overrun"},
		{"record header overrun", handDB(sqlitePage(512, 0, 0x0d, 0, leafCell(1, []byte{0x7f, 1, 1}))), "record header size"},
		{"column overrun", handDB(sqlitePage(512, 0, 0x0d, 0, leafCell(1, []byte{4, 0, 0x81, 0x00, 'a'}))), "overruns the record"},
		{"deep tree", func() []byte {
			var pages [][]byte
			for i := range 100 {
				pages = append(pages, sqlitePage(512, 0, 0x05, uint32(i+3)))
			}
			return handDB(pages...)
		}(), "deeper than"},
		{"bad page size", func() []byte {
			d := handDB(leaf)
			binary.BigEndian.PutUint16(d[16:], 1000)
			return d
		}(), "page size 1000"},
		{"utf-16", func() []byte {
			d := handDB(leaf)
			binary.BigEndian.PutUint32(d[56:], 2)
			return d
		}(), "text encoding 2"},
		{"not sqlite", []byte("SQLite format 2\x00" + strings.Repeat("x", 600)), "not an SQLite 3 database"},
		{"empty", nil, "not an SQLite 3 database"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readAll(tc.data)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one with %q", err, tc.want)
			}
		})
	}
}

func TestSQLiteTruncatedReal(t *testing.T) {
	data := makeSQLite(t, 512, manyRowsSQL)
	for _, n := range []int{len(data) / 2, len(data) - 512, 1000, 511} {
		_, err := readAll(data[:n])
		if err == nil {
			t.Errorf("truncated to %d of %d bytes: no error", n, len(data))
		}
	}
	db, _ := Open(data)
	if _, err := db.table("nosuch"); err == nil || !strings.Contains(err.Error(), "no table nosuch") {
		t.Errorf("missing table: %v", err)
	}
	if err := db.SelectRows("t", []string{"nosuch"}, func([]Value) error { return nil }); err == nil {
		t.Error("missing column: no error")
	}
	stop := errors.New("stop")
	if err := db.SelectRows("t", []string{"id"}, func([]Value) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("callback error: %v", err)
	}
}

func TestParseCreateTable(t *testing.T) {
	for _, tc := range []struct {
		sql   string
		cols  string
		rowid int
	}{
		{"CREATE TABLE IF NOT EXISTS 'Packages' (hnum INTEGER PRIMARY KEY AUTOINCREMENT,blob BLOB NOT NULL)", "hnum,blob", 0},
		{"CREATE TABLE x (a TEXT, \"b c\" integer primary key, d DEFAULT (1,2), PRIMARY KEY (a))", "a,b c,d", 1},
		{"CREATE TABLE y (a INT PRIMARY KEY, b)", "a,b", -1},
		{"CREATE TABLE w (\n\tid\tINTEGER\n\t\tPRIMARY KEY,\n\tv REAL)", "id,v", 0},
		{"CREATE TABLE z (a INTEGER PRIMARY KEY DESC, b)", "a,b", -1},
	} {
		cols, _, rowid := parseCreateTable(tc.sql)
		if strings.Join(cols, ",") != tc.cols || rowid != tc.rowid {
			t.Errorf("%s: %q %d, want %s %d", tc.sql, cols, rowid, tc.cols, tc.rowid)
		}
	}
}

func TestReadVarint(t *testing.T) {
	for _, v := range []uint64{0, 1, 127, 128, 240, 2287, 16383, 16384, 1<<56 - 1, 1 << 56, 1<<64 - 1} {
		b := sqliteVarint(v)
		got, n, ok := readVarint(b)
		if !ok || got != v || n != len(b) {
			t.Errorf("%d: encoded %x, read %d (%d bytes, %v)", v, b, got, n, ok)
		}
		if _, _, ok := readVarint(b[:len(b)-1]); ok {
			t.Errorf("%d: truncated varint read", v)
		}
	}
}

func FuzzSQLite(f *testing.F) {
	blob := make([]byte, 1000)
	payload := sqliteRecord(nil, blob)
	f.Add(handDB(sqlitePage(512, 0, 0x0d, 0, overflowCell(5, payload, 3)), overflowPage(4, payload[39:39+508]), overflowPage(0, payload[39+508:])))
	if _, err := exec.LookPath("sqlite3"); err == nil && !testing.Short() {
		f.Add(makeSQLite(f, 512, manyRowsSQL))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		readAll(data)
		if db, err := Open(data); err == nil {
			db.SelectRows("Packages", []string{"hnum", "blob"}, func([]Value) error { return nil })
		}
	})
}
