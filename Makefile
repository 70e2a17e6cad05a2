# Berth — build, run and test. See README.md.
GO            ?= go
BIN           := $(CURDIR)/bin
TOOLS         := $(CURDIR)/bin/tools
VERSION       ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS       := -X main.version=$(VERSION)
BERTH_DATA_DIR ?= $(CURDIR)/data
export BERTH_DATA_DIR

# Pinned versions of the tools the tests drive.
CRANE_VERSION       := v0.22.1
CONFORMANCE_VERSION := v0.0.0-20260831232431-97274622c111
REGISTRY_VERSION    := v3.1.2

.PHONY: build run test test-unit test-e2e conformance bench tools tools-bench vet fmt clean

build:
	CGO_ENABLED=0 $(GO) build -ldflags "$(LDFLAGS)" -o $(BIN)/berth ./cmd/berth

## run: start Berth on its embedded default (SQLite, files, in-process workers) on localhost:5001
run: build
	$(BIN)/berth serve

## test: every test: vet, unit tests on SQLite and PostgreSQL, task tests on Redis,
## end-to-end tests with real clients, and the OCI conformance suite
test: build tools vet
	PATH="$(TOOLS):$$PATH" BERTH_BINARY=$(BIN)/berth $(GO) test -count=1 -timeout 40m ./...

test-unit: vet
	$(GO) test -count=1 ./core/... ./api/... ./tasks/... ./plugins/... ./internal/...

test-e2e: build tools
	PATH="$(TOOLS):$$PATH" BERTH_BINARY=$(BIN)/berth $(GO) test -count=1 -v -timeout 40m ./test/...

## conformance: the OCI distribution-spec conformance suite against a real berth serve
conformance: build tools
	PATH="$(TOOLS):$$PATH" BERTH_BINARY=$(BIN)/berth $(GO) test -count=1 -v -run 'TestConformance' ./test/

## bench: Berth and the reference registry side by side; writes docs/benchmarks.md
bench: build tools tools-bench
	PATH="$(TOOLS):$$PATH" BERTH_BINARY=$(BIN)/berth BERTH_BENCH=1 $(GO) test -count=1 -v -timeout 60m -run 'TestBenchmark' ./test/

tools: $(TOOLS)/crane $(TOOLS)/conformance $(TOOLS)/registry

tools-bench: $(TOOLS)/registry

$(TOOLS)/crane:
	GOBIN=$(TOOLS) $(GO) install github.com/google/go-containerregistry/cmd/crane@$(CRANE_VERSION)

$(TOOLS)/conformance:
	GOBIN=$(TOOLS) $(GO) install github.com/opencontainers/distribution-spec/conformance@$(CONFORMANCE_VERSION)

$(TOOLS)/registry:
	GOBIN=$(TOOLS) $(GO) install github.com/distribution/distribution/v3/cmd/registry@$(REGISTRY_VERSION)

vet:
	$(GO) vet ./...

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BIN)
