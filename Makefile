# Arena — the two commands a fresh machine needs are `make run` and `make test`.
# Go modules come through the module proxy on first use; Debian packages the
# tests use (nats-server, the bench's peer system) are installed when missing.

GO        ?= go
PKGS      ?= ./...
# FUZZTIME is a count of executions, not a duration: go1.26's fuzz coordinator
# can report its own -fuzztime deadline as a failure (golang/go#75804, fixed
# in go1.27), and a count has no deadline to race.
FUZZTIME  ?= 3000x
FUZZ_TIMEOUT ?= 3m
RACE_TIMEOUT ?= 15m
ARGS      ?=

.PHONY: run build test deps vet cross race fuzz-smoke bench clean

## run: the embedded default — one node on 127.0.0.1:8080 with dev access and data in ./data
run:
	$(GO) run ./cmd/arena serve --dev $(ARGS)

## build: the arena binary in ./bin
build:
	$(GO) build -o bin/arena ./cmd/arena

## test: vet, the cross builds, every test under the race detector, then a short run of every fuzz target
test: deps vet cross race fuzz-smoke

## deps: Debian packages the tests drive as real clients and peers, installed
## only when missing: nats-server (the bench's peer system), chromium (browser
## tests of the JS SDK, demo and dashboard), mosquitto-clients (MQTT tests).
DEB_DEPS = nats-server:nats-server chromium:chromium mosquitto_pub:mosquitto-clients
deps:
	@missing=""; for pair in $(DEB_DEPS); do \
		command -v $${pair%%:*} >/dev/null 2>&1 || missing="$$missing $${pair#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:$$missing"; \
		SUDO=$$( [ "$$(id -u)" -eq 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing >/dev/null; \
	fi

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { echo "gofmt needed on:"; gofmt -l .; exit 1; }
	$(GO) vet $(PKGS)

## cross: the arena binary builds for developers' machines too (macOS,
## Windows): pinning, the idle watch and the precise CPU clock are Linux's,
## and each has a fallback elsewhere
CROSS = darwin/arm64 windows/amd64
cross:
	@for p in $(CROSS); do echo "build $$p"; GOOS=$${p%/*} GOARCH=$${p#*/} $(GO) build -o /dev/null ./cmd/arena || exit 1; done

race:
	$(GO) test -race -count=1 -timeout $(RACE_TIMEOUT) $(PKGS)

## fuzz-smoke: every Fuzz target for $(FUZZTIME) executions each (go test -fuzz takes
## one target at a time); -timeout still stops an input that hangs
fuzz-smoke:
	@set -e; for pkg in $$($(GO) list $(PKGS)); do \
		for target in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$target"; start=$$(date +%s); \
			$(GO) test -run '^$$' -fuzz "^$$target$$" -fuzztime $(FUZZTIME) -timeout $(FUZZ_TIMEOUT) $$pkg > /tmp/arena-fuzz.log 2>&1 || { cat /tmp/arena-fuzz.log; exit 1; }; \
			echo "  $$(( $$(date +%s) - start ))s, $$(grep -o 'execs: [0-9]*' /tmp/arena-fuzz.log | tail -1)"; \
		done; \
	done; echo "fuzz smoke passed"

## bench: the Go micro-benchmarks (figures in README.md)
bench:
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s $(PKGS)

clean:
	rm -rf bin data
