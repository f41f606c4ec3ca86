# The Python wheel: build it with maturin, install it into a fresh venv, run the
# pytest suite, mypy's stubtest on the stubs (and mypy --strict on the tests and
# the example, which use them), and the notebook example headless.
#   make test-python   everything above, and the check that python/trainyard/config_types.py
#                      is what scripts/gen-config-types.py makes of the REST API's schemas
#   make wheel         just the wheel, into target/wheels
#   make python-config-types   rewrites python/trainyard/config_types.py (the TypedDicts of
#                      the config dicts) from the freshly built wheel's OpenAPI document
#   make python-stubs  rewrites the generated sections of python/trainyard/_native.pyi (the
#                      service operations and their _async twins) from the signatures the
#                      bindings declare next to them (the wheel's _native._stubs());
#                      test-python checks both files are current
#
# One end-to-end test (python/tests/test_serving_e2e.py) deploys a real SavedModel with
# trainyard-serve: test-python builds the server and the test models of mk/serve.mk (which need
# the managed env, `make pyenv`) and hands their paths to pytest.
#
# .venv-py holds the pinned tools (maturin, pytest, mypy, pandas, matplotlib); it is rebuilt
# only when python/requirements-dev.txt changes (stamp file). .venv-py-wheel is created fresh on
# every run and gets only the wheel; the tools reach it through a .pth file, so nothing but the
# wheel provides `trainyard` there.

PY_BASE ?= $(firstword $(wildcard /usr/local/bin/python3.11 $(HOME)/.pyenv/versions/3.11.7/bin/python3.11) python3)
PY_TOOLS := .venv-py
PY_WHEEL_VENV := .venv-py-wheel
PY_REQS := python/requirements-dev.txt
WHEEL_DIR := target/wheels
# maturin runs the `cargo` on PATH over the shared target dir; the dev profile (deps at
# opt-level 1) keeps a warm rebuild to seconds.
MATURIN_FLAGS ?= --profile dev --strip

# Other CPythons the abi3 wheel is smoke-tested on (those present on this machine).
PY_ABI3_SMOKE ?= $(wildcard $(HOME)/.pyenv/versions/3.9*/bin/python3 $(HOME)/.pyenv/versions/3.13*/bin/python3)

.PHONY: test-python wheel python-config-types python-stubs py-tools-venv

py-tools-venv:
	$(call tool-venv,$(PY_TOOLS),$(PY_REQS),$(PY_BASE))

wheel: py-tools-venv
	rm -f $(WHEEL_DIR)/trainyard-*.whl
	$(PY_TOOLS)/bin/maturin build $(MATURIN_FLAGS) -o $(WHEEL_DIR) -i $(PY_TOOLS)/bin/python

PY_E2E_ENV = TRAINYARD_SERVE_BIN=$(CURDIR)/target/debug/trainyard-serve TRAINYARD_PYTHON=$(PYENV_PY) \
	TRAINYARD_SERVE_TEST_MODELS=$(SERVE_MODELS)

# A fresh venv with just the wheel.
define py-wheel-venv
	rm -rf $(PY_WHEEL_VENV)
	$(PY_BASE) -m venv $(PY_WHEEL_VENV)
	$(PY_WHEEL_VENV)/bin/pip install -q --disable-pip-version-check --no-index --no-deps $(WHEEL_DIR)/trainyard-*.whl
endef

PY_CONFIG_TYPES := python/trainyard/config_types.py

python-config-types: wheel
	$(py-wheel-venv)
	$(PY_WHEEL_VENV)/bin/python scripts/gen-config-types.py $(PY_CONFIG_TYPES)

PY_STUB := python/trainyard/_native.pyi

python-stubs: wheel
	$(py-wheel-venv)
	$(PY_WHEEL_VENV)/bin/python scripts/gen-stubs.py $(PY_STUB)

test-python: wheel serve-test-models
	$(CARGO) build -p trainyard-serve
	$(py-wheel-venv)
	$(PY_WHEEL_VENV)/bin/python scripts/gen-config-types.py --check $(PY_CONFIG_TYPES)
	$(PY_WHEEL_VENV)/bin/python scripts/gen-stubs.py --check $(PY_STUB)
	$(PY_WHEEL_VENV)/bin/python -c "import trainyard, sys; assert 'site-packages' in trainyard.__file__, trainyard.__file__; print('wheel', trainyard.__version__, 'imports in a fresh venv')"
	$(PY_TOOLS)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])" \
		> $$($(PY_WHEEL_VENV)/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")/zz-trainyard-tools.pth
	cd python/tests && MPLBACKEND=Agg $(PY_E2E_ENV) $(CURDIR)/$(PY_WHEEL_VENV)/bin/python -m pytest -q -p no:cacheprovider -rs .
	cd python/tests && $(CURDIR)/$(PY_WHEEL_VENV)/bin/python -m mypy.stubtest trainyard --mypy-config-file $(CURDIR)/python/mypy.ini
	cd python/tests && $(CURDIR)/$(PY_WHEEL_VENV)/bin/python -m mypy --config-file $(CURDIR)/python/mypy.ini . $(CURDIR)/examples/notebooks/retraining_tour.py
	rm -rf target/python-tour
	cd python/tests && MPLBACKEND=Agg $(PY_E2E_ENV) $(CURDIR)/$(PY_WHEEL_VENV)/bin/python $(CURDIR)/examples/notebooks/retraining_tour.py $(CURDIR)/target/python-tour
	@for py in $(PY_ABI3_SMOKE); do \
		v=target/abi3-venv-$$($$py -c 'import sys; print("%d.%d" % sys.version_info[:2])'); \
		rm -rf $$v && $$py -m venv $$v && $$v/bin/pip install -q --disable-pip-version-check --no-index --no-deps $(WHEEL_DIR)/trainyard-*.whl \
			&& $$v/bin/python python/tests/abi3_smoke.py || exit 1; \
	done

TEST_TARGETS += test-python
