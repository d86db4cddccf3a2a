"""``incus``: manage Incus system containers from Python, through a daemon or without one.

Two clients with one object API:

* :class:`Client` talks to a daemon (ours or Incus itself) on its unix socket, or over
  HTTPS with a client certificate (``endpoint=``, ``cert=``, ``verify=``).
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
    "Unsupported", "exceptions", "generate_certificate",
]


def _read(path: Union[str, PathLike]) -> str:
    with open(path, encoding="ascii") as f:
        return f.read()


def generate_certificate(cert: Union[str, PathLike], key: Union[str, PathLike]) -> str:
    """Makes a client certificate and its key at ``cert`` and ``key`` (PEM, ECDSA P-384,
    valid ten years, the key private to its owner) unless both exist already, as
    ``incus remote add`` does. Returns the certificate's PEM text (what a server's trust
    store holds)."""
    return _native.generate_certificate(str(cert), str(key))


class Client(BaseClient):
    """A daemon on its unix socket, or over HTTPS.

    ``socket`` defaults to where the ``incus`` CLI looks: ``INCUS_SOCKET``, else
    ``$INCUS_DIR/unix.socket``, else ``/var/lib/incus/unix.socket``, else
    ``/run/incus/unix.socket``. ``project`` scopes every request (``default``).

    For a remote server, ``endpoint`` is its URL (``https://host[:port]``, port 8443 by
    default), ``cert`` a ``(certificate, key)`` pair of PEM files (see
    :func:`generate_certificate`) and ``verify`` either the path of the server's certificate
    (pinned: that certificate and no other is accepted, as ``incus remote add`` pins it) or
    ``True`` for the system's certificate authorities. A new client becomes trusted with
    :meth:`authenticate` and a trust token. ``endpoint`` may also be a socket path.
    """

    def __init__(self, socket: Union[str, PathLike, None] = None,
                 project: Optional[str] = None, *, endpoint: Optional[str] = None,
                 cert: Optional[tuple[Union[str, PathLike], Union[str, PathLike]]] = None,
                 verify: Union[bool, str, PathLike] = True) -> None:
        if endpoint is not None and socket is not None:
            raise ValueError("give either socket or endpoint, not both")
        if endpoint is not None and endpoint.startswith("https://"):
            if verify is False:
                raise ValueError("verify=False is not supported: pass the server certificate's"
                                 " path to pin it")
            crt, key = (_read(cert[0]), _read(cert[1])) if cert is not None else (None, None)
            server = None if verify is True else _read(verify)
            self._setup(_native.Connection.https(endpoint, crt, key, server, project))
            return
        if endpoint is not None:
            socket = endpoint[len("unix://"):] if endpoint.startswith("unix://") else endpoint
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
