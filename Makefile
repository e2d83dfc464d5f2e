# ocitree: the two commands are `make demo` and `make test` (see README.md).
SHELL := /bin/bash
export CGO_ENABLED := 0
export PATH := $(PATH):/usr/local/go/bin
TAGS := containers_image_openpgp containers_image_storage_stub containers_image_docker_daemon_stub
GO ?= go
BIN := bin/ocitree

.PHONY: all build demo test test-deps unit vet bench fuzz clean check-clone

all: build

build:
	$(GO) build -tags "$(TAGS)" -trimpath -o $(BIN) ./cmd/ocitree

# The main job end to end on the bundled fixture OS in a throwaway directory.
demo: build
	bash scripts/demo.sh $(BIN)

# Installs what the tests need (apt-get, when missing), then runs every test.
# The QEMU boot test (integration/boot) runs after the rest, alone: under TCG
# it wants both cores, and beside the integration package both would crawl.
test: test-deps vet
	$(GO) test -tags "$(TAGS)" -count=1 -timeout 30m $$($(GO) list ./... | grep -v /integration/boot)
	$(GO) test -tags "$(TAGS)" -count=1 -timeout 40m -v ./integration/boot/

test-deps:
	bash scripts/test-deps.sh

# The step before submitting: `git clone` of HEAD into a temporary directory
# with nothing beside it (no shared folder), then `CI=true make test` there.
check-clone:
	bash scripts/check-clone.sh

vet:
	$(GO) vet -tags "$(TAGS)" ./...

# Every test that needs neither root nor the peers (ostree, skopeo, umoci,
# docker-registry, sqlite3, rpmbuild): -short skips those, whatever the machine
# has. The integration tests are left out.
unit:
	$(GO) test -short -tags "$(TAGS)" ./ostree/... ./fixtures/... ./encap/... ./oci/... ./cmd/...

# Speed against the peers, measured in the same run (not part of `make test`).
bench:
	bash bench/run.sh
	$(GO) test -tags "$(TAGS)" -run '^$$' -bench 'BenchmarkApply(DeepChain|ManyEntries)' -benchtime 1x ./encap/derived/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzRoundTrip -fuzztime 60s ./ostree/gvariant/
	$(GO) test -run '^$$' -fuzz FuzzApply -fuzztime 5m ./encap/derived/
	$(GO) test -run '^$$' -fuzz FuzzImportChunkLayer -fuzztime 5m ./encap/ostreetar/

clean:
	rm -rf bin
