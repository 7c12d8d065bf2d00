"""A small image out of a build sandbox as one archive: the sandbox engine's `docker save` of
it, rewritten on the way into the host engine's `docker load` with the platform's labels in its
config (image_stamp.py says which) and named as the build's tag. No sockets here: a stream in,
a stream out (docker_sandbox.py connects them to the engines).

A push to the sandbox's registry, the stamp there and the host's pull cost a few tenths of a
second whatever the image's size (each engine's push and pull go through their whole
pipeline, and the layers are compressed on the way); an archive costs about its size (a few
milliseconds a megabyte, uncompressed). So images up to DIRECT_MAX_BYTES go this way, bigger
ones through the registry, whose host keeps the layers it has (the stack, an app's base image).

The sandbox runs the tenant's builds, so its archive is read as untrusted: only the members a
save writes that a load needs go through (the config, each layer's `layer.tar`, the manifest),
named as the save names them, as regular files, within a size budget; the manifest is rewritten,
not passed on; the layers are checked by the host's engine against the config's `diff_ids` as
it loads them, as for a pull."""
from __future__ import annotations

import io
import json
import re
import tarfile
from typing import BinaryIO

from controller.scheduler import image_stamp

DIRECT_MAX_BYTES = 16 << 20     # an image this size or smaller leaves the sandbox as an archive
_SLACK = 1 << 20                # bytes an archive may hold beyond its image's size (tar headers)
_CONFIG = re.compile(r"^([0-9a-f]{64})\.json$")
_LAYER = re.compile(r"^[0-9a-f]{64}/layer\.tar$")
_LEGACY = re.compile(r"^[0-9a-f]{64}(/(VERSION|json))?/?$")   # what an older load reads: left out


def relabel(src: BinaryIO, dst: BinaryIO, built: str, labels: dict[str, str], tag: str, size: int) -> str:
    """Copy the `docker save` archive of the image `built` (its id) from `src` to `dst` as an
    archive `docker load` names `tag`, with `labels` stamped in its config. `size`: the image's
    size as its engine reported it (the archive may not be much bigger). Returns the new image
    id. Raises image_stamp.NotAnImage for anything a save of that one image does not write."""
    budget = size + _SLACK
    config_name, layers = None, set()
    manifest = None
    with tarfile.open(fileobj=src, mode="r|") as inp, tarfile.open(fileobj=dst, mode="w|",
                                                                    format=tarfile.PAX_FORMAT) as out:
        for member in inp:
            budget -= member.size
            if budget < 0:
                raise image_stamp.NotAnImage(f"the archive is bigger than its image ({size} bytes)")
            found = _CONFIG.match(member.name)
            if member.isfile() and found:
                if "sha256:" + found.group(1) != built or config_name is not None:
                    raise image_stamp.NotAnImage(f"the archive holds another image's config ({member.name[:20]}…)")
                config = image_stamp.labelled_config(_read(inp, member), labels)
                config_name = image_stamp.digest(config).split(":", 1)[1] + ".json"
                _add(out, config_name, io.BytesIO(config), len(config))
            elif member.isfile() and _LAYER.match(member.name):
                layers.add(member.name)
                _add(out, member.name, inp.extractfile(member), member.size)
            elif member.isfile() and member.name == "manifest.json":
                manifest = _read(inp, member)
            elif member.name == "repositories" or (_LEGACY.match(member.name) and (member.isdir() or member.isfile())):
                continue
            else:
                raise image_stamp.NotAnImage(f"the archive holds {member.name[:80]!r}, which a save does not write")
        if config_name is None or manifest is None:
            raise image_stamp.NotAnImage("the archive has no config or no manifest")
        body = json.dumps([{"Config": config_name, "RepoTags": [tag],
                            "Layers": _layers(manifest, built, layers)}]).encode()
        _add(out, "manifest.json", io.BytesIO(body), len(body))
    return image_stamp.digest(config)


def _layers(manifest: bytes, built: str, present: set[str]) -> list[str]:
    """The manifest's layer list, when it describes the one image `built` with layers the
    archive holds."""
    try:
        doc = json.loads(manifest)
    except ValueError:
        raise image_stamp.NotAnImage("the archive's manifest is not JSON") from None
    if not (isinstance(doc, list) and len(doc) == 1 and isinstance(doc[0], dict)):
        raise image_stamp.NotAnImage("the archive's manifest does not describe one image")
    entry = doc[0]
    layers = entry.get("Layers")
    if entry.get("Config") != built.split(":", 1)[-1] + ".json" or not isinstance(layers, list) \
            or not all(isinstance(name, str) and name in present for name in layers):
        raise image_stamp.NotAnImage("the archive's manifest names another config or a layer it lacks")
    return layers


def _read(inp: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    if member.size > image_stamp.MAX_DOCUMENT:
        raise image_stamp.NotAnImage(f"{member.name[:80]} is over {image_stamp.MAX_DOCUMENT >> 20} MB")
    return inp.extractfile(member).read()


def _add(out: tarfile.TarFile, name: str, data: BinaryIO, size: int) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode = size, 0o644
    out.addfile(info, data)
