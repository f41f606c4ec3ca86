"""The one exception hierarchy of trainyard (raised by the native module).

TrainyardError                                (Exception)
├── ValidationError      bad input: ``field`` and ``reason``                  (also ValueError)
│   └── MetricsError     a training_metrics.json of the wrong shape
├── NotFound             ``entity`` and ``id``                                (also LookupError)
├── Conflict             uniqueness, a state that refuses the operation, a concurrent write
├── InvalidTransition    ``from_status`` and ``event`` of the run state machine
├── StorageError         the store failed                                     (also OSError)
└── BackendError         an executor/registry/deployer/scheduler failed or is not configured

Each class also subclasses the builtin that means the same, so ``except ValueError`` or
``except LookupError`` catch what they say. NotFound is a LookupError but not a KeyError (a
KeyError prints its message quoted). Conflict, InvalidTransition and BackendError have no such
builtin: a backend error may be a refused connection, a missing executor or a timeout alike.

The Rust error's chain of sources is the exception's ``__cause__`` chain (plain Exceptions
with each source's message), as in ``raise ValidationError(...) from source``.
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
