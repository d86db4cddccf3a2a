"""The asyncio API: :class:`Client` and :class:`Host` as in :mod:`incus`, whose methods that
talk to the engine are coroutines.

>>> import asyncio, incus.aio
>>> async def main():
...     c = incus.aio.Client()
...     for inst in await c.instances.all():
...         print(inst.name, inst.status)
>>> asyncio.run(main())                                     # doctest: +SKIP

It shares the blocking API's tokio runtime (one per process), so both can be used together.
Opening a :class:`Host` (the engine starting) is done before the first ``await``.
"""

from __future__ import annotations

from . import Client as _SyncClient
from . import Host as _SyncHost
from ._core import AsyncMixin

__all__ = ["Client", "Host"]


class Client(AsyncMixin, _SyncClient):
    """:class:`incus.Client` with coroutine methods."""


class Host(AsyncMixin, _SyncHost):
    """:class:`incus.Host` with coroutine methods."""
