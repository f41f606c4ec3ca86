# One use case, three front ends: crates/trainyard-cli/tests/front_ends.rs runs the same use
# cases through the CLI, the REST API and the Python wheel and compares the results. Plain
# `cargo test` runs the CLI and REST legs (the Python leg is skipped, saying so); this target
# builds the wheel, installs it alone in a fresh venv and runs all three legs.
#   make test-front-ends

FRONT_ENDS_VENV := .venv-py-front-ends

.PHONY: test-front-ends
test-front-ends: wheel
	rm -rf $(FRONT_ENDS_VENV)
	$(PY_BASE) -m venv $(FRONT_ENDS_VENV)
	$(FRONT_ENDS_VENV)/bin/pip install -q --disable-pip-version-check --no-index --no-deps \
		$(WHEEL_DIR)/trainyard-*.whl
	TRAINYARD_TEST_PYTHON=$(CURDIR)/$(FRONT_ENDS_VENV)/bin/python \
		$(CARGO) test -p trainyard-cli --test front_ends -- --nocapture

TEST_TARGETS += test-front-ends
