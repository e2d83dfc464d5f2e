package integration

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/fixtures"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// TestRechunkCLI: `rechunk --rootfs` of the dpkg fixture, then `rechunk` of
// that plain image with itself as the previous build, give the same image
// byte for byte (the plain import reads back the same tree and layout);
// `--repo` of the same tree gives the same layers; skopeo reads it and
// bad arguments change nothing.
func TestRechunkCLI(t *testing.T) {
	setup(t, "skopeo")
	dir := workDir(t)
	src := filepath.Join(dir, "tree")
	if err := fixtures.DpkgOS(src, fixtures.DpkgOSOptions{}); err != nil {
		t.Fatal(err)
	}
	env := []string{"SOURCE_DATE_EPOCH=1700000000", "TMPDIR=" + dir}
	layout := filepath.Join(dir, "img")
	d1 := strings.TrimSpace(must(t, runCmdEnv(t, env, nil, ocitreeBin, "rechunk", "--rootfs", src, "oci:"+layout+":v1")))
	d2 := strings.TrimSpace(must(t, runCmdEnv(t, env, nil, ocitreeBin, "rechunk", "oci:"+layout+":v1", "oci:"+layout+":v2")))
	if d1 != d2 {
		t.Errorf("rechunk of a rechunked image: manifest %s, the first %s", d2, d1)
	}
	var cfg v1.Image
	if err := json.Unmarshal([]byte(must(t, runCmd(t, nil, "skopeo", "inspect", "--config", "--raw", "oci:"+layout+":v2"))), &cfg); err != nil {
		t.Fatal(err)
	}
	if len(cfg.History) != len(cfg.RootFS.DiffIDs) || len(cfg.History) < 10 {
		t.Errorf("%d history entries for %d layers", len(cfg.History), len(cfg.RootFS.DiffIDs))
	}

	repo := filepath.Join(dir, "repo")
	ocitreeInit(t, repo, "bare-user")
	ocitreeCommit(t, repo, "os", src, commitOpts{})
	must(t, runCmdEnv(t, env, nil, ocitreeBin, "rechunk", "--repo", repo, "os", "oci:"+layout+":v3"))
	var c3 v1.Image
	if err := json.Unmarshal([]byte(must(t, runCmd(t, nil, "skopeo", "inspect", "--config", "--raw", "oci:"+layout+":v3"))), &c3); err != nil {
		t.Fatal(err)
	}
	if strings.Join(digests(c3.RootFS.DiffIDs), " ") != strings.Join(digests(cfg.RootFS.DiffIDs), " ") {
		t.Errorf("--repo gives other layers than --rootfs of the same tree")
	}

	for _, args := range [][]string{
		{"rechunk", "--rootfs", src, "--repo", repo, "oci:" + layout + ":bad"},
		{"rechunk", "oci:" + layout + ":v1"},
		{"rechunk", "--compression", "lz4", "oci:" + layout + ":v1", "oci:" + layout + ":bad"},
		{"rechunk", "--label", "=x", "oci:" + layout + ":v1", "oci:" + layout + ":bad"},
	} {
		r := ocitree(t, args...)
		if r.code != 2 {
			t.Errorf("%s: exit %d, want 2 (usage)\n%s", r.cmdline, r.code, r)
		}
	}
	if r := runCmd(t, nil, "skopeo", "inspect", "oci:"+layout+":bad"); r.code == 0 {
		t.Errorf("a refused rechunk wrote oci:%s:bad", layout)
	}
}

func digests[T interface{ String() string }](ds []T) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.String())
	}
	return out
}
