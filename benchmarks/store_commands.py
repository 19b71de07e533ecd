"""Which store commands a request sends, and how long each takes: the server's application run in this
process on a stopped server's data dir, with PyMongo's command monitoring.

Counting commands is exact where latencies are noisy: a rule that adds a store round trip to every
search shows as one more line, whatever else the machine is doing.
"""

from __future__ import annotations

import statistics
import time
from collections import defaultdict
from contextvars import ContextVar
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from pymongo import monitoring

from fhir_server.app import create_app
from fhir_server.config import Settings
from fhir_server.storage.embedded import EmbeddedStore

# The base URL of the in-process application: tokens are minted for this audience.
BASE_URL = "http://testserver/fhir"
# Connection upkeep, not work done for the request.
UPKEEP = frozenset({"hello", "isMaster", "ismaster", "ping", "endSessions", "buildInfo"})


# Set around each measured request only: a context variable, so the commands of the application's
# background tasks (the outbox dispatcher, the subscription worker, the client registry's reloads),
# which run in contexts of their own, are never counted as the request's.
ARMED: ContextVar[bool] = ContextVar("store_commands_armed", default=False)


@dataclass
class CommandLog(monitoring.CommandListener):
    """Every command the measured request sends: (name, collection, milliseconds)."""

    commands: list[tuple[str, str, float]] = field(default_factory=list)
    _pending: dict[int, tuple[str, str]] = field(default_factory=dict)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if ARMED.get() and event.command_name not in UPKEEP:
            self._pending[event.request_id] = (event.command_name, str(event.command.get(event.command_name, "")))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        if (begun := self._pending.pop(event.request_id, None)) is not None:
            self.commands.append((*begun, event.duration_micros / 1000))

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._pending.pop(event.request_id, None)


# Registered once per process: it sees the clients created after it, the application's among them.
LOG = CommandLog()
monitoring.register(LOG)


@asynccontextmanager
async def application(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client on the server's application over `data_dir` (its store restarted here)."""
    store = EmbeddedStore(data_dir.resolve())
    url = store.start()
    try:
        app = create_app(Settings(data_dir=data_dir), url)
        async with app.router.lifespan_context(app):
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE_URL,
                                         timeout=120.0) as client:
                yield client
    finally:
        store.stop()


async def profile(client: httpx.AsyncClient, requests: Iterable[tuple[str, dict[str, str]]], repeat: int) -> dict[str, Any]:
    """The commands of each request (after one unmeasured pass), grouped by (command, collection)."""
    requests = list(requests)
    for url, headers in requests:
        await client.get(url, headers=headers)
    durations: dict[tuple[str, str], list[float]] = defaultdict(list)
    latencies: list[float] = []
    count = 0
    for _ in range(repeat):
        for url, headers in requests:
            LOG.commands.clear()
            armed = ARMED.set(True)
            started = time.perf_counter()
            response = await client.get(url, headers=headers)
            latencies.append(time.perf_counter() - started)
            ARMED.reset(armed)
            if response.status_code != 200:
                raise RuntimeError(f"{url} -> {response.status_code}: {response.text[:200]}")
            count += 1
            for name, collection, ms in LOG.commands:
                durations[(name, collection)].append(ms)
    return {
        "requests": count,
        "request_p50_ms": round(statistics.median(latencies) * 1000, 2),
        "commands_per_request": round(sum(len(v) for v in durations.values()) / max(count, 1), 2),
        "commands": [{"command": name, "collection": collection, "per_request": round(len(ms) / max(count, 1), 2),
                      "p50_ms": round(statistics.median(ms), 2)}
                     for (name, collection), ms in sorted(durations.items(), key=lambda kv: -len(kv[1]))],
    }
