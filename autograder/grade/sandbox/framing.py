"""Bytes on pipes: length-prefixed messages (parent <-> zygote) and nonce-framed
results (child -> zygote), so nothing a student prints can pass as a result."""
from __future__ import annotations

import json
import os
import struct


def write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _read_exact(fd: int, n: int) -> bytes | None:
    chunks, got = [], 0
    while got < n:
        b = os.read(fd, min(n - got, 1 << 20))
        if not b:
            return None
        chunks.append(b)
        got += len(b)
    return b"".join(chunks)


def send(fd: int, header: dict, blobs=()) -> None:
    """One message: a JSON header and any number of binary blobs."""
    h = json.dumps(header).encode()
    parts = [struct.pack("<II", len(h), len(blobs)), h]
    for b in blobs:
        parts += [struct.pack("<Q", len(b)), bytes(b)]
    body = b"".join(parts)
    write_all(fd, struct.pack("<Q", len(body)) + body)


def recv(fd: int):
    """(header, blobs), or None at end of file."""
    head = _read_exact(fd, 8)
    if head is None:
        return None
    body = _read_exact(fd, struct.unpack("<Q", head)[0])
    if body is None:
        return None
    hlen, nblobs = struct.unpack_from("<II", body, 0)
    pos = 8 + hlen
    header = json.loads(body[8:pos])
    blobs = []
    for _ in range(nblobs):
        (n,) = struct.unpack_from("<Q", body, pos)
        blobs.append(body[pos + 8:pos + 8 + n])
        pos += 8 + n
    return header, blobs


# Result frames, child -> zygote.  Kinds: L layers (JSON), F setup failed, R refused
# (strict isolation not possible), O ok payload, E job raised, M out of memory.
MAGIC = b"SBXR"
FRAME = struct.Struct("<4s16scQ")


def frame(nonce: bytes, kind: bytes, data: bytes) -> bytes:
    return FRAME.pack(MAGIC, nonce, kind, len(data)) + data


def parse_frames(data: bytes, nonce: bytes) -> tuple[dict, bool]:
    """({kind: data}, corrupt): a frame with another nonce or a torn frame is corruption."""
    frames, pos = {}, 0
    while pos < len(data):
        if len(data) - pos < FRAME.size:
            return frames, True
        magic, got_nonce, kind, n = FRAME.unpack_from(data, pos)
        if magic != MAGIC or got_nonce != nonce or pos + FRAME.size + n > len(data):
            return frames, True
        frames[kind] = bytes(data[pos + FRAME.size:pos + FRAME.size + n])
        pos += FRAME.size + n
    return frames, False
