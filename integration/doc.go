// Package integration holds the end-to-end tests: the ocitree binary and its
// packages against the real peers (ostree, skopeo, umoci, docker-registry),
// run by `make test`. It has no code of its own.
package integration
