package deploy

import (
	"time"
)

// Host is bootc's BootcHost document (apiVersion org.containers.bootc/v1)
// plus status.deployments. Field order and names follow bootc's spec.rs.
type Host struct {
	APIVersion string     `json:"apiVersion" yaml:"apiVersion"`
	Kind       string     `json:"kind" yaml:"kind"`
	Metadata   HostMeta   `json:"metadata" yaml:"metadata"`
	Spec       HostSpec   `json:"spec" yaml:"spec"`
	Status     HostStatus `json:"status" yaml:"status"`
}

// HostMeta is the document's metadata; name is always "host".
type HostMeta struct {
	Name string `json:"name" yaml:"name"`
}

// HostSpec is the desired state: the tracked image and the boot order.
type HostSpec struct {
	Image     *ImageReference `json:"image" yaml:"image"`
	BootOrder string          `json:"bootOrder" yaml:"bootOrder"`
}

// ImageReference is an image and its transport; Signature is "insecure",
// "containerPolicy" or {"ostreeRemote": REMOTE}, omitted for unverified
// references.
type ImageReference struct {
	Image     string `json:"image" yaml:"image"`
	Transport string `json:"transport" yaml:"transport"`
	Signature any    `json:"signature,omitempty" yaml:"signature,omitempty"`
}

// HostStatus is the observed state.
type HostStatus struct {
	Staged           *BootEntry   `json:"staged" yaml:"staged"`
	Booted           *BootEntry   `json:"booted" yaml:"booted"`
	Rollback         *BootEntry   `json:"rollback" yaml:"rollback"`
	OtherDeployments []*BootEntry `json:"otherDeployments,omitempty" yaml:"otherDeployments,omitempty"`
	RollbackQueued   bool         `json:"rollbackQueued" yaml:"rollbackQueued"`
	Type             *string      `json:"type" yaml:"type"`
	UsrOverlay       any          `json:"usrOverlay" yaml:"usrOverlay"`
	ReadOnly         bool         `json:"readOnly" yaml:"readOnly"`
	// Deployments is ocitree's addition: every deployment in boot order.
	Deployments []DeploymentStatus `json:"deployments" yaml:"deployments"`
}

// BootEntry is one deployment in bootc's terms.
type BootEntry struct {
	Image             *ImageStatus `json:"image" yaml:"image"`
	CachedUpdate      *ImageStatus `json:"cachedUpdate" yaml:"cachedUpdate"`
	Incompatible      bool         `json:"incompatible" yaml:"incompatible"`
	Pinned            bool         `json:"pinned" yaml:"pinned"`
	SoftRebootCapable bool         `json:"softRebootCapable" yaml:"softRebootCapable"`
	DownloadOnly      bool         `json:"downloadOnly" yaml:"downloadOnly"`
	Store             *string      `json:"store" yaml:"store"`
	Ostree            *OstreeEntry `json:"ostree" yaml:"ostree"`
	Composefs         any          `json:"composefs" yaml:"composefs"`
}

// OstreeEntry names a deployment.
type OstreeEntry struct {
	Stateroot    string `json:"stateroot" yaml:"stateroot"`
	Checksum     string `json:"checksum" yaml:"checksum"`
	DeploySerial int    `json:"deploySerial" yaml:"deploySerial"`
}

// ImageStatus is the image a deployment runs.
type ImageStatus struct {
	Image        ImageReference `json:"image" yaml:"image"`
	Version      *string        `json:"version" yaml:"version"`
	Timestamp    *string        `json:"timestamp" yaml:"timestamp"`
	ImageDigest  string         `json:"imageDigest" yaml:"imageDigest"`
	Architecture string         `json:"architecture" yaml:"architecture"`
}

// DeploymentStatus is one element of status.deployments.
type DeploymentStatus struct {
	Index        int    `json:"index" yaml:"index"`
	Stateroot    string `json:"stateroot" yaml:"stateroot"`
	Checksum     string `json:"checksum" yaml:"checksum"`
	DeploySerial int    `json:"deploySerial" yaml:"deploySerial"`
	Pinned       bool   `json:"pinned" yaml:"pinned"`
	Booted       bool   `json:"booted" yaml:"booted"`
	// Version is the deployed commit's version metadata (null when none),
	// also for deployments not made from an image.
	Version *string          `json:"version" yaml:"version"`
	Image   *DeploymentImage `json:"image" yaml:"image"`
}

