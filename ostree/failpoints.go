package ostree

import "github.com/ocitree/ocitree/internal/failpoint"

// The failpoints of the repository's write paths (see internal/failpoint),
// in the order a transaction reaches them.
var (
	fpTxnFirstObjectStaged = failpoint.New("txn-first-object-staged",
		"a transaction staged its first object (under tmp/ocitree-staging-*), nothing in objects/")
	fpTxnAllObjectsStaged = failpoint.New("txn-all-objects-staged",
		"Commit starts: every object staged, not yet synced")
	fpTxnSynced = failpoint.New("txn-synced",
		"staged objects synced (syncfs), none renamed into objects/")
	fpTxnRenamesHalfway = failpoint.New("txn-renames-halfway",
		"half of the staged objects renamed into objects/ (commit objects come last)")
	fpTxnCommitPublished = failpoint.New("txn-commit-object-published",
		"a commit object renamed into objects/, not synced, no ref written")
	fpTxnBeforeRefs = failpoint.New("txn-before-refs",
		"every object published and synced, before the first ref update")
	fpTxnBetweenRefs = failpoint.New("txn-between-refs",
		"the first of several ref updates written, the others not")
	fpPruneHalfway = failpoint.New("prune-halfway",
		"prune deleted half of the unreachable objects (unreachable commits first)")
	fpLockBusy = failpoint.New("repo-lock-busy",
		"the repository lock is held by another process; this one is about to wait for it")
)
