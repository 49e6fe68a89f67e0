# smtpgate — the two commands a new user needs:
#   make run    run smtpgate on its embedded default (capture mode, SQLite under ./data,
#               self-signed TLS, SMTP on 2587 STARTTLS and 2465 TLS, HTTP API on 8025)
#   make test   run every test (unit, conformance, protocol, real clients, crash, fuzz seeds)

GO        ?= go
PG_DSN    ?= postgres://postgres@127.0.0.1:5432/test?sslmode=disable
GOTESTFLAGS ?=
BIN       := bin

.PHONY: run build test test-go test-deps vet bench bench-go bench-relay fuzz clean

run:
	$(GO) run ./cmd/smtpgate serve

build:
	$(GO) build -o $(BIN)/smtpgate ./cmd/smtpgate
	$(GO) build -o $(BIN)/smtpload ./cmd/smtpload

# JavaScript clients the tests drive (nodemailer, @mailsac/api); installed from
# the committed lock files.
test-deps:
	@for d in web/testdata/mailsac-js e2e/testdata/js; do \
	  if [ -f $$d/package-lock.json ] && [ ! -d $$d/node_modules ]; then \
	    echo "npm ci --prefix $$d"; npm ci --prefix $$d --no-audit --no-fund --loglevel=error || exit 1; \
	  fi; \
	done

vet:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	cd third_party/go-smtp && $(GO) vet ./...
	cd third_party/go-msgauth && $(GO) vet ./dkim/

test: test-deps vet
	SMTPGATE_PG_DSN="$(PG_DSN)" $(GO) test -count=1 -timeout 20m $(GOTESTFLAGS) ./...
	cd third_party/go-smtp && $(GO) test -count=1 ./...
	cd third_party/go-msgauth && $(GO) test -count=1 ./...

# The load generator against a real smtpgate, then the Go benchmarks of the
# hot paths (in this order: the PostgreSQL benchmarks leave the database busy
# for a while after they seed it).
bench: build
	./bench/capture.sh
	$(GO) test -run '^$$' -bench . -benchmem -benchtime 2s ./proxy ./store/... ./summary ./features/... ./web ./policy

# Relay throughput: messages DELIVERED per second through smtpgate (DKIM
# Ed25519, click and open tracking) and through a private Postfix, both to
# Postfix's smtp-sink (bench/relay.sh; the Postfix half needs root).
RELAY_N ?= 10000
bench-relay: build
	./bench/relay.sh $(RELAY_N)

fuzz:
	@for t in $$(grep -rl --include='*_test.go' --exclude-dir=third_party '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$t/*_test.go | sed 's/func //'); do \
	    echo "== $$t $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime 30s $$t || exit 1; \
	  done; \
	done

clean:
	rm -rf $(BIN)
