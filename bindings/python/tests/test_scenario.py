"""The scenario the Python issue asks for, through a daemon and embedded: image import,
create, start, execute, files, snapshots and restore, config edit, events for each step,
stop, delete."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import incus


def lifecycle(listener) -> list[str]:
    """Lifecycle actions received so far (waits briefly for stragglers)."""
    out = []
    while True:
        ev = listener.next(timeout=1.0)
        if ev is None:
            return out
        if ev["type"] == "lifecycle":
            out.append(ev["metadata"]["action"])


def test_full_scenario(api, image, tmp_path: Path):
    events = api.events(types=["lifecycle"])

    img = api.images.create_from_file(image, aliases=["busybox"])
    assert len(img.fingerprint) == 64
    assert [a["name"] for a in img.aliases] == ["busybox"]
    assert api.images.get_by_alias("busybox").fingerprint == img.fingerprint

    inst = api.instances.create(
        {"name": "s1", "source": {"type": "image", "alias": "busybox"},
         "config": {"environment.FOO": "bar"}})
    assert inst.status == "Stopped"
    inst.start()
    assert inst.status == "Running"
    assert [i.name for i in api.instances.all()] == ["s1"]
    assert api.instances.get("s1").status == "Running"
    assert api.instances.exists("s1") and not api.instances.exists("nope")

    # execute: exit status, both streams, stdin, environment, cwd, user, not found
    r = inst.execute(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert r == (3, "out\n", "err\n")
    assert inst.execute(["cat"], stdin="from stdin\n") == (0, "from stdin\n", "")
    r = inst.execute(["sh", "-c", "echo $FOO $BAR; pwd; id -u"], environment={"BAR": "baz"},
                     cwd="/tmp", user=1000)
    assert r.stdout == "bar baz\n/tmp\n1000\n", r
    assert inst.execute(["/no/such/command"]).exit_code == 127
    raw = inst.execute(["printf", "\\377"], decode=False)
    assert raw.stdout == b"\xff"
    chunks = []
    r = inst.execute(["sh", "-c", "echo one; echo two >&2"], stdout_handler=chunks.append)
    assert r.exit_code == 0 and "".join(chunks) == "one\n" and r.stderr == "two\n"
    # stdin fed while output is read: a megabyte through cat cannot block on a full pipe
    seen = []
    big = "x" * 1_000_000
    r = inst.execute(["cat"], stdin=big, stdout_handler=seen.append)
    assert r.exit_code == 0 and r.stdout == big and "".join(seen) == big
    fed = inst.exec_stream(["cat"], stdin=b"fed\n")
    assert b"".join(b for _, b in fed) == b"fed\n" and fed.wait() == 0
    s = inst.exec_stream(["sh", "-c", "read line; echo got $line; echo bye >&2"])
    s.write(b"ping\n")
    got = {1: b"", 2: b""}
    for fd, b in s:
        got[fd] += b
    assert s.wait() == 0 and got == {1: b"got ping\n", 2: b"bye\n"}

    # files
    inst.files.put("/root/a.txt", "hello", mode=0o640, uid=1000, gid=1000)
    assert inst.files.get("/root/a.txt") == b"hello"
    assert inst.execute(["stat", "-c", "%a %u %g", "/root/a.txt"]).stdout == "640 1000 1000\n"
    inst.files.put("/root/a.txt", " world", append=True)
    assert inst.files.get("/root/a.txt") == b"hello world"
    inst.files.mk_dir("/root/d", mode=0o700)
    assert inst.files.listdir("/root") == ["a.txt", "d"]
    with pytest.raises(IsADirectoryError):
        inst.files.get("/root/d")
    inst.files.delete("/root/d")
    assert not inst.files.exists("/root/d")
    with pytest.raises(incus.NotFound):
        inst.files.get("/root/missing")
    src = tmp_path / "tree"
    (src / "sub").mkdir(parents=True)
    (src / "x").write_bytes(b"x" * 100_000)
    (src / "sub" / "y").write_text("y")
    os.chmod(src / "sub" / "y", 0o755)
    os.symlink("x", src / "link")
    inst.files.recursive_put(src, "/opt/tree")
    assert inst.execute(["sh", "-c", "cat /opt/tree/sub/y; readlink /opt/tree/link"]).stdout \
        == "y" + "x\n"
    back = tmp_path / "back"
    inst.files.recursive_get("/opt/tree", back)
    assert (back / "x").read_bytes() == b"x" * 100_000
    assert (back / "sub" / "y").stat().st_mode & 0o777 == 0o755
    assert os.readlink(back / "link") == "x"

    # snapshots and restore
    inst.files.put("/root/state", "before")
    snap = inst.snapshots.create("snap0")
    assert snap.name == "snap0"
    inst.files.put("/root/state", "after")
    inst.restore_snapshot("snap0")
    assert inst.files.get("/root/state") == b"before"
    inst.files.put("/root/state", "after again")
    inst.snapshots.get("snap0").restore()
    assert inst.files.get("/root/state") == b"before"
    inst.snapshots.create("snap1")
    assert [s.name for s in inst.snapshots.all()] == ["snap0", "snap1"]
    inst.snapshots.get("snap1").rename("snap2")
    inst.snapshots.delete("snap0")
    assert [s.name for s in inst.snapshots.all()] == ["snap2"]

    # config edit: saved, re-read; a bad key refused with nothing changed
    inst.config["user.note"] = "kept"
    inst.config["limits.memory"] = "256MiB"
    inst.save()
    again = api.instances.get("s1")
    assert again.config["user.note"] == "kept" and again.config["limits.memory"] == "256MiB"
    again.config["bogus.key"] = "1"
    with pytest.raises(incus.InvalidInput):
        again.save()
    assert "bogus.key" not in api.instances.get("s1").config

    state = inst.state()
    assert state.status == "Running" and state.processes >= 1

    inst.freeze()
    assert inst.status == "Frozen"
    inst.unfreeze()
    inst.stop(force=True)
    assert inst.status == "Stopped"
    inst.rename("s2")
    assert api.instances.get("s2").name == "s2"
    inst.delete()
    with pytest.raises(incus.NotFound):
        api.instances.get("s2")

    seen = lifecycle(events)
    events.close()
    wanted = ["image-created", "image-alias-created", "instance-created", "instance-started",
              "instance-exec", "instance-file-pushed", "instance-snapshot-created",
              "instance-restored", "instance-snapshot-renamed", "instance-snapshot-deleted",
              "instance-updated", "instance-paused", "instance-resumed", "instance-stopped",
              "instance-renamed", "instance-deleted"]
    it = iter(seen)
    missing = [w for w in wanted if not any(a == w for a in it)]
    assert not missing, f"not seen in order: {missing}; seen {seen}"


def test_image_from_bytes_split_and_export(api, image_dir: Path, tmp_path: Path):
    meta = (image_dir / "busybox-split.meta.tar.xz").read_bytes()
    rootfs = (image_dir / "busybox-split.rootfs.squashfs").read_bytes()
    img = api.images.create(rootfs, metadata=meta, aliases=["split"])
    assert api.images.get_by_alias("split").fingerprint == img.fingerprint
    unified = api.images.create((image_dir / "busybox.tar.xz").read_bytes(), public=True)
    assert unified.public is True
    assert unified.export() == (image_dir / "busybox.tar.xz").read_bytes()
    img.export_to(tmp_path / "out")
    assert (tmp_path / "out").stat().st_size > 0
    unified.add_alias("u1", "first")
    assert {a["name"] for a in api.images.aliases()} == {"split", "u1"}
    unified.delete_alias("u1")
    unified.delete()
    with pytest.raises(incus.NotFound):
        api.images.get(unified.fingerprint)


def test_profiles_projects_pools_networks(api, imported):
    p = api.profiles.create("web", config={"limits.cpu": "1"},
                            devices={"tmp": {"type": "disk", "source": "/tmp", "path": "/mnt"}})
    assert api.profiles.exists("web") and p.config == {"limits.cpu": "1"}
    p.description = "web servers"
    p.save()
    assert api.profiles.get("web").description == "web servers"
    p.rename("web2")
    assert [x.name for x in api.profiles.all()] == ["default", "web2"]
    p.delete()

    proj = api.projects.create("team", config={"features.images": "false",
                                                "features.profiles": "false"})
    assert "team" in [x.name for x in api.projects.all()]
    scoped = api.with_project("team")
    assert scoped.project == "team"
    inst = scoped.instances.create({"name": "t1", "source": {"type": "image",
                                                            "alias": "busybox"}})
    assert [i.name for i in scoped.instances.all()] == ["t1"]
    assert [i.name for i in api.instances.all()] == []
    inst.delete()
    proj.delete()

    pool = api.storage_pools.get("default")
    assert pool.driver == "dir"
    assert pool.resources()["space"]["total"] > 0
    vol = pool.volumes.create("data", config={"user.x": "1"})
    assert vol.type == "custom" and vol.config["user.x"] == "1"
    vol.description = "scratch"
    vol.save()
    assert pool.volumes.get("custom", "data").description == "scratch"
    assert "data" in [v.name for v in pool.volumes.all()]
    vol.rename("data2")
    vol.delete()

    nets = api.networks.all()
    assert "lo" in [n.name for n in nets]
    assert api.networks.get("lo").managed is False
    with pytest.raises(incus.NotFound):
        api.networks.get("no-such-net0")


def test_operations(api, imported):
    r = api.api_request("POST", "/1.0/instances",
                        {"name": "o1", "source": {"type": "image", "alias": "busybox"}},
                        wait=False)
    assert r["type"] == "async"
    op_id = r["operation"].rsplit("/", 1)[-1]
    op = api.operations.wait(op_id)
    assert op.status == "Success"
    assert any(o.id == op_id for o in api.operations.all())
    api.instances.get("o1").delete()
