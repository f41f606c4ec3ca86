"""Registry reads, and the one exception hierarchy."""

from __future__ import annotations

import pytest
from conftest import config

import trainyard
import trainyard.exceptions
from trainyard import NotFound


def test_registry_models_versions_and_check_name(platform: trainyard.Platform) -> None:
    t = platform.training
    a1 = t.create("alpha", config())
    a2 = t.create("alpha", config())
    t.create("beta", config("ranking"), ml_model="other")
    models = platform.registry.list()
    assert sorted(m.model_name for m in models) == ["alpha", "beta"]
    alpha = next(m for m in models if m.model_name == "alpha")
    assert platform.registry.list("other")[0].model_type == "ranking"
    assert [r.id for r in platform.registry.versions(alpha.id)] == [a2.id, a1.id], "newest first"
    assert platform.registry.get(alpha.id) == alpha
    assert repr(alpha) == f"RegisteredModel(id={alpha.id}, ml_model='default', model_name='alpha', model_type='retrieval', total_versions=0)"
    assert trainyard.RegisteredModel.from_dict(alpha.to_dict()) == alpha
    check = platform.registry.check_name("alpha")
    assert check.exists and check.registered_model_id == alpha.id
    assert not platform.registry.check_name("alpha", ml_model="other").exists
    with pytest.raises(NotFound, match="registered model 42 not found"):
        platform.registry.get(42)
    with pytest.raises(NotFound):
        platform.registry.versions(42)


def test_exception_hierarchy() -> None:
    base = trainyard.TrainyardError
    assert issubclass(base, Exception)
    for cls in (
        trainyard.ValidationError,
        trainyard.NotFound,
        trainyard.Conflict,
        trainyard.InvalidTransition,
        trainyard.StorageError,
        trainyard.BackendError,
    ):
        assert issubclass(cls, base) and cls is not base
        assert getattr(trainyard.exceptions, cls.__name__) is cls
    assert issubclass(trainyard.MetricsError, trainyard.ValidationError)
    assert not issubclass(trainyard.NotFound, trainyard.ValidationError)
    assert trainyard.NotFound.__module__ == "trainyard"
    # The matching builtins, and only those.
    assert issubclass(trainyard.ValidationError, ValueError)
    assert issubclass(trainyard.MetricsError, ValueError)
    assert issubclass(trainyard.NotFound, LookupError) and not issubclass(trainyard.NotFound, KeyError)
    assert issubclass(trainyard.StorageError, OSError)
    plain: tuple[type[trainyard.TrainyardError], ...] = (
        trainyard.Conflict,
        trainyard.InvalidTransition,
        trainyard.BackendError,
        trainyard.TrainyardError,
    )
    for plain_cls in plain:
        assert not issubclass(plain_cls, (ValueError, LookupError, OSError)), plain_cls
    assert trainyard.TrainyardError.__doc__ == "Base class of every error trainyard raises."


def test_errors_are_caught_as_builtins_with_their_message_and_cause(platform: trainyard.Platform) -> None:
    with pytest.raises(LookupError) as missing:
        platform.training.get(4242)
    assert isinstance(missing.value, NotFound)
    assert str(missing.value) == "training run 4242 not found", "a LookupError, not a quoting KeyError"
    assert (missing.value.entity, missing.value.id) == ("training run", "4242")
    with pytest.raises(ValueError) as bad:
        platform.training.create("x", {"model_config": {"model_type": "nope"}})
    assert isinstance(bad.value, trainyard.ValidationError)
    # The core error's source (the ValidationError of a field) is the exception's cause.
    cause = bad.value.__cause__
    assert isinstance(cause, Exception) and not isinstance(cause, trainyard.TrainyardError)
    assert str(cause) == f"{bad.value.field}: {bad.value.reason}"
    assert str(bad.value) == f"invalid input: {cause}"
    assert missing.value.__cause__ is None, "a NotFound has no source"


def test_every_error_is_catchable_as_the_base(platform: trainyard.Platform) -> None:
    with pytest.raises(trainyard.TrainyardError):
        platform.training.get(1)
    with pytest.raises(trainyard.TrainyardError):
        platform.training.create("")
