package oci

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestPolicy(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	layout := filepath.Join(dir, "layout")
	writeImage(t, "oci:"+layout+":t", makeImage(t, runtime.GOARCH, makeLayer(t, 20, 32<<10, "gzip")), false)

	policies := map[string]string{
		"insecure": `{"default":[{"type":"insecureAcceptAnything"}]}`,
		"reject":   `{"default":[{"type":"reject"}]}`,
		// Default reject, but this layout accepted: not the "default insecure" refusal.
		"scoped": `{"default":[{"type":"reject"}],"transports":{"oci":{"` + layout + `":[{"type":"insecureAcceptAnything"}]}}}`,
		// A signature required: the unsigned layout fails it.
		"signed": `{"default":[{"type":"sigstoreSigned","keyPath":"/nonexistent/key.pub","signedIdentity":{"type":"matchRepository"}}]}`,
	}
	for name, p := range policies {
		os.WriteFile(filepath.Join(dir, name+".json"), []byte(p), 0o644)
	}
	signed := "ostree-image-signed:oci:" + layout + ":t"
	unverified := []string{
		"oci:" + layout + ":t",
		"ostree-unverified-image:oci:" + layout + ":t",
		"ostree-remote-image:myremote:oci:" + layout + ":t",
	}
	type tc struct {
		policy, ref string
		env         bool // through $CONTAINERS_POLICY_JSON instead of WithPolicy
		want        error
		wantMsg     string
	}
	tests := []tc{
		{policy: "insecure", ref: signed, want: ErrInsecurePolicy, wantMsg: "refusing"},
		{policy: "insecure", ref: signed, env: true, want: ErrInsecurePolicy},
		{policy: "reject", ref: signed, want: ErrPolicyRejected, wantMsg: "rejected"},
		{policy: "reject", ref: signed, env: true, want: ErrPolicyRejected},
		{policy: "signed", ref: signed, want: ErrPolicyRejected},
		{policy: "scoped", ref: signed},
		{policy: "missing", ref: signed, wantMsg: "no such file"},
	}
	for _, p := range []string{"insecure", "reject", "signed"} {
		for _, ref := range unverified {
			tests = append(tests, tc{policy: p, ref: ref})
		}
	}
	for _, tc := range tests {
		name := tc.policy + " " + tc.ref
		if tc.env {
			name += " (env)"
		}
		t.Run(name, func(t *testing.T) {
			r, err := ParseRef(tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, tc.policy+".json")
			var opts []Option
			if tc.env {
				t.Setenv("CONTAINERS_POLICY_JSON", path)
			} else {
				opts = append(opts, WithPolicy(path))
			}
			rd, err := NewReader(ctx, r, opts...)
			if tc.want == nil && tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("NewReader: %v", err)
				}
				if _, err := rd.Config(ctx); err != nil {
					t.Fatal(err)
				}
				rd.Close()
				return
			}
			if err == nil {
				rd.Close()
				t.Fatalf("NewReader accepted %s under policy %s", tc.ref, tc.policy)
			}
			t.Logf("error: %v", err)
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.wantMsg)
			}
		})
	}
}

func TestAuthFileChoice(t *testing.T) {
	dir := t.TempDir()
	ostreeAuth := filepath.Join(dir, "etc-ostree-auth.json")
	missing := filepath.Join(dir, "run-ostree-auth.json")
	saved := ostreeAuthFiles
	t.Cleanup(func() { ostreeAuthFiles = saved })
	ostreeAuthFiles = func() []string { return []string{missing, ostreeAuth} }

	tests := []struct {
		name   string
		create bool
		opts   []Option
		want   string
	}{
		{"no ostree auth: containers defaults", false, nil, ""},
		{"ostree auth.json used", true, nil, ostreeAuth},
		{"--authfile wins", true, []Option{WithAuthFile("/x/auth.json")}, "/x/auth.json"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			os.Remove(ostreeAuth)
			if tc.create {
				os.WriteFile(ostreeAuth, []byte(`{"auths":{}}`), 0o600)
			}
			sys := systemContext(tc.opts)
			if sys.AuthFilePath != tc.want {
				t.Fatalf("AuthFilePath = %q, want %q", sys.AuthFilePath, tc.want)
			}
		})
	}
}
