"""Builds on a cluster's nodes: which node a build goes to, and the build slots (one per node,
a queue in arrival order when every node is building). No engine: node rows are plain dicts."""
from __future__ import annotations

import os
import threading
import time

import pytest

from core.errors import ImageBuildFailed, SchedulerError

from controller.scheduler.swarm_slots import BuildSlots, build_order


def node(name: str, instances: int, state: str = "ready", availability: str = "active") -> dict:
    return {"hostname": name, "address": f"10.0.0.{name[-1]}", "state": state, "availability": availability,
            "instances": instances}


ROWS = [node("node1", 3), node("node2", 1), node("node3", 0, state="down"), node("node4", 0, availability="drain")]


def test_a_build_goes_to_a_ready_active_node_least_loaded_first():
    assert [n["hostname"] for n in build_order(ROWS)] == ["node2", "node1"]
    assert build_order(ROWS[2:]) == []


def test_a_build_goes_first_to_the_node_its_app_built_on_last_its_cache_is_there(tmp_path):
    assert [n["hostname"] for n in build_order(ROWS, prefer="node1")] == ["node1", "node2"]
    assert [n["hostname"] for n in build_order(ROWS, prefer="node3")] == ["node2", "node1"]   # down: not taken
    slots = BuildSlots(tmp_path)
    slots.built_on("app1", "node1")
    mine = slots.take(lambda: ROWS, lambda _: None, lambda: False, app="app1")
    other = slots.take(lambda: ROWS, lambda _: None, lambda: False, app="app1")   # node1 busy: the least loaded
    assert (mine.hostname, other.hostname) == ("node1", "node2")


def test_each_node_takes_one_build_and_the_next_waits_for_a_free_slot(tmp_path):
    slots = BuildSlots(tmp_path)
    waits: list[str] = []
    first = slots.take(lambda: ROWS, waits.append, lambda: False)
    second = slots.take(lambda: ROWS, waits.append, lambda: False)
    assert (first.hostname, second.hostname) == ("node2", "node1")
    assert waits == []
    got: list[str] = []
    third = threading.Thread(target=lambda: got.append(slots.take(lambda: ROWS, waits.append, lambda: False).hostname))
    third.start()
    time.sleep(0.8)
    assert got == [] and len(waits) == 1 and "waiting for a build slot" in waits[0]
    slots.give_back(second)
    third.join(5)
    assert got == ["node1"]


def test_slots_are_shared_by_the_platforms_processes(tmp_path):
    """Another process's slot is a lock on the same file: this one sees the node busy."""
    other = BuildSlots(tmp_path).take(lambda: ROWS[1:2], lambda _: None, lambda: False)
    mine = BuildSlots(tmp_path).take(lambda: ROWS, lambda _: None, lambda: False)
    assert (other.hostname, mine.hostname) == ("node2", "node1")


def test_a_waiting_build_stops_when_its_client_goes_and_frees_its_place(tmp_path):
    slots = BuildSlots(tmp_path)
    held = slots.take(lambda: ROWS[1:2], lambda _: None, lambda: False)
    with pytest.raises(ImageBuildFailed, match="cancelled"):
        slots.take(lambda: ROWS[1:2], lambda _: None, lambda: True)
    slots.give_back(held)
    assert slots.take(lambda: ROWS[1:2], lambda _: None, lambda: False).hostname == "node2"


def test_no_node_to_build_on_is_a_clear_error(tmp_path):
    with pytest.raises(SchedulerError, match="dockyard nodes"):
        BuildSlots(tmp_path).take(lambda: ROWS[2:], lambda _: None, lambda: False)


# ---- a buildpack build's mounts as copies (swarm_buildpack.py): the tars in and out ----------
def test_the_build_files_go_in_at_their_mount_paths_and_the_cache_root_is_the_build_users(tmp_path):
    import io
    import tarfile

    from controller.scheduler.swarm_buildpack import pack

    src = tmp_path / "src"
    (src / "pkg").mkdir(parents=True)
    (src / "pkg" / "a.py").write_text("print(1)\n")
    (src / "link").symlink_to("/etc/passwd")   # a link the tenant committed stays a link
    runner = tmp_path / "runner.sh"
    runner.write_text("echo run\n")
    buf = io.BytesIO()
    pack(buf, {"/app": (str(src), False), "/dockyard/runner.sh": (str(runner), True)}, cache=True)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert {"cache", "app", "app/pkg", "app/pkg/a.py", "app/link", "dockyard/runner.sh"} <= set(members)
    assert members["cache"].isdir() and (members["cache"].uid, members["cache"].gid) == (1000, 1000)
    assert members["app/link"].issym() and members["app/link"].linkname == "/etc/passwd"
    assert members["dockyard/runner.sh"].isreg()


def test_what_a_build_step_wrote_comes_back_without_escaping_its_directory(tmp_path):
    import io
    import tarfile

    from core.errors import ImageBuildFailed as Refused
    from controller.scheduler.swarm_buildpack import unpack

    def tar_of(*entries) -> io.BytesIO:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w") as tar:
            for name, kind, data in entries:
                info = tarfile.TarInfo(name)
                info.type = kind
                if kind == tarfile.SYMTYPE:
                    info.linkname = data
                    tar.addfile(info)
                elif kind == tarfile.REGTYPE:
                    info.size, info.mode = len(data), 0o4755
                    tar.addfile(info, io.BytesIO(data))
                else:
                    tar.addfile(info)
        buf.seek(0)
        return buf

    dest = tmp_path / "app"
    dest.mkdir()
    (dest / "old.txt").write_text("the source before the build\n")
    unpack(tar_of(("app", tarfile.DIRTYPE, None), ("app/slug.txt", tarfile.REGTYPE, b"compiled"),
                  ("app/.heroku", tarfile.SYMTYPE, "/cache/venv"), ("app/dev", tarfile.CHRTYPE, None)), str(dest))
    assert sorted(os.listdir(dest)) == [".heroku", "slug.txt"]   # replaced; no device node taken
    assert (dest / "slug.txt").read_bytes() == b"compiled" and not (dest / "slug.txt").stat().st_mode & 0o4000
    assert os.readlink(dest / ".heroku") == "/cache/venv"
    # a file through a link it made, or a path out of the directory: refused, nothing written outside
    for evil in [(("app/out", tarfile.SYMTYPE, str(tmp_path)), ("app/out/escaped", tarfile.REGTYPE, b"x")),
                 (("app/../escaped", tarfile.REGTYPE, b"x"),)]:
        with pytest.raises(Refused, match="cannot be taken out"):
            unpack(tar_of(*evil), str(dest))
        assert not (tmp_path / "escaped").exists()
