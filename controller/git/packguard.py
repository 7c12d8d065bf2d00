"""Bounds on what a pushed pack inflates to, checked while it streams in (before dulwich
inflates each object in memory and resolves its deltas): at most `max_objects` objects and
`max_bytes` of object content in total, counting each object's full size (a delta counts the
size of the object it makes, so a small delta that repeats a big base is counted in full).
The pack's own header sizes are checked before inflating, and each object's inflated bytes are
counted as they come (a header that lies is caught after at most one chunk)."""
from __future__ import annotations

import struct
import zlib

CHUNK = 1 << 16
_OFS_DELTA, _REF_DELTA = 6, 7


class PackTooBig(OSError):
    """Raised from the read callables: dulwich reports it as the `unpack` failure."""


def _varint(buf: bytes, pos: int) -> tuple[int, int] | None:
    """A size varint of a delta header: (value, next position) or None if incomplete."""
    value = shift = 0
    while pos < len(buf):
        b = buf[pos]
        value |= (b & 0x7F) << shift
        shift += 7
        pos += 1
        if not b & 0x80:
            return value, pos
    return None


class PackGuard:
    def __init__(self, max_objects: int, max_bytes: int):
        self.max_objects = max_objects
        self.max_bytes = max_bytes
        self.buf = b""
        self.state = "header"
        self.remaining = 0
        self.total = 0
        self.inflater = None
        self.declared = 0
        self.inflated = 0
        self.is_delta = False
        self.delta_head = b""

    # ---- wrapping dulwich's read callables -----------------------------------------------
    def wrap(self, read):
        if read is None:
            return None

        def guarded(n: int) -> bytes:
            data = read(n)
            self.feed(data)
            return data
        return guarded

    # ---- the stream ----------------------------------------------------------------------
    def feed(self, data: bytes) -> None:
        if self.state == "done" or not data:
            return
        self.buf += data
        while self.buf and self.state != "done":
            if not getattr(self, "_" + self.state)():
                return

    def _header(self) -> bool:
        if len(self.buf) < 12:
            return False
        magic, _version, count = struct.unpack(">4sLL", self.buf[:12])
        self.buf = self.buf[12:]
        if magic != b"PACK":
            self.state = "done"     # not a pack: dulwich refuses it
            return False
        if count > self.max_objects:
            raise PackTooBig(f"the push has {count} objects, more than the {self.max_objects} allowed "
                             "(DOCKYARD_MAX_PUSH_OBJECTS)")
        self.remaining = count
        self.state = "object" if count else "done"
        return True

    def _object(self) -> bool:
        buf, pos = self.buf, 0
        if not buf:
            return False
        b = buf[0]
        kind, size, shift, pos = (b >> 4) & 7, b & 0x0F, 4, 1
        while b & 0x80:
            if pos >= len(buf):
                return False
            b = buf[pos]
            size |= (b & 0x7F) << shift
            shift += 7
            pos += 1
        if kind == _OFS_DELTA:
            while True:
                if pos >= len(buf):
                    return False
                pos += 1
                if not buf[pos - 1] & 0x80:
                    break
        elif kind == _REF_DELTA:
            if len(buf) < pos + 20:
                return False
            pos += 20
        self.buf = buf[pos:]
        self.is_delta = kind in (_OFS_DELTA, _REF_DELTA)
        self.declared, self.inflated, self.delta_head = size, 0, b""
        if not self.is_delta:
            self._count(size)
        self.inflater = zlib.decompressobj()
        self.state = "inflate"
        return True

    def _inflate(self) -> bool:
        data, self.buf = self.buf, b""
        d = self.inflater
        try:
            out = d.decompress(data, CHUNK)
            while True:
                self._inflated(out)
                if d.eof or not d.unconsumed_tail:
                    break
                out = d.decompress(d.unconsumed_tail, CHUNK)
        except zlib.error:
            self.state = "done"     # corrupt: dulwich reports it
            return False
        if not d.eof:
            return False
        self.buf = d.unused_data
        self.remaining -= 1
        self.state = "object" if self.remaining else "done"
        return True

    def _inflated(self, out: bytes) -> None:
        self.inflated += len(out)
        if self.inflated > self.declared:
            self._count(self.max_bytes + 1)   # the header lied: refused as too big
        if self.is_delta and len(self.delta_head) < 20:
            self.delta_head += out[:20]
            base = _varint(self.delta_head, 0)
            result = _varint(self.delta_head, base[1]) if base else None
            if result is not None:
                self._count(result[0])
                self.delta_head = b"x" * 20   # counted once

    def _count(self, n: int) -> None:
        self.total += n
        if self.total > self.max_bytes:
            raise PackTooBig(f"the push's objects unpack to more than {self.max_bytes >> 20} MB "
                             "(DOCKYARD_MAX_PUSH_UNPACKED_MB)")
