package ostree

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func beginT(t testing.TB, r *Repo) *Txn {
	t.Helper()
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(txn.Abort)
	return txn
}

func writeMetaT(t testing.TB, txn *Txn, typ ObjectType, b []byte) Checksum {
	t.Helper()
	c, err := txn.WriteMetadata(typ, b)
	if err != nil {
		t.Fatal(err)
	}
	if c != SumBytes(b) {
		t.Fatalf("WriteMetadata returned %s, want sha256 %s", c, SumBytes(b))
	}
	return c
}

func TestTxnAbortLeavesNothing(t *testing.T) {
	forModes(t, func(t *testing.T, m Mode) {
		r := newRepo(t, m)
		txn := beginT(t, r)
		if len(stagingLeft(t, r)) != 2 {
			t.Errorf("staging while open: %v, want the directory and its lock", stagingLeft(t, r))
		}
		c, err := txn.WriteContent(&FileMeta{Mode: 0o100644}, bytes.NewReader([]byte("hello\n")), 6)
		if err != nil {
			t.Fatal(err)
		}
		big := bigPayload()
		if _, err := txn.WriteContent(&FileMeta{Mode: 0o100644}, bytes.NewReader(big), int64(len(big))); err != nil {
			t.Fatal(err)
		}
		if _, err := txn.WriteContent(&FileMeta{Mode: 0o120777, Target: "hello.txt"}, nil, 0); err != nil {
			t.Fatal(err)
		}
		dm := writeMetaT(t, txn, ObjDirMeta, unhex(t, "0000000000000000000041ed"))
		if err := txn.SetRef("main", &c); err != nil {
			t.Fatal(err)
		}
		if n, _ := txn.Stats(); n != 4 {
			t.Errorf("Stats = %d objects, want 4", n)
		}
		txn.Abort()
		txn.Abort() // a second Abort is a no-op
		assertPristine(t, r)
		for _, n := range []ObjectName{{c, ObjFile}, {dm, ObjDirMeta}} {
			if ok, _ := r.HasObject(n.Checksum, n.Type); ok {
				t.Errorf("%s present after Abort", n)
			}
		}
		if err := txn.Commit(); err == nil {
			t.Error("Commit after Abort succeeded")
		}
		assertPristine(t, r)
	})
}

func TestTxnObjectsAppearOnlyOnCommit(t *testing.T) {
	forModes(t, func(t *testing.T, m Mode) {
		r := newRepo(t, m)
		txn := beginT(t, r)
		c, err := txn.WriteContent(&FileMeta{Mode: 0o100644}, bytes.NewReader([]byte("hello\n")), 6)
		if err != nil {
			t.Fatal(err)
		}
		if c.String() != sumHello {
			t.Fatalf("checksum %s, want %s", c, sumHello)
		}
		dt := writeMetaT(t, txn, ObjDirTree, []byte{0})
		if dt.String() != sumEmptyDirTree {
			t.Fatalf("empty dirtree %s, want %s", dt, sumEmptyDirTree)
		}
		for _, n := range []ObjectName{{c, ObjFile}, {dt, ObjDirTree}} {
			if ok, err := r.HasObject(n.Checksum, n.Type); err != nil || ok {
				t.Errorf("%s: HasObject before Commit = %v, %v", n, ok, err)
			}
			if ok, err := txn.Has(n.Checksum, n.Type); err != nil || !ok {
				t.Errorf("%s: Txn.Has = %v, %v", n, ok, err)
			}
			if _, err := os.Stat(filepath.Join(r.Path(), handObjectPath(n.Checksum, extension(n.Type, m)))); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s: file in objects/ before Commit: %v", n, err)
			}
		}
		if err := txn.SetRef("main", &c); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadRef("main"); !errors.Is(err, ErrRefNotFound) {
			t.Errorf("ref visible before Commit: %v", err)
		}
		if err := txn.Commit(); err != nil {
			t.Fatal(err)
		}
		for _, n := range []ObjectName{{c, ObjFile}, {dt, ObjDirTree}} {
			if ok, err := r.HasObject(n.Checksum, n.Type); err != nil || !ok {
				t.Errorf("%s: HasObject after Commit = %v, %v", n, ok, err)
			}
		}
		if got, err := r.ReadRef("main"); err != nil || got != c {
			t.Errorf("ReadRef after Commit = %s, %v", got, err)
		}
		b, err := os.ReadFile(filepath.Join(r.Path(), "refs/heads/main"))
		if err != nil || string(b) != sumHello+"\n" {
			t.Errorf("ref file = %q, %v; want 64 hex and a newline", b, err)
		}
		if left := stagingLeft(t, r); len(left) != 0 {
			t.Errorf("staging left after Commit: %v", left)
		}
		if err := txn.Commit(); err == nil {
			t.Error("second Commit succeeded")
		}
		// Metadata objects are the exact bytes, mode 0644, in every mode.
		p := filepath.Join(r.Path(), handObjectPath(dt, "dirtree"))
		if b, err := os.ReadFile(p); err != nil || !bytes.Equal(b, []byte{0}) {
			t.Errorf("dirtree object = %x, %v", b, err)
		}
		if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("dirtree object mode %v, %v", st.Mode(), err)
		}
		// Deleting a ref through a transaction.
		txn2 := beginT(t, r)
		if err := txn2.SetRef("main", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadRef("main"); err != nil {
			t.Errorf("ref gone before the deleting transaction commits: %v", err)
		}
		if err := txn2.Commit(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.ReadRef("main"); !errors.Is(err, ErrRefNotFound) {
			t.Errorf("ReadRef after delete: %v", err)
		}
	})
}

