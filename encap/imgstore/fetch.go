package imgstore

import (
	"io"

	"github.com/ocitree/ocitree/encap/blob"
	"github.com/ocitree/ocitree/encap/imgstore/internal/tarsplit"
)

// PullProgress receives a pull's progress (see blob.Progress).
type PullProgress = blob.Progress

// fetchConfig is what every layer fetch of one pull shares.
type fetchConfig struct {
	progress PullProgress
	limits   *blob.Limits
}

// fetch returns the fetch configuration of a pull with opts.
func (opts PullOptions) fetch() fetchConfig {
	return fetchConfig{progress: opts.Progress, limits: opts.Limits}
}

// options returns the blob fetch options, recording the layer's tar-split
// into rec when rec is not nil.
func (f fetchConfig) options(rec *tarsplit.Recorder) blob.FetchOptions {
	o := blob.FetchOptions{Progress: f.progress, Limits: f.limits}
	if rec != nil {
		o.Record = func(r io.Reader) blob.Recording { return rec.Record(r) }
	}
	return o
}