// DeploymentImage is the image of one deployment (nil fields when the
// deployment was not made from an image).
type DeploymentImage struct {
	Reference string  `json:"reference" yaml:"reference"`
	Digest    string  `json:"digest" yaml:"digest"`
	Version   *string `json:"version" yaml:"version"`
	Timestamp *string `json:"timestamp" yaml:"timestamp"`
}

// Status builds the BootcHost document of the sysroot. On a sysroot that
// is not the running system booted, staged and rollback are null and
// spec.image is the image of deployment 0 (the one that boots next).
// With bootedOnly, staged and rollback are null (bootc's --booted).
func (s *Sysroot) Status(bootedOnly bool) (*Host, error) {
	h := &Host{APIVersion: "org.containers.bootc/v1", Kind: "BootcHost", Metadata: HostMeta{Name: "host"},
		Spec: HostSpec{BootOrder: "default"}, Status: HostStatus{Deployments: []DeploymentStatus{}}}
	entries := map[*Deployment]*BootEntry{}
	for _, d := range s.Deployments {
		be, err := s.bootEntry(d)
		if err != nil {
			return nil, err
		}
		entries[d] = be
		ds := DeploymentStatus{Index: d.Index, Stateroot: d.Stateroot, Checksum: d.Checksum.String(), DeploySerial: d.Serial,
			Pinned: d.Pinned(), Booted: d == s.Booted}
		if d.Version != "" {
			v := d.Version
			ds.Version = &v
		}
		if be.Image != nil {
			ds.Image = &DeploymentImage{Reference: d.ImageRef(), Digest: be.Image.ImageDigest, Version: be.Image.Version, Timestamp: be.Image.Timestamp}
		}
		h.Status.Deployments = append(h.Status.Deployments, ds)
	}
	var specFrom *Deployment
	if s.Booted != nil {
		specFrom = s.Booted
		h.Status.Booted = entries[s.Booted]
		if h.Status.Booted.Image != nil {
			t := "bootcHost"
			h.Status.Type = &t
		}
		var rb *Deployment
		for _, d := range s.Deployments {
			if d != s.Booted && d.Stateroot == s.Booted.Stateroot && rb == nil {
				rb = d
			}
		}
		if rb != nil && !bootedOnly {
			h.Status.Rollback = entries[rb]
			if rb.Index < s.Booted.Index {
				h.Status.RollbackQueued = true
				h.Spec.BootOrder = "rollback"
			}
		}
		for _, d := range s.Deployments {
			if d != s.Booted && d != rb && d.Pinned() && !bootedOnly {
				h.Status.OtherDeployments = append(h.Status.OtherDeployments, entries[d])
			}
		}
	} else if len(s.Deployments) > 0 {
		specFrom = s.Deployments[0]
	}
	if specFrom != nil && entries[specFrom].Image != nil {
		ir := entries[specFrom].Image.Image
		h.Spec.Image = &ir
	}
	return h, nil
}

func (s *Sysroot) bootEntry(d *Deployment) (*BootEntry, error) {
	be := &BootEntry{Pinned: d.Pinned(), Ostree: &OstreeEntry{Stateroot: d.Stateroot, Checksum: d.Checksum.String(), DeploySerial: d.Serial}}
	ref := d.ImageRef()
	if ref == "" {
		return be, nil
	}
	name, transport, sig, remote, err := ImageTransport(ref)
	if err != nil {
		return nil, err
	}
	ir := ImageReference{Image: name, Transport: transport}
	switch sig {
	case "containerPolicy":
		ir.Signature = sig
	case "ostreeRemote":
		ir.Signature = map[string]string{"ostreeRemote": remote}
	}
	info, err := DeployedImage(s.Repo, d.Checksum)
	if err != nil {
		return nil, err
	}
	store := "ostreeContainer"
	be.Store = &store
	is := &ImageStatus{Image: ir}
	if info != nil {
		is.ImageDigest, is.Architecture = info.ManifestDigest, info.Architecture
		if info.Version != "" {
			v := info.Version
			is.Version = &v
		}
		if info.Timestamp != nil {
			t := info.Timestamp.Format(time.RFC3339Nano)
			is.Timestamp = &t
		}
	}
	be.Image = is
	if cu, err := CachedUpdateOf(s.Repo, ref, d.Checksum); err == nil && cu != nil {
		c := &ImageStatus{Image: ir, ImageDigest: cu.ManifestDigest, Architecture: cu.Architecture}
		if cu.Version != "" {
			v := cu.Version
			c.Version = &v
		}
		if cu.Timestamp != nil {
			t := cu.Timestamp.Format(time.RFC3339Nano)
			c.Timestamp = &t
		}
		be.CachedUpdate = c
	}
	return be, nil
}
