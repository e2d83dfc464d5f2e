package main

import (
	"path"
	"strings"
	"testing"

	"github.com/ocitree/ocitree/contrib"
)

// TestContribUnitsRunExistingCommands: every ocitree command line in the
// shipped units names a subcommand and flags this CLI has, and every
// enablement link points at a shipped unit.
func TestContribUnitsRunExistingCommands(t *testing.T) {
	units := contrib.Units()
	for _, want := range []string{"ocitree-update.service", "ocitree-update.timer", "ocitree-finalize.service"} {
		if _, ok := units[contrib.UnitDir+"/"+want]; !ok {
			t.Errorf("unit %s not shipped", want)
		}
	}
	n := 0
	for name, data := range units {
		for _, line := range strings.Split(string(data), "\n") {
			k, v, ok := strings.Cut(line, "=")
			if !ok || (k != "ExecStart" && k != "ExecStop") {
				continue
			}
			f := strings.Fields(strings.TrimLeft(v, "-"))
			if len(f) == 0 || f[0] != "/usr/bin/ocitree" {
				continue
			}
			n++
			cmd, rest, err := newRootCmd().Find(f[1:])
			if err != nil || cmd == nil || cmd.Name() == "ocitree" {
				t.Errorf("%s: %s names no ocitree command (%v)", name, line, err)
				continue
			}
			if err := cmd.ParseFlags(rest); err != nil {
				t.Errorf("%s: %s: %v", name, line, err)
			}
		}
	}
	if n != 2 {
		t.Errorf("%d ocitree command lines in the units, want 2 (upgrade, finalize)", n)
	}
	for link, target := range contrib.Enabled() {
		if _, ok := units[path.Join(path.Dir(path.Dir(link)), path.Base(target))]; !ok || !strings.HasPrefix(target, "../") {
			t.Errorf("%s -> %s: not a shipped unit", link, target)
		}
	}
}
