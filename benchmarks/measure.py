"""The measuring loop: concurrent workers issue one operation for a fixed time while a thread samples
the processes that serve it (CPU time before and after, resident memory every 100 ms)."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import psutil

Operation = Callable[[int], Awaitable[None]]
SAMPLE_INTERVAL = 0.1


class NotAvailable(Exception):
    """The server does not offer this path (404 or connection refused); reported, not failed."""


@dataclass
class Result:
    name: str
    group: str
    scale: int
    status: str = "ok"  # ok | not available | failed
    note: str = ""
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    throughput: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    # CPU of the process answering the request (FHIR server or bare endpoint) and of the store behind it.
    cpu_ms_per_request: float | None = None
    store_cpu_ms_per_request: float | None = None
    peak_rss_mb: float = 0.0
    # The load generator's own CPU per request, where it is measured (wrk), and what drove the path.
    client_cpu_ms_per_request: float | None = None
    driver: str = "asyncio + httpx"
    limits: dict[str, str] = field(default_factory=dict)
    ratios: dict[str, float] = field(default_factory=dict)
    # The ratio to the bare route in each round measured in pairs (benchmarks.run.paired_with_bare).
    paired_ratios: list[float] = field(default_factory=list)
    # The p50 of the path and of its bare route in each of those rounds, ms.
    paired_p50_ms: list[list[float]] = field(default_factory=list)
    # With --profile: the server's hottest functions, as shares of py-spy samples (see benchmarks.profile).
    hot_spots: dict[str, list[tuple[str, float]]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(int(round(fraction * (len(sorted_values) - 1))), len(sorted_values) - 1)
    return sorted_values[index]


class Monitor:
    """CPU seconds and peak resident memory of the front process (may be None) and the store."""

    def __init__(self, front: psutil.Process | None, store: psutil.Process | None) -> None:
        self.front = front
        self.store = store
        self.peak_rss = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._cpu_before: tuple[float, float] = (0.0, 0.0)

    @staticmethod
    def _cpu(process: psutil.Process | None) -> float:
        if process is None:
            return 0.0
        times = process.cpu_times()
        return times.user + times.system

    def _rss(self) -> int:
        total = 0
        for process in (self.front, self.store):
            if process is not None:
                try:
                    total += process.memory_info().rss
                except psutil.Error:
                    pass
        return total

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_INTERVAL):
            self.peak_rss = max(self.peak_rss, self._rss())

    def __enter__(self) -> Monitor:
        self._cpu_before = (self._cpu(self.front), self._cpu(self.store))
        self.peak_rss = self._rss()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.cpu_front = self._cpu(self.front) - self._cpu_before[0]
        self.cpu_store = self._cpu(self.store) - self._cpu_before[1]


async def drive(operation: Operation, *, concurrency: int, duration: float, warmup: int = 1,
                monitor: Monitor, result: Result) -> Result:
    """Run `operation` from `concurrency` workers for `duration` seconds and fill `result`."""
    for i in range(warmup):
        await operation(-1 - i)
    latencies: list[float] = []
    errors: list[str] = []
    counter = itertools.count()
    deadline = time.perf_counter() + duration

    async def worker() -> None:
        # Each worker measures at least one request: on a loaded machine a short run can otherwise
        # end before a worker is first scheduled, and report no figure at all.
        while True:
            started = time.perf_counter()
            try:
                await operation(next(counter))
            except NotAvailable:
                raise
            except Exception as exc:  # a failed request is counted, not fatal: the rate of failures is a figure too
                errors.append(f"{exc.__class__.__name__}: {exc}"[:300])
            else:
                latencies.append(time.perf_counter() - started)
            if time.perf_counter() >= deadline:
                return

    with monitor:
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    done = len(latencies)
    result.requests, result.errors, result.seconds = done, len(errors), round(elapsed, 3)
    result.throughput = round(done / elapsed, 1) if elapsed else 0.0
    result.p50_ms, result.p95_ms, result.p99_ms = (round(percentile(latencies, f) * 1000, 2) for f in (0.5, 0.95, 0.99))
    if done:
        if monitor.front is not None:
            result.cpu_ms_per_request = round(monitor.cpu_front / done * 1000, 3)
        if monitor.store is not None:
            result.store_cpu_ms_per_request = round(monitor.cpu_store / done * 1000, 3)
    result.peak_rss_mb = round(monitor.peak_rss / 2**20, 1)
    if errors:
        result.note = f"{len(errors)} errors, first: {errors[0]}"
        if not done:
            result.status = "failed"
    return result
