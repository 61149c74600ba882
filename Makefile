# Gatehouse — build and test entry points. `make test` is what CI runs.
GO      ?= go
BIN     ?= bin/gatehouse
PKGS    ?= ./...
FUZZTIME ?= 30s

.PHONY: all build test lint fuzz clean bench

all: build

build:
	$(GO) build -trimpath -o $(BIN) ./cmd/gatehouse

# Unit, integration, browser and interop tests. Browser tests need Debian's
# chromium and interop tests need `npm ci` in test/interop (.ci/run installs
# both); without them those tests skip and say how to enable them.
test:
	$(GO) vet $(PKGS)
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

# Runs every fuzz target for FUZZTIME each (seed corpora also run in `make test`).
fuzz:
	@for pkg in $$($(GO) list $(PKGS)); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz'); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
	  done; \
	done

# The proxy paths against a bare httputil.ReverseProxy on loopback, in separate
# processes (BENCHMARKS.md). Writes bench/results/<time>.json and latest.json.
# A quick run: make bench BENCHFLAGS="-rounds 1 -duration 1s -sessions 0"
BENCHFLAGS ?=
bench:
	$(GO) build -trimpath -o bin/gatehouse-bench ./bench
	bin/gatehouse-bench -out bench/results $(BENCHFLAGS)

clean:
	rm -rf bin
