package imgstore

import "github.com/ocitree/ocitree/internal/failpoint"

// The failpoints of the image store's write paths (see internal/failpoint;
// pull-layer-mid is in ostreetar, where layers are imported).
// A layer's objects, its tar-split record and its blob ref are written in
// one transaction: the ref updates come after the objects are published.
var (
	fpPullLayerBeforeBlobRef = failpoint.New("pull-layer-before-blob-ref",
		"an ostree layer's objects and record published and synced, its blob and record refs not yet written")
	fpPullLayerCommitted = failpoint.New("pull-layer-committed",
		"an ostree layer's transaction committed (objects, record, blob ref), later layers and the merge commit not")
	fpPullBeforeMerge = failpoint.New("pull-before-merge",
		"every ostree layer stored, the merge transaction not begun")
	fpPullBeforeImageRef = failpoint.New("pull-before-image-ref",
		"the merge commit published and synced, the image ref not yet written")
	fpPullBeforeLayerGC = failpoint.New("pull-before-layer-gc",
		"the image ref written, layer refs no image needs not yet deleted")
	fpRemoveBeforeLayerGC = failpoint.New("image-remove-before-layer-gc",
		"image refs deleted, layer refs no image needs not yet deleted")
)
