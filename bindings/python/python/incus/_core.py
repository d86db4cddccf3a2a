"""The machinery shared by the blocking and the asyncio API.

Every method that talks to the engine is written once, as a generator that yields
:class:`Call` objects (one native call each) and receives their results. The blocking client
runs the generator by calling the native methods directly (they release the GIL); the asyncio
client awaits their ``_async`` forms. So both APIs do exactly the same requests.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any, Callable, Generator, Optional, TypeVar
from urllib.parse import quote

from . import _native

T = TypeVar("T")

#: A method body: yields native calls, returns the method's result.
Steps = Generator["Call", Any, T]


class Call:
    """One call of a native :class:`incus._native.Connection` method."""

    __slots__ = ("name", "args", "kwargs")

    def __init__(self, name: str, *args: Any, **kwargs: Any) -> None:
        self.name = name
        self.args = args
        self.kwargs = kwargs


def api(fn: Callable[..., Steps[T]]) -> Callable[..., Any]:
    """Makes a generator method a real one: blocking on a blocking client, a coroutine on an
    asyncio client. ``self`` must have a ``_client``."""

    @functools.wraps(fn)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        return self._client._drive(fn(self, *args, **kwargs))

    return wrapper


def q(s: str) -> str:
    """Percent-encodes a path segment or query value."""
    return quote(s, safe="")


def request(method: str, path: str, body: Any = None, etag: Optional[str] = None,
            wait: bool = True) -> Call:
    """A JSON request (see ``Connection.request``)."""
    return Call("request", method, path, body, etag, wait)


class BaseClient:
    """What :class:`incus.Client`, :class:`incus.Host` and their asyncio forms share: the
    native connection, the managers, and the driver that runs method bodies."""

    _conn: Any
    _aio = False

    def _setup(self, conn: Any) -> None:
        from . import models

        self._conn = conn
        self._client = self
        self.instances = models.InstanceManager(self)
        self.images = models.ImageManager(self)
        self.profiles = models.ProfileManager(self)
        self.projects = models.ProjectManager(self)
        self.storage_pools = models.StoragePoolManager(self)
        self.networks = models.NetworkManager(self)
        self.operations = models.OperationManager(self)

    @property
    def project(self) -> str:
        """The project this client works in."""
        return self._conn.project

    @property
    def kind(self) -> str:
        """``unix`` (a daemon on its socket), ``https`` (a remote daemon) or ``embedded`` (the
        engine in this process)."""
        return self._conn.kind

    def _native(self) -> Any:
        if self._conn is None:
            raise _native.Cancelled("This client is closed")
        return self._conn

    def _drive(self, steps: Steps[T]) -> T:
        conn = self._native()
        try:
            call = next(steps)
            while True:
                try:
                    target = getattr(call, "target", conn)
                    result = getattr(target, call.name)(*call.args, **call.kwargs)
                except BaseException as e:  # handed to the method body, which may handle it
                    call = steps.throw(e)
                else:
                    call = steps.send(result)
        except StopIteration as done:
            return done.value

    def with_project(self, project: str) -> "BaseClient":
        """The same connection scoped to ``project``."""
        other = object.__new__(type(self))
        other._setup(self._native().with_project(project))
        return other

    @api
    def server(self) -> Steps[dict]:
        """The server's environment and configuration (``GET /1.0``) as a dict."""
        r = yield request("GET", "/1.0")
        return r["metadata"]

    @api
    def is_trusted(self) -> Steps[bool]:
        """Whether the server trusts this client (``auth`` of ``GET /1.0``): always true on a
        unix socket; over HTTPS, once the client certificate is in the trust store."""
        r = yield request("GET", "/1.0")
        return bool(r["metadata"].get("auth") == "trusted")

    @api
    def authenticate(self, token: str) -> Steps[None]:
        """Adds this client's certificate to the server's trust store by redeeming a trust
        token (from ``incus config trust add`` or :meth:`issue_trust_token`)."""
        yield request("POST", "/1.0/certificates", {"type": "client", "trust_token": token})

    @api
    def issue_trust_token(self, name: str, restricted: bool = False,
                          projects: Optional[list[str]] = None) -> Steps[str]:
        """Issues a single-use trust token for a new client ``name`` (as
        ``incus config trust add``); ``restricted`` limits it to ``projects``."""
        body = {"name": name, "type": "client", "token": True, "restricted": restricted,
                "projects": projects or []}
        r = yield request("POST", "/1.0/certificates", body, None, False)
        return _native.trust_token(name, r["metadata"].get("metadata") or {})

    @api
    def resources(self) -> Steps[dict]:
        """The host's hardware (``GET /1.0/resources``)."""
        r = yield request("GET", "/1.0/resources")
        return r["metadata"]

    @api
    def api_request(self, method: str, path: str, body: Any = None,
                    etag: Optional[str] = None, wait: bool = True) -> Steps[dict]:
        """Any REST call: returns the decoded answer (``type``, ``status_code``,
        ``metadata``, ``etag``, ``operation``); with ``wait`` an operation is waited for."""
        return (yield request(method, path, body, etag, wait))

    @api
    def events(self, types: Optional[list[str]] = None,
               all_projects: bool = False) -> Steps["EventListener"]:
        """Subscribes to events (``lifecycle``, ``operation``, ``logging``; all by default).
        Every event after this returns is seen, in order. Iterate the listener (``for`` or
        ``async for``), or call ``next(timeout)``."""
        stream = yield Call("events", ",".join(types) if types else None, all_projects)
        return EventListener(stream, self._aio)

    def close(self, timeout: float = 10.0) -> bool:
        """Closes the connection; objects from this client stop working. For a
        :class:`incus.Host`, waits up to ``timeout`` seconds for the engine to let go of its
        state directory (work in flight ends first; clients made with :meth:`with_project`
        hold it too); returns whether it is free for another engine."""
        conn, self._conn = self._conn, None
        if conn is None:
            return True
        return conn.close(timeout)

    def __enter__(self) -> "BaseClient":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    async def __aenter__(self) -> "BaseClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        self.close()


