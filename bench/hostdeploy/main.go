// Command hostdeploy is the ocitree side of bench/run.sh's `deploy` row: it
// deploys a commit already in a sysroot's repository the way `ostree admin
// deploy --sysroot DIR --os SR REF` does, through package deploy:
//
//	hostdeploy SYSROOT STATEROOT REF
//
// Under the sysroot lock: the commit is inspected (kernel, usr/etc,
// os-release, kargs.d), checked out with hardlinks into
// ostree/deploy/SR/deploy/CSUM.SERIAL, etc/ is copied from usr/etc and
// merged with the merge deployment's /etc (its kernel arguments are kept),
// the origin records refspec=REF, the boot entries are written with the
// boot/loader swap, then the cleanup and the repository prune run, as
// libostree's simple_write_deployment does after a deploy.
package main

import (
	"fmt"
	"os"

	"github.com/ocitree/ocitree/deploy"
	"github.com/ocitree/ocitree/ostree"
)

const usage = "usage: hostdeploy SYSROOT STATEROOT REF"

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, usage)
		os.Exit(2)
	}
	if err := run(os.Args[1], os.Args[2], os.Args[3]); err != nil {
		fmt.Fprintln(os.Stderr, "hostdeploy:", err)
		os.Exit(1)
	}
}

func run(dir, sr, ref string) error {
	s, err := deploy.Open(dir)
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Lock(); err != nil {
		return err
	}
	c, err := s.Repo.ResolveRev(ref)
	if err != nil {
		return fmt.Errorf("%s: %w", ref, err)
	}
	info, err := deploy.Inspect(s.Repo, c)
	if err != nil {
		return err
	}
	origin, err := ostree.ParseKeyFile("")
	if err != nil {
		return err
	}
	origin.Set("origin", "refspec", ref)
	merge := s.MergeDeployment(sr)
	nd, _, err := s.Deploy(deploy.DeployOptions{Stateroot: sr, Info: info, Origin: origin, Merge: merge})
	if err != nil {
		return err
	}
	if err := s.WriteDeployments(s.SimpleList(nd, merge, false)); err != nil {
		return err
	}
	if _, err := s.PruneRepo(); err != nil {
		return err
	}
	fmt.Println(nd.Dir())
	return nil
}
