"""Errors arrive as the exception class of their kind, with the server's message."""

from __future__ import annotations

import pytest

import incus
from incus import exceptions


def test_error_classes(api, imported):
    with pytest.raises(incus.NotFound) as e:
        api.instances.get("missing")
    assert e.value.status == 404 and "not found" in str(e.value).lower()

    api.profiles.create("dup")
    with pytest.raises(incus.AlreadyExists) as e:
        api.profiles.create("dup")
    assert e.value.status == 409

    with pytest.raises(incus.InvalidInput):
        api.profiles.create("bad/name")
    with pytest.raises(incus.InvalidInput):
        api.profiles.create("p2", config={"no.such.key": "1"})
    assert not api.profiles.exists("p2")

    inst = api.instances.create({"name": "e1", "source": {"type": "image", "alias": "busybox"},
                                 "profiles": ["default", "dup"]})
    with pytest.raises(incus.Busy):
        api.profiles.get("dup").delete()
    inst.start()
    with pytest.raises(incus.Busy):
        inst.delete()

    stale = api.instances.get("e1")
    fresh = api.instances.get("e1")
    fresh.config["user.a"] = "1"
    fresh.save()
    stale.config["user.b"] = "2"
    with pytest.raises(incus.PreconditionFailed):
        stale.save()

    # a failed operation raises too
    with pytest.raises(incus.IncusError):
        api.instances.create({"name": "e2", "source": {"type": "image", "alias": "nope"}})

    for cls in (incus.NotFound, incus.AlreadyExists, incus.InvalidInput, incus.Busy,
                incus.Forbidden, incus.PreconditionFailed, incus.Unsupported,
                incus.Cancelled, incus.InternalError):
        assert issubclass(cls, incus.IncusError)
        assert getattr(exceptions, cls.__name__) is cls
    inst.stop(force=True)
    inst.delete()
