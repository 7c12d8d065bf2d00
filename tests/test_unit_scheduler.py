"""Unit tests of the scheduler's pure parts: the one container -> Instance parser (fed dicts shaped
like the engine's inspect and list answers), log lines, attach frames, the Dockerfile LABEL
line, and the factory. No engine."""
from __future__ import annotations

import os
import struct

import pytest

from controller.scheduler import LABEL_APP, LABEL_BUILD, LABEL_INSTANCE, Scheduler, make_scheduler
from controller.scheduler.docker_build import append_labels
from controller.scheduler.docker_parse import Lines, iso, parse_instance, parse_logs, split_frames
from controller.services import scheduler_config
from controller.settings import Settings
from core.errors import ImageBuildFailed
from core.models import LogLine

APP_PORT = 5000
WEB_LABELS = {"dockyard.instance": "dy", "dockyard.app": "shop", "dockyard.release": "3",
              "dockyard.process": "web", "dockyard.index": "2"}


def inspected(status: str, exit_code: int = 0, oom: bool = False, restarts: int = 0, labels=None, ports=None) -> dict:
    """A container as `GET /containers/{id}/json` describes it (the fields the parser reads)."""
    return {
        "Id": "c0ffee" * 10 + "abcd", "Name": "/dy.shop.web.2.v3.beef", "RestartCount": restarts,
        "Config": {"Image": "dockyard/shop:v3", "Labels": WEB_LABELS if labels is None else labels},
        "State": {"Status": status, "Running": status in ("running", "restarting"),
                  "Restarting": status == "restarting", "OOMKilled": oom, "Dead": status == "dead",
                  "ExitCode": exit_code, "StartedAt": "2026-12-01T00:44:52.992499047Z",
                  "FinishedAt": "2026-12-01T00:44:53.13152253Z"},
        "NetworkSettings": {"Ports": {"5000/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49153"}]}
                            if ports is None else ports},
    }


def listed(state: str, status: str, labels=None, ports=None) -> dict:
    """A row of `GET /containers/json?all=1`."""
    return {
        "Id": "c0ffee" * 10 + "abcd", "Names": ["/dy.shop.web.2.v3.beef"], "Image": "dockyard/shop:v3",
        "Created": 1796085889, "Labels": WEB_LABELS if labels is None else labels, "State": state,
        "Status": status, "NetworkSettings": {"Networks": {"dy-apps": {}}},
        "Ports": [{"IP": "127.0.0.1", "PrivatePort": 5000, "PublicPort": 49153, "Type": "tcp"}]
        if ports is None else ports,
    }


# ---- the one parser: inspect answers ------------------------------------------------------
def test_inspect_running_web_instance():
    inst = parse_instance(inspected("running", restarts=2), APP_PORT)
    assert (inst.app, inst.version, inst.process, inst.index, inst.label) == ("shop", 3, "web", 2, "web.2")
    assert inst.name == "dy.shop.web.2.v3.beef" and inst.image == "dockyard/shop:v3"
    assert inst.state == "running" and inst.host_port == 49153
    assert inst.exit_code is None and inst.oom_killed is False and inst.restart_count == 2
    assert inst.started_at == "2026-12-01T00:44:52.992499047Z" and inst.detached is False


def test_inspect_restarting_after_an_out_of_memory_kill():
    # what the engine said of an app over its memory limit under restart policy unless-stopped
    inst = parse_instance(inspected("restarting", exit_code=137, oom=True, restarts=5), APP_PORT)
    assert inst.state == "restarting" and inst.exit_code == 137 and inst.oom_killed is True
    assert inst.restart_count == 5 and inst.host_port is None


@pytest.mark.parametrize("status", ["exited", "dead"])
def test_inspect_ended_instance_keeps_its_exit(status):
    inst = parse_instance(inspected(status, exit_code=3), APP_PORT)
    assert inst.exit_code == 3 and inst.oom_killed is False and inst.host_port is None


@pytest.mark.parametrize("status", ["running", "created", "paused"])
def test_inspect_an_instance_that_has_not_exited_has_no_exit(status):
    # the engine keeps OOMKilled/ExitCode of an earlier run on a created or paused container
    inst = parse_instance(inspected(status, exit_code=137, oom=True), APP_PORT)
    assert inst.exit_code is None and inst.oom_killed is False


