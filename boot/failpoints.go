package boot

import "github.com/ocitree/ocitree/internal/failpoint"

// The failpoints of Write and the boot cleanup (see internal/failpoint), in
// the order a full bootversion swap reaches them. Until boot-loader-swapped
// boot/loader still names the old loader.N; from it on, the new one.
var (
	fpEntriesCleared = failpoint.New("boot-entries-cleared",
		"the new bootversion's loader.N/entries emptied and recreated, no kernel copied, boot/loader unchanged")
	fpKernelCopied = failpoint.New("boot-kernel-copied",
		"a deployment's kernel and initramfs are in boot/ostree, its BLS entry not written")
	fpBLSWritten = failpoint.New("boot-bls-written",
		"a BLS entry is written into the new loader.N/entries (the others may not be)")
	fpBootlinksWritten = failpoint.New("boot-bootlinks-written",
		"every entry written, the new ostree/boot.N.M bootlinks made, ostree/boot.N not yet pointing at them")
	fpBootlinkSwapped = failpoint.New("boot-bootlink-swapped",
		"ostree/boot.N points at the new bootlinks, boot/loader.tmp not made")
	fpLoaderTmp = failpoint.New("boot-loader-tmp",
		"boot/loader.tmp names the new loader.N and everything is synced: the moment before the commit point")
	fpLoaderSwapped = failpoint.New("boot-loader-swapped",
		"boot/loader renamed to the new loader.N (the commit point), not yet synced")
	fpSubbootBootlinksWritten = failpoint.New("boot-subboot-bootlinks-written",
		"order-only change: the other sub-bootversion's bootlinks made and synced, ostree/boot.N unchanged")
	fpSubbootSwapped = failpoint.New("boot-subboot-swapped",
		"order-only change: ostree/boot.N points at the other sub-bootversion (its commit point), not yet synced")
	fpCleanupBootDir = failpoint.New("boot-cleanup-bootdir",
		"cleanup is about to remove a boot/ostree kernel directory no deployment uses")
)
