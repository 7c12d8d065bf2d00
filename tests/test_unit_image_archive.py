"""A small image leaving a build sandbox as one archive (controller/scheduler/image_archive.py):
the platform's labels stamped on the way, and nothing but what a `docker save` writes let through."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from controller.scheduler.image_archive import relabel
from controller.scheduler.image_stamp import NotAnImage

LAYER = "a" * 64 + "/layer.tar"
LABELS = {"dockyard.instance": "dy", "dockyard.app": "web", "dockyard.build": "b1"}


def _config(labels: dict) -> bytes:
    return json.dumps({"config": {"Cmd": ["httpd"], "Labels": labels},
                       "rootfs": {"type": "layers", "diff_ids": ["sha256:" + "c" * 64]}}).encode()


def _save(members: list[tuple[str, bytes]], links: tuple[str, ...] = ()) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            if name in links:
                info.type, info.linkname = tarfile.SYMTYPE, "/var/run/docker.sock"
            else:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _saved(config: bytes, layers: list[str] = [LAYER], extra: list[tuple[str, bytes]] = ()) -> tuple[bytes, str]:
    """What `docker save` of one image by its id writes (the legacy files included)."""
    built = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{built}.json", "RepoTags": None, "Layers": layers}]).encode()
    members = [(f"{built}.json", config), ("a" * 64 + "/VERSION", b"1.0"), ("a" * 64 + "/json", b"{}"),
               (LAYER, b"layer bytes"), *extra, ("manifest.json", manifest), ("repositories", b"{}")]
    return _save(members), "sha256:" + built


def _read(archive: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def test_the_archive_loads_as_the_builds_tag_with_the_platforms_labels_and_the_same_layers():
    src, built = _saved(_config({"team": "blue", "dockyard.app": "someone-else", "dockyard.addon": "x"}))
    out = io.BytesIO()
    new_id = relabel(io.BytesIO(src), out, built, LABELS, "dy/web:build-1", len(src))
    files = _read(out.getvalue())
    assert set(files) == {new_id.split(":")[1] + ".json", LAYER, "manifest.json"}   # no legacy files
    config = files[new_id.split(":")[1] + ".json"]
    assert "sha256:" + hashlib.sha256(config).hexdigest() == new_id != built
    # the platform's labels win; the tenant's own stay; no other dockyard.* label survives
    assert json.loads(config)["config"]["Labels"] == {"team": "blue", **LABELS}
    assert files[LAYER] == b"layer bytes"
    assert json.loads(files["manifest.json"]) == [{"Config": new_id.split(":")[1] + ".json",
                                                   "RepoTags": ["dy/web:build-1"], "Layers": [LAYER]}]


@pytest.mark.parametrize("extra", [[("../../etc/cron.d/evil", b"x")], [("a" * 64 + "/layer.tar.evil", b"x")],
                                   [("b" * 64 + ".json", _config({}))], [("notes.txt", b"x")]])
def test_a_member_a_save_does_not_write_is_refused(extra):
    src, built = _saved(_config({}), extra=extra)
    with pytest.raises(NotAnImage):
        relabel(io.BytesIO(src), io.BytesIO(), built, LABELS, "dy/web:b", len(src))


def test_a_link_in_place_of_a_layer_is_refused():
    config = _config({})
    built = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{built}.json", "RepoTags": None, "Layers": [LAYER]}]).encode()
    src = _save([(f"{built}.json", config), (LAYER, b""), ("manifest.json", manifest)], links=(LAYER,))
    with pytest.raises(NotAnImage):
        relabel(io.BytesIO(src), io.BytesIO(), "sha256:" + built, LABELS, "dy/web:b", len(src))


def test_another_images_config_or_a_layer_the_archive_lacks_is_refused():
    src, _ = _saved(_config({}))
    with pytest.raises(NotAnImage):          # not the image the build made
        relabel(io.BytesIO(src), io.BytesIO(), "sha256:" + "f" * 64, LABELS, "dy/web:b", len(src))
    src, built = _saved(_config({}), layers=[LAYER, "d" * 64 + "/layer.tar"])
    with pytest.raises(NotAnImage):          # the manifest names a layer not in the archive
        relabel(io.BytesIO(src), io.BytesIO(), built, LABELS, "dy/web:b", len(src))


def test_an_archive_much_bigger_than_its_image_is_cut_off():
    src, built = _saved(_config({}), extra=[("e" * 64 + "/layer.tar", b"\0" * (2 << 20))])
    with pytest.raises(NotAnImage, match="bigger than its image"):
        relabel(io.BytesIO(src), io.BytesIO(), built, LABELS, "dy/web:b", 1000)