func TestTxnSetRefRejectsBadNames(t *testing.T) {
	r := newRepo(t, ModeArchive)
	txn := beginT(t, r)
	var c Checksum
	for _, name := range []string{"", "/x", "a//b", "-x", sumHello, "a b", ":x", "mirror:x"} {
		if err := txn.SetRef(name, &c); err == nil {
			t.Errorf("SetRef(%q) accepted", name)
		}
	}
}

// TestTxnCommitsMovedLast: a transaction whose commit object is staged first
// still moves it after everything else, so a failure midway never leaves a
// commit whose objects are missing. The failure is injected by making the
// objects/XX directory of the dirtree a plain file.
func TestTxnCommitsMovedLast(t *testing.T) {
	r := newRepo(t, ModeArchive)
	txn := beginT(t, r)
	dtBytes := []byte{0}
	dtSum := SumBytes(dtBytes)
	var cb []byte
	for i := 0; ; i++ {
		cm := &Commit{Subject: "commit-last", Timestamp: uint64(i), RootTree: dtSum, RootMeta: mustChecksum(t, sumDirMeta0755)}
		var err error
		if cb, err = cm.Encode(); err != nil {
			t.Fatal(err)
		}
		if SumBytes(cb)[0] != dtSum[0] {
			break
		}
	}
	commit := writeMetaT(t, txn, ObjCommit, cb)
	writeMetaT(t, txn, ObjDirTree, dtBytes)
	writeMetaT(t, txn, ObjDirMeta, unhex(t, "0000000000000000000041ed"))
	if err := txn.SetRef("main", &commit); err != nil {
		t.Fatal(err)
	}
	blocker := filepath.Join(r.Path(), "objects", dtSum.String()[:2])
	if err := os.WriteFile(blocker, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := txn.Commit(); err == nil {
		t.Fatal("Commit succeeded although objects/" + dtSum.String()[:2] + " is a file")
	}
	if ok, _ := r.HasObject(commit, ObjCommit); ok {
		t.Error("the commit object was moved into objects/ before the dirtree it needs")
	}
	if _, err := r.ReadRef("main"); !errors.Is(err, ErrRefNotFound) {
		t.Errorf("ref written by a failed Commit: %v", err)
	}
	if left := stagingLeft(t, r); len(left) != 0 {
		t.Errorf("staging left after a failed Commit: %v", left)
	}
}

// TestTxnOrderCommitsLast checks the order Commit moves objects in: every
// commit after every other object, the rest in write order.
func TestTxnOrderCommitsLast(t *testing.T) {
	r := newRepo(t, ModeArchive)
	txn := beginT(t, r)
	var names []ObjectName
	add := func(typ ObjectType, b []byte) {
		names = append(names, ObjectName{writeMetaT(t, txn, typ, b), typ})
	}
	c1, _ := (&Commit{Subject: "1", RootTree: SumBytes([]byte{0})}).Encode()
	c2, _ := (&Commit{Subject: "2", RootTree: SumBytes([]byte{0})}).Encode()
	add(ObjCommit, c1)
	add(ObjDirTree, []byte{0})
	add(ObjCommit, c2)
	add(ObjDirMeta, unhex(t, "0000000000000000000041ed"))
	add(ObjDirMeta, unhex(t, "0000000000000000000041c0"))
	if err := txn.Commit(); err != nil {
		t.Fatal(err)
	}
	want := []ObjectName{names[1], names[3], names[4], names[0], names[2]}
	if len(txn.order) != len(want) {
		t.Fatalf("order has %d objects, want %d", len(txn.order), len(want))
	}
	for i := range want {
		if txn.order[i] != want[i] {
			t.Errorf("order[%d] = %s, want %s", i, txn.order[i], want[i])
		}
	}
	got, err := r.ListObjects(func(ObjectType) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Errorf("ListObjects = %v, want %d objects", got, len(want))
	}
}

func TestTxnStaleStagingCleanup(t *testing.T) {
	r := newRepo(t, ModeArchive)
	tmp := filepath.Join(r.Path(), "tmp")
	dead := filepath.Join(tmp, stagingPrefix+"deadbeef")
	live := filepath.Join(tmp, stagingPrefix+"alive")
	for _, d := range []string{dead, live} {
		if err := os.MkdirAll(filepath.Join(d, "ab"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "ab", "x.dirtree"), []byte{0}, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(d+".lock", nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Another writer holds the live staging directory's lock.
	lf, err := os.OpenFile(live+".lock", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	lk := unix.Flock_t{Type: unix.F_WRLCK}
	if err := unix.FcntlFlock(lf.Fd(), unix.F_OFD_SETLK, &lk); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(tmp, "unrelated")
	os.WriteFile(other, nil, 0o644)

	txn := beginT(t, r)
	for _, p := range []string{dead, dead + ".lock"} {
		if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stale %s not removed by Begin (%v)", p, err)
		}
	}
	for _, p := range []string{live, live + ".lock", filepath.Join(live, "ab", "x.dirtree"), other} {
		if _, err := os.Lstat(p); err != nil {
			t.Errorf("%s removed although its writer is alive: %v", p, err)
		}
	}
	txn.Abort()
	if _, err := os.Lstat(live); err != nil {
		t.Errorf("live staging removed by Abort: %v", err)
	}
	// Once its writer is gone, the next Begin takes it away.
	lf.Close()
	beginT(t, r).Abort()
	if _, err := os.Lstat(live); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging of a dead writer kept: %v", err)
	}
	if _, err := os.Lstat(live + ".lock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("lock of a dead writer kept: %v", err)
	}
}

// TestTxnWithSync runs one transaction with core.fsync left on (the default).
func TestTxnWithSync(t *testing.T) {
	r := newRepoAt(t, filepath.Join(t.TempDir(), "repo"), ModeArchive, true)
	c := commitTar(t, r, twoEntriesOpts("main"), reg("a", 0o644, "hello\n"), symEnt("b", "a"))
	if c.String() != sumCommitTwoEntries {
		t.Errorf("commit %s, want %s", c, sumCommitTwoEntries)
	}
}

// TestTxnBackgroundFlush: every flushEvery bytes staged start one syncfs
// on a goroutine (not a second while one runs), never with core.fsync
// off, and Abort (so also Commit) waits for it.
func TestTxnBackgroundFlush(t *testing.T) {
	r := newRepoAt(t, filepath.Join(t.TempDir(), "repo"), ModeBareUser, true)
	txn, err := r.Begin()
	if err != nil {
		t.Fatal(err)
	}
	txn.flushInBackground(flushEvery - 1)
	if txn.flushing.Load() || txn.unflushed.Load() != flushEvery-1 {
		t.Fatalf("below flushEvery: flushing %v, %d bytes counted", txn.flushing.Load(), txn.unflushed.Load())
	}
	txn.flushing.Store(true) // as if one ran: none is started beside it
	txn.flushInBackground(1)
	if txn.unflushed.Load() != flushEvery {
		t.Fatalf("a second flush started while one runs")
	}
	txn.flushing.Store(false)
	txn.flushInBackground(1)
	if txn.unflushed.Load() != 0 {
		t.Fatalf("flushEvery reached: %d bytes still counted, no flush started", txn.unflushed.Load())
	}
	txn.Abort()
	if txn.flushing.Load() {
		t.Error("Abort returned while the flush ran")
	}

	quiet := newRepo(t, ModeBareUser) // core.fsync=false
	txn, err = quiet.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer txn.Abort()
	txn.flushInBackground(2 * flushEvery)
	if txn.flushing.Load() || txn.unflushed.Load() != 0 {
		t.Error("core.fsync=false: a flush was started")
	}
}

// TestPruneWaitsForTransactions: a transaction holds the shared repository
// lock, so Prune (exclusive) finds the lock busy (the repo-lock-busy
// failpoint tells the test so) and waits until the transaction ends.
func TestPruneWaitsForTransactions(t *testing.T) {
	r := newRepo(t, ModeArchive)
	txn := beginT(t, r)
	busy := make(chan struct{}, 1)
	defer fpLockBusy.EnableFunc(func() error {
		select {
		case busy <- struct{}{}:
		default:
		}
		return nil
	})()
	done := make(chan error, 1)
	go func() {
		_, err := r.Prune(PruneOptions{})
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("Prune ran while a transaction was open (err %v)", err)
	case <-busy:
	case <-time.After(time.Minute): // a hang guard, not a measurement
		t.Fatal("Prune neither ran nor found the lock busy in a minute")
	}
	// The transaction still holds the lock: Prune cannot have finished.
	select {
	case err := <-done:
		t.Fatalf("Prune returned while the transaction was open (err %v)", err)
	default:
	}
	txn.Abort()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute): // a hang guard, not a measurement
		t.Fatal("Prune still blocked a minute after the transaction ended")
	}
}

// TestTxnConcurrentBegin: a second transaction, in the same process, must
// not take the first one's staging directory for a stale one.
func TestTxnConcurrentBegin(t *testing.T) {
	r := newRepo(t, ModeArchive)
	t1 := beginT(t, r)
	c, err := t1.WriteContent(&FileMeta{Mode: 0o100644}, bytes.NewReader([]byte("hello\n")), 6)
	if err != nil {
		t.Fatal(err)
	}
	t2 := beginT(t, r)
	if len(stagingLeft(t, r)) != 4 {
		t.Errorf("staging entries with two open transactions: %v", stagingLeft(t, r))
	}
	if err := t1.Commit(); err != nil {
		t.Fatal(err)
	}
	if ok, _ := r.HasObject(c, ObjFile); !ok {
		t.Error("the first transaction lost its object to the second Begin")
	}
	t2.Abort()
	if left := stagingLeft(t, r); len(left) != 0 {
		t.Errorf("staging left: %v", left)
	}
}

// TestLockTimeoutZero: with core.lock-timeout-secs=0 a lock that is taken
// fails at once instead of waiting.
func TestLockTimeoutZero(t *testing.T) {
	path := filepath.Join(t.TempDir(), "repo")
	r := newRepoAt(t, path, ModeArchive, false)
	f, err := os.OpenFile(filepath.Join(path, "config"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("lock-timeout-secs=0\n")
	f.Close()
	r2, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	txn := beginT(t, r)
	busy := 0
	defer fpLockBusy.EnableFunc(func() error { busy++; return nil })()
	_, err = r2.Prune(PruneOptions{})
	if err == nil || !strings.Contains(err.Error(), "timed out after 0s") {
		t.Errorf("Prune with the lock taken and lock-timeout-secs=0: %v", err)
	}
	if busy != 1 {
		t.Errorf("Prune reached repo-lock-busy %d times, want 1", busy)
	}
	txn.Abort()
	if _, err := r2.Prune(PruneOptions{}); err != nil {
		t.Errorf("Prune after the transaction ended: %v", err)
	}
}
