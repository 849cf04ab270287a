# Causeway — make targets. `make` alone lists them.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

BIN        := $(CURDIR)/bin
GO         ?= go
KUBE_VER   := v1.37.2
KUBE_LDFLAGS := -s -w -X k8s.io/component-base/version.gitVersion=$(KUBE_VER) \
	-X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37
# Test timeout: a hung test fails here, well inside CI's budget.
TEST_TIMEOUT ?= 30m
FUZZTIME   ?= 3s
TEST_FLAGS   ?=

KUBE_BINS  := $(BIN)/kube-apiserver $(BIN)/kube-controller-manager $(BIN)/kube-scheduler $(BIN)/kubectl
KWOK_BINS  := $(BIN)/kwok $(BIN)/kwokctl $(BIN)/kwok-stages.yaml
TEST_BINS  := $(KUBE_BINS) $(BIN)/etcd $(KWOK_BINS) $(BIN)/fortio
CMDS       := $(filter-out causeway-proxy,$(notdir $(wildcard cmd/*)))

.PHONY: help
help: ## List the targets.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
# The data plane is built static (no cgo, pure-Go resolver): no libc in
# every pod's memory, and it runs on any base image. grpcnotrace leaves out
# gRPC's x/net/trace (and with it html/template): 7 MB of binary, 2 MiB of
# resident memory in every pod.
build: ## Build every Causeway binary into bin/.
	$(GO) build -o $(BIN)/ $(addprefix ./cmd/,$(CMDS))
	CGO_ENABLED=0 $(GO) build -tags grpcnotrace -o $(BIN)/ ./cmd/causeway-proxy

.PHONY: test-bins
test-bins: $(TEST_BINS) ## Build the test world's binaries (kube-*, etcd, kwok, fortio) once; rebuilt when a tool module changes.

# Each tool module's binaries are rebuilt only when its go.mod or go.sum
# changes (grouped targets: one build makes them all).
$(KUBE_BINS) &: hack/tools/kube/go.mod hack/tools/kube/go.sum
	@mkdir -p $(BIN)
	cd hack/tools/kube && $(GO) build -trimpath -ldflags "$(KUBE_LDFLAGS)" -o $(BIN)/ \
		k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
		k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
	@touch $(KUBE_BINS)

$(BIN)/etcd: hack/tools/etcd/go.mod hack/tools/etcd/go.sum
	@mkdir -p $(BIN)
	cd hack/tools/etcd && $(GO) build -trimpath -ldflags "-s -w" -o $@ go.etcd.io/etcd/server/v3

$(KWOK_BINS) &: hack/tools/kwok/go.mod hack/tools/kwok/go.sum hack/tools/kwok/stages/main.go
	@mkdir -p $(BIN)
	cd hack/tools/kwok && $(GO) build -trimpath -ldflags "-s -w" -o $(BIN)/ sigs.k8s.io/kwok/cmd/kwok sigs.k8s.io/kwok/cmd/kwokctl
	cd hack/tools/kwok && $(GO) run ./stages > $(BIN)/kwok-stages.yaml.tmp
	mv $(BIN)/kwok-stages.yaml.tmp $(BIN)/kwok-stages.yaml
	@touch $(KWOK_BINS)

$(BIN)/fortio $(BIN)/helm $(BIN)/controller-gen &: hack/tools/dev/go.mod hack/tools/dev/go.sum
	@mkdir -p $(BIN)
	cd hack/tools/dev && $(GO) build -trimpath -o $(BIN)/ fortio.org/fortio helm.sh/helm/v3/cmd/helm sigs.k8s.io/controller-tools/cmd/controller-gen
	@touch $(BIN)/fortio $(BIN)/helm $(BIN)/controller-gen

$(BIN)/golangci-lint: hack/tools/lint/go.mod hack/tools/lint/go.sum
	@mkdir -p $(BIN)
	cd hack/tools/lint && $(GO) build -trimpath -o $@ github.com/golangci/golangci-lint/v2/cmd/golangci-lint

.PHONY: test
test: test-bins build ## Run every test: unit, envtest and multi-cluster (needs root for the test world's network namespace), then every fuzz target briefly.
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./...
	@# The allocation tests skip under -race (the race detector allocates).
	$(GO) test -count=1 -run 'Allocat' ./gateway/...
	GO=$(GO) FUZZTIME=$(FUZZTIME) hack/fuzz.sh

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME (default 3s) each.
	GO=$(GO) FUZZTIME=$(FUZZTIME) hack/fuzz.sh

.PHONY: test-multicluster
test-multicluster: test-bins build ## Run only the multi-cluster scenarios.
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) ./test/multicluster/...

# The packages under test/bench run whole processes: one iteration is a
# complete measurement run (about 70 s), so they run once, after the
# in-process benchmarks.
.PHONY: bench
bench: test-bins build ## Run the benchmarks (compare runs with benchstat).
	$(GO) test -run '^$$' -bench . -benchmem -count=1 $$($(GO) list ./... | grep -v '/test/bench/')
	$(GO) test -run '^$$' -bench . -benchtime=1x -count=1 ./test/bench/...

.PHONY: generate
generate: $(BIN)/controller-gen ## Generate deepcopy code and CRD manifests.
	hack/generate.sh

.PHONY: verify
verify: $(BIN)/golangci-lint $(BIN)/helm generate ## gofmt, vet, golangci-lint (with dependency-direction rules), chart lint, generated files up to date.
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(BIN)/golangci-lint run ./...
	$(BIN)/helm lint charts/causeway-crds
	@if [ -n "$$(git status --porcelain -- apis charts)" ]; then echo "generated files are out of date; run make generate and commit:"; git status --porcelain -- apis charts; exit 1; fi

.PHONY: demo
demo: test-bins build ## Bring up the cluster-set playground (Ctrl-C to tear it down).
	$(BIN)/causeway demo

.PHONY: clean
clean: ## Remove bin/.
	rm -rf $(BIN)
