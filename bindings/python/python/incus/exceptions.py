"""Exceptions: one class per kind of error the engine reports, all under :class:`IncusError`.

Each class has the HTTP ``status`` the REST API reports it with; ``str(e)`` is the server's
message. A 409 answer is :class:`AlreadyExists` when the message says so and :class:`Busy`
otherwise (Incus uses 409 for both). A failed operation (an action that ran in the
background) raises :class:`InternalError` with the operation's error, :class:`Cancelled` when
it was cancelled.
"""

from ._native import (
    AlreadyExists,
    Busy,
    Cancelled,
    Forbidden,
    IncusError,
    InternalError,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    Unsupported,
)

for _cls in (AlreadyExists, Busy, Cancelled, Forbidden, IncusError, InternalError,
             InvalidInput, NotFound, PreconditionFailed, Unsupported):
    _cls.__module__ = __name__

__all__ = [
    "AlreadyExists",
    "Busy",
    "Cancelled",
    "Forbidden",
    "IncusError",
    "InternalError",
    "InvalidInput",
    "NotFound",
    "PreconditionFailed",
    "Unsupported",
]
