"""The one exception hierarchy of trainyard (raised by the native module).

TrainyardError
├── ValidationError      bad input: ``field`` and ``reason``
│   └── MetricsError     a training_metrics.json of the wrong shape
├── NotFound             ``entity`` and ``id``
├── Conflict             uniqueness, a state that refuses the operation, a concurrent write
├── InvalidTransition    ``from_status`` and ``event`` of the run state machine
├── StorageError         the store failed
└── BackendError         an executor/registry/deployer/scheduler failed or is not configured
"""

from trainyard._native import (
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
    "InvalidTransition",
    "MetricsError",
    "NotFound",
    "StorageError",
    "TrainyardError",
    "ValidationError",
]
