"""pylxd (unmodified, from PyPI) against incusd: run by incus-daemon/tests/incus_client.rs.

usage: pylxd_scenario.py INCUS_DIR IMAGE_TARBALL
Exits non-zero (with the failing assertion) when pylxd and incusd disagree.
"""
import sys

import pylxd

state_dir, tarball = sys.argv[1], sys.argv[2]
client = pylxd.Client(endpoint=state_dir + "/unix.socket")
assert client.trusted, "unix socket clients are trusted"
assert client.host_info["api_version"] == "1.0"

with open(tarball, "rb") as f:
    image = client.images.create(f.read(), public=False, wait=True)
image.add_alias("busybox", "")
assert [a["name"] for a in client.images.get(image.fingerprint).aliases] == ["busybox"]

inst = client.instances.create(
    {"name": "py1", "source": {"type": "image", "alias": "busybox"}}, wait=True
)
inst.start(wait=True)
assert client.instances.get("py1").status == "Running"
assert [i.name for i in client.instances.all()] == ["py1"]

r = inst.execute(["sh", "-c", "echo out; echo err >&2; exit 3"])
assert (r.exit_code, r.stdout, r.stderr) == (3, "out\n", "err\n"), r
r = inst.execute(["cat"], stdin_payload="from stdin\n")
assert (r.exit_code, r.stdout) == (0, "from stdin\n"), r
r = inst.execute(["sh", "-c", "echo $FOO"], environment={"FOO": "bar"})
assert r.stdout == "bar\n", r
assert inst.execute(["no-such-command"]).exit_code == 127

inst.files.put("/root/p.txt", b"pylxd\n", mode=0o640, uid=1000, gid=1000)
assert inst.files.get("/root/p.txt") == b"pylxd\n"
assert inst.execute(["stat", "-c", "%u:%g:%a", "/root/p.txt"]).stdout == "1000:1000:640\n"
inst.files.delete("/root/p.txt")
assert inst.execute(["test", "-e", "/root/p.txt"]).exit_code == 1

inst.snapshots.create("s0", wait=True)
assert [s.name for s in inst.snapshots.all()] == ["s0"]
inst.execute(["touch", "/root/after"])
inst.snapshots.get("s0").restore(wait=True)
assert inst.execute(["test", "-e", "/root/after"]).exit_code == 1
inst.snapshots.get("s0").delete(wait=True)

inst.config["user.k"] = "v"
inst.save(wait=True)
assert client.instances.get("py1").config["user.k"] == "v"

try:
    client.instances.create({"name": "bad_name", "source": {"type": "none"}}, wait=True)
    raise AssertionError("an invalid name was accepted")
except pylxd.exceptions.LXDAPIException as e:
    assert "Invalid instance name" in str(e), e

# Profiles: create, assign, used_by, delete.
client.profiles.create("pyprof", config={"environment.FROM": "pylxd"}, devices={})
assert client.profiles.get("pyprof").config["environment.FROM"] == "pylxd"
inst = client.instances.get("py1")
inst.profiles = ["default", "pyprof"]
inst.save(wait=True)
inst.restart(force=True, wait=True)
assert inst.execute(["sh", "-c", "echo $FROM"]).stdout == "pylxd\n"
assert any(u.startswith("/1.0/instances/py1") for u in client.profiles.get("pyprof").used_by)
inst.profiles = ["default"]
inst.save(wait=True)
client.profiles.get("pyprof").delete()

# Projects: an instance in another project is invisible from the default one.
client.projects.create(
    "pyproj", config={"features.images": "false", "features.profiles": "false"}
)
pc = pylxd.Client(endpoint=state_dir + "/unix.socket", project="pyproj")
pinst = pc.instances.create(
    {"name": "pp1", "source": {"type": "image", "alias": "busybox"}}, wait=True
)
# (recursion=1: at recursion 0 pylxd takes names from URLs, which carry "?project=" outside
# the default project, with Incus and LXD alike.)
assert [i.name for i in pc.instances.all(recursion=1)] == ["pp1"]
assert [i.name for i in client.instances.all(recursion=1)] == ["py1"]
pinst.delete(wait=True)
client.projects.get("pyproj").delete()

inst.stop(force=True, wait=True)
assert client.instances.get("py1").status == "Stopped"
inst.delete(wait=True)
assert client.instances.all() == []
print("pylxd scenario passed")