def test_inspect_port_only_on_loopback_or_any_address():
    assert parse_instance(inspected("running", ports={"5000/tcp": [{"HostIp": "", "HostPort": "40000"}]}),
                          APP_PORT).host_port == 40000
    assert parse_instance(inspected("running", ports={"5000/tcp": [{"HostIp": "10.0.0.1", "HostPort": "1"}]}),
                          APP_PORT).host_port is None
    assert parse_instance(inspected("running", ports={"5000/tcp": None}), APP_PORT).host_port is None
    assert parse_instance(inspected("running", ports={}), 8080).host_port is None


# ---- the one parser: list rows -------------------------------------------------------------
@pytest.mark.parametrize("state,status,code", [
    ("running", "Up 5 minutes", None),
    ("running", "Up Less than a second", None),
    ("exited", "Exited (0) 3 seconds ago", 0),
    ("exited", "Exited (137) 2 minutes ago", 137),
    ("exited", "Exited (-1) 1 second ago", -1),
    ("restarting", "Restarting (137) Less than a second ago", 137),
    ("restarting", "Restarting (1) 2 seconds ago", 1),
    ("created", "Created", None),
    ("dead", "Dead", None),
    ("removing", "Removal In Progress", None),
])
def test_list_row_reads_the_exit_code_from_the_status_text(state, status, code):
    inst = parse_instance(listed(state, status), APP_PORT)
    assert inst.state == state and inst.exit_code == code
    assert inst.restart_count == 0 and inst.oom_killed is False     # a listing does not say
    assert inst.host_port == (49153 if state == "running" else None)


def test_list_row_fields():
    inst = parse_instance(listed("running", "Up 1 minute"), APP_PORT)
    assert (inst.container_id, inst.name, inst.image) == ("c0ffee" * 10 + "abcd", "dy.shop.web.2.v3.beef",
                                                          "dockyard/shop:v3")
    assert (inst.app, inst.version, inst.process, inst.index, inst.started_at) == ("shop", 3, "web", 2, "1796085889")


def test_list_row_port_only_on_loopback():
    other = [{"IP": "0.0.0.0", "PrivatePort": 5000, "PublicPort": 1, "Type": "tcp"},
             {"IP": "127.0.0.1", "PrivatePort": 6000, "PublicPort": 2, "Type": "tcp"}]
    assert parse_instance(listed("running", "Up 1 minute", ports=other), APP_PORT).host_port is None


def test_oneoffs_are_process_run_and_say_whether_detached():
    labels = {"dockyard.instance": "dy", "dockyard.app": "shop", "dockyard.release": "3",
              "dockyard.oneoff": "run", "dockyard.index": "1", "dockyard.detached": "1"}
    row = parse_instance(listed("exited", "Exited (4) 1 second ago", labels=labels, ports=[]), APP_PORT)
    assert (row.process, row.index, row.label, row.detached, row.exit_code) == ("run", 1, "run.1", True, 4)
    one = parse_instance(inspected("running", labels={**labels, "dockyard.detached": "0"}, ports={}), APP_PORT)
    assert one.process == "run" and one.detached is False


def test_missing_or_odd_labels_do_not_break_a_listing():
    inst = parse_instance(listed("running", "Up 1 minute", labels={"dockyard.release": "x"}), APP_PORT)
    assert (inst.app, inst.version, inst.process, inst.index) == ("", 0, "", 0)
    assert parse_instance({**listed("running", "Up"), "Labels": None}, APP_PORT).app == ""


# ---- logs, frames, lines ------------------------------------------------------------------
def test_log_lines_get_the_store_time_format():
    raw = (b"2026-12-01T00:44:52.992499047Z hello world\n"
           b"2026-12-01T00:44:53Z second\n"
           b"not-a-stamp odd \xff\n")
    assert parse_logs(raw) == [LogLine("2026-12-01T00:44:52.992499+00:00", "hello world"),
                               LogLine("2026-12-01T00:44:53.000000+00:00", "second"),
                               LogLine("not-a-stamp", "odd \ufffd")]
    assert iso("2026-12-01T00:44:52.5Z") == "2026-12-01T00:44:52.500000+00:00"


def frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + struct.pack(">I", len(data)) + data


def test_attach_frames_split_across_reads():
    buf = frame(1, b"out") + frame(2, b"err") + frame(1, b"partial")
    frames, rest = split_frames(buf[:-3])
    assert frames == [(1, b"out"), (2, b"err")] and rest == frame(1, b"partial")[:-3]
    frames, rest = split_frames(rest + buf[-3:])
    assert frames == [(1, b"partial")] and rest == b""
    assert split_frames(b"\x01\x00") == ([], b"\x01\x00")


