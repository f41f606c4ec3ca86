# trainyard: `make demo` runs the main job on embedded defaults; `make test` runs every test.
# Both do their own set-up. Fragments in mk/ add their own targets and append to TEST_TARGETS.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
TEST_TARGETS :=

-include mk/*.mk

.PHONY: all build lint test test-rust demo clean-demo

all: build

build:
	$(CARGO) build --workspace --all-targets

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

test-rust:
	$(CARGO) test --workspace

test: lint test-rust $(TEST_TARGETS)
	@echo "make test: all suites passed ($(strip lint test-rust $(TEST_TARGETS)))"

demo:
	$(CARGO) build -p trainyard-cli
	bash scripts/demo.sh

clean-demo:
	rm -rf demo-project
