package sqlite

import "github.com/ocitree/ocitree/encap/internal/enctest"

// The shared test helpers under their local names.
var (
	skipOrFail    = enctest.SkipOrFail
	requireRoot   = enctest.RequireRoot
	requireOstree = enctest.RequireOstree
	runOstree     = enctest.RunOstree
	fsck          = enctest.Fsck
	newRepo       = enctest.NewRepo
	commitDir     = enctest.CommitDir
	requireTool   = enctest.RequireTool
	runTool       = enctest.RunTool
	commitTree    = enctest.CommitTree
)

const ostreeBin = enctest.OstreeBin
