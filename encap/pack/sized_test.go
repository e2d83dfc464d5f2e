package pack

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
)

// rpm-ostree's sized component list, the input format of the packing tests.

// ReadSizedComponents reads rpm-ostree's sized component list (gzip allowed):
// [{"identifier","name","srcid","change_time_offset","change_frequency","size"}...].
// The components have no Objects.
func ReadSizedComponents(r io.Reader) ([]Component, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("sized components: %w", err)
	}
	data, err = maybeGunzip(data)
	if err != nil {
		return nil, fmt.Errorf("sized components: %w", err)
	}
	return ParseSized(data)
}

func maybeGunzip(data []byte) ([]byte, error) {
	if len(data) < 2 || data[0] != 0x1f || data[1] != 0x8b {
		return data, nil
	}
	zr, err := gzip.NewReader(bytes.NewReader(data))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	out, err := io.ReadAll(io.LimitReader(zr, 1<<30))
	if err != nil {
		return nil, fmt.Errorf("gunzip: %w", err)
	}
	return out, nil
}
