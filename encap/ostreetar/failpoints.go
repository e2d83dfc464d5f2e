package ostreetar

import "github.com/ocitree/ocitree/internal/failpoint"

// fpPullLayerMid stops an ostree layer's import part-way (see
// internal/failpoint); image pull and unencapsulate both reach it.
var fpPullLayerMid = failpoint.New("pull-layer-mid",
	"an ostree layer's first regular file imported (staged), the rest of its blob not yet read")