def test_lines_come_whole_and_the_last_on_flush():
    got: list[str] = []
    lines = Lines(got.append)
    lines.feed("a\nb")
    lines.feed("c\n\nd")
    assert got == ["a", "bc", ""]
    lines.flush()
    lines.flush()
    assert got == ["a", "bc", "", "d"]


# ---- labels appended to the build's Dockerfile ---------------------------------------------
LABELS = {LABEL_INSTANCE: "dy", LABEL_APP: "shop", LABEL_BUILD: "b1"}


def test_one_label_line_is_appended(tmp_path):
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY a /a")
    os.chmod(tmp_path / "Dockerfile", 0o644)
    append_labels(str(tmp_path), "Dockerfile", LABELS)
    assert (tmp_path / "Dockerfile").read_text().splitlines() == [
        "FROM scratch", "COPY a /a", 'LABEL dockyard.instance="dy" dockyard.app="shop" dockyard.build="b1"']
    assert os.stat(tmp_path / "Dockerfile").st_mode & 0o777 == 0o644


def test_labels_go_to_a_dockerfile_in_a_subdirectory_or_outside_by_absolute_path(tmp_path):
    (tmp_path / "ctx" / "docker").mkdir(parents=True)
    (tmp_path / "ctx" / "docker" / "Dockerfile.prod").write_text("FROM scratch\n")
    append_labels(str(tmp_path / "ctx"), "docker/Dockerfile.prod", {LABEL_APP: "shop"})
    assert (tmp_path / "ctx" / "docker" / "Dockerfile.prod").read_text().splitlines()[-1] == 'LABEL dockyard.app="shop"'
    (tmp_path / "Dockerfile.slug").write_text("FROM x\n")
    append_labels(str(tmp_path / "ctx"), str(tmp_path / "Dockerfile.slug"), {LABEL_APP: "shop"})
    assert (tmp_path / "Dockerfile.slug").read_text().splitlines()[-1] == 'LABEL dockyard.app="shop"'


def test_a_symlinked_dockerfile_is_refused_and_its_target_untouched(tmp_path):
    target = tmp_path / "passwd"
    target.write_text("root:x:0:0\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").symlink_to(target)
    with pytest.raises(ImageBuildFailed, match="symlink"):
        append_labels(str(ctx), "Dockerfile", LABELS)
    assert target.read_text() == "root:x:0:0\n"


def test_a_dockerfile_through_a_symlinked_directory_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text("FROM scratch\n")
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "sub").symlink_to(outside)
    for name in ("sub/Dockerfile", "../outside/Dockerfile"):
        with pytest.raises(ImageBuildFailed, match="outside the build context"):
            append_labels(str(ctx), name, LABELS)
    assert (outside / "Dockerfile").read_text() == "FROM scratch\n"


def test_a_missing_or_odd_dockerfile_is_a_build_failure(tmp_path):
    with pytest.raises(ImageBuildFailed, match="Could not open Dockerfile"):
        append_labels(str(tmp_path), "Dockerfile", LABELS)
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(ImageBuildFailed):
        append_labels(str(tmp_path), "fifo", LABELS)


# ---- the factory ---------------------------------------------------------------------------
def test_the_factory_gives_a_complete_scheduler_without_contacting_the_engine(tmp_path):
    sched = make_scheduler(scheduler_config(Settings(home=tmp_path)))
    assert isinstance(sched, Scheduler)
    assert not getattr(type(sched), "__abstractmethods__", None)


def test_a_web_instance_listening_on_its_images_exposed_port_is_found_there():
    labels = {**WEB_LABELS, "dockyard.port": "80"}
    row = listed("running", "Up 1 minute", labels=labels,
                 ports=[{"IP": "127.0.0.1", "PrivatePort": 80, "PublicPort": 49160, "Type": "tcp"}])
    assert parse_instance(row, APP_PORT).host_port == 49160
    insp = inspected("running", labels=labels, ports={"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49161"}]})
    assert parse_instance(insp, APP_PORT).host_port == 49161
    assert parse_instance(listed("running", "Up 1 minute"), APP_PORT).host_port == 49153   # no label: $PORT


def test_the_scheduler_config_holds_the_settings_of_the_same_name(tmp_path):
    from dataclasses import fields
    settings = Settings(home=tmp_path, name="cfgtest", stop_grace=7, registry_mirror="http://127.0.0.1:9/")
    config = scheduler_config(settings)
    assert config.backend == settings.scheduler
    for f in fields(config):
        if f.name != "backend":
            assert getattr(config, f.name) == getattr(settings, f.name), f.name
    assert config.image_repo("shop") == settings.image_repo("shop")
