"""The interpreter exits cleanly after using both APIs and both transports (two tokio
runtimes, or one torn down under running tasks, would crash it at exit)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

from conftest import state_dir


def test_clean_exit(daemon):
    d = state_dir("exit")
    code = textwrap.dedent(f"""
        import asyncio, threading, incus, incus.aio
        h = incus.Host({str(d)!r})
        assert h.server()["api_version"] == "1.0"
        c = incus.Client({str(daemon / "unix.socket")!r})
        ev = c.events()
        t = threading.Thread(target=lambda: c.instances.all())
        t.start(); t.join()
        async def main():
            a = incus.aio.Client({str(daemon / "unix.socket")!r})
            await asyncio.gather(*(a.instances.all() for _ in range(10)))
            l = await a.events()
            assert await l.next_async(timeout=0.05) is None
        asyncio.run(main())
        print("done")
    """)
    try:
        # An exit racing a completion crashed one run in ~15 before asyncio futures were
        # completed on the loop's thread: run it several times.
        for _ in range(10):
            r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                               timeout=120)
            assert r.returncode == 0, r.stderr
            assert r.stdout == "done\n"
            assert "panic" not in r.stderr.lower() and "Traceback" not in r.stderr, r.stderr
    finally:
        shutil.rmtree(d, ignore_errors=True)
