"""Sampling the server with py-spy while a path is measured (`--profile DIR`), and the hot spots of a sample.

py-spy writes collapsed stacks (`frame;frame;frame count`); the summary ranks functions by the share
of samples in which they are on the stack, leaving out the event loop and the interpreter's frames
so what is left is the server's own work.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

# The server's own code: where an inclusive share points at something that can be changed.
OWN = ("fhir_server/", "cda/", "conformance/")
# Frames every sample of an asyncio server passes through: they say nothing about where time goes.
IGNORED = ("asyncio/", "uvicorn/", "starlette/", "fastapi/", "<module>", "runpy.py", "threading.py", "concurrent/")


class Profiler:
    def __init__(self, pid: int, output: Path, seconds: float) -> None:
        self.pid, self.output, self.seconds = pid, output, seconds
        self.process: subprocess.Popen[bytes] | None = None

    @staticmethod
    def command() -> str | None:
        beside = Path(sys.executable).parent / "py-spy"
        return str(beside) if beside.exists() else shutil.which("py-spy")

    def __enter__(self) -> Profiler:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.command() or "py-spy", "record", "--pid", str(self.pid), "--duration", str(max(int(self.seconds), 1)),
             "--rate", "200", "--format", "raw", "--nonblocking", "--output", str(self.output)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            try:
                self.process.wait(timeout=self.seconds + 30)
            except subprocess.TimeoutExpired:
                self.process.terminate()
                self.process.wait()


def hot_spots(collapsed: Path, top: int = 6) -> dict[str, list[tuple[str, float]]]:
    """Share of samples per function: `own` = server functions on the stack (inclusive),
    `leaf` = where the CPU actually was (self time, any code)."""
    if not collapsed.exists():
        return {}
    inclusive: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        samples = int(count)
        total += samples
        frames = [f.strip() for f in stack.split(";") if f.strip()]
        if frames:
            leaves[frames[-1]] += samples
        for frame in set(frames):
            if any(own in frame for own in OWN) and not any(word in frame for word in IGNORED):
                inclusive[frame] += samples
    if not total:
        return {}
    return {kind: [(frame, round(n / total, 3)) for frame, n in counter.most_common(top)]
            for kind, counter in (("own", inclusive), ("leaf", leaves))}
