# trainyard-codegen: the managed Python env and the tests that execute generated modules.
#   make pyenv          create (or reuse) the managed env at $(PYENV_DIR)
#   make test-codegen   cargo tests of codegen + synth, then the real Python execution tests and
#                       the static checks of a seeded sample of generated configs
#                       (TRAINYARD_CODEGEN_SAMPLES=N for a larger sample)
#   make doctor-pyenv   versions of every component of the env

PYENV_DIR ?= $(CURDIR)/.venv-tf
PYENV_PY := $(PYENV_DIR)/bin/python
PYENV_STAMP := $(PYENV_DIR)/.trainyard-env-stamp

.PHONY: pyenv test-codegen doctor-pyenv bench-codegen

# The install script is idempotent: it reuses the env when its stamp matches the pins.
pyenv:
	bash python-env/install.sh $(PYENV_DIR)

test-codegen: pyenv
	$(CARGO) test -p trainyard-synth -p trainyard-codegen
	$(CARGO) build -p trainyard-serve
	TRAINYARD_PYTHON=$(PYENV_PY) TF_USE_LEGACY_KERAS=1 TRAINYARD_SERVE_BIN=$(CURDIR)/target/debug/trainyard-serve \
		$(CARGO) test -p trainyard-codegen --test python_exec -- --ignored --test-threads=2 --nocapture
	$(CARGO) build -p trainyard-serve
	TRAINYARD_PYTHON=$(PYENV_PY) TRAINYARD_SERVE_BIN=$(CURDIR)/target/debug/trainyard-serve \
		$(CARGO) test -p trainyard-codegen --test generated_configs -- --ignored --nocapture

doctor-pyenv: pyenv
	TRAINYARD_PYTHON=$(PYENV_PY) $(CARGO) test -q -p trainyard-codegen --test python_exec -- --ignored --exact doctor_reports_every_component --nocapture

# Benchmark (not a test): generated retrieval trainer vs a tutorial-style TFRS trainer.
BENCH_SIZE ?= small
bench-codegen: pyenv
	bash benches/codegen_trainer_throughput.sh $(BENCH_SIZE)

TEST_TARGETS += test-codegen
