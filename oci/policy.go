package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

// Errors of the signature policy check; match them with errors.Is.
var (
	// ErrInsecurePolicy: an ostree-image-signed: reference met a policy whose default
	// accepts anything (ostree-ext refuses this too).
	ErrInsecurePolicy = errors.New("signature policy default is insecureAcceptAnything")
	// ErrPolicyRejected: the policy does not allow the image.
	ErrPolicyRejected = errors.New("image rejected by signature policy")
)

// policyFor returns the policy that applies to reading through r: accept anything for
// Unverified and OstreeRemote (the latter is verified on the OSTree commit instead),
// the system (or WithPolicy) policy.json for ContainerPolicy, refused when its default
// is exactly insecureAcceptAnything.
func policyFor(r *Ref, sys *types.SystemContext) (*signature.Policy, error) {
	if r.Signature != ContainerPolicy {
		return &signature.Policy{Default: signature.PolicyRequirements{signature.NewPRInsecureAcceptAnything()}}, nil
	}
	p, err := signature.DefaultPolicy(sys)
	if err != nil {
		where := policyLocation(sys)
		return nil, fmt.Errorf("reading signature policy %s: %w", where, err)
	}
	if len(p.Default) == 1 && requirementType(p.Default[0]) == "insecureAcceptAnything" {
		where := policyLocation(sys)
		return nil, fmt.Errorf("%s: %w; refusing to use it for %s (set a signature requirement such as sigstoreSigned or signedBy)", where, ErrInsecurePolicy, r)
	}
	return p, nil
}

// policyLocation names the policy.json in use, for messages.
func policyLocation(sys *types.SystemContext) string {
	if sys.SignaturePolicyPath != "" {
		return sys.SignaturePolicyPath
	}
	if p := os.Getenv("CONTAINERS_POLICY_JSON"); p != "" {
		return p + " ($CONTAINERS_POLICY_JSON)"
	}
	return "the system policy.json"
}

// requirementType returns the "type" of a policy requirement as written in policy.json.
func requirementType(pr signature.PolicyRequirement) string {
	b, err := json.Marshal(pr)
	if err != nil {
		return ""
	}
	var t struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(b, &t) != nil {
		return ""
	}
	return t.Type
}

// checkPolicy evaluates policy on img (the image instance that will be read).
func checkPolicy(ctx context.Context, r *Ref, policy *signature.Policy, img types.UnparsedImage) error {
	pc, err := signature.NewPolicyContext(policy)
	if err != nil {
		return fmt.Errorf("signature policy: %w", err)
	}
	defer pc.Destroy() //nolint:errcheck // only releases state
	allowed, err := pc.IsRunningImageAllowed(ctx, img)
	if !allowed || err != nil { // fail if either says so
		if err == nil {
			err = errors.New("not allowed")
		}
		return fmt.Errorf("%w: %s: %w", ErrPolicyRejected, r, err)
	}
	return nil
}
