# trainyard-serve as a drop-in TF Serving, against real exported models.
#   make test-serve-api   gRPC: PredictionService.Predict / GetModelMetadata and
#                         ModelService.GetModelStatus called through TF Serving's official
#                         Python client (tensorflow-serving-api, grpcio and protobuf as pinned in
#                         the managed env's lock), compared with the REST answers for the same
#                         instances; signature_name + b64 over REST; the Prometheus metrics
#                         counting both (tests/serve_grpc.rs + tests/grpc_client.py).
#                         Versions: a version pushed under a bounded load is warmed up (TF
#                         Serving's warm-up file) and swapped in with zero failed requests, the
#                         old one unloaded; /versions/N and /labels/L (tests/serve_versions.rs).
# The gRPC code is generated at build time (build.rs: tonic-build + protoc-bin-vendored, no
# system protoc). The test models come from serve.mk's `serve-test-models`.

.PHONY: test-serve-api

test-serve-api: serve-test-models
	TRAINYARD_PYTHON=$(PYENV_PY) TRAINYARD_SERVE_TEST_MODELS=$(CURDIR)/target/serve-test-models \
		$(CARGO) test -p trainyard-serve --test serve_grpc --test serve_versions -- --ignored --test-threads=1

TEST_TARGETS += test-serve-api
