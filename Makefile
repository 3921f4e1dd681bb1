# Aileron: two commands matter on a fresh machine.
#   make demo   build everything, run the example action end to end
#   make test   unit, integration and adversarial tests (what CI runs)

GO      ?= go
BIN     := bin
export CGO_ENABLED := 1

.PHONY: all build demo test test-short check fuzz bench clean

all: build

build:
	$(GO) build -trimpath -o $(BIN)/aileron ./cmd/aileron
	$(GO) build -trimpath -o $(BIN)/aileron-worker ./cmd/aileron-worker

demo: build
	$(GO) run ./examples/demo -bin $(BIN)

# Integration tests reuse the binaries built here (AILERON_TEST_BIN).
test: build
	AILERON_TEST_BIN=$(CURDIR)/$(BIN) AILERON_STRICT_TESTS=$${AILERON_STRICT_TESTS-1} \
		$(GO) test -race -count=1 -timeout 20m ./...

test-short: build
	AILERON_TEST_BIN=$(CURDIR)/$(BIN) $(GO) test -short -count=1 ./...

check:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); exit 1)
	$(GO) vet ./...
	GOOS=wasip1 GOARCH=wasm $(GO) build ./sdk/... ./examples/connectors/...
	$(GO) mod tidy -diff

clean:
	rm -rf $(BIN) .aileron-demo
