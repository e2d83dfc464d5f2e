// Package contrib holds the host integration files ocitree ships (systemd
// units) so that rootfs prepare can install them into a tree.
package contrib

import "embed"

//go:embed *.service *.timer
var files embed.FS

// UnitDir is where the units are installed in a tree.
const UnitDir = "usr/lib/systemd/system"

// Enabled are the links that enable the units in a tree (as systemctl
// enable would make them under usr/lib): path → target.
func Enabled() map[string]string {
	return map[string]string{
		UnitDir + "/multi-user.target.wants/ocitree-finalize.service": "../ocitree-finalize.service",
		UnitDir + "/timers.target.wants/ocitree-update.timer":         "../ocitree-update.timer",
	}
}

// Units returns the unit files as tree path (under UnitDir) → content.
func Units() map[string][]byte {
	ents, err := files.ReadDir(".")
	if err != nil {
		panic(err) // embedded: cannot fail
	}
	m := map[string][]byte{}
	for _, e := range ents {
		b, err := files.ReadFile(e.Name())
		if err != nil {
			panic(err)
		}
		m[UnitDir+"/"+e.Name()] = b
	}
	return m
}
