"""Objects and managers, in the shape pylxd users know.

``client.instances.all()``, ``.get(name)``, ``.create(config)``; objects whose fields are
attributes (``instance.config``, ``instance.status``), changed in place and written back with
``save()``. On an asyncio client every method that talks to the engine is a coroutine; the
objects and their attributes are the same.
"""

from __future__ import annotations

import json
import os
import stat as _stat
from collections import namedtuple
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Union

from . import _native
from ._core import Call, Steps, api, q, request

#: What ``Instance.execute`` returns.
ExecResult = namedtuple("ExecResult", ["exit_code", "stdout", "stderr"])


class Model:
    """An API object: its fields as attributes. Fields listed in ``_writable`` are sent back
    by ``save()``."""

    _writable: tuple[str, ...] = ()
    _kind = "object"

    def __init__(self, client: Any, data: dict, etag: Optional[str] = None) -> None:
        object.__setattr__(self, "_client", client)
        object.__setattr__(self, "_data", dict(data))
        object.__setattr__(self, "_etag", etag)

    def __getattr__(self, name: str) -> Any:
        data = object.__getattribute__(self, "_data")
        if name in data:
            return data[name]
        raise AttributeError(f"{type(self).__name__} has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            object.__setattr__(self, name, value)
        else:
            self._data[name] = value

    def __repr__(self) -> str:
        key = self._data.get("name") or self._data.get("fingerprint") or self._data.get("id")
        return f"<{type(self).__name__} {key!r}>"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self._data == other._data  # type: ignore[attr-defined]

    def to_dict(self) -> dict:
        """The object's fields as a dict (a copy)."""
        return dict(self._data)

    def _put_body(self) -> dict:
        return {k: self._data[k] for k in self._writable if k in self._data}

    def _path(self) -> str:
        raise NotImplementedError

    def _replace(self, r: dict) -> None:
        object.__setattr__(self, "_data", dict(r["metadata"]))
        object.__setattr__(self, "_etag", r.get("etag"))

    @api
    def sync(self) -> Steps[None]:
        """Re-reads the object from the engine."""
        r = yield request("GET", self._path())
        self._replace(r)

    @api
    def save(self, wait: bool = True) -> Steps[None]:
        """Writes the writable fields back (PUT, guarded by the ETag read with the object:
        a concurrent change raises :class:`incus.exceptions.PreconditionFailed`), then
        re-reads the object."""
        yield request("PUT", self._path(), self._put_body(), self._etag, wait)
        r = yield request("GET", self._path())
        self._replace(r)

    @api
    def delete(self, wait: bool = True) -> Steps[None]:
        """Deletes the object."""
        yield request("DELETE", self._path(), None, None, wait)


class Manager:
    """Lists, gets and creates one kind of object."""

    _model: type[Model]
    _base = ""

    def __init__(self, client: Any) -> None:
        self._client = client

    def _item(self, name: str) -> str:
        return f"{self._base}/{q(name)}"

    @api
    def all(self) -> Steps[list]:
        """Every object, fully read (one request)."""
        r = yield request("GET", f"{self._base}?recursion=1")
        return [self._model(self._client, d) for d in r["metadata"] or []]

    @api
    def get(self, name: str) -> Steps[Any]:
        """One object; raises :class:`incus.exceptions.NotFound`."""
        r = yield request("GET", self._item(name))
        return self._model(self._client, r["metadata"], r.get("etag"))

    @api
    def exists(self, name: str) -> Steps[bool]:
        """Whether the object exists."""
        try:
            yield request("GET", self._item(name))
        except _native.NotFound:
            return False
        return True

    def _create(self, body: dict, name: str, wait: bool = True) -> Steps[Any]:
        yield request("POST", self._base, body, None, wait)
        r = yield request("GET", self._item(name))
        return self._model(self._client, r["metadata"], r.get("etag"))


class Renamable(Model):
    """An object renamed with a POST of its new name."""

    @api
    def rename(self, new_name: str, wait: bool = True) -> Steps[None]:
        """Renames the object."""
        yield request("POST", self._path(), {"name": new_name}, None, wait)
        self._data["name"] = new_name
        r = yield request("GET", self._path())
        self._replace(r)


# ---- instances ----


class Instance(Renamable):
    """An instance (container or VM)."""

    _writable = ("architecture", "config", "devices", "ephemeral", "profiles", "description",
                 "stateful")

    def __init__(self, client: Any, data: dict, etag: Optional[str] = None) -> None:
        super().__init__(client, data, etag)
        object.__setattr__(self, "files", FileManager(client, self))
        object.__setattr__(self, "snapshots", SnapshotManager(client, self))

    def _path(self) -> str:
        return f"/1.0/instances/{q(self.name)}"

    def _action(self, action: str, force: bool, timeout: int, stateful: bool,
                wait: bool) -> Steps[None]:
        body = {"action": action, "force": force, "timeout": timeout, "stateful": stateful}
        yield request("PUT", self._path() + "/state", body, None, wait)
        r = yield request("GET", self._path())
        self._replace(r)

    @api
    def start(self, force: bool = False, timeout: int = 30, stateful: bool = False,
              wait: bool = True) -> Steps[None]:
        """Starts the instance."""
        yield from self._action("start", force, timeout, stateful, wait)

    @api
    def stop(self, force: bool = False, timeout: int = 30, stateful: bool = False,
             wait: bool = True) -> Steps[None]:
        """Stops the instance (cleanly, then killed after ``timeout`` seconds; at once with
        ``force``)."""
        yield from self._action("stop", force, timeout, stateful, wait)

    @api
    def restart(self, force: bool = False, timeout: int = 30, wait: bool = True) -> Steps[None]:
        """Restarts the instance."""
        yield from self._action("restart", force, timeout, False, wait)

    @api
    def freeze(self, wait: bool = True) -> Steps[None]:
        """Freezes (pauses) the instance."""
        yield from self._action("freeze", False, -1, False, wait)

    @api
    def unfreeze(self, wait: bool = True) -> Steps[None]:
        """Unfreezes the instance."""
        yield from self._action("unfreeze", False, -1, False, wait)

    @api
    def state(self) -> Steps["InstanceState"]:
        """The instance's live state: status, processes, memory, disk, network (addresses
        per nic, counters)."""
        r = yield request("GET", self._path() + "/state")
        return InstanceState(self._client, r["metadata"])

    @api
    def execute(self, commands: Union[list[str], str], environment: Optional[dict] = None,
                cwd: Optional[str] = None, user: Optional[int] = None,
                group: Optional[int] = None, stdin: Union[bytes, str, None] = None,
                decode: bool = True, encoding: str = "utf-8",
                stdout_handler: Optional[Callable[[Any], None]] = None,
                stderr_handler: Optional[Callable[[Any], None]] = None) -> Steps[ExecResult]:
        """Runs a command to completion; returns ``ExecResult(exit_code, stdout, stderr)``
        (text unless ``decode=False``). ``stdin`` is fed to the command, then closed.
        With ``stdout_handler``/``stderr_handler``, output is handed to them chunk by chunk
        as it comes (and also returned). Exit code 127: command not found."""
        cmd = [commands] if isinstance(commands, str) else list(commands)
        data = stdin.encode(encoding) if isinstance(stdin, str) else stdin
        args = _exec_args(cmd, environment, cwd, user, group)
        if stdout_handler is None and stderr_handler is None:
            code, out, err = yield Call("exec", self.name, args, data)
        else:
            # stdin is fed in the background while the output is read here.
            session = yield Call("exec_stream", self.name, args, data or b"")
            chunks: dict[int, list[bytes]] = {1: [], 2: []}
            while True:
                chunk = yield _SessionCall(session, "read", None)
                if chunk is None:
                    break
                fd, b = chunk
                chunks[fd].append(b)
                handler = stdout_handler if fd == 1 else stderr_handler
                if handler is not None:
                    handler(b.decode(encoding, "replace") if decode else b)
            code = yield _SessionCall(session, "wait")
            out, err = b"".join(chunks[1]), b"".join(chunks[2])
        if decode:
            return ExecResult(code, out.decode(encoding, "replace"),
                              err.decode(encoding, "replace"))
        return ExecResult(code, out, err)

    @api
    def exec_stream(self, commands: list[str], environment: Optional[dict] = None,
                    cwd: Optional[str] = None, user: Optional[int] = None,
                    group: Optional[int] = None,
                    stdin: Union[bytes, str, None] = None) -> Steps["ExecSession"]:
        """Starts a command and returns an :class:`ExecSession` to stream its input and
        output while it runs. With ``stdin``, that is fed in the background and standard
        input then closed; without, write it with the session's ``write``."""
        args = _exec_args(list(commands), environment, cwd, user, group)
        data = stdin.encode() if isinstance(stdin, str) else stdin
        s = yield Call("exec_stream", self.name, args, data)
        return ExecSession(s, self._client._aio)

    @api
    def restore_snapshot(self, name: str, wait: bool = True) -> Steps[None]:
        """Restores the instance to snapshot ``name``."""
        yield request("PUT", self._path(), {"restore": name}, None, wait)
        r = yield request("GET", self._path())
        self._replace(r)

    @api
    def logs(self) -> Steps[list[str]]:
        """The names of the instance's log files."""
        r = yield request("GET", self._path() + "/logs")
        return [p.rsplit("/", 1)[-1] for p in r["metadata"] or []]


def _exec_args(command: list[str], environment: Optional[dict], cwd: Optional[str],
               user: Optional[int], group: Optional[int]) -> dict:
    env = {str(k): str(v) for k, v in (environment or {}).items()}
    return {"command": command, "environment": env, "cwd": cwd, "user": user, "group": group}


class _SessionCall(Call):
    """A call on an :class:`incus._native.ExecSession` rather than on the connection."""

    __slots__ = ("target",)

    def __init__(self, target: Any, name: str, *args: Any) -> None:
        super().__init__(name, *args)
        self.target = target


class ExecSession:
    """A running command (see :meth:`Instance.exec_stream`). Blocking: ``read()``,
    ``write()``, ``close_stdin()``, ``wait()``, and iteration over ``(fd, bytes)`` chunks
    (fd 1 stdout, 2 stderr). Asyncio: the ``_async`` forms and ``async for``. Read the
    output to its end before ``wait()``: a command whose output nobody reads blocks once a
    few chunks are buffered."""

    def __init__(self, native: Any, aio: bool) -> None:
        self._s = native
        self._aio = aio

    def read(self, timeout: Optional[float] = None) -> Optional[tuple[int, bytes]]:
        return self._s.read(timeout)

    def write(self, data: Union[bytes, str]) -> None:
        self._s.write(data.encode() if isinstance(data, str) else data)

    def close_stdin(self) -> None:
        self._s.close_stdin()

    def wait(self) -> int:
        return self._s.wait()

    async def read_async(self, timeout: Optional[float] = None) -> Optional[tuple[int, bytes]]:
        return await self._s.read_async(timeout)

    async def write_async(self, data: Union[bytes, str]) -> None:
        await self._s.write_async(data.encode() if isinstance(data, str) else data)

    async def wait_async(self) -> int:
        return await self._s.wait_async()

    def __iter__(self) -> "ExecSession":
        return self

    def __next__(self) -> tuple[int, bytes]:
        c = self._s.read(None)
        if c is None:
            raise StopIteration
        return c

    def __aiter__(self) -> "ExecSession":
        return self

    async def __anext__(self) -> tuple[int, bytes]:
        c = await self._s.read_async(None)
        if c is None:
            raise StopAsyncIteration
        return c


class InstanceState(Model):
    """An instance's live state (read-only)."""

    _kind = "state"


class InstanceManager(Manager):
    """``client.instances``."""

    _model = Instance
    _base = "/1.0/instances"

    @api
    def all(self, filter: Optional[str] = None) -> Steps[list]:
        """Every instance of the project (one request); ``filter`` as ``incus list``'s
        server-side filter (``status eq Running``)."""
        path = f"{self._base}?recursion=1"
        if filter:
            path += f"&filter={q(filter)}"
        r = yield request("GET", path)
        return [Instance(self._client, d) for d in r["metadata"] or []]

    @api
    def create(self, config: dict, wait: bool = True) -> Steps[Instance]:
        """Creates an instance from a request as ``POST /1.0/instances`` takes it
        (``name``, ``source``, ``config``, ``devices``, ``profiles``, ``type``...);
        returns it."""
        return (yield from self._create(config, config["name"], wait))


class Snapshot(Renamable):
    """An instance snapshot."""

    _writable = ("expires_at",)

    def __init__(self, client: Any, data: dict, instance: Instance,
                 etag: Optional[str] = None) -> None:
        super().__init__(client, data, etag)
        object.__setattr__(self, "_instance", instance)

    def _path(self) -> str:
        return f"{self._instance._path()}/snapshots/{q(self.name)}"

    @api
    def restore(self, wait: bool = True) -> Steps[None]:
        """Restores the instance to this snapshot."""
        yield request("PUT", self._instance._path(), {"restore": self.name}, None, wait)


class ChildManager:
    """Lists the objects under a parent object (an instance's snapshots, a pool's
    volumes)."""

    _model: Any
    _suffix = ""

    def __init__(self, client: Any, parent: Model) -> None:
        self._client = client
        self._parent = parent

    def _base(self) -> str:
        return self._parent._path() + self._suffix

    def _make(self, r: dict) -> Any:
        return self._model(self._client, r["metadata"], self._parent, r.get("etag"))

    @api
    def all(self) -> Steps[list]:
        """Every object under the parent, oldest first."""
        r = yield request("GET", self._base() + "?recursion=1")
        return [self._model(self._client, d, self._parent) for d in r["metadata"] or []]


class SnapshotManager(ChildManager):
    """``instance.snapshots``."""

    _model = Snapshot
    _suffix = "/snapshots"

    @property
    def _instance(self) -> Any:
        return self._parent

    @api
    def get(self, name: str) -> Steps[Snapshot]:
        """One snapshot."""
        r = yield request("GET", f"{self._base()}/{q(name)}")
        return self._make(r)

    @api
    def create(self, name: str, stateful: bool = False, wait: bool = True) -> Steps[Snapshot]:
        """Takes a snapshot."""
        yield request("POST", self._base(), {"name": name, "stateful": stateful}, None, wait)
        r = yield request("GET", f"{self._base()}/{q(name)}")
        return self._make(r)

    @api
    def restore(self, name: str, wait: bool = True) -> Steps[None]:
        """Restores the instance to snapshot ``name``."""
        yield request("PUT", self._instance._path(), {"restore": name}, None, wait)

    @api
    def delete(self, name: str, wait: bool = True) -> Steps[None]:
        """Deletes snapshot ``name``."""
        yield request("DELETE", f"{self._base()}/{q(name)}", None, None, wait)


class FileManager:
    """``instance.files``: files inside the instance (``/1.0/instances/<name>/files``)."""

    def __init__(self, client: Any, instance: Instance) -> None:
        self._client = client
        self._instance = instance

    def _path(self, path: str) -> str:
        return f"{self._instance._path()}/files?path={q(path)}"

    @api
    def get(self, path: str) -> Steps[bytes]:
        """A file's content; raises :class:`incus.exceptions.NotFound`. A directory raises
        :class:`IsADirectoryError` (use :meth:`listdir`)."""
        status, headers, body = yield Call("raw", "GET", self._path(path))
        if headers.get("x-incus-type") == "directory":
            raise IsADirectoryError(path)
        return body

    @api
    def listdir(self, path: str) -> Steps[list[str]]:
        """The entry names of a directory."""
        status, headers, body = yield Call("raw", "GET", self._path(path))
        if headers.get("x-incus-type") != "directory":
            raise NotADirectoryError(path)
        return list(json.loads(body)["metadata"] or [])

    @api
    def put(self, path: str, data: Union[bytes, str], mode: Union[int, str, None] = None,
            uid: Optional[int] = None, gid: Optional[int] = None,
            append: bool = False) -> Steps[None]:
        """Writes a file (created or replaced; appended to with ``append``)."""
        headers = _owner_headers(mode, uid, gid)
        headers["X-Incus-type"] = "file"
        headers["X-Incus-write"] = "append" if append else "overwrite"
        body = data.encode() if isinstance(data, str) else bytes(data)
        yield Call("raw", "POST", self._path(path), headers, body)

    @api
    def mk_dir(self, path: str, mode: Union[int, str, None] = None, uid: Optional[int] = None,
               gid: Optional[int] = None) -> Steps[None]:
        """Creates a directory."""
        headers = _owner_headers(mode, uid, gid)
        headers["X-Incus-type"] = "directory"
        yield Call("raw", "POST", self._path(path), headers)

    @api
    def symlink(self, path: str, target: str) -> Steps[None]:
        """Creates a symbolic link at ``path`` pointing at ``target``."""
        headers = {"X-Incus-type": "symlink"}
        yield Call("raw", "POST", self._path(path), headers, target.encode())

    @api
    def delete(self, path: str) -> Steps[None]:
        """Deletes a file or an empty directory."""
        yield Call("raw", "DELETE", self._path(path))

    @api
    def exists(self, path: str) -> Steps[bool]:
        """Whether ``path`` exists in the instance."""
        try:
            yield Call("raw", "GET", self._path(path))
        except _native.NotFound:
            return False
        return True

    @api
    def recursive_put(self, src: Union[str, Path], dst: str) -> Steps[None]:
        """Copies the local directory ``src`` to ``dst`` in the instance (created with its
        missing parents, as ``incus file push -r -p``), with modes; symbolic links are
        recreated as links."""
        src = Path(src)
        parts = [p for p in dst.strip("/").split("/") if p][:-1]
        for i in range(len(parts)):
            try:
                yield Call("raw", "POST", self._path("/" + "/".join(parts[:i + 1])),
                           {"X-Incus-type": "directory"})
            except _native.AlreadyExists:
                pass
        yield from self._put_dir(src, dst)

    def _put_dir(self, src: Path, dst: str) -> Steps[None]:
        st = src.stat()
        try:
            yield Call("raw", "POST", self._path(dst),
                       {"X-Incus-type": "directory", **_owner_headers(st.st_mode & 0o7777)})
        except _native.AlreadyExists:
            pass
        for entry in sorted(os.scandir(src), key=lambda e: e.name):
            target = f"{dst.rstrip('/')}/{entry.name}"
            if entry.is_symlink():
                yield Call("raw", "POST", self._path(target), {"X-Incus-type": "symlink"},
                           os.readlink(entry.path).encode())
            elif entry.is_dir():
                yield from self._put_dir(Path(entry.path), target)
            elif entry.is_file():
                mode = entry.stat().st_mode & 0o7777
                headers = {"X-Incus-type": "file", "X-Incus-write": "overwrite",
                           **_owner_headers(mode)}
                yield Call("raw", "POST", self._path(target), headers, None, entry.path)

    @api
    def recursive_get(self, src: str, dst: Union[str, Path]) -> Steps[None]:
        """Copies the directory ``src`` of the instance to the local ``dst`` (created),
        with modes."""
        yield from self._get_dir(src, Path(dst))

    def _get_dir(self, src: str, dst: Path) -> Steps[None]:
        status, headers, body = yield Call("raw", "GET", self._path(src))
        kind = headers.get("x-incus-type", "file")
        mode = int(headers.get("x-incus-mode", "0"), 8) if headers.get("x-incus-mode") else None
        if kind == "directory":
            dst.mkdir(parents=True, exist_ok=True)
            if mode is not None:
                dst.chmod(mode)
            for name in json.loads(body)["metadata"] or []:
                yield from self._get_dir(f"{src.rstrip('/')}/{name}", dst / name)
        elif kind == "symlink":
            if dst.is_symlink() or dst.exists():
                dst.unlink()
            os.symlink(body.decode(), dst)
        else:
            dst.write_bytes(body)
            if mode is not None:
                dst.chmod(_stat.S_IMODE(mode))


def _owner_headers(mode: Union[int, str, None] = None, uid: Optional[int] = None,
                   gid: Optional[int] = None) -> dict[str, str]:
    h: dict[str, str] = {}
    if mode is not None:
        h["X-Incus-mode"] = mode if isinstance(mode, str) else f"{mode:04o}"
    if uid is not None:
        h["X-Incus-uid"] = str(uid)
    if gid is not None:
        h["X-Incus-gid"] = str(gid)
    return h


# ---- images ----


class Image(Model):
    """An image."""

    _writable = ("auto_update", "properties", "public", "expires_at", "profiles")

    def _path(self) -> str:
        return f"/1.0/images/{q(self.fingerprint)}"

    @api
    def add_alias(self, name: str, description: str = "") -> Steps[None]:
        """Adds alias ``name`` for this image."""
        body = {"name": name, "target": self.fingerprint, "description": description}
        yield request("POST", "/1.0/images/aliases", body)
        r = yield request("GET", self._path())
        self._replace(r)

    @api
    def delete_alias(self, name: str) -> Steps[None]:
        """Removes alias ``name``."""
        yield request("DELETE", f"/1.0/images/aliases/{q(name)}")
        r = yield request("GET", self._path())
        self._replace(r)

    @api
    def export(self) -> Steps[bytes]:
        """The image file (a unified tarball) as bytes."""
        status, headers, body = yield Call("raw", "GET", self._path() + "/export")
        return body

    @api
    def export_to(self, path: Union[str, Path]) -> Steps[None]:
        """Writes the image file to ``path``."""
        status, headers, body = yield Call("raw", "GET", self._path() + "/export")
        Path(path).write_bytes(body)


class ImageManager(Manager):
    """``client.images``."""

    _model = Image
    _base = "/1.0/images"

    @api
    def get_by_alias(self, alias: str) -> Steps[Image]:
        """The image an alias points at."""
        r = yield request("GET", f"/1.0/images/aliases/{q(alias)}")
        target = r["metadata"]["target"]
        r = yield request("GET", f"/1.0/images/{q(target)}")
        return Image(self._client, r["metadata"], r.get("etag"))

    @api
    def aliases(self) -> Steps[list[dict]]:
        """Every alias of the project (``name``, ``target``, ``description``...)."""
        r = yield request("GET", "/1.0/images/aliases?recursion=1")
        return list(r["metadata"] or [])

    def _finish(self, r: dict, aliases: Iterable[str]) -> Steps[Image]:
        fp = ((r["metadata"] or {}).get("metadata") or {}).get("fingerprint")
        if not fp:
            raise _native.InternalError(f"The image upload returned no fingerprint: {r!r}")
        for a in aliases:
            yield request("POST", "/1.0/images/aliases", {"name": a, "target": fp})
        r = yield request("GET", f"/1.0/images/{q(fp)}")
        return Image(self._client, r["metadata"], r.get("etag"))

    @api
    def create_from_file(self, path: Union[str, Path], public: bool = False,
                         aliases: Iterable[str] = (), filename: Optional[str] = None
                         ) -> Steps[Image]:
        """Imports a unified image tarball from a local file (streamed, not read into
        memory); adds ``aliases``; returns the image."""
        headers = {"X-Incus-public": "1" if public else "0",
                   "X-Incus-filename": filename or Path(path).name,
                   "Content-Type": "application/octet-stream"}
        status, _h, body = yield Call("raw", "POST", "/1.0/images", headers, None, str(path))
        return (yield from self._wait_upload(body, aliases))

    @api
    def create(self, image_data: bytes, metadata: Optional[bytes] = None,
               public: bool = False, aliases: Iterable[str] = ()) -> Steps[Image]:
        """Imports an image from bytes, as pylxd does: ``image_data`` is a unified tarball,
        or with ``metadata`` the rootfs of a split image."""
        headers = {"X-Incus-public": "1" if public else "0"}
        if metadata is None:
            headers["Content-Type"] = "application/octet-stream"
            body = image_data
        else:
            boundary = "incus-python-image-upload-4f2a"
            headers["Content-Type"] = f"multipart/form-data; boundary={boundary}"
            parts = []
            for field, data in (("metadata", metadata), ("rootfs", image_data)):
                parts.append(
                    f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; "
                    f"filename=\"{field}\"\r\nContent-Type: application/octet-stream\r\n\r\n"
                    .encode() + data + b"\r\n")
            body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        status, _h, answer = yield Call("raw", "POST", "/1.0/images", headers, body)
        return (yield from self._wait_upload(answer, aliases))

    def _wait_upload(self, answer: bytes, aliases: Iterable[str]) -> Steps[Image]:
        env = json.loads(answer)
        if env.get("type") == "async":
            op = yield Call("wait_operation", env["operation"])
            return (yield from self._finish({"metadata": op}, aliases))
        return (yield from self._finish(env, aliases))


# ---- profiles, projects ----


class Profile(Renamable):
    """A profile."""

    _writable = ("config", "description", "devices")

    def _path(self) -> str:
        return f"/1.0/profiles/{q(self.name)}"


class ProfileManager(Manager):
    """``client.profiles``."""

    _model = Profile
    _base = "/1.0/profiles"

    @api
    def create(self, name: str, config: Optional[dict] = None, devices: Optional[dict] = None,
               description: str = "") -> Steps[Profile]:
        """Creates a profile; returns it."""
        body = {"name": name, "config": config or {}, "devices": devices or {},
                "description": description}
        return (yield from self._create(body, name))


class Project(Renamable):
    """A project."""

    _writable = ("config", "description")

    def _path(self) -> str:
        return f"/1.0/projects/{q(self.name)}"


class ProjectManager(Manager):
    """``client.projects``."""

    _model = Project
    _base = "/1.0/projects"

    @api
    def create(self, name: str, config: Optional[dict] = None,
               description: str = "") -> Steps[Project]:
        """Creates a project; returns it."""
        body = {"name": name, "config": config or {}, "description": description}
        return (yield from self._create(body, name))


# ---- storage ----


class StoragePool(Model):
    """A storage pool."""

    _writable = ("config", "description")

    def __init__(self, client: Any, data: dict, etag: Optional[str] = None) -> None:
        super().__init__(client, data, etag)
        object.__setattr__(self, "volumes", StorageVolumeManager(client, self))

    def _path(self) -> str:
        return f"/1.0/storage-pools/{q(self.name)}"

    @api
    def resources(self) -> Steps[dict]:
        """Space and inodes used and in all."""
        r = yield request("GET", self._path() + "/resources")
        return r["metadata"]


class StoragePoolManager(Manager):
    """``client.storage_pools``."""

    _model = StoragePool
    _base = "/1.0/storage-pools"

    @api
    def create(self, name: str, driver: str, config: Optional[dict] = None,
               description: str = "") -> Steps[StoragePool]:
        """Creates a pool (``dir``, ``btrfs``, ``zfs``, ``lvm``); returns it."""
        body = {"name": name, "driver": driver, "config": config or {},
                "description": description}
        return (yield from self._create(body, name))


class StorageVolume(Renamable):
    """A storage volume (custom, instance or image; custom ones can be renamed)."""

    _writable = ("config", "description")

    def __init__(self, client: Any, data: dict, pool: StoragePool,
                 etag: Optional[str] = None) -> None:
        super().__init__(client, data, etag)
        object.__setattr__(self, "_pool", pool)

    def _path(self) -> str:
        return f"{self._pool._path()}/volumes/{q(self.type)}/{q(self.name)}"


class StorageVolumeManager(ChildManager):
    """``pool.volumes``: ``all()`` lists every volume of the pool in this project."""

    _model = StorageVolume
    _suffix = "/volumes"

    @api
    def get(self, type: str, name: str) -> Steps[StorageVolume]:
        """One volume (``type``: ``custom``, ``container``, ``image``...)."""
        r = yield request("GET", f"{self._base()}/{q(type)}/{q(name)}")
        return self._make(r)

    @api
    def create(self, name: str, config: Optional[dict] = None,
               content_type: str = "filesystem", description: str = "",
               wait: bool = True) -> Steps[StorageVolume]:
        """Creates a custom volume; returns it."""
        body = {"name": name, "type": "custom", "content_type": content_type,
                "config": config or {}, "description": description}
        yield request("POST", self._base() + "/custom", body, None, wait)
        r = yield request("GET", f"{self._base()}/custom/{q(name)}")
        return self._make(r)


# ---- networks ----


class Network(Renamable):
    """A network (managed, or a host interface Incus lists)."""

    _writable = ("config", "description")

    def _path(self) -> str:
        return f"/1.0/networks/{q(self.name)}"

    @api
    def state(self) -> Steps[dict]:
        """The interface's live state (addresses, counters, MTU, state)."""
        r = yield request("GET", self._path() + "/state")
        return r["metadata"]

    @api
    def leases(self) -> Steps[list[dict]]:
        """DHCP leases and static assignments (managed bridges)."""
        r = yield request("GET", self._path() + "/leases")
        return list(r["metadata"] or [])


class NetworkManager(Manager):
    """``client.networks``."""

    _model = Network
    _base = "/1.0/networks"

    @api
    def create(self, name: str, type: str = "bridge", config: Optional[dict] = None,
               description: str = "") -> Steps[Network]:
        """Creates a managed network; returns it."""
        body = {"name": name, "type": type, "config": config or {},
                "description": description}
        return (yield from self._create(body, name))


# ---- operations ----


class Operation(Model):
    """A background operation."""

    def _path(self) -> str:
        return f"/1.0/operations/{q(self.id)}"

    @api
    def wait(self) -> Steps["Operation"]:
        """Waits for the operation to end; raises if it failed."""
        op = yield Call("wait_operation", self.id)
        object.__setattr__(self, "_data", dict(op))
        return self

    @api
    def cancel(self) -> Steps[None]:
        """Cancels the operation (where it can be cancelled)."""
        yield request("DELETE", self._path())


class OperationManager(Manager):
    """``client.operations``."""

    _model = Operation
    _base = "/1.0/operations"

    @api
    def all(self) -> Steps[list[Operation]]:
        """Operations of the project, any status."""
        r = yield request("GET", f"{self._base}?recursion=1")
        out: list[Operation] = []
        for ops in (r["metadata"] or {}).values():
            out.extend(Operation(self._client, d) for d in ops or [])
        return out

    @api
    def wait(self, id: str) -> Steps[Operation]:
        """Waits for operation ``id`` to end; raises if it failed."""
        op = yield Call("wait_operation", id)
        return Operation(self._client, op)
