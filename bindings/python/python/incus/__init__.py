"""``incus``: manage Incus system containers from Python, through a daemon or without one.

Two clients with one object API:

* :class:`Client` talks to a daemon (ours or Incus itself) on its unix socket.
* :class:`Host` runs the engine inside this process on a state directory: no daemon, no
  socket. It runs the daemon's own route code, so it behaves exactly like a ``Client``.

Both are blocking, and release the GIL while the engine works, so threads run in parallel.
:mod:`incus.aio` has the same API as coroutines. Errors raise the classes in
:mod:`incus.exceptions`.

>>> import incus
>>> c = incus.Client()                                      # doctest: +SKIP
>>> inst = c.instances.create({"name": "c1", "source": {"type": "image", "alias": "debian"}})
>>> inst.start()
>>> inst.execute(["echo", "hi"]).stdout
'hi\\n'
"""

from __future__ import annotations

from os import PathLike
from typing import Optional, Union

from . import _native, exceptions
from ._core import BaseClient, EventListener, default_helper
from .exceptions import *  # noqa: F403 - every error class, also at the top level
from .models import (
    ExecResult,
    ExecSession,
    Image,
    Instance,
    InstanceState,
    Network,
    Operation,
    Profile,
    Project,
    Snapshot,
    StoragePool,
    StorageVolume,
)

__version__: str = _native.VERSION["package"]

__all__ = [
    "AlreadyExists", "Busy", "Cancelled", "Client", "EventListener", "ExecResult",
    "ExecSession", "Forbidden", "Host", "Image", "IncusError", "Instance", "InstanceState",
    "InternalError", "InvalidInput", "Network", "NotFound", "Operation",
    "PreconditionFailed", "Profile", "Project", "Snapshot", "StoragePool", "StorageVolume",
    "Unsupported", "exceptions",
]


class Client(BaseClient):
    """A daemon on its unix socket.

    ``socket`` defaults to where the ``incus`` CLI looks: ``INCUS_SOCKET``, else
    ``$INCUS_DIR/unix.socket``, else ``/var/lib/incus/unix.socket``, else
    ``/run/incus/unix.socket``. ``project`` scopes every request (``default``).
    """

    def __init__(self, socket: Union[str, PathLike, None] = None,
                 project: Optional[str] = None) -> None:
        self._setup(_native.Connection.unix(None if socket is None else str(socket), project))


class Host(BaseClient):
    """The engine itself, in this process, on state directory ``path`` (created if new, laid
    out as Incus's: ``database/``, ``storage-pools/``, ``images/``, ...).

    One engine per directory at a time: a second ``Host`` (or a daemon) on the same
    directory raises :class:`~incus.exceptions.Busy`. A new directory gets a ``dir`` pool
    named ``default`` unless ``default_dir_pool=False``. Managed networks are brought up on
    open; instances are not autostarted. ``helper`` is the ``incus-helper`` binary that
    drives liblxc (by default the one inside this package). Needs root, as the daemon does.
    """

    def __init__(self, path: Union[str, PathLike], helper: Union[str, PathLike, None] = None,
                 project: Optional[str] = None, default_dir_pool: bool = True) -> None:
        helper = str(helper) if helper is not None else default_helper()
        self._setup(_native.Connection.embedded(str(path), helper, project, default_dir_pool))

    @property
    def path(self) -> str:
        """The state directory."""
        return str(self._native().state_dir)
