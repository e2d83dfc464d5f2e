package boot

import (
	"fmt"
	"io/fs"
	"path"
	"runtime"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
)

// KargsDDir is where bootc images ship kernel argument drop-ins.
const KargsDDir = "usr/lib/bootc/kargs.d"

// RustArch returns the Rust std::env::consts::ARCH name of a GOARCH, the
// names kargs.d's match-architectures uses.
func RustArch(goarch string) string {
	switch goarch {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "386":
		return "x86"
	case "ppc64le", "ppc64":
		return "powerpc64"
	case "loong64":
		return "loongarch64"
	}
	return goarch
}

type kargsFile struct {
	Kargs              []string `toml:"kargs"`
	MatchArchitectures []string `toml:"match-architectures"`
}

// ParseKargsFile parses one kargs.d TOML file and returns its kargs for
// arch (a Rust arch name): nil when match-architectures excludes arch.
// Unknown keys and a missing kargs key are errors, as in bootc.
func ParseKargsFile(name string, data []byte, arch string) ([]string, error) {
	var f kargsFile
	md, err := toml.Decode(string(data), &f)
	if err != nil {
		return nil, fmt.Errorf("%s: malformed TOML: %w; fix or remove the file", name, err)
	}
	if und := md.Undecoded(); len(und) > 0 {
		keys := make([]string, len(und))
		for i, k := range und {
			keys[i] = k.String()
		}
		return nil, fmt.Errorf("%s: unknown key(s) %s; only kargs and match-architectures are allowed", name, strings.Join(keys, ", "))
	}
	if !md.IsDefined("kargs") {
		return nil, fmt.Errorf("%s: missing required key kargs (e.g. kargs = [\"console=ttyS0\"])", name)
	}
	if md.IsDefined("match-architectures") {
		ok := false
		for _, a := range f.MatchArchitectures {
			if a == arch {
				ok = true
			}
		}
		if !ok {
			return nil, nil
		}
	}
	var out []string
	for _, k := range f.Kargs {
		out = append(out, SplitKargs(k)...)
	}
	return out, nil
}

// ReadKargsD reads every *.toml file of usr/lib/bootc/kargs.d in fsys (a
// deployment root or a commit), in sorted name order, and returns the
// concatenated kargs for the running architecture. present is false when
// the directory does not exist.
func ReadKargsD(fsys fs.FS) (kargs []string, present bool, err error) {
	ents, err := fs.ReadDir(fsys, KargsDDir)
	if err != nil {
		if isNotExist(err) {
			return nil, false, nil
		}
		return nil, false, fmt.Errorf("reading %s: %w", KargsDDir, err)
	}
	sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
	arch := RustArch(runtime.GOARCH)
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".toml") || !e.Type().IsRegular() {
			continue
		}
		p := path.Join(KargsDDir, e.Name())
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return nil, true, fmt.Errorf("reading %s: %w", p, err)
		}
		ks, err := ParseKargsFile("/"+p, data, arch)
		if err != nil {
			return nil, true, err
		}
		kargs = append(kargs, ks...)
	}
	return kargs, true, nil
}
