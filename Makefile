# edgefleet — `make help` lists the targets.
GO      ?= go
BIN     ?= bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -s -w -X edgefleet/agent.Version=$(VERSION) -X edgefleet/internal/cli.Version=$(VERSION)
export EDGEFLEET_TESTDATA ?= $(abspath ../shared/testdata)
# PKGS narrows `make test` (PKGS=./models/...). TESTJSON=FILE runs the tests
# with -json, keeps the stream in FILE, prints the usual output and ends with a
# report of failures and skipped tests (scripts/testreport); .ci/run uses it.
PKGS     ?= ./...
TESTJSON ?=
SHELL    := /bin/bash

.DEFAULT_GOAL := help
.PHONY: help build test bench lint demo cross fuzz soak clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-8s %s\n", $$1, $$2}'

build: ## build edge-agent, edge-launcher, fleetd and fleetctl into bin/
	@mkdir -p $(BIN)
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/ ./agent/cmd/... ./fleet/cmd/... ./firmware/cmd/...

test: ## run every test with -race (TESTJSON=FILE adds a report of failures and skips)
ifeq ($(TESTJSON),)
	$(GO) test -race -timeout 25m $(PKGS)
else
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/testreport ./scripts/testreport
	set -o pipefail; $(GO) test -race -json -timeout 25m $(PKGS) | $(BIN)/testreport -json $(TESTJSON)
endif

bench: ## run the benchmarks and print a table
	$(GO) test -run '^$$' -bench . -benchmem -benchtime=$${BENCHTIME:-1x} -timeout 30m ./... 2>&1 | $(GO) run ./scripts/benchtable

lint: ## go vet and staticcheck
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@latest ./...

demo: build ## detect on the test photos, then fleetd + two agents + a model rollout (console on 127.0.0.1:8080)
	BIN=$(BIN) scripts/demo.sh

soak: ## a fleet under continuous faults, then its invariants checked (SOAK=10m; SOAK=30m longer; SEED=N replays)
	SOAK=$${SOAK:-10m} $(GO) run ./scripts/soak

cross: ## static edge-agent/edge-launcher (linux arm64, armv7, amd64), edge-agent-native (arm64, glibc, native TFLite), fleetd/fleetctl (amd64, arm64) into bin/<os>_<arch>/
	GO=$(GO) BIN=$(BIN) VERSION=$(VERSION) scripts/cross.sh

clean: ## remove build outputs
	rm -rf $(BIN) demo-out
