package deploy

import "github.com/ocitree/ocitree/internal/failpoint"

// The failpoints of the host write paths (see internal/failpoint), in the
// order an upgrade reaches them (the pull's are imgstore's pull-* and the
// repository's txn-*; the boot configuration's are package boot's boot-*).
// Before boot-loader-swapped (or boot-subboot-swapped) the old deployment
// list boots; after it, the new one, and the rest is cleanup.
var (
	fpImagePulled = failpoint.New("deploy-image-pulled",
		"the image is pulled and its ref written, nothing deployed")
	fpCheckoutDone = failpoint.New("deploy-checkout-done",
		"the new deployment directory is checked out, etc/ not yet copied from usr/etc")
	fpEtcCopied = failpoint.New("deploy-etc-copied",
		"the new deployment's etc/ is a copy of usr/etc, the /etc merge not done")
	fpEtcMerged = failpoint.New("deploy-etc-merged",
		"the merge deployment's /etc changes are carried into the new deployment, no origin written")
	fpOriginWritten = failpoint.New("deploy-origin-written",
		"a deployment's .origin file is written (a new deployment's: the immutable bit not yet set; pin: the mtime not bumped)")
	fpDeployed = failpoint.New("deploy-deployed",
		"the new deployment is complete on disk, the boot configuration not changed")
	fpBootWritten = failpoint.New("deploy-boot-written",
		"the new boot configuration is in place (committed), the sysroot mtime not bumped, nothing cleaned up")
	fpCleanupBootversions = failpoint.New("deploy-cleanup-bootversions",
		"cleanup removed the other bootversion's loader and bootlinks, no deployment directory removed")
	fpCleanupOriginRemoved = failpoint.New("deploy-cleanup-origin-removed",
		"cleanup removed an unlisted deployment's .origin, its directory is still there")
	fpCleanupBeforeRefs = failpoint.New("deploy-cleanup-before-refs",
		"cleanup removed unlisted deployments and kernel directories, the ostree/B/S/I refs not rewritten")
	fpPruneBeforeImages = failpoint.New("deploy-prune-before-images",
		"the deployment list is final and cleaned up; images no deployment uses not yet removed")
	fpPruneBeforeObjects = failpoint.New("deploy-prune-before-objects",
		"unused images removed; the objects nothing reaches not yet pruned")
)
