"""What a sandbox run returns, and the capped output it is made from.

Output is read as it comes and kept only up to a cap, so a program that floods stdout costs time, not
memory; what was dropped is counted and said in the text itself, since the model reads only the text.
"""

from __future__ import annotations

import asyncio
import dataclasses

__all__ = ["CappedReader", "ExecResult"]


@dataclasses.dataclass(frozen=True)
class ExecResult:
    """What one run produced; output beyond the cap is dropped and flagged (with a marker in the text).

    ``limits_hit`` names the run-wide limits that stopped the program (``"memory"``, ``"write_bytes"``,
    ``"write_files"``); ``notices`` are sentences about the run the reader must know (a limit hit, a protected
    path the program created and that was removed, a limit this machine cannot enforce).
    """

    stdout: str
    stderr: str
    exit_code: int
    timed_out: bool
    duration_s: float
    stdout_truncated: bool = False
    stderr_truncated: bool = False
    limits_hit: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and not self.limits_hit


class CappedReader:
    """Drains a pipe to the end, keeping the first ``cap`` bytes, so the writer never blocks on a full pipe."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.dropped = 0

    async def drain(self, stream: asyncio.StreamReader | None) -> None:
        if stream is None:
            return
        while chunk := await stream.read(65536):
            room = self.cap - len(self.kept)
            if room > 0:
                self.kept += chunk[:room]
            self.dropped += max(0, len(chunk) - max(room, 0))

    def text(self) -> str:
        out = self.kept.decode("utf-8", "replace")
        if self.dropped:
            out += f"\n[... output truncated: {self.dropped} more bytes not shown]"
        return out
