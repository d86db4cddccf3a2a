"""Fixtures: a busybox image built locally, a real `incusd` on a private state directory
(for `incus.Client`), and embedded engines (`incus.Host`) on their own directories. Every
scenario that takes `api` runs once per transport. Everything runs as root for real:
containers are started, nothing is faked."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import incus

ROOT = Path(__file__).resolve().parents[3]


def pytest_collection_modifyitems(config, items):
    if os.geteuid() != 0:
        skip = pytest.mark.skip(reason="needs root (real containers)")
        for item in items:
            item.add_marker(skip)


def state_dir(tag: str) -> Path:
    """A unique state directory, traversable by the containers' mapped ids."""
    d = Path(tempfile.mkdtemp(prefix=f"incus-py-{tag}-", dir="/tmp"))
    d.chmod(0o711)
    return d


def wipe(c) -> None:
    """Deletes every instance, image and non-default profile a scenario left behind."""
    for inst in c.instances.all():
        try:
            if inst.status != "Stopped":
                inst.stop(force=True)
            inst.delete()
        except incus.IncusError:
            pass
    for img in c.images.all():
        try:
            img.delete()
        except incus.IncusError:
            pass
    objects = [p for p in c.profiles.all() if p.name != "default"]
    objects += [p for p in c.projects.all() if p.name != "default"]
    for pool in c.storage_pools.all():
        objects += [v for v in pool.volumes.all() if v.type == "custom"]
    for obj in objects:
        try:
            obj.delete()
        except incus.IncusError:
            pass


@pytest.fixture(scope="session")
def image_dir() -> Path:
    d = state_dir("images")
    subprocess.run(["bash", str(ROOT / "tests/images/mk-busybox-image.sh"), str(d)],
                   check=True, capture_output=True)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def image(image_dir: Path) -> Path:
    """The unified busybox image tarball."""
    return image_dir / "busybox.tar.xz"


@pytest.fixture(scope="session")
def daemon():
    """`incusd` (INCUSD, else target/debug/incusd) on a private directory; yields the
    directory. Stopped by its PID after the session."""
    binary = os.environ.get("INCUSD") or str(ROOT / "target/debug/incusd")
    d = state_dir("daemon")
    log = open(d / "incusd.log", "wb")
    proc = subprocess.Popen([binary, "--dir", str(d)], stdout=log, stderr=subprocess.STDOUT)
    sock = d / "unix.socket"
    for _ in range(300):
        if sock.exists():
            break
        if proc.poll() is not None:
            raise RuntimeError(f"incusd exited: {(d / 'incusd.log').read_text()}")
        time.sleep(0.05)
    try:
        yield d
    finally:
        try:
            wipe(incus.Client(sock))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
            log.close()
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="session")
def embedded():
    """An embedded engine for the session."""
    d = state_dir("host")
    h = incus.Host(d)
    try:
        yield h
    finally:
        wipe(h)
        h.close()
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["client", "host"])
def api(request):
    """The same object API through a daemon (`Client`) and embedded (`Host`)."""
    if request.param == "client":
        c = incus.Client(request.getfixturevalue("daemon") / "unix.socket")
    else:
        c = request.getfixturevalue("embedded")
    yield c
    wipe(c)


@pytest.fixture
def imported(api, image):
    """`api` with the busybox image imported under alias `busybox`."""
    img = api.images.create_from_file(image, aliases=["busybox"])
    return img
