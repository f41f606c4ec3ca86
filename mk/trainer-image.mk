# trainyard's trainer image (deploy/trainer/): the static checks of the Dockerfile and
# cloudbuild.yaml run in plain `cargo test` (crates/trainyard/tests/trainer_image.rs); here, in
# the managed env built from the same python-env files, the link between env and image is
# checked (install.sh's stamp, no unpinned distribution) and trainyard's evaluator, split
# executor and generated modules are imported; then a local run that asks for GPUs where none is
# visible must fail its train stage with GpuNotVisibleError.

.PHONY: test-trainer-image
test-trainer-image: pyenv
	TRAINYARD_PYTHON=$(PYENV_PY) $(CARGO) test -p trainyard --test trainer_image -- --include-ignored
	TRAINYARD_PYTHON=$(PYENV_PY) $(CARGO) test -p trainyard --test gpu_not_visible -- --ignored --test-threads=1

TEST_TARGETS += test-trainer-image
