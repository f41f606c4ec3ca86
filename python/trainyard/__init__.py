"""trainyard: train, schedule and register TensorFlow Recommenders models.

    >>> import trainyard
    >>> platform = trainyard.Platform.init("my-project")
    >>> run = platform.training.create("product-retrieval", {"training_params": {"epochs": 5}})
    >>> run.status
    'pending'

Every operation has a blocking form (the GIL is released while it runs) and an awaitable
``*_async`` form. Errors are subclasses of :class:`TrainyardError`.

Registered versions and endpoints: ``platform.registry.push(run_id)``,
``platform.deployments.deploy(run_id)``, then
``trainyard.predict(endpoint.service_url, [{"customer_id": "C1", ...}])``.

Run insights: ``platform.insights.statistics(run_id)``, ``.schema(run_id)``,
``.weight_stats(run_id)``, ``.logs(run_id)``, and ``platform.insights.backfill()``.
"""

import atexit as _atexit
import os as _os

from trainyard import codegen, config_types
from trainyard._native import (
    BackfillReport,
    ControlPlane,
    DeploymentService,
    DeploymentView,
    Endpoint,
    FireOutcome,
    InsightsService,
    ModelListing,
    ModelPage,
    ModelSummary,
    ModelVersion,
    NameCheck,
    Platform,
    RegisteredModel,
    RegistryEvent,
    RegistryService,
    Run,
    RunLogs,
    RunPage,
    RunSchema,
    RunStatistics,
    RunWeightStats,
    Schedule,
    ScheduleService,
    TrainingService,
    __version__,
    predict,
    predict_async,
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

# Results of awaitables that are still being handed to Python finish before the interpreter
# finalizes (a runtime thread caught by finalization would abort the process).
from trainyard._native import _before_exit

_atexit.register(_before_exit)

# A fork while another thread holds a lock (inside a call, or inside SQLite) would leave it held
# in the child: the hooks let calls finish and hold SQLite's global locks across the fork. The
# child builds its own runtime and reopens its stores.
if hasattr(_os, "register_at_fork"):
    from trainyard._native import _after_fork, _before_fork

    _os.register_at_fork(before=_before_fork, after_in_parent=_after_fork, after_in_child=_after_fork)

__all__ = [
    "BackendError",
    "BackfillReport",
    "Conflict",
    "ControlPlane",
    "DeploymentService",
    "DeploymentView",
    "Endpoint",
    "FireOutcome",
    "InsightsService",
    "InvalidTransition",
    "MetricsError",
    "ModelListing",
    "ModelPage",
    "ModelSummary",
    "ModelVersion",
    "NameCheck",
    "NotFound",
    "Platform",
    "RegisteredModel",
    "RegistryEvent",
    "RegistryService",
    "Run",
    "RunLogs",
    "RunPage",
    "RunSchema",
    "RunStatistics",
    "RunWeightStats",
    "Schedule",
    "ScheduleService",
    "StorageError",
    "TrainingService",
    "TrainyardError",
    "ValidationError",
    "__version__",
    "codegen",
    "config_types",
    "predict",
    "predict_async",
]
