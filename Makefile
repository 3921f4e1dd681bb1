# Aileron: two commands matter on a fresh machine.
#   make demo   build everything, run the example action end to end
#   make test   unit, integration and adversarial tests (what CI runs)

GO      ?= go
BIN     := bin
export CGO_ENABLED := 1

.PHONY: all build demo test test-short check fuzz fuzz-ci bench clean

all: build

# The worker is built first: aileron embeds its sha256 and refuses to start
# any other worker binary (isolation.worker_sha256 in config.toml pins another).
# It is linked statically; ld's three known warnings about that are dropped
# (examples/kit.StaticLinkNotices says why; a test keeps both equal to kit's).
SHELL := /bin/bash
WORKER_FLAGS := -tags netgo,osusergo -ldflags "-linkmode external -extldflags '-static'"
STATIC_LINK_NOTICES := ^\# aileron.dev/aileron/cmd/aileron-worker$$|in function .(directories_next::ProjectDirs::from|<std::sys::net::connection::socket::LookupHost as |loadiJIT_Funcs)|warning: Using '(getpwuid_r|getaddrinfo|dlopen)' in statically linked applications
build:
	set -o pipefail; $(GO) build -trimpath $(WORKER_FLAGS) -o $(BIN)/aileron-worker ./cmd/aileron-worker 2>&1 \
		| { grep -v -E "$(STATIC_LINK_NOTICES)" || true; }
	$(GO) build -trimpath -ldflags "-X aileron.dev/aileron/supervisor.workerSHA256=$$(sha256sum $(BIN)/aileron-worker | cut -d' ' -f1)" -o $(BIN)/aileron ./cmd/aileron

demo: build
	$(GO) run ./examples/demo -bin $(BIN)

# Integration tests reuse the binaries built here (AILERON_TEST_BIN).
test: build check
	AILERON_TEST_BIN=$(CURDIR)/$(BIN) AILERON_STRICT_TESTS=$${AILERON_STRICT_TESTS-1} \
		$(GO) test -race -count=1 -timeout 20m ./...
	$(MAKE) fuzz-ci

# Parsers of untrusted manifests and actions are fuzzed in every test run for
# a short fixed time; `make fuzz` runs every fuzz target longer.
FUZZTIME ?= 30s
fuzz-ci:
	$(GO) test -run '^$$' -fuzz '^FuzzParseManifest$$' -fuzztime 8s ./manifest
	$(GO) test -run '^$$' -fuzz '^FuzzParseAction$$' -fuzztime 8s ./manifest

fuzz:
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f\$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Benchmarks print medians and ratios measured in the same run; the report
# (TestPerformanceReport) is what docs/PERFORMANCE.md quotes.
bench: build
	AILERON_TEST_BIN=$(CURDIR)/$(BIN) AILERON_BENCH=1 $(GO) test -count=1 -v -run '^TestPerformanceReport$$' ./integration/ | grep -v '^=== '
	AILERON_TEST_BIN=$(CURDIR)/$(BIN) $(GO) test -run '^$$' -bench . -benchtime 50x ./integration/ ./broker/... ./worker/... 

test-short: build
	AILERON_TEST_BIN=$(CURDIR)/$(BIN) $(GO) test -short -count=1 ./...

check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) build ./sdk/... ./examples/connectors/...
	$(GO) mod tidy -diff

clean:
	rm -rf $(BIN) .aileron-demo
