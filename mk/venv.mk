# The stamped tool venvs (.venv-api, .venv-gcp, .venv-tools, .venv-serve-tools, .venv-py, ...):
# one recipe. A venv is reused while its stamp holds the sha256 of its requirements file (and
# its check, if any, passes); otherwise it is rebuilt from scratch and the stamp written last,
# so an interrupted install is never taken for a finished one. The managed TensorFlow env
# (make pyenv) has its own installer, python-env/install.sh.
#
#   some-venv:
#   	$(call tool-venv,DIR,REQUIREMENTS[,BASE_PYTHON][,CHECK])
#
# CHECK is a command run with the venv's python (e.g. `-c "import x"`) that must succeed for the
# venv to count as up to date.

TOOL_BASE_PYTHON ?= $(shell command -v python3.11 || command -v python3)

define tool-venv
@want=$$(sha256sum $(2) | cut -d' ' -f1); \
	if [ -x $(1)/bin/python ] && [ "$$(cat $(1)/.requirements.sha256 2>/dev/null)" = "$$want" ] \
	   $(if $(4),&& $(1)/bin/python $(4) >/dev/null 2>&1); then \
	  echo "$(1): up to date ($(2))"; \
	else \
	  echo "$(1): installing $(2)"; \
	  rm -rf $(1) && $(or $(3),$(TOOL_BASE_PYTHON)) -m venv $(1) && \
	  $(1)/bin/pip install -q --disable-pip-version-check -r $(2) && \
	  echo "$$want" > $(1)/.requirements.sha256; \
	fi
endef

# A comma, for CHECK arguments that need one: $(,)
, := ,
