# Docs and Rust examples: every example in crates/trainyard/examples runs (each asserts on its
# own results and ends by printing "<name>: ok"), docs/reference/configuration.md must match
# what the config_reference example generates from the code today, and every shell block of
# README.md and docs/ is checked against the CLI of today (scripts/doc_blocks.py: commands and
# flags against --help, make targets with make -n; blocks marked `<!-- doc-test: run -->` run,
# `<!-- doc-test: run, continued -->` after the one before; the README's tour deploys its model
# to a trainyard-serve on 127.0.0.1, so the managed env (pyenv) gives it TensorFlow).
#   make test-docs        run the examples and the staleness check
#   make docs-reference   regenerate docs/reference/configuration.md and docs/reference/cli.md

DOCS_EXAMPLES := embed_services embed_control_plane generate_code compile_vertex
DOCS_OUT := target/docs

.PHONY: test-docs docs-reference
test-docs: pyenv
	@mkdir -p $(DOCS_OUT)
	@for ex in $(DOCS_EXAMPLES); do \
		echo "example $$ex"; \
		$(CARGO) run -q -p trainyard --example $$ex > $(DOCS_OUT)/$$ex.out 2>&1 \
			|| { cat $(DOCS_OUT)/$$ex.out; exit 1; }; \
		grep -qx "$$ex: ok" $(DOCS_OUT)/$$ex.out \
			|| { cat $(DOCS_OUT)/$$ex.out; echo "$$ex did not finish"; exit 1; }; \
	done
	@$(CARGO) run -q -p trainyard --example config_reference > $(DOCS_OUT)/configuration.md
	@diff -u docs/reference/configuration.md $(DOCS_OUT)/configuration.md \
		|| { echo "docs/reference/configuration.md is stale: run make docs-reference"; exit 1; }
	@$(CARGO) build -q -p trainyard-cli -p trainyard-serve
	@TRAINYARD_PYTHON=$(PYENV_PY) python3 scripts/doc_blocks.py target/debug/trainyard
	@echo "docs: examples ran, configuration reference is current"

docs-reference:
	@mkdir -p docs/reference
	$(CARGO) run -q -p trainyard --example config_reference > docs/reference/configuration.md
	$(CARGO) build -q -p trainyard-cli
	python3 scripts/doc_blocks.py --cli-reference target/debug/trainyard > docs/reference/cli.md

TEST_TARGETS += test-docs
