# trainyard: `make demo` runs the main job on embedded defaults; `make test` runs every test.
# Both do their own set-up. Fragments in mk/ add their own targets and append to TEST_TARGETS.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
TEST_TARGETS :=

-include mk/*.mk

.PHONY: all build lint test test-rust test-postgres demo clean-demo

all: build

build:
	$(CARGO) build --workspace --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test --workspace

# The PostgreSQL variants of the store suite (and other tests marked `postgres`) against a real
# server started on a free local port and stopped afterwards.
PG_DIR := target/pg-test
test-postgres:
	@rm -rf $(PG_DIR); url=$$(bash scripts/pg-test-server.sh start $(PG_DIR)) || exit 1; \
	TRAINYARD_TEST_POSTGRES_URL=$$url $(CARGO) test --workspace -- --ignored postgres; rc=$$?; \
	bash scripts/pg-test-server.sh stop $(PG_DIR); exit $$rc

test: lint test-rust test-postgres $(TEST_TARGETS)
	@echo "make test: all suites passed ($(strip lint test-rust test-postgres $(TEST_TARGETS)))"

demo:
	$(CARGO) build -p trainyard-cli
	bash scripts/demo.sh

clean-demo:
	rm -rf demo-project
