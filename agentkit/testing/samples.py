"""Small real media files for tests and benchmarks: a PNG of one colour and a WAV tone, from the standard library.

The media tests, the CLI's ``--image``/``--audio`` tests, the MCP test server and the media benchmark each built
their own; one builder each keeps them alike, and needing no Pillow or numpy lets a server subprocess (or a
checkout without the ``[transformers]`` extra) make them too.
"""

from __future__ import annotations

import io
import math
import struct
import wave
import zlib
from array import array

__all__ = ["png", "wav"]


def png(width: int = 40, height: int = 30, color: tuple[int, int, int] = (200, 10, 10)) -> bytes:
    """A valid RGB PNG of ``width`` x ``height`` pixels, all ``color``."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes(color) * width for _ in range(height))  # filter byte 0, then the pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def wav(seconds: float = 0.5, rate: int = 8000, hz: float = 440.0) -> bytes:
    """A mono 16-bit WAV of ``seconds`` of a ``hz`` sine tone at ``rate`` samples per second (``hz=0``: silence)."""
    count = int(rate * seconds)
    end = 2 * math.pi * hz * seconds
    step = end / (count - 1) if count > 1 else 0.0
    samples = array("h", (int(math.sin(i * step) * 20000) for i in range(count)))  # native order: wave swaps
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buffer.getvalue()
