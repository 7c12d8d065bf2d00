"""Pure parts of tenant isolation: pack inflation bounds, referenced images, domain overlaps,
export of crafted trees."""
from __future__ import annotations

import zlib

import pytest

from builder.dockerfile import referenced_images
from controller.routing.domains import overlaps, platform_label
from controller.git.packguard import PackGuard, PackTooBig


def _obj(kind: int, data: bytes, body: bytes | None = None) -> bytes:
    size = len(data)
    head = [(kind << 4) | (size & 0x0F)]
    size >>= 4
    while size:
        head[-1] |= 0x80
        head.append(size & 0x7F)
        size >>= 7
    return bytes(head) + zlib.compress(body if body is not None else data)


def _pack(*objects: bytes) -> bytes:
    return b"PACK" + (2).to_bytes(4, "big") + len(objects).to_bytes(4, "big") + b"".join(objects) + b"\0" * 20


def feed_in_chunks(guard: PackGuard, data: bytes, n: int = 7) -> None:
    for i in range(0, len(data), n):
        guard.feed(data[i:i + n])


def test_pack_guard_passes_a_small_pack_fed_byte_by_byte():
    g = PackGuard(10, 1 << 20)
    feed_in_chunks(g, _pack(_obj(3, b"hello\n"), _obj(3, b"x" * 5000)), 1)
    assert g.state == "done" and g.total == 5006


def test_pack_guard_refuses_a_bomb_by_its_header_and_object_count():
    with pytest.raises(PackTooBig, match="DOCKYARD_MAX_PUSH_UNPACKED_MB"):
        feed_in_chunks(PackGuard(10, 1 << 20), _pack(_obj(3, b"\0" * (2 << 20))), 4096)
    with pytest.raises(PackTooBig, match="DOCKYARD_MAX_PUSH_OBJECTS"):
        PackGuard(2, 1 << 20).feed(_pack(*[_obj(3, b"a")] * 3))


def test_pack_guard_catches_a_lying_header_and_a_delta_that_makes_a_big_object():
    lying = bytes([0x30 | 1]) + zlib.compress(b"\0" * (2 << 20))   # says 1 byte
    with pytest.raises(PackTooBig):
        feed_in_chunks(PackGuard(10, 1 << 20), _pack(lying), 4096)
    big = 50 << 20
    varint = bytearray()
    for value in (10, big):
        while True:
            byte = value & 0x7F
            value >>= 7
            varint.append(byte | (0x80 if value else 0))
            if not value:
                break
    delta = _obj(7, bytes(varint) + b"\x90\x0a", None)
    ref_delta = delta[:1] + b"\x11" * 20 + delta[1:]   # a ref-delta: 20-byte base id after the header
    with pytest.raises(PackTooBig):
        PackGuard(10, 1 << 20).feed(_pack(ref_delta))


def test_referenced_images_include_copy_from_and_arg_names_but_not_stages():
    text = ("ARG B=x\nFROM base:1 AS build\nCOPY --from=build /a /b\nFROM $B\nCOPY --chown=1 --from=other:2 /a /b\n"
            "COPY --from=0 /a /b\nFROM scratch\n")
    assert referenced_images(text) == ["base:1", "$B", "other:2"]


@pytest.mark.parametrize("a,b,expected", [
    ("*.corp.example", "api.corp.example", True), ("*.corp.example", "*.x.corp.example", True),
    ("api.corp.example", "*.corp.example", True), ("a.b.corp.example", "*.corp.example", True),
    ("corp.example", "*.corp.example", False), ("api.corp.example", "www.corp.example", False),
    ("*.corp.example", "*.corp.example", True), ("xcorp.example", "*.corp.example", False)])
def test_domain_overlaps(a, b, expected):
    assert overlaps(a, b) is expected


def test_platform_label():
    assert platform_label("x.y.app.dy.localhost", "dy.localhost") == "app"
    assert platform_label("*.app.dy.localhost", "dy.localhost") == "app"
    assert platform_label("www.example.com", "dy.localhost") is None


def test_slug_links_are_never_followed(tmp_path):
    from builder.errors import BuildError
    from builder.slug import read_no_follow, safe_dockyard_dir
    host = tmp_path / "host"
    (host / "rootfs").mkdir(parents=True)
    slug = tmp_path / "slug"
    slug.mkdir()
    (slug / ".dockyard").symlink_to(host)
    with pytest.raises(BuildError, match="symlink"):
        safe_dockyard_dir(slug, "launcher")
    assert sorted(p.name for p in host.iterdir()) == ["rootfs"]
    (slug / ".dockyard").unlink()
    (slug / ".dockyard").mkdir()
    (slug / ".dockyard" / "launch").symlink_to(host / "written")
    (slug / ".dockyard" / "rootfs").symlink_to(host / "rootfs")
    with pytest.raises(BuildError, match="rootfs"):
        safe_dockyard_dir(slug, "launcher")
    assert not (host / "written").exists()                       # the link was replaced, not written through
    assert (slug / ".dockyard" / "launch").read_text() == "launcher"
    (host / "secret").write_text("root only")
    (slug / "release.yml").symlink_to(host / "secret")
    assert read_no_follow(slug / "release.yml") == ""