class AsyncMixin:
    """Makes a client's methods coroutines."""

    _aio = True

    def _drive(self, steps: Steps[T]) -> Any:
        return self._run(steps)

    async def _run(self, steps: Steps[T]) -> T:
        conn = self._native()  # type: ignore[attr-defined]
        try:
            call = next(steps)
            while True:
                try:
                    target = getattr(call, "target", conn)
                    method = getattr(target, call.name + "_async", None)
                    if method is None:  # no awaitable form: quick, local
                        result = getattr(target, call.name)(*call.args, **call.kwargs)
                    else:
                        result = await method(*call.args, **call.kwargs)
                except BaseException as e:
                    call = steps.throw(e)
                else:
                    call = steps.send(result)
        except StopIteration as done:
            return done.value


class EventListener:
    """A subscription to the engine's events. Each event is a dict (``type``, ``timestamp``,
    ``metadata``, ``project``, ``location``) as ``/1.0/events`` sends it."""

    def __init__(self, stream: Any, aio: bool) -> None:
        self._stream = stream
        self._aio = aio

    def next(self, timeout: Optional[float] = None) -> Optional[dict]:
        """The next event; ``None`` when ``timeout`` seconds pass first (blocking)."""
        return self._stream.next(timeout)

    async def next_async(self, timeout: Optional[float] = None) -> Optional[dict]:
        """The next event; ``None`` when ``timeout`` seconds pass first."""
        return await self._stream.next_async(timeout)

    def __iter__(self) -> "EventListener":
        return self

    def __next__(self) -> dict:
        try:
            ev = self._stream.next(None)
        except _native.Cancelled:
            raise StopIteration
        return ev

    def __aiter__(self) -> "EventListener":
        return self

    async def __anext__(self) -> dict:
        try:
            ev = await self._stream.next_async(None)
        except _native.Cancelled:
            raise StopAsyncIteration
        return ev

    def close(self) -> None:
        """Ends the subscription."""
        self._stream.close()

    def __enter__(self) -> "EventListener":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def default_helper() -> Optional[str]:
    """The ``incus-helper`` an embedded engine runs: ``INCUS_HELPER``, else the one shipped
    inside this package (the wheel carries it), else ``None`` (the engine then looks on
    ``PATH``)."""
    env = os.environ.get("INCUS_HELPER")
    if env:
        return env
    shipped = Path(__file__).resolve().parent / "incus-helper"
    if shipped.is_file():
        return str(shipped)
    return None
