# trainyard: `make demo` runs the main job on embedded defaults; `make test` runs every test.
# Both do their own set-up. Fragments in mk/ add their own targets and append to TEST_TARGETS.

CARGO ?= cargo
export CARGO_TERM_COLOR ?= never
TEST_TARGETS :=

-include mk/*.mk

.PHONY: all build lint test test-rust test-postgres demo tour clean-demo

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

# `make test` runs every suite through scripts/test-suites.sh, which ends with each suite's
# wall time. test-setup (the managed env, the binaries) comes first; TEST_BACKGROUND suites run
# in a second lane meanwhile (they run built binaries, no cargo: the shared trained project and
# the quickstart, both mostly waiting on TFX); the suites that read the shared trained project
# (TEST_LATE) come last, to find it built. `make test-sequential` runs them one by one instead.
TEST_BACKGROUND := shared-project test-quickstart
TEST_LATE := test-pipeline test-insights
TEST_FOREGROUND := lint test-rust test-postgres \
	$(filter-out $(TEST_BACKGROUND) $(TEST_LATE),$(TEST_TARGETS)) $(filter $(TEST_LATE),$(TEST_TARGETS))

# Set-up: the Python envs install (pip: mostly downloads and disk) while cargo compiles.
.PHONY: test-setup test-sequential setup-python setup-bins demo-bins
test-setup:
	@$(MAKE) --no-print-directory -j2 setup-python setup-bins

setup-python:
	@$(MAKE) --no-print-directory pyenv && $(MAKE) --no-print-directory mlflow-server-env

setup-bins:
	$(CARGO) build -p trainyard-cli -p trainyard-serve -p trainyard-tests --bins

test:
	@bash scripts/test-suites.sh --first test-setup --background "$(TEST_BACKGROUND)" $(TEST_FOREGROUND)

test-sequential:
	@bash scripts/test-suites.sh test-setup $(TEST_FOREGROUND) $(TEST_BACKGROUND)

# The main job (`trainyard quickstart`): synthetic data, a real local TFX training run, the
# registry, a trainyard-serve endpoint answering a prediction, a weekly schedule. A previous
# demo's endpoint is stopped first.
DEMO_DIR := demo-project
demo:
	@$(MAKE) --no-print-directory -j2 pyenv demo-bins
	@if [ -f $(DEMO_DIR)/trainyard.toml ]; then \
		target/debug/trainyard --project $(DEMO_DIR) undeploy quickstart-retrieval-serving >/dev/null 2>&1 || true; fi
	rm -rf $(DEMO_DIR)
	TRAINYARD_PYTHON=$(PYENV_PY) target/debug/trainyard quickstart --dir $(DEMO_DIR)

demo-bins:
	$(CARGO) build -p trainyard-cli -p trainyard-serve

# A scripted tour of the CLI (pipeline events fed by hand, no training); its deploy and predict
# steps serve the tour's committed model with TensorFlow from the managed env when there is one.
tour:
	$(CARGO) build -p trainyard-cli -p trainyard-serve
	@if [ -x $(PYENV_PY) ]; then TRAINYARD_PYTHON=$(PYENV_PY) bash scripts/demo.sh; else bash scripts/demo.sh; fi

clean-demo:
	@if [ -f $(DEMO_DIR)/trainyard.toml ]; then \
		target/debug/trainyard --project $(DEMO_DIR) undeploy quickstart-retrieval-serving >/dev/null 2>&1 || true; fi
	rm -rf $(DEMO_DIR)
