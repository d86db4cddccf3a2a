"""Throughput of the `incus` module against pylxd 2.4.2, both on the same daemon in the same
run: `instances.all()` (names and statuses of N instances) and `execute` (a short command,
one at a time and from 4 threads). Also the embedded engine (`incus.Host`) on its own state
directory for the same steps, where no daemon is involved at all.

usage: python vs_pylxd.py SOCKET IMAGE_TARBALL [N_INSTANCES] [ROUNDS] [HOST_DIR]

Creates instances bench-0..N-1 (stopped) and bench-exec (running) on the daemon, measures,
deletes them. Prints a Markdown table. A benchmark, not a test: nothing is asserted.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import threading
import time

import pylxd

import incus


def rate(fn, rounds: int) -> float:
    """Calls per second over `rounds` calls (median of 3 batches)."""
    out = []
    for _ in range(3):
        t = time.perf_counter()
        for _ in range(rounds):
            fn()
        out.append(rounds / (time.perf_counter() - t))
    return statistics.median(out)


def threaded_rate(fn, rounds: int, threads: int = 4) -> float:
    def work():
        for _ in range(rounds):
            fn()
    ts = [threading.Thread(target=work) for _ in range(threads)]
    t = time.perf_counter()
    for th in ts:
        th.start()
    for th in ts:
        th.join()
    return rounds * threads / (time.perf_counter() - t)


def setup(c, image: str, n: int):
    with open(image, "rb") as f:
        fp = hashlib.sha256(f.read()).hexdigest()
    if c.images.exists(fp):
        c.images.get(fp).add_alias("bench")
        imported = False
    else:
        c.images.create_from_file(image, aliases=["bench"])
        imported = True
    for i in range(n):
        c.instances.create({"name": f"bench-{i}", "source": {"type": "image", "alias": "bench"}})
    e = c.instances.create({"name": "bench-exec", "source": {"type": "image", "alias": "bench"}})
    e.start()
    return imported


def teardown(c, n: int, imported: bool):
    e = c.instances.get("bench-exec")
    e.stop(force=True)
    e.delete()
    for i in range(n):
        c.instances.get(f"bench-{i}").delete()
    if imported:
        c.images.get_by_alias("bench").delete()
    else:
        c.images.get_by_alias("bench").delete_alias("bench")


def measure_incus(c, rounds: int, exec_rounds: int) -> dict:
    e = c.instances.get("bench-exec")
    return {
        "all": rate(lambda: [(i.name, i.status) for i in c.instances.all()], rounds),
        "exec": rate(lambda: e.execute(["true"]), exec_rounds),
        "exec4": threaded_rate(lambda: e.execute(["true"]), exec_rounds),
    }


def measure_pylxd(p, rounds: int, exec_rounds: int) -> dict:
    e = p.instances.get("bench-exec")
    return {
        "all": rate(lambda: [(i.name, i.status) for i in p.instances.all()], rounds),
        "exec": rate(lambda: e.execute(["true"]), exec_rounds),
        "exec4": threaded_rate(lambda: e.execute(["true"]), exec_rounds),
    }


def main() -> None:
    sock, image = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 50
    rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 20
    host_dir = sys.argv[5] if len(sys.argv) > 5 else None
    exec_rounds = rounds * 2
    c = incus.Client(sock)
    imported = setup(c, image, n)
    try:
        ours = measure_incus(c, rounds, exec_rounds)
        theirs = measure_pylxd(pylxd.Client(endpoint=sock), rounds, exec_rounds)
    finally:
        teardown(c, n, imported)
    embedded = None
    if host_dir:
        h = incus.Host(host_dir)
        h_imported = setup(h, image, n)
        try:
            embedded = measure_incus(h, rounds, exec_rounds)
        finally:
            teardown(h, n, h_imported)
            h.close()
    print(f"\n{n} stopped instances + 1 running; calls per second (higher is better)\n")
    print("| step | pylxd 2.4.2 | incus.Client | ratio | incus.Host (embedded) |")
    print("|---|---:|---:|---:|---:|")
    names = {"all": f"instances.all() + name/status of {n + 1}",
             "exec": "execute(['true']), one at a time",
             "exec4": "execute(['true']), 4 threads"}
    for k, label in names.items():
        emb = f"{embedded[k]:.1f}" if embedded else "-"
        print(f"| {label} | {theirs[k]:.1f} | {ours[k]:.1f} | {ours[k] / theirs[k]:.1f}x | {emb} |")


if __name__ == "__main__":
    main()
