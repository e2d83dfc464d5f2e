// Package pkgdb tells which package owns which content object of a commit,
// as [pack.Component]s: dpkg's database, rpm's (a header parser and a
// read-only SQLite reader, no cgo), a contentmeta file, the kernel, and
// directory groups for what no package owns.
package pkgdb
