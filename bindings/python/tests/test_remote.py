"""`incus.Client` over HTTPS against the session's real `incusd`: a client certificate made by
`incus.generate_certificate`, the server certificate pinned, trust gained with a token, then
an image upload, a container and an exec over TLS, blocking and asyncio; refusals for an
untrusted client and for a server certificate that is not the pinned one."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

import incus
import incus.aio


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def https_daemon(daemon: Path):
    """The session daemon listening on a loopback HTTPS port; yields (url, local client)."""
    local = incus.Client(daemon / "unix.socket")
    port = free_port()
    local.api_request("PATCH", "/1.0", {"config": {"core.https_address": f"127.0.0.1:{port}"}})
    try:
        yield f"https://127.0.0.1:{port}", local
    finally:
        local.api_request("PATCH", "/1.0", {"config": {"core.https_address": ""}})
        for cert in local.api_request("GET", "/1.0/certificates")["metadata"]:
            local.api_request("DELETE", cert)


def test_https_client(https_daemon, image: Path, tmp_path: Path) -> None:
    url, local = https_daemon
    crt, key = tmp_path / "client.crt", tmp_path / "client.key"
    pem = incus.generate_certificate(crt, key)
    assert pem.startswith("-----BEGIN CERTIFICATE-----")
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    server_crt = tmp_path / "server.crt"
    server_crt.write_text(local.server()["environment"]["certificate"])

    c = incus.Client(endpoint=url, cert=(crt, key), verify=server_crt)
    assert c.kind == "https"
    assert not c.is_trusted()
    with pytest.raises(incus.Forbidden):
        c.instances.all()
    with pytest.raises(incus.Forbidden):
        c.authenticate("bm90IGEgdG9rZW4=")
    c.authenticate(local.issue_trust_token("py"))
    assert c.is_trusted()

    img = c.images.create_from_file(image, aliases=["busybox-tls"])
    try:
        inst = c.instances.create({"name": "tls1", "source": {"type": "image",
                                                             "alias": "busybox-tls"}})
        inst.start()
        assert inst.execute(["echo", "over tls"]).stdout == "over tls\n"

        async def remote_async() -> str:
            a = incus.aio.Client(endpoint=url, cert=(crt, key), verify=server_crt)
            assert await a.is_trusted()
            names = [i.name for i in await a.instances.all()]
            assert "tls1" in names
            r = await (await a.instances.get("tls1")).execute(["echo", "async"])
            a.close()
            return str(r.stdout)

        assert asyncio.run(remote_async()) == "async\n"
        inst.stop(force=True)
        inst.delete()
    finally:
        img.delete()

    # Another certificate pinned than the server's: refused before any request is sent.
    other = tmp_path / "other.crt"
    incus.generate_certificate(other, tmp_path / "other.key")
    wrong = incus.Client(endpoint=url, cert=(crt, key), verify=other)
    with pytest.raises(incus.IncusError, match="not the one trusted"):
        wrong.server()
    with pytest.raises(ValueError):
        incus.Client(endpoint=url, verify=False)
