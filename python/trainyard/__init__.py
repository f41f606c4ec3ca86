"""trainyard: train, schedule and register TensorFlow Recommenders models.

    >>> import trainyard
    >>> platform = trainyard.Platform.init("my-project")
    >>> run = platform.training.create("product-retrieval", {"training_params": {"epochs": 5}})
    >>> run.status
    'pending'

Every operation has a blocking form (the GIL is released while it runs) and an awaitable
``*_async`` form. Errors are subclasses of :class:`TrainyardError`.
"""

from trainyard import codegen
from trainyard._native import (
    FireOutcome,
    NameCheck,
    Platform,
    RegisteredModel,
    RegistryService,
    Run,
    RunPage,
    Schedule,
    ScheduleService,
    TrainingService,
    __version__,
)
from trainyard.exceptions import (
    BackendError,
    Conflict,
    InvalidTransition,
    MetricsError,
    NotFound,
    StorageError,
    TrainyardError,
    ValidationError,
)

__all__ = [
    "BackendError",
    "Conflict",
    "FireOutcome",
    "InvalidTransition",
    "MetricsError",
    "NameCheck",
    "NotFound",
    "Platform",
    "RegisteredModel",
    "RegistryService",
    "Run",
    "RunPage",
    "Schedule",
    "ScheduleService",
    "StorageError",
    "TrainingService",
    "TrainyardError",
    "ValidationError",
    "__version__",
    "codegen",
]
