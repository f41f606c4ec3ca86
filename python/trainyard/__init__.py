"""trainyard: train, schedule and register TensorFlow Recommenders models.

    >>> import trainyard
    >>> platform = trainyard.Platform.init("my-project")
    >>> run = platform.training.create("product-retrieval", {"training_params": {"epochs": 5}})
    >>> run.status
    'pending'

Every operation has a blocking form (the GIL is released while it runs) and an awaitable
``*_async`` form. Errors are subclasses of :class:`TrainyardError`.
"""

import os as _os

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

# A fork while another thread holds a lock (inside a call, or inside SQLite) would leave it held
# in the child: the hooks let calls finish and hold SQLite's global locks across the fork. The
# child builds its own runtime and reopens its stores.
if hasattr(_os, "register_at_fork"):
    from trainyard._native import _after_fork, _before_fork

    _os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)

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
